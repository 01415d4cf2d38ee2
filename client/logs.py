"""Task logs for ``dlsubmit logs``: live from the NodeManagers, from HDFS after the job.

Where a task's output is, by the job's phase (the launcher writes the user command's combined
output to its container's ``stdout`` and uploads it to HDFS when the task ends):

* the application runs and the record names the task's container for the attempt asked for:
  the NodeManager's live ``stdout``, then ``stderr`` (the launcher's own messages, if any);
* otherwise: the log the launcher uploaded (:func:`client.record.task_log_path`), and when that
  is missing, YARN's aggregated ``stdout`` of the container (``yarn logs``).

Every line is prefixed with its task: ``[worker:0] epoch 1 loss 0.3``. Nothing here prints:
:func:`task_logs` returns lines, :func:`follow` yields them, and a log that cannot be found is
reported through this module's logger (the CLI shows warnings on stderr).

The boundaries are :class:`~client.rm.ResourceManager` (NodeManager REST),
:class:`~client.hdfs.Hdfs` and the ``yarn logs`` runner; all are passed in, and tests fake them.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from client.errors import ClusterUnreachableError, HdfsError, UsageError
from client.hdfs import Hdfs
from client.record import status_path, task_log_path
from client.rm import AppInfo, ResourceManager, parse_log_dump
from client.spec import TaskId

__all__ = ["YarnLogsRunner", "follow", "run_yarn_logs", "task_logs"]

logger = logging.getLogger(__name__)

#: ``(app_id, container_id, app_owner) -> `yarn logs` output for the container's stdout``, or
#: None when YARN has none.
YarnLogsRunner = Callable[[str, str, str], bytes | None]

_LIVE_FILES = ("stdout", "stderr")
_YARN_LOGS_TIMEOUT_S = 120
# A tail read asks for this many bytes per wanted line first; too few only costs a re-read.
_TAIL_BYTES_PER_LINE = 200
_MAX_TAIL_BYTES = 64 * 1024 * 1024
# A follow poll asks for this much more than is known to be new, so one request usually does.
_FOLLOW_SLACK_BYTES = 64 * 1024
_MAX_READS = 4


# --------------------------------------------------------------------------------------------
# Public API


def task_logs(
    rm: ResourceManager,
    hdfs: Hdfs,
    app: AppInfo,
    record: Mapping[str, Any] | None,
    *,
    user: str | None = None,
    task: TaskId | str | None = None,
    attempt: int | None = None,
    tail: int | None = None,
    yarn_logs: YarnLogsRunner | None = None,
) -> list[str]:
    """The logs of a job's tasks, each line prefixed with its task.

    Args:
        rm: reads live logs from the NodeManagers.
        hdfs: reads the logs the launchers uploaded.
        app: the application as the RM reports it: its state decides between live and
            stored logs.
        record: the job's ``status.json`` (see :mod:`client.record`); None when the AppMaster
            has not written it yet (there are no tasks to show then).
        user: whose job directory holds the logs; default the record's ``user``, else the
            application's.
        task: only this task (``TaskId`` or ``"worker:0"``).
        attempt: the attempt (1-based); default the latest in the record.
        tail: only the last N lines of each task (of its output and, when read live, of its
            container's stderr).
        yarn_logs: runs ``yarn logs`` (default :func:`run_yarn_logs`).

    Returns:
        ``[worker:0] line`` strings, task by task in rank order.

    Raises:
        UsageError: no such task or attempt in the record, or a bad ``tail``.
        ClusterUnreachableError: HDFS does not answer (an unreachable NodeManager is only
            logged, and the stored log is tried instead).
    """
    _check_tail(tail)
    if record is None:
        logger.info("%s: no job record yet (the AppMaster has not started)", app.id)
        return []
    job = _Job.of(record, app, attempt, user)
    lines: list[str] = []
    for name, entry in _select(record, task):
        source = _Source(job, name, entry)
        lines += _prefixed(name, source.lines(rm, hdfs, tail, yarn_logs))
    return lines


def follow(
    rm: ResourceManager,
    hdfs: Hdfs,
    app_id: str,
    *,
    user: str | None = None,
    task: TaskId | str | None = None,
    attempt: int | None = None,
    tail: int | None = None,
    poll_interval_s: float = 1.0,
    yarn_logs: YarnLogsRunner | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[str]:
    """Yield a job's log lines as they are written, until the application ends.

    First what is there already (the last ``tail`` lines per task when given), then, every
    ``poll_interval_s``, only what was added since: each NodeManager read starts at the byte
    offset reached before, so no line repeats. A task whose container changes (a new attempt)
    is read from the start of the new container, after a ``--- attempt N ---`` line. When the
    application ends, what the NodeManager no longer serves is taken from the stored log,
    from the same byte offset.

    Args:
        rm: the ResourceManager (application state) and NodeManagers (live logs).
        hdfs: the job record and the stored logs.
        app_id: the application.
        user: whose job directory holds the record and logs; default the application's user.
        task: only this task.
        attempt: only this attempt (default: the latest, at each poll). An attempt that has
            ended is shown whole, without waiting.
        tail: start with the last N lines per task instead of everything.
        poll_interval_s: pause between polls.
        yarn_logs: runs ``yarn logs`` (default :func:`run_yarn_logs`).
        sleep: the pause (tests pass a fake).

    Yields:
        ``[worker:0] line`` strings.

    Raises:
        NoSuchApplicationError: the RM does not know ``app_id``.
        UsageError: no such task or attempt, or a bad ``tail``.
        ClusterUnreachableError: the RM or HDFS does not answer.
    """
    _check_tail(tail)
    followers: dict[str, _Follower] = {}
    record: Mapping[str, Any] | None = None
    first_poll = True
    while True:
        app = rm.app(app_id)
        record = _read_record(hdfs, status_path(user or app.user, app_id), record)
        if app.is_terminal:
            break
        if record is not None:
            job = _Job.of(record, app, attempt, user)
            if not job.latest:  # that attempt is over: nothing new will come
                yield from task_logs(rm, hdfs, app, record, user=user, task=task,
                                     attempt=attempt, tail=tail, yarn_logs=yarn_logs)
                return
            for name, entry in _select(record, task):
                source = _Source(job, name, entry)
                yield from _poll_task(followers, source, rm, hdfs, tail if first_poll else None)
            first_poll = False
        sleep(poll_interval_s)
    finish = _Finish(rm, hdfs, user, task, attempt, tail, yarn_logs)
    yield from finish(app, record, followers)


def run_yarn_logs(app_id: str, container_id: str, app_owner: str) -> bytes | None:
    """Run ``yarn logs`` for a container's aggregated ``stdout`` (the ``yarn`` CLI on PATH).

    Returns:
        YARN's dump (each file in its ``LogType:``/``LogContents:`` envelope), or None when
        YARN has no such log or the command is missing, fails or runs over two minutes.
    """
    command = [
        "yarn", "logs", "-applicationId", app_id, "-containerId", container_id,
        "-log_files", "stdout", "-appOwner", app_owner,
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, timeout=_YARN_LOGS_TIMEOUT_S)
    except FileNotFoundError:
        logger.warning("`yarn` is not on PATH: cannot read YARN's aggregated logs")
        return None
    except subprocess.TimeoutExpired:
        logger.warning("`yarn logs` for %s ran over %ss; skipped", container_id,
                       _YARN_LOGS_TIMEOUT_S)
        return None
    if done.returncode != 0:
        logger.debug("yarn logs %s: %s", container_id, done.stderr.decode(errors="replace"))
        return None
    return done.stdout


# --------------------------------------------------------------------------------------------
# Where one task's log is.


@dataclass(frozen=True)
class _Job:
    """What every task's lookup needs from the record and the application."""

    app_id: str
    user: str
    running: bool
    attempt: int  # the attempt asked for
    latest: bool  # whether it is the record's latest (only then can it be live)

    @classmethod
    def of(
        cls, record: Mapping[str, Any], app: AppInfo, attempt: int | None, user: str | None
    ) -> _Job:
        latest = _as_int(record.get("attempt")) or 1
        if attempt is not None and not 1 <= attempt <= latest:
            raise UsageError(f"attempt {attempt}: no such attempt; the job has 1..{latest}")
        wanted = latest if attempt is None else attempt
        return cls(
            app_id=app.id,
            user=user or str(record.get("user") or app.user),
            running=not app.is_terminal,
            attempt=wanted,
            latest=wanted == latest,
        )


@dataclass(frozen=True)
class _Source:
    """One task of one attempt, and where its log can be read."""

    job: _Job
    task: str
    entry: Mapping[str, Any]

    @property
    def container_id(self) -> str:
        """The task's container, when the record's entry belongs to the attempt asked for."""
        if _as_int(self.entry.get("attempt")) not in (None, self.job.attempt):
            return ""
        return str(self.entry.get("container_id") or "")

    @property
    def nm(self) -> str:
        """The container's NodeManager web address."""
        return str(self.entry.get("nm_http_address") or "")

    @property
    def live(self) -> bool:
        """Whether the NodeManager is where this log is now."""
        return self.job.running and bool(self.container_id and self.nm)

    def lines(
        self, rm: ResourceManager, hdfs: Hdfs, tail: int | None, yarn_logs: YarnLogsRunner | None
    ) -> list[str]:
        """The log's lines (the last ``tail``), from the first place that has it."""
        if self.live:
            try:
                live = _live_lines(rm, self.nm, self.container_id, tail)
            except ClusterUnreachableError as exc:
                logger.warning("[%s] live log unavailable: %s", self.task, exc)
                live = None
            if live is not None:
                return live
        return _last(_split(self.stored(hdfs, yarn_logs)), tail)

    def stored(self, hdfs: Hdfs, yarn_logs: YarnLogsRunner | None) -> bytes:
        """The launcher's upload, else YARN's aggregated stdout; b"" (and a warning) if none."""
        path = task_log_path(self.job.user, self.job.app_id, self.job.attempt, self.task)
        try:
            data = hdfs.read_bytes(path)
        except HdfsError as exc:
            logger.warning("[%s] %s", self.task, exc)
            data = None
        if data is not None:
            return data
        if self.container_id and not self.job.running:
            dump = (yarn_logs or run_yarn_logs)(self.job.app_id, self.container_id, self.job.user)
            blocks = [b for b in parse_log_dump(dump or b"") if b.file_name == "stdout"]
            if blocks:
                return b"".join(block.content for block in blocks)
        if not self.job.running:
            logger.warning(
                "[%s] no log for attempt %d: not uploaded to %s%s",
                self.task, self.job.attempt, path,
                ", not in YARN's aggregated logs" if self.container_id else "",
            )  # fmt: skip
        return b""


def _select(record: Mapping[str, Any], task: TaskId | str | None) -> list[tuple[str, Any]]:
    """The record's tasks in rank order, or only ``task`` (once the record lists tasks)."""
    tasks = record.get("tasks")
    entries = {str(k): v for k, v in tasks.items()} if isinstance(tasks, Mapping) else {}
    entries = {k: v for k, v in entries.items() if isinstance(v, Mapping)}
    ordered = sorted(entries.items(), key=lambda item: _rank_key(*item))
    if task is None:
        return ordered
    wanted = str(task if isinstance(task, TaskId) else TaskId.parse(task))
    if wanted in entries:
        return [(wanted, entries[wanted])]
    if entries:
        known = ", ".join(name for name, _ in ordered)
        raise UsageError(f"task {wanted}: no such task; tasks are {known}")
    return []  # the AppMaster has not listed the tasks yet


def _rank_key(name: str, entry: Mapping[str, Any]) -> tuple[int, str, int]:
    rank = _as_int(entry.get("rank"))
    role, _, index = name.partition(":")
    return (rank if rank is not None else 1 << 30, role, _as_int(index) or 0)


def _read_record(
    hdfs: Hdfs, path: str, previous: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The job record; the previous one while there is none (the AppMaster writes it atomically)."""
    record = hdfs.read_json(path)
    return record if isinstance(record, Mapping) else previous


# --------------------------------------------------------------------------------------------
# Reading from the NodeManager.


def _live_lines(
    rm: ResourceManager, nm: str, container_id: str, tail: int | None
) -> list[str] | None:
    """stdout's lines then stderr's (the last ``tail`` of each); None when there is no stdout."""
    out = _file_lines(rm, nm, container_id, "stdout", tail)
    if out is None:
        return None
    return out + (_file_lines(rm, nm, container_id, "stderr", tail) or [])


def _file_lines(
    rm: ResourceManager, nm: str, container_id: str, file_name: str, tail: int | None
) -> list[str] | None:
    """A live file's lines (the last ``tail`` complete ones); None when the NM lacks it."""
    if tail is None:
        chunk = rm.read_container_log(nm, container_id, file_name)
        return None if chunk is None else _split(chunk.data)
    read = _tail_read(rm, nm, container_id, file_name, tail)
    return None if read is None else read[0]


def _tail_read(
    rm: ResourceManager, nm: str, container_id: str, file_name: str, tail: int
) -> tuple[list[str], int] | None:
    """The last ``tail`` complete lines of a live file, and the offset after the last one.

    Asks for a guessed number of bytes, and again for four times more while the answer starts
    inside the file and holds too few lines. None when the NM lacks the file.
    """
    want = max(tail, 1) * _TAIL_BYTES_PER_LINE + 4096
    while True:
        chunk = rm.read_container_log(nm, container_id, file_name, -want)
        if chunk is None:
            return None
        skipped = 0
        if chunk.start > 0:  # the first line is probably cut: drop it
            skipped = chunk.data.find(b"\n") + 1 or len(chunk.data)
        body = chunk.data[skipped:]
        end = body.rfind(b"\n") + 1  # a last line without its newline is not complete yet
        lines = _split(body[:end])
        if len(lines) >= tail or chunk.start == 0 or want >= _MAX_TAIL_BYTES:
            return _last(lines, tail), chunk.start + skipped + end
        want *= 4


def _read_from(
    rm: ResourceManager, nm: str, container_id: str, file_name: str, offset: int, known: int
) -> tuple[bytes, int] | None:
    """The bytes of a live file from ``offset`` to its end, and that end.

    The NodeManager only serves the first or the last N bytes of a file, so this asks for the
    last ``known - offset`` bytes plus some slack (``known``: the length seen last time), and
    again, for more, when the file grew faster than that. None when the NM lacks the file.
    """
    want = max(known - offset, 0) + _FOLLOW_SLACK_BYTES
    reads = 0
    while True:
        chunk = rm.read_container_log(nm, container_id, file_name, -want)
        reads += 1
        if chunk is None:
            return None
        if chunk.file_length < offset:  # truncated or replaced: start over
            return (chunk.data if chunk.start == 0 else b""), chunk.file_length
        if chunk.start <= offset:
            return chunk.data[offset - chunk.start :], chunk.file_length
        if reads >= _MAX_READS:
            logger.warning("%s: %s grows too fast to follow; output skipped",
                           container_id, file_name)
            return chunk.data, chunk.file_length
        want = chunk.file_length - offset + _FOLLOW_SLACK_BYTES


@dataclass
class _Cursor:
    """How far one live file has been read."""

    offset: int = 0  # bytes read from the file
    pending: bytes = b""  # the end of what was read: a line still waiting for its newline
    available: bool = False  # whether the NM served the file at the last read

    @property
    def shown(self) -> int:
        """Bytes of the file already yielded."""
        return self.offset - len(self.pending)


@dataclass
class _Follower:
    """Follows one task's container on its NodeManager."""

    source: _Source
    start_tail: int | None  # begin with the last N lines rather than the whole file
    files: dict[str, _Cursor] = field(default_factory=dict)
    warned: bool = False

    @property
    def container_id(self) -> str:
        """The container followed."""
        return self.source.container_id

    def poll(self, rm: ResourceManager) -> Iterator[str]:
        """New complete lines of stdout, then of stderr."""
        for file_name in _LIVE_FILES:
            try:
                lines = self._read(rm, file_name)
            except ClusterUnreachableError as exc:
                if not self.warned:
                    logger.warning("[%s] live log unavailable: %s", self.source.task, exc)
                    self.warned = True
                continue
            yield from _prefixed(self.source.task, lines)

    def close(
        self, rm: ResourceManager, hdfs: Hdfs, source: _Source, yarn_logs: YarnLogsRunner | None
    ) -> Iterator[str]:
        """Everything of the container not yielded yet.

        From the NodeManager while it still serves the files (a last line without newline
        included), else from the stored log (``source``), after the bytes already shown.
        """
        yield from self.poll(rm)
        for cursor in self.files.values():
            if cursor.available and cursor.pending:
                yield from _prefixed(self.source.task, _split(cursor.pending))
                cursor.pending = b""
        stdout = self.files.get("stdout")
        if stdout is None or not stdout.available:
            shown = 0 if stdout is None else stdout.shown
            rest = source.stored(hdfs, yarn_logs)[shown:]
            yield from _prefixed(self.source.task, _split(rest))

    def _read(self, rm: ResourceManager, file_name: str) -> list[str]:
        cursor = self.files.get(file_name)
        if cursor is None:
            cursor = self.files[file_name] = _Cursor()
            if self.start_tail is not None:
                return self._read_tail(rm, file_name, cursor, self.start_tail)
        nm, container_id = self.source.nm, self.container_id
        read = _read_from(rm, nm, container_id, file_name, cursor.offset, cursor.offset)
        cursor.available = read is not None
        if read is None:
            return []
        data, cursor.offset = read
        data = cursor.pending + data
        end = data.rfind(b"\n") + 1
        cursor.pending = data[end:]
        return _split(data[:end])

    def _read_tail(
        self, rm: ResourceManager, file_name: str, cursor: _Cursor, tail: int
    ) -> list[str]:
        read = _tail_read(rm, self.source.nm, self.container_id, file_name, tail)
        cursor.available = read is not None
        if read is None:
            return []
        lines, cursor.offset = read
        return lines


def _poll_task(
    followers: dict[str, _Follower],
    source: _Source,
    rm: ResourceManager,
    hdfs: Hdfs,
    tail: int | None,
) -> Iterator[str]:
    """One poll of one task: its new lines, after closing the old container if it changed."""
    if not source.live:
        return
    follower = followers.get(source.task)
    if follower is None or follower.container_id != source.container_id:
        if follower is not None:
            yield from follower.close(rm, hdfs, follower.source, None)
            yield f"[{source.task}] --- attempt {source.job.attempt} ---"
        follower = followers[source.task] = _Follower(source, tail)
    yield from follower.poll(rm)


@dataclass(frozen=True)
class _Finish:
    """After the end: the rest of each followed task, the whole log of tasks never seen."""

    rm: ResourceManager
    hdfs: Hdfs
    user: str | None
    task: TaskId | str | None
    attempt: int | None
    tail: int | None
    yarn_logs: YarnLogsRunner | None

    def __call__(
        self,
        app: AppInfo,
        record: Mapping[str, Any] | None,
        followers: Mapping[str, _Follower],
    ) -> Iterator[str]:
        if record is None:
            return
        job = _Job.of(record, app, self.attempt, self.user)
        for name, entry in _select(record, self.task):
            yield from self._task(_Source(job, name, entry), followers.get(name))

    def _task(self, source: _Source, follower: _Follower | None) -> Iterator[str]:
        rm, hdfs, name = self.rm, self.hdfs, source.task
        if follower is not None and follower.container_id == source.container_id:
            yield from follower.close(rm, hdfs, source, self.yarn_logs)
            return
        if follower is not None:  # the task moved to a container never seen live
            yield from follower.close(rm, hdfs, follower.source, None)
            yield f"[{name}] --- attempt {source.job.attempt} ---"
        lines = _split(source.stored(hdfs, self.yarn_logs))
        yield from _prefixed(name, lines if follower else _last(lines, self.tail))


# --------------------------------------------------------------------------------------------
# Small helpers.


def _split(data: bytes) -> list[str]:
    """Lines of a log ("\\n"-separated; a "\\r" before the newline is dropped)."""
    if not data:
        return []
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _last(lines: list[str], count: int | None) -> list[str]:
    """The last ``count`` lines (all when None)."""
    if count is None:
        return lines
    return lines[max(len(lines) - count, 0) :]


def _prefixed(task: str, lines: list[str]) -> list[str]:
    return [f"[{task}] {line}" for line in lines]


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _check_tail(tail: int | None) -> None:
    if tail is not None and (isinstance(tail, bool) or not isinstance(tail, int) or tail < 0):
        raise UsageError(f"tail: must be an integer >= 0, got {tail!r}")

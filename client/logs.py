"""Task logs for ``dlsubmit logs``: live from the NodeManagers, from HDFS after the job.

Where a task's output is, by the job's phase (the launcher writes the user command's combined
output to its container's ``stdout``, and uploads it to HDFS when the task ends):

* the application runs, and the task's container belongs to the attempt asked for: the
  NodeManager's live ``stdout`` (then ``stderr``, when the container wrote any);
* otherwise: the log the launcher uploaded (:func:`client.record.task_log_path`), and, when
  that is missing, YARN's aggregated ``stdout`` (``yarn logs``), if the record names the
  container.

Every line is prefixed with its task: ``[worker:0] epoch 1 loss 0.3``. Nothing here prints:
:func:`task_logs` returns lines, :func:`follow` yields them, and logs that cannot be found are
reported through this module's logger (the CLI shows warnings on stderr).

The boundaries are :class:`~client.rm.ResourceManager` (NodeManager REST),
:class:`~client.hdfs.Hdfs` and the ``yarn logs`` runner, all passed in so that tests fake them.
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
from client.rm import ResourceManager, parse_log_dump
from client.spec import TaskId

__all__ = ["YarnLogsRunner", "follow", "run_yarn_logs", "task_logs"]

logger = logging.getLogger(__name__)

#: ``(app_id, container_id, app_owner) -> the dump of `yarn logs` for its stdout, or None``.
YarnLogsRunner = Callable[[str, str, str], bytes | None]

_LIVE_FILES = ("stdout", "stderr")
_YARN_LOGS_TIMEOUT_S = 120
# Bytes per line guessed for a tail read; too few only costs another request.
_TAIL_BYTES_PER_LINE = 200
# Extra bytes asked for on each follow poll beyond what is known to be new.
_FOLLOW_SLACK_BYTES = 64 * 1024
_MAX_READS = 4


# --------------------------------------------------------------------------------------------
# Public API


def task_logs(
    record: Mapping[str, Any] | None,
    app: Any,
    *,
    rm: ResourceManager,
    hdfs: Hdfs,
    task: TaskId | str | None = None,
    attempt: int | None = None,
    tail: int | None = None,
    yarn_logs: YarnLogsRunner | None = None,
) -> list[str]:
    """The logs of a job's tasks, each line prefixed with its task.

    Args:
        record: the job's ``status.json`` (see :mod:`client.record`); None when the AppMaster
            has not written it yet (there are no tasks to show then).
        app: the application as the RM reports it (:class:`client.rm.AppInfo`): its state
            decides between live and stored logs, its user finds the record directory.
        rm: reads live logs from the NodeManagers.
        hdfs: reads the logs the launchers uploaded.
        task: only this task (``TaskId`` or ``"worker:0"``).
        attempt: the attempt (1-based); default the latest in the record.
        tail: only the last N lines of each task (of its output, and of its container's
            stderr when read live).
        yarn_logs: runs ``yarn logs`` (default :func:`run_yarn_logs`).

    Returns:
        ``[worker:0] line`` strings, task by task in rank order.

    Raises:
        UsageError: no such task or attempt in the record, or a bad ``tail``.
        ClusterUnreachableError: HDFS does not answer (an unreachable NodeManager is only
            logged: the other tasks are still shown).
    """
    _check_tail(tail)
    if record is None:
        logger.info("%s: the job has no record yet (AppMaster not started); no task logs", app.id)
        return []
    job = _Job.of(record, app, attempt)
    lines: list[str] = []
    for name, entry in _select(record, task):
        source = _Source(job, name, entry)
        lines += [f"[{name}] {line}" for line in source.lines(rm, hdfs, tail, yarn_logs)]
    return lines


def follow(
    app_id: str,
    *,
    rm: ResourceManager,
    hdfs: Hdfs,
    task: TaskId | str | None = None,
    attempt: int | None = None,
    tail: int | None = None,
    poll_interval_s: float = 1.0,
    yarn_logs: YarnLogsRunner | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[str]:
    """Yield a job's log lines as they are written, until the application ends.

    First what is there already (the last ``tail`` lines per task when given), then, every
    ``poll_interval_s``, only the lines added since (each NodeManager read starts at the
    byte offset reached before, so no line repeats). A task whose container changes (a new
    attempt) is read from the start of its new container, after a ``--- attempt N ---`` line.
    When the application ends, lines not yet seen are taken from the stored logs.

    Args:
        app_id: the application.
        rm: the ResourceManager (application state) and NodeManagers (live logs).
        hdfs: the job record and the stored logs.
        task: only this task.
        attempt: only this attempt (default: whichever is the latest at each poll).
        tail: start with the last N lines per task instead of everything.
        poll_interval_s: pause between polls.
        yarn_logs: runs ``yarn logs`` (default :func:`run_yarn_logs`).
        sleep: pause function (tests pass a fake).

    Yields:
        ``[worker:0] line`` strings.

    Raises:
        NoSuchApplicationError: the RM does not know ``app_id``.
        UsageError: no such task or attempt, or a bad ``tail``.
        ClusterUnreachableError: the RM or HDFS does not answer.
    """
    _check_tail(tail)
    followers: dict[str, _Follower] = {}
    first_poll = True
    while True:
        app = rm.app(app_id)
        record = hdfs.read_json(status_path(app.user, app_id))
        if app.is_terminal:
            break
        if isinstance(record, Mapping):
            job = _Job.of(record, app, attempt)
            for name, entry in _select(record, task):
                source = _Source(job, name, entry)
                if not source.live:
                    continue
                follower = followers.get(name)
                if follower is None or follower.container_id != source.container_id:
                    if follower is not None:
                        yield from follower.drain(rm)
                        yield f"[{name}] --- attempt {source.attempt} ---"
                    follower = _Follower.start(source, tail if first_poll else None)
                    followers[name] = follower
                yield from follower.poll(rm)
            first_poll = False
        sleep(poll_interval_s)
    yield from _finish(app, record, followers, rm, hdfs, task, attempt, tail, yarn_logs)


def run_yarn_logs(app_id: str, container_id: str, app_owner: str) -> bytes | None:
    """Run ``yarn logs`` for a container's aggregated ``stdout`` (the ``yarn`` CLI on PATH).

    Returns:
        The raw dump (with YARN's per-file envelope), or None when YARN has no such log or the
        command is missing, fails or takes longer than two minutes.
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
        logger.warning("`yarn logs` for %s took over %ss; skipped", container_id,
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
    def of(cls, record: Mapping[str, Any], app: Any, attempt: int | None) -> _Job:
        latest = _as_int(record.get("attempt")) or 1
        if attempt is not None and not 1 <= attempt <= latest:
            raise UsageError(f"attempt {attempt}: no such attempt; the job has 1..{latest}")
        wanted = latest if attempt is None else attempt
        return cls(
            app_id=app.id,
            user=str(record.get("user") or app.user),
            running=not app.is_terminal,
            attempt=wanted,
            latest=wanted == latest,
        )


@dataclass(frozen=True)
class _Source:
    """One task of one attempt and where its log can be read."""

    job: _Job
    task: str
    entry: Mapping[str, Any]

    @property
    def attempt(self) -> int:
        return self.job.attempt

    @property
    def container_id(self) -> str:
        """The container, when the record's entry belongs to the attempt asked for."""
        if _as_int(self.entry.get("attempt")) not in (None, self.job.attempt):
            return ""
        return str(self.entry.get("container_id") or "")

    @property
    def nm(self) -> str:
        return str(self.entry.get("nm_http_address") or "")

    @property
    def live(self) -> bool:
        """Whether the NodeManager is where this log is now."""
        return self.job.running and bool(self.container_id and self.nm)

    def lines(
        self, rm: ResourceManager, hdfs: Hdfs, tail: int | None, yarn_logs: YarnLogsRunner | None
    ) -> list[str]:
        """The log's lines (last ``tail`` only), from the first place that has it."""
        if self.live:
            live = self.live_lines(rm, tail)
            if live is not None:
                return live
        stored = self.stored_lines(hdfs, yarn_logs)
        return stored if tail is None else stored[len(stored) - tail :]

    def live_lines(self, rm: ResourceManager, tail: int | None) -> list[str] | None:
        """Lines from the NodeManager; None when it has no stdout for the container."""
        try:
            out = _read_lines(rm, self.nm, self.container_id, "stdout", tail)
            if out is None:
                return None
            err = _read_lines(rm, self.nm, self.container_id, "stderr", tail) or []
        except ClusterUnreachableError as exc:
            logger.warning("[%s] live log unavailable: %s", self.task, exc)
            return None
        return out + err

    def stored_lines(self, hdfs: Hdfs, yarn_logs: YarnLogsRunner | None) -> list[str]:
        """Lines from the launcher's upload, else YARN's aggregated stdout; [] with a warning."""
        path = task_log_path(self.job.user, self.job.app_id, self.job.attempt, self.task)
        try:
            data = hdfs.read_bytes(path)
        except HdfsError as exc:
            logger.warning("[%s] %s", self.task, exc)
            data = None
        if data is not None:
            return _split(data)
        dump = None
        if self.container_id and not self.job.running:
            runner = yarn_logs or run_yarn_logs
            dump = runner(self.job.app_id, self.container_id, self.job.user)
        blocks = [b for b in parse_log_dump(dump or b"") if b.file_name == "stdout"]
        if blocks:
            return _split(b"".join(block.content for block in blocks))
        if not self.job.running:
            logger.warning(
                "[%s] no log for attempt %d: not uploaded to %s%s",
                self.task, self.job.attempt, path,
                " and not in YARN's aggregated logs" if self.container_id else "",
            )  # fmt: skip
        return []


def _select(record: Mapping[str, Any], task: TaskId | str | None) -> list[tuple[str, Any]]:
    """The record's tasks in rank order, or only ``task``."""
    tasks = record.get("tasks")
    entries = {str(k): v for k, v in tasks.items()} if isinstance(tasks, Mapping) else {}
    ordered = sorted(entries.items(), key=lambda item: _rank_key(*item))
    if task is None:
        return ordered
    wanted = str(task if isinstance(task, TaskId) else TaskId.parse(task))
    if wanted not in entries:
        known = ", ".join(name for name, _ in ordered) or "none yet"
        raise UsageError(f"task {wanted}: no such task; tasks are {known}")
    return [(wanted, entries[wanted])]


def _rank_key(name: str, entry: Any) -> tuple[int, str, int]:
    rank = _as_int(entry.get("rank")) if isinstance(entry, Mapping) else None
    role, _, index = name.partition(":")
    return (rank if rank is not None else 1 << 30, role, _as_int(index) or 0)


# --------------------------------------------------------------------------------------------
# Reading from the NodeManager.


def _read_lines(
    rm: ResourceManager, nm: str, container_id: str, file_name: str, tail: int | None
) -> list[str] | None:
    """A live file's complete lines (the last ``tail``); None when the NM has no such file."""
    if tail is None:
        chunk = rm.read_container_log(nm, container_id, file_name)
        return None if chunk is None else _split(chunk.data)
    lines, _ = _tail_read(rm, nm, container_id, file_name, tail) or ([], b"")
    return lines if lines or rm.read_container_log(nm, container_id, file_name, 0) else None


def _tail_read(
    rm: ResourceManager, nm: str, container_id: str, file_name: str, tail: int
) -> tuple[list[str], int] | None:
    """The last ``tail`` complete lines of a live file and the offset after the last one.

    Asks for a guess of bytes and asks again for more while the answer starts inside the file
    and holds too few lines.
    """
    want = max(tail, 1) * _TAIL_BYTES_PER_LINE + 4096
    for _ in range(_MAX_READS + 4):
        chunk = rm.read_container_log(nm, container_id, file_name, -want)
        if chunk is None:
            return None
        data = chunk.data
        if chunk.start > 0:  # the first line may be cut: drop it
            cut = data.find(b"\n")
            data = data[cut + 1 :] if cut >= 0 else b""
        end = data.rfind(b"\n") + 1  # a last line without newline is not complete yet
        lines = _split(data[:end])
        if len(lines) >= tail or chunk.start == 0:
            offset = chunk.start + (len(chunk.data) - len(data)) + end
            return (lines[len(lines) - tail :] if tail else []), offset
        want *= 4
    return lines[len(lines) - tail :], chunk.start + len(chunk.data) - len(data) + end


def _read_from(
    rm: ResourceManager, nm: str, container_id: str, file_name: str, offset: int, known: int
) -> tuple[bytes, int] | None:
    """The bytes of a live file from ``offset`` to its end, and the end offset.

    The NodeManager only serves the first or last N bytes, so this asks for the last
    ``known - offset`` bytes plus some slack and asks again (bigger) when the file grew
    faster than that. None when the NM no longer has the file.
    """
    want = max(known - offset, 0) + _FOLLOW_SLACK_BYTES
    chunk = None
    for _ in range(_MAX_READS):
        chunk = rm.read_container_log(nm, container_id, file_name, -want)
        if chunk is None:
            return None
        if chunk.file_length < offset:  # truncated or replaced: start over
            return chunk.data if chunk.start == 0 else b"", chunk.file_length
        if chunk.start <= offset:
            return chunk.data[offset - chunk.start :], chunk.file_length
        want = chunk.file_length - offset + _FOLLOW_SLACK_BYTES
    assert chunk is not None
    logger.warning("%s %s grows too fast to follow; some output skipped", container_id, file_name)
    return chunk.data, chunk.file_length


@dataclass
class _FileCursor:
    """How far one live file has been read."""

    offset: int = 0
    length: int = 0  # the file's length at the last read
    pending: bytes = b""  # a last line without its newline yet
    lines_seen: int = 0
    gone: bool = False  # the NM no longer has it


@dataclass
class _Follower:
    """Follows one task's container on its NodeManager."""

    task: str
    attempt: int
    container_id: str
    nm: str
    start_tail: int | None
    files: dict[str, _FileCursor] = field(default_factory=dict)
    warned: bool = False

    @classmethod
    def start(cls, source: _Source, tail: int | None) -> _Follower:
        return cls(source.task, source.attempt, source.container_id, source.nm, tail)

    def poll(self, rm: ResourceManager) -> Iterator[str]:
        """New complete lines of stdout, then of stderr."""
        for file_name in _LIVE_FILES:
            try:
                lines = self._poll_file(rm, file_name)
            except ClusterUnreachableError as exc:
                if not self.warned:
                    logger.warning("[%s] live log unavailable: %s", self.task, exc)
                    self.warned = True
                continue
            yield from (f"[{self.task}] {line}" for line in lines)

    def drain(self, rm: ResourceManager) -> Iterator[str]:
        """What is left of this container's files, partial last lines included."""
        yield from self.poll(rm)
        for cursor in self.files.values():
            if cursor.pending:
                yield f"[{self.task}] {_decode(cursor.pending)}"
                cursor.pending = b""
                cursor.lines_seen += 1

    def _poll_file(self, rm: ResourceManager, file_name: str) -> list[str]:
        cursor = self.files.get(file_name)
        if cursor is None:
            cursor = self.files[file_name] = _FileCursor()
            if self.start_tail is not None:
                return self._start_at_tail(rm, file_name, cursor, self.start_tail)
        if cursor.gone:
            return []
        read = _read_from(rm, self.nm, self.container_id, file_name, cursor.offset, cursor.length)
        if read is None:
            cursor.gone = cursor.offset > 0  # not there yet is not gone
            return []
        data, cursor.length = read
        cursor.offset = cursor.length
        data = cursor.pending + data
        end = data.rfind(b"\n") + 1
        cursor.pending = data[end:]
        lines = _split(data[:end])
        cursor.lines_seen += len(lines)
        return lines

    def _start_at_tail(
        self, rm: ResourceManager, file_name: str, cursor: _FileCursor, tail: int
    ) -> list[str]:
        read = _tail_read(rm, self.nm, self.container_id, file_name, tail)
        if read is None:
            return []
        lines, cursor.offset = read
        cursor.length = cursor.offset
        # Lines before the tail count as seen: the stored log after the end skips them.
        cursor.lines_seen = -1  # unknown: do not replay the stored log for this file
        return lines


def _finish(
    app: Any,
    record: Any,
    followers: Mapping[str, _Follower],
    rm: ResourceManager,
    hdfs: Hdfs,
    task: TaskId | str | None,
    attempt: int | None,
    tail: int | None,
    yarn_logs: YarnLogsRunner | None,
) -> Iterator[str]:
    """After the end: the rest of each followed task, and whole logs of tasks never seen."""
    if not isinstance(record, Mapping):
        return
    job = _Job.of(record, app, attempt)
    for name, entry in _select(record, task):
        source = _Source(job, name, entry)
        follower = followers.get(name)
        if follower is None or follower.container_id != source.container_id:
            if follower is not None:
                yield from follower.drain(rm)
            lines = source.stored_lines(hdfs, yarn_logs)
            lines = lines if tail is None or follower else lines[len(lines) - tail :]
            yield from (f"[{name}] {line}" for line in lines)
            continue
        yield from follower.drain(rm)
        stdout = follower.files.get("stdout")
        if stdout is not None and stdout.gone or stdout is None:
            # The NM dropped the container's logs (aggregated): the stored copy has the rest.
            seen = stdout.lines_seen if stdout is not None else 0
            if seen >= 0:
                rest = source.stored_lines(hdfs, yarn_logs)[seen:]
                yield from (f"[{name}] {line}" for line in rest)


# --------------------------------------------------------------------------------------------
# Small helpers.


def _split(data: bytes) -> list[str]:
    """Lines of a log ("\\n"-separated; a trailing "\\r" is dropped)."""
    if not data:
        return []
    lines = _decode(data).split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


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

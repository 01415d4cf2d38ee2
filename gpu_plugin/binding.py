"""Which GPUs a task may use: ``CUDA_VISIBLE_DEVICES`` naming exactly the devices it holds.

Two sources, in this order:

1. **The NodeManager's assignment.** With LinuxContainerExecutor and the GPU module YARN picks
   the devices itself and lists them at ``/ws/v1/node/resources/yarn.io%2Fgpu``
   (:mod:`gpu_plugin.nm_assignment`); the launcher uses exactly those.
2. **Node-local leases.** With the default container executor YARN only counts GPUs, so every
   task would see GPU 0. Each device then has a lock file ``<lock_dir>/<index>.lock``; a task
   holds ``flock(LOCK_EX)`` on it through a descriptor opened with ``O_CLOEXEC`` and kept open
   for the launcher's whole life. The kernel drops the lock when the last descriptor of that
   open file closes, which happens however the launcher ends, ``SIGKILL`` included; because
   the descriptor is not inherited, a stray child of the user's command cannot keep a device
   reserved after its task is gone. The files hold the holder's pid and container id for
   humans and for error messages; they are never deleted (deleting a lock file races with a
   process that has just opened it).

Devices are taken all at once under a short-lived allocation lock (``.allocate.lock``): two
tasks each asking for 2 of 2 GPUs cannot end up holding one each and waiting forever.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence

from gpu_plugin.errors import BindingError
from gpu_plugin.nvml import TOPOLOGY_ENV

__all__ = [
    "DEFAULT_LOCK_DIR",
    "LOCK_DIR_ENV",
    "Lease",
    "bind",
    "default_lock_dir",
    "holders",
]

logger = logging.getLogger(__name__)

#: Where lease files live unless ``DLSUBMIT_GPU_LOCK_DIR`` says otherwise.
DEFAULT_LOCK_DIR = "/tmp/dlsubmit-gpu-locks"
#: Environment variable overriding the lock directory.
LOCK_DIR_ENV = "DLSUBMIT_GPU_LOCK_DIR"

_ALLOCATE_LOCK = ".allocate.lock"
# The allocation lock is held for microseconds; when busy, retry soon rather than after a poll.
_ALLOCATE_RETRY_S = 0.02


def default_lock_dir(env: Mapping[str, str] | None = None) -> str:
    """Choose the lease directory.

    Two NodeManagers on one host that each declare their own test topology must not share
    leases, or their two "GPU 0"s would exclude each other; so a declared topology gets its
    own directory beside it, and only real GPUs (one set per host) share the default.

    Args:
        env: environment to read (default ``os.environ``).

    Returns:
        ``$DLSUBMIT_GPU_LOCK_DIR`` if set, else ``<$DLSUBMIT_GPU_TOPOLOGY>.locks`` if a topology
        is declared, else :data:`DEFAULT_LOCK_DIR`.
    """
    env = os.environ if env is None else env
    explicit = env.get(LOCK_DIR_ENV, "").strip()
    if explicit:
        return explicit
    topology = env.get(TOPOLOGY_ENV, "").strip()
    if topology:
        return os.path.abspath(topology) + ".locks"
    return DEFAULT_LOCK_DIR


class Lease:
    """The GPUs a task holds.

    Lock-file leases last until :meth:`release` or the end of the process. Dropping the last
    reference does not release them: the launcher must not lose its GPUs to the garbage
    collector.

    Attributes:
        indices: NVML indices of the devices, ascending.
        source: ``"nodemanager"`` (YARN assigned them), ``"lock"`` (node-local leases) or
            ``"none"`` (the task asked for no GPU).
    """

    def __init__(self, indices: Sequence[int], source: str, fds: Sequence[int] = ()) -> None:
        """Wrap devices already held; use :func:`bind` to get one."""
        self.indices: tuple[int, ...] = tuple(indices)
        self.source = source
        self._fds = list(fds)

    def visible_devices(self) -> str:
        """Return the value for ``CUDA_VISIBLE_DEVICES``, e.g. ``"0,1"``; ``""`` for no GPU."""
        return ",".join(str(index) for index in self.indices)

    def environment(self) -> dict[str, str]:
        """Return the variables the launcher puts in the task's environment.

        ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` makes CUDA number devices the way NVML (and so YARN
        and our leases) does; CUDA's default "fastest first" order can differ on mixed nodes.
        """
        env = {"CUDA_VISIBLE_DEVICES": self.visible_devices()}
        if self.indices:
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        return env

    @property
    def held(self) -> bool:
        """True while lock-file leases are open."""
        return bool(self._fds)

    def release(self) -> None:
        """Give the devices back now (idempotent); the process ending does the same."""
        fds, self._fds = self._fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Lease(indices={self.indices!r}, source={self.source!r}, held={self.held})"


def _lock_path(lock_dir: str, index: int) -> str:
    return os.path.join(lock_dir, f"{index}.lock")


def _open_lock_file(path: str) -> int:
    """Open (creating if needed) a lock file without following symlinks, close-on-exec.

    Opening an existing file without ``O_CREAT`` first matters: with
    ``fs.protected_regular`` a user may not ``O_CREAT``-open another user's file in a sticky,
    world-writable directory such as ``/tmp`` even when its mode allows it.
    """
    flags = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW
    for _ in range(5):
        try:
            return os.open(path, flags)
        except FileNotFoundError:
            try:
                fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue  # another task created it between our two opens
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o666)  # umask must not lock other users out
            return fd
        except PermissionError:
            # Someone else's file we may not write: flock works on a read-only descriptor too.
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    raise BindingError(f"cannot open lock file {path}: it keeps appearing and disappearing")


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _write_holder(fd: int, container_id: str | None) -> None:
    since = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    text = (
        f"pid={os.getpid()} container={container_id or '-'} "
        f"host={socket.gethostname()} since={since}\n"
    )
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
    except OSError:
        pass  # read-only descriptor: the lease holds, only the note for humans is missing


def _read_holder(path: str) -> str:
    """Describe who holds a lock file, from what its holder wrote."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            fields = dict(item.split("=", 1) for item in f.read().split() if "=" in item)
    except OSError:
        fields = {}
    pid = fields.get("pid")
    container = fields.get("container")
    if container and container != "-":
        return f"{container} (pid {pid})" if pid else container
    return f"pid {pid}" if pid else "an unknown process"


def holders(lock_dir: str, indices: Sequence[int]) -> dict[int, str]:
    """Return who currently holds each held device among ``indices``.

    Args:
        lock_dir: the lease directory.
        indices: devices to look at.

    Returns:
        ``{index: "container_… (pid 123)"}`` for the devices whose lock is taken now.
    """
    held: dict[int, str] = {}
    for index in indices:
        path = _lock_path(lock_dir, index)
        if not os.path.exists(path):
            continue
        fd = _open_lock_file(path)
        try:
            if _try_flock(fd):
                continue  # free: our probe took it and closing gives it back
            held[index] = _read_holder(path)
        finally:
            os.close(fd)
    return held


def _prepare_dir(lock_dir: str) -> None:
    try:
        os.makedirs(lock_dir, exist_ok=True)
    except OSError as exc:
        raise BindingError(f"cannot create GPU lock directory {lock_dir}: {exc}") from exc
    # Tasks of different users share the devices, so the directory is shared like /tmp.
    with contextlib.suppress(OSError):
        os.chmod(lock_dir, 0o1777)


def _try_take(
    lock_dir: str, candidates: Sequence[int], count: int, container_id: str | None
) -> tuple[list[int], list[int]] | bool:
    """Take ``count`` free devices at once, or none.

    Returns:
        (indices, fds) on success. Otherwise nothing is held and the result says why: True
        when another task was allocating at that moment (try again soon), False when fewer
        than ``count`` devices were free.
    """
    allocate_fd = _open_lock_file(os.path.join(lock_dir, _ALLOCATE_LOCK))
    try:
        if not _try_flock(allocate_fd):
            return True
        taken: list[int] = []
        fds: list[int] = []
        for index in candidates:
            fd = _open_lock_file(_lock_path(lock_dir, index))
            if _try_flock(fd):
                taken.append(index)
                fds.append(fd)
                if len(taken) == count:
                    break
            else:
                os.close(fd)
        if len(taken) < count:
            for fd in fds:
                os.close(fd)
            return False
        for fd in fds:
            _write_holder(fd, container_id)
        return taken, fds
    finally:
        os.close(allocate_fd)


def bind(
    count: int,
    *,
    node_assignment: Sequence[int] | None = None,
    lock_dir: str | None = None,
    all_indices: Sequence[int],
    timeout_s: float = 60.0,
    container_id: str | None = None,
    poll_interval_s: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Lease:
    """Get the devices a task may use.

    Args:
        count: GPUs the container was granted (``roles.<role>.resources.gpus``).
        node_assignment: devices YARN's NodeManager assigned to this container
            (:func:`gpu_plugin.nm_assignment.fetch_assignment`), or None when it assigns none.
            When given it is used exactly, whatever ``count`` says.
        lock_dir: lease directory (default :func:`default_lock_dir`).
        all_indices: the node's usable devices (reachable ones, by NVML index).
        timeout_s: how long to wait for busy devices to become free.
        container_id: written into the lock files so others can name the holder.
        poll_interval_s: pause between two tries while devices are busy.
        clock: monotonic seconds; tests inject a fake.
        sleep: pauses; tests inject a fake.

    Returns:
        The lease; its :meth:`Lease.environment` goes into the task's environment.

    Raises:
        ValueError: ``count`` is negative.
        BindingError: the node has fewer than ``count`` devices, or they stayed busy for
            ``timeout_s``; the message names which container holds which device.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if node_assignment is not None:
        if len(node_assignment) != count:
            logger.warning(
                "NodeManager assigned GPUs %s but %d were requested; using the assignment",
                list(node_assignment),
                count,
            )
        return Lease(sorted(node_assignment), source="nodemanager")
    if count == 0:
        return Lease((), source="none")
    candidates = sorted(set(all_indices))
    if count > len(candidates):
        raise BindingError(
            f"the task needs {count} GPUs but this node has {len(candidates)} usable "
            f"({candidates}); YARN should not have placed it here"
        )
    lock_dir = default_lock_dir() if lock_dir is None else lock_dir
    _prepare_dir(lock_dir)
    deadline = clock() + timeout_s
    while True:
        got = _try_take(lock_dir, candidates, count, container_id)
        if not isinstance(got, bool):
            indices, fds = got
            logger.info("bound GPUs %s (lease files in %s)", indices, lock_dir)
            return Lease(indices, source="lock", fds=fds)
        now = clock()
        if now >= deadline:
            break
        pause = _ALLOCATE_RETRY_S if got else poll_interval_s
        sleep(max(0.0, min(pause, deadline - now)))
    busy = holders(lock_dir, candidates)
    who = ", ".join(f"GPU {index} held by {holder}" for index, holder in sorted(busy.items()))
    raise BindingError(
        f"the task needs {count} GPUs but only {len(candidates) - len(busy)} of "
        f"{len(candidates)} were free after waiting {timeout_s:g} s: {who or 'none held'} "
        f"(lease files in {lock_dir}; a lease ends when its task's process exits)"
    )

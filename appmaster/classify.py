"""The failure classifier: what YARN and the task launcher said of a task → one :class:`Failure`.

Pure: no I/O, no clock (``now`` is passed in), no skein. The AppMaster loop gathers a
:class:`YarnView` (Skein's container record) and a :class:`LauncherReport` (what our launcher
published) and calls :func:`classify`; attempt-wide failures that no container explains are built
by :func:`allocation_timeout`, :func:`rendezvous_timeout`, :func:`deadline_exceeded`,
:func:`user_cancelled` and :func:`spec_invalid`. :func:`root_cause` picks the failure that
explains an attempt.

Precedence
==========
:func:`classify` assumes the task failed and applies these rules in order; the first that
matches wins. The order is the design: every rule above another is either stronger evidence or
the reason the lower one's symptom appeared.

==  ===================  ========================================================================
 1  PEER_ABORTED         the AppMaster had told the launcher to stop (``stopped_by_appmaster``),
                         or Skein/YARN say the AppMaster killed or released the container
                         (state KILLED, -105, -107, :data:`AM_STOP_TEXT`). Whatever the task did
                         after that is collateral, so this comes first.
 2  YARN's verdict       :data:`YARN_EXIT_STATUSES`, then :data:`YARN_TEXTS`: PREEMPTED (-102,
                         -108, "preempted"), NODE_FAILURE (-100, -101, -106, "*lost* node"),
                         HOST_OOM (-104, -103, "beyond the 'PHYSICAL' memory limit"). YARN killed
                         the process, so the exit code and log are symptoms.
 3  HOST_OOM             SIGKILL (137) and the launcher saw a peak RSS >= 90 % of the limit: the
                         kernel's OOM killer, before YARN's monitor noticed.
 4  SETUP_FAILED         the launcher's ``setup_error`` (the user command never ran).
 5  DATA_ACCESS          the launcher's ``data_access_error`` (rw mount sync with HDFS failed).
 6  GPU_HARDWARE         the launcher's GPU health sampler reported errors.
 7  launch failures      the launcher never ran (no report, or no exit and never registered):
                         YARN diagnostics against :data:`LAUNCH_SIGNATURES` (missing HDFS input →
                         DATA_ACCESS; docker/image, localization, launch script → SETUP_FAILED;
                         NodeManager refused the start → NODE_FAILURE).
 8  USER_DECLARED        exit 200 (retry) / 210 (do not retry): the code chose it after seeing
                         its own error, so it outranks what we could guess from the log.
 9  log signatures       :data:`LOG_SIGNATURES` against the error file, the log tail and the YARN
                         diagnostics; the first ROW that matches any line wins (GPU_HARDWARE >
                         GPU_OOM > HOST_OOM > CUDA_ENV_MISMATCH > NCCL_ERROR > DATA_ACCESS).
                         Before the exit codes because a CUDA OOM or an NCCL abort often ends
                         in SIGABRT (134): the text says more than the number.
10  COMMAND_NOT_FOUND    exit 127 / 126.
11  CRASH_SIGNAL         exit 134 / 135 / 139, or SIGABRT / SIGBUS / SIGSEGV.
12  KILLED_EXTERNALLY    exit 137 / 143, or SIGKILL / SIGTERM: memory and the AppMaster were ruled
                         out above, so someone else sent it.
13  USER_CODE_ERROR      a Python traceback, a torchelastic error file, or any other non-zero exit.
14  UNKNOWN              nothing matched: retryable and counted; evidence keeps the exit code and
                         the last log lines.
==  ===================  ========================================================================

Whether ``policy: smart`` retries a category is :data:`DEFAULTS`; USER_DECLARED follows the exit
code, and SETUP_FAILED is retryable only when its text suggests transient I/O
(:data:`TRANSIENT_IO`). ``counted`` is False exactly for :data:`INFRASTRUCTURE`, ``avoid_host``
is True exactly for :data:`AVOID_HOST`.
RENDEZVOUS_TIMEOUT is never inferred here (a task that has not registered may just be slow);
the loop, which owns the clock, calls :func:`rendezvous_timeout`.

Evidence is short (at most :data:`MAX_EVIDENCE` items of at most :data:`MAX_EVIDENCE_CHARS`
characters) and ends with the most telling line, because :meth:`Failure.one_line` shows the last
item. The hint names the spec field to change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from client.failures import Category, Failure

__all__ = [
    "AM_STOP_TEXT",
    "AVOID_HOST",
    "DEFAULTS",
    "INFRASTRUCTURE",
    "LAUNCH_SIGNATURES",
    "LOG_SIGNATURES",
    "TRANSIENT_IO",
    "YARN_EXIT_STATUSES",
    "YARN_TEXTS",
    "LauncherReport",
    "Signature",
    "YarnView",
    "allocation_timeout",
    "classify",
    "deadline_exceeded",
    "rendezvous_timeout",
    "root_cause",
    "spec_invalid",
    "user_cancelled",
]

MAX_EVIDENCE = 5
MAX_EVIDENCE_CHARS = 300
# Share of the memory limit a SIGKILLed task must have reached for the kill to count as an OOM.
RSS_OOM_FRACTION = 0.9
_ROLE_PLACEHOLDER = "roles.<role>"

# Infrastructure failures: they say nothing about the job, so they do not use up max_attempts.
INFRASTRUCTURE = frozenset(
    {Category.ALLOCATION_TIMEOUT, Category.PREEMPTED, Category.NODE_FAILURE, Category.GPU_HARDWARE}
)
# The next attempt should not land on the host that failed.
AVOID_HOST = frozenset({Category.NODE_FAILURE, Category.GPU_HARDWARE})

# Whether `policy: smart` retries each category (JOBSPEC.md, "Failure categories"). USER_DECLARED
# and SETUP_FAILED depend on the evidence; these are their defaults.
DEFAULTS: Mapping[Category, bool] = {
    Category.SPEC_INVALID: False,
    Category.ALLOCATION_TIMEOUT: True,
    Category.PREEMPTED: True,
    Category.NODE_FAILURE: True,
    Category.HOST_OOM: False,
    Category.GPU_OOM: False,
    Category.GPU_HARDWARE: True,
    Category.CUDA_ENV_MISMATCH: False,
    Category.NCCL_ERROR: True,
    Category.RENDEZVOUS_TIMEOUT: True,
    Category.SETUP_FAILED: False,
    Category.COMMAND_NOT_FOUND: False,
    Category.USER_CODE_ERROR: False,
    Category.DATA_ACCESS: False,
    Category.CRASH_SIGNAL: True,
    Category.KILLED_EXTERNALLY: True,
    Category.PEER_ABORTED: False,
    Category.DEADLINE_EXCEEDED: False,
    Category.USER_CANCELLED: False,
    Category.USER_DECLARED: True,
    Category.UNKNOWN: True,
}

EXIT_RETRY = 200
EXIT_NO_RETRY = 210
SIGABRT, SIGBUS, SIGKILL, SIGSEGV, SIGTERM = 6, 7, 9, 11, 15
_SIGNAL_NAMES = {
    SIGABRT: "SIGABRT",
    SIGBUS: "SIGBUS",
    SIGKILL: "SIGKILL",
    SIGSEGV: "SIGSEGV",
    SIGTERM: "SIGTERM",
}
_CRASH_SIGNALS = frozenset({SIGABRT, SIGBUS, SIGSEGV})
_KILL_SIGNALS = frozenset({SIGKILL, SIGTERM})


@dataclass(frozen=True)
class YarnView:
    """What YARN (through Skein's container record) said of a container.

    Attributes:
        state: Skein's container state ("FAILED", "KILLED", "SUCCEEDED", "RUNNING", ...).
        exit_status: YARN's exit status (-104, -102, -100, 0, 1, 137, 143, ...), if known.
        diagnostics: YARN's diagnostics / Skein's ``exit_message``.
        host: the node the container ran on ("host:port").
        memory_limit_mib: the container's memory as YARN granted it.
    """

    state: str | None = None
    exit_status: int | None = None
    diagnostics: str = ""
    host: str | None = None
    memory_limit_mib: int | None = None


@dataclass(frozen=True)
class LauncherReport:
    """What our task launcher published about its task.

    Attributes:
        exit_code: the user command's exit code; None if never reported. 128+N for signal N.
        signal: the signal that killed the user process, if one did.
        log_tail: the last lines of the task's stdout and stderr.
        error_file: the parsed TORCHELASTIC_ERROR_FILE, if the task wrote one.
        registered: the launcher reported in to the AppMaster.
        stopped_by_appmaster: the AppMaster told the launcher to stop (a peer failed, kill,
            deadline) before the user command ended on its own.
        peak_rss_mib: the highest resident memory of the task's process tree.
        gpu_peak_memory_mib: the highest GPU memory the task used.
        gpu_health_errors: GPU faults the launcher's sampler saw (Xid, ECC, lost GPU).
        setup_error: why the launcher failed before the user command (archive, env, mounts).
        data_access_error: why the rw mount sync with HDFS failed (path and reason).
    """

    exit_code: int | None = None
    signal: int | None = None
    log_tail: tuple[str, ...] = ()
    error_file: Mapping[str, Any] | None = None
    registered: bool = False
    stopped_by_appmaster: bool = False
    peak_rss_mib: int | None = None
    gpu_peak_memory_mib: int | None = None
    gpu_health_errors: tuple[str, ...] = ()
    setup_error: str | None = None
    data_access_error: str | None = None


class Signature(NamedTuple):
    """One row of a signature table: lines matching ``pattern`` mean ``category``.

    ``hint`` is a :meth:`str.format` template; it may use ``{role}`` (e.g. ``roles.worker``),
    ``{task}``, ``{host}``, ``{path}`` (the first HDFS path in the evidence), ``{exit}`` and
    ``{memory}`` (the memory advice with used-vs-limit numbers).
    """

    category: Category
    pattern: re.Pattern[str]
    retryable: bool
    counted: bool
    hint: str


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _table(*rows: tuple[Category, str, bool, bool, str]) -> tuple[Signature, ...]:
    return tuple(
        Signature(cat, _rx(rx), retry, counted, hint) for cat, rx, retry, counted, hint in rows
    )


_GPU_HW = "a GPU on {host} is faulty; retried on another node without counting (tell the admin)"
_DRIVER = (
    "the NVIDIA driver on {host} is half-upgraded (the node needs a reboot); retried elsewhere"
)
_GPU_OOM = (
    "the task ran out of GPU memory: lower the batch or model size in {role}.command, or use "
    "more or larger GPUs ({role}.resources.gpus, {role}.node_label)"
)
_SHM = "DataLoader workers ran out of shared memory (/dev/shm): lower num_workers, or {memory}"
_CUDA = (
    "the CUDA build of the environment does not match the node: rebuild environment.archive / "
    "environment.image for the cluster's driver and GPUs, or pick nodes with {role}.node_label"
)
_SYMBOL = (
    "a compiled extension does not match the installed libraries: rebuild environment.archive "
    "/ environment.image with consistent versions"
)
_NO_GPU = (
    "the task sees no usable GPU: set {role}.resources.gpus > 0 and use an environment built "
    "with CUDA"
)
_NCCL = (
    "a collective (NCCL/gloo) failed between tasks; retried. If it repeats, check the network "
    "settings in environment.env (NCCL_SOCKET_IFNAME, NCCL_IB_DISABLE), run with NCCL_DEBUG=INFO"
)
_HDFS = (
    "check {path}: it must exist and the submitting user must be allowed to read/write it "
    "(mounts[].source)"
)
_SPACE = (
    "out of disk space or HDFS quota ({path}): free space, or write less to the working dir "
    "and rw mounts (mounts[].path)"
)
_LOCALIZE_DATA = (
    "an HDFS input could not be localized: {path} (a mounts[].source or a staged file changed "
    "since submit); check that it exists and is readable"
)
_IMAGE = (
    "environment.image: the image could not be started on this cluster (YARN's Docker runtime "
    "needs the LinuxContainerExecutor with docker enabled); use environment.archive, or ask "
    "the admin"
)
_LOCALIZE = (
    "the task's files or environment could not be localized: check environment.archive and "
    "files (was the job's staging directory removed?)"
)
_NM_START = (
    "the NodeManager on {host} could not start the container; retried on another node without "
    "counting"
)
_LAUNCHER = (
    "the task launcher did not start: check environment.python / environment.archive (the "
    "interpreter must be able to run `python -m appmaster.launcher`)"
)

_C = Category
_Y, _N = True, False

# Matched against the task's output (error file, log tail) and YARN's diagnostics. The first ROW
# with a matching line wins, so the more specific cause sits higher: a GPU fault explains an OOM
# or an NCCL abort, an OOM explains an NCCL abort, a full /dev/shm explains "No space left".
# Columns: category, case-insensitive regex, retryable (smart), counted, hint template.
# fmt: off
LOG_SIGNATURES: tuple[Signature, ...] = _table(
    (_C.GPU_HARDWARE,      r"\bXid\b",                                      _Y, _N, _GPU_HW),
    (_C.GPU_HARDWARE,      r"uncorrectable ECC|ECC_UNCORRECTABLE",          _Y, _N, _GPU_HW),
    (_C.GPU_HARDWARE,      r"double[- ]bit ECC",                            _Y, _N, _GPU_HW),
    (_C.GPU_HARDWARE,      r"fallen off the bus|GPU is lost",               _Y, _N, _GPU_HW),
    (_C.GPU_HARDWARE,      r"Unable to determine the device handle",        _Y, _N, _GPU_HW),
    (_C.GPU_HARDWARE,      r"CUDA-capable device\S* \S+ busy or unavail",   _Y, _N, _GPU_HW),
    (_C.GPU_HARDWARE,      r"cudaErrorDevicesUnavailable",                  _Y, _N, _GPU_HW),
    (_C.GPU_HARDWARE,      r"Driver/library version mismatch",              _Y, _N, _DRIVER),
    (_C.GPU_OOM,           r"CUDA out of memory|CUDA error: out of memory", _N, _Y, _GPU_OOM),
    (_C.GPU_OOM,           r"cuda runtime error \(2\) ?: out of memory",    _N, _Y, _GPU_OOM),
    (_C.GPU_OOM,           r"torch(?:\.cuda)?\.OutOfMemoryError",           _N, _Y, _GPU_OOM),
    (_C.GPU_OOM,           r"CUDA_ERROR_OUT_OF_MEMORY",                     _N, _Y, _GPU_OOM),
    (_C.GPU_OOM,           r"ResourceExhaustedError|OOM when allocating",   _N, _Y, _GPU_OOM),
    (_C.GPU_OOM,           r"RESOURCE_EXHAUSTED: Out of memory",            _N, _Y, _GPU_OOM),
    (_C.GPU_OOM,           r"Out of memory while trying to allocate",       _N, _Y, _GPU_OOM),
    (_C.GPU_OOM,           r"CUBLAS_STATUS_ALLOC_FAILED",                   _N, _Y, _GPU_OOM),
    (_C.GPU_OOM,           r"CUDNN_STATUS_ALLOC_FAILED",                    _N, _Y, _GPU_OOM),
    (_C.HOST_OOM,          r"insufficient shared memory \(shm\)",           _N, _Y, _SHM),
    (_C.HOST_OOM,          r"unable to write to file </torch_",             _N, _Y, _SHM),
    (_C.HOST_OOM,          r"is killed by signal: Killed",                  _N, _Y, "{memory}"),
    (_C.HOST_OOM,          r"Out of memory: Kill|invoked oom-killer",       _N, _Y, "{memory}"),
    (_C.HOST_OOM,          r"\boom-kill\b",                                 _N, _Y, "{memory}"),
    # \bMemoryError\b does not match torch's OutOfMemoryError (no word boundary inside).
    (_C.HOST_OOM,          r"\bMemoryError\b",                              _N, _Y, "{memory}"),
    (_C.HOST_OOM,          r"std::bad_alloc|Cannot allocate memory",        _N, _Y, "{memory}"),
    (_C.HOST_OOM,          r"java\.lang\.OutOfMemoryError",                 _N, _Y, "{memory}"),
    (_C.CUDA_ENV_MISMATCH, r"CUDA driver version is insufficient",          _N, _Y, _CUDA),
    (_C.CUDA_ENV_MISMATCH, r"NVIDIA driver on your system is too old",      _N, _Y, _CUDA),
    (_C.CUDA_ENV_MISMATCH, r"forward compatibility was attempted",          _N, _Y, _CUDA),
    (_C.CUDA_ENV_MISMATCH, r"CUDA_ERROR_UNSUPPORTED_PTX_VERSION",           _N, _Y, _CUDA),
    (_C.CUDA_ENV_MISMATCH, r"no kernel image is available",                 _N, _Y, _CUDA),
    (_C.CUDA_ENV_MISMATCH, r"not compatible with the current PyTorch",      _N, _Y, _CUDA),
    (_C.CUDA_ENV_MISMATCH, r"CUDA_ERROR_NO_BINARY_FOR_GPU",                 _N, _Y, _CUDA),
    (_C.CUDA_ENV_MISMATCH, r"cuDNN version|CUDNN_STATUS_VERSION_MISMATCH",  _N, _Y, _CUDA),
    # TensorFlow warns "Could not load dynamic library 'libcudart…'" on every CPU-only run.
    (_C.CUDA_ENV_MISMATCH, r"^(?!.*Could not load dynamic).*lib(?:cu|nccl|nvrtc)"
                           r"\w*\.so\S*: cannot open shared object",        _N, _Y, _CUDA),
    (_C.CUDA_ENV_MISMATCH, r"lib(?:cudart|cudnn|nccl|nvrtc)\S* not found",  _N, _Y, _CUDA),
    (_C.CUDA_ENV_MISMATCH, r"undefined symbol",                             _N, _Y, _SYMBOL),
    (_C.CUDA_ENV_MISMATCH, r"Found no NVIDIA driver|No CUDA GPUs are avail", _N, _Y, _NO_GPU),
    (_C.CUDA_ENV_MISMATCH, r"Torch not compiled with CUDA enabled",         _N, _Y, _NO_GPU),
    (_C.CUDA_ENV_MISMATCH, r"no CUDA-capable device is detected",           _N, _Y, _NO_GPU),
    (_C.NCCL_ERROR,        r"NCCL error|NCCL communicator was aborted",     _Y, _Y, _NCCL),
    (_C.NCCL_ERROR,        r"ncclSystemError|ncclRemoteError",              _Y, _Y, _NCCL),
    (_C.NCCL_ERROR,        r"ncclInternalError|ncclUnhandledCudaError",     _Y, _Y, _NCCL),
    (_C.NCCL_ERROR,        r"Watchdog caught collective operation timeout", _Y, _Y, _NCCL),
    (_C.NCCL_ERROR,        r"DistBackendError|DistNetworkError",            _Y, _Y, _NCCL),
    (_C.NCCL_ERROR,        r"Gloo connectFullMesh failed",                  _Y, _Y, _NCCL),
    (_C.DATA_ACCESS,       r"AccessControlException",                       _N, _Y, _HDFS),
    (_C.DATA_ACCESS,       r"Permission denied: user=\S+, access=",         _N, _Y, _HDFS),
    (_C.DATA_ACCESS,       r"FileNotFoundException|File does not exist: ",  _N, _Y, _HDFS),
    (_C.DATA_ACCESS,       r"No space left on device|\bENOSPC\b",           _N, _Y, _SPACE),
    (_C.DATA_ACCESS,       r"\[Errno 28\]|QuotaExceededException",          _N, _Y, _SPACE),
    (_C.DATA_ACCESS,       r"(?:hdfs|viewfs)://\S*.*Permission denied",     _N, _Y, _HDFS),
    (_C.DATA_ACCESS,       r"Permission denied.*(?:hdfs|viewfs)://",        _N, _Y, _HDFS),
)

# Matched against YARN's diagnostics only, and only when the launcher never ran (rule 7).
LAUNCH_SIGNATURES: tuple[Signature, ...] = _table(
    (_C.DATA_ACCESS,       r"AccessControlException|FileNotFoundException", _N, _Y, _LOCALIZE_DATA),
    (_C.DATA_ACCESS,       r"File does not exist",                          _N, _Y, _LOCALIZE_DATA),
    (_C.SETUP_FAILED,      r"docker|pull access denied|manifest unknown",   _N, _Y, _IMAGE),
    (_C.SETUP_FAILED,      r"locali[sz]|changed on src filesystem",         _N, _Y, _LOCALIZE),
    (_C.SETUP_FAILED,      r"Download and unpack failed",                   _N, _Y, _LOCALIZE),
    (_C.SETUP_FAILED,      r"initialization failed",                        _N, _Y, _LOCALIZE),
    (_C.NODE_FAILURE,      r"Failed to start, exception raised",            _Y, _N, _NM_START),
    (_C.NODE_FAILURE,      r"Container launch failed",                      _Y, _N, _NM_START),
    (_C.NODE_FAILURE,      r"ConnectException|NoRouteToHost",               _Y, _N, _NM_START),
    (_C.SETUP_FAILED,      r"ExitCodeException|from container-launch",      _N, _Y, _LAUNCHER),
)
# fmt: on

# A setup failure with one of these in its text may well pass on the next try.
TRANSIENT_IO = _rx(
    r"time[d ]?\s?out|connection (?:reset|refused|closed|aborted)|broken pipe|temporar(?:y|ily)|"
    r"try again|EOFException|No route to host|Service Unavailable"
)

# YARN exit statuses that decide the category on their own (HADOOP.md, "YARN container exit
# statuses"). -105/-107: the AppMaster killed it or the app was ending.
YARN_EXIT_STATUSES: Mapping[int, Category] = {
    -105: Category.PEER_ABORTED,
    -107: Category.PEER_ABORTED,
    -102: Category.PREEMPTED,
    -108: Category.PREEMPTED,
    -100: Category.NODE_FAILURE,
    -101: Category.NODE_FAILURE,
    -106: Category.NODE_FAILURE,
    -104: Category.HOST_OOM,
    -103: Category.HOST_OOM,
}

# The AppMaster's own kills and releases (Skein's kill_container says "Killed by user request.").
# Checked before the exit statuses: a release arrives as -100, like a lost node.
AM_STOP_TEXT = _rx(
    r"Killed by user request|released by (?:the )?application|killed by the "
    r"ApplicationMaster|of a completed application"
)

# YARN diagnostics that decide the category when the exit status is missing or generic.
YARN_TEXTS: tuple[tuple[Category, re.Pattern[str]], ...] = (
    (Category.PREEMPTED, _rx(r"preempt")),
    (Category.NODE_FAILURE, _rx(r"\*?lost\*? node|disks? (?:have )?failed|unhealthy|decommission")),
    (Category.HOST_OOM, _rx(r"beyond (?:the )?'?(?:PHYSICAL|VIRTUAL)'? memory limit")),
)

_MEMORY_LIMIT_KIND = _rx(r"beyond (?:the )?'?(PHYSICAL|VIRTUAL)'? memory limit")
_SIZE = r"([\d.]+)\s*([KMGT]?B)"
_USAGE = _rx(rf"{_SIZE} of {_SIZE} physical memory used(?:; {_SIZE} of {_SIZE} virtual)?")
_UNIT_MIB = {"B": 1 / 1024**2, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0, "TB": 1024.0**2}
_HDFS_PATH = re.compile(r"(?:hdfs|viewfs|webhdfs)://[^\s'\",;:]+(?::\d+[^\s'\",;:]*)?")
_TRACEBACK = "Traceback (most recent call last)"
_FRAME = re.compile(r'^\s*File "')
_CONTINUATION = re.compile(r"^(?:During handling of the above exception|The above exception was)")
_COMMAND_TEXT = _rx(
    r"command not found|No such file or directory|Permission denied|cannot "
    r"execute|not found"
)


@dataclass(frozen=True)
class _Context:
    """Everything a rule needs, gathered once from the two views."""

    task: str
    host: str | None
    exit_code: int | None
    signal: int | None
    yarn_exit_status: int | None
    yarn_state: str | None
    diagnostics: tuple[str, ...]
    output: tuple[str, ...]  # error file lines, then the log tail
    error_message: str | None  # the error file's message, first line
    report: LauncherReport | None
    memory_limit_mib: float | None
    role_field: str
    now: float | None


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def classify(
    task: str,
    yarn: YarnView | None,
    report: LauncherReport | None,
    *,
    memory_limit_mib: int | None = None,
    role_field: str = _ROLE_PLACEHOLDER,
    now: float | None = None,
) -> Failure:
    """Merge what YARN and the launcher said of a failed task into one :class:`Failure`.

    Args:
        task: the task's name, ``"worker:1"``.
        yarn: Skein's record of the container, if there is one.
        report: the launcher's report, if it published one.
        memory_limit_mib: the memory the spec asked for (shown in the HOST_OOM hint);
            defaults to what YARN granted.
        role_field: the spec path of the task's role; by default derived from ``task``
            (``"roles.worker"``).
        now: when the failure was observed (epoch seconds), stored as ``Failure.time``.

    Returns:
        The failure, following the precedence table in this module's docstring.
    """
    ctx = _context(task, yarn, report, memory_limit_mib, role_field, now)
    for rule in _RULES:
        failure = rule(ctx)
        if failure is not None:
            return failure
    return _unknown(ctx)


def root_cause(failures: Sequence[Failure]) -> Failure | None:
    """The failure that explains an attempt.

    Args:
        failures: every failure recorded in one attempt, in the order observed.

    Returns:
        The earliest (by ``time``; ties and missing times keep input order, missing times
        last) failure that is not PEER_ABORTED; the earliest PEER_ABORTED if there is nothing
        else; None for no failures. One exception: when the earliest is a generic failure
        (USER_CODE_ERROR, UNKNOWN) and a specific one (a declared exit, a memory kill, a lost
        node, ...) follows within :data:`COLLATERAL_WINDOW_S`, the specific one wins. In a
        distributed job the peers of a task that dies see their connection drop and fail
        generically, sometimes a few milliseconds *before* the dying task's own exit is seen.
    """
    order = sorted(
        range(len(failures)),
        key=lambda i: (failures[i].time is None, failures[i].time or 0.0, i),
    )
    real = [failures[i] for i in order if failures[i].category is not Category.PEER_ABORTED]
    if not real:
        return failures[order[0]] if order else None
    first = real[0]
    if first.category in _GENERIC and first.time is not None:
        for other in real[1:]:
            if other.time is None or other.time - first.time > COLLATERAL_WINDOW_S:
                break
            if other.category not in _GENERIC:
                return other
    return first


# How close a specific failure must follow a generic one to be taken as its cause.
COLLATERAL_WINDOW_S = 2.0
_GENERIC = frozenset({Category.USER_CODE_ERROR, Category.UNKNOWN})


def rendezvous_timeout(
    task: str, host: str | None, timeout_s: float, *, now: float | None = None
) -> Failure:
    """A task did not register with the AppMaster within ``scheduling.registration_timeout``.

    Args:
        task: the task that did not report in, ``"worker:1"``.
        host: where its container was placed, if known.
        timeout_s: the registration timeout that ran out.
        now: when it was noticed (epoch seconds).

    Returns:
        A retryable, counted RENDEZVOUS_TIMEOUT.
    """
    limit = _duration(timeout_s)
    return _make(
        Category.RENDEZVOUS_TIMEOUT,
        task=task,
        host=host,
        time=now,
        evidence=[f"{task} did not register with the AppMaster within {limit}"],
        hint=(
            f"raise scheduling.registration_timeout (now {limit}) if the environment is slow "
            f"to start, or check {task}'s log for what it waited on"
        ),
    )


def allocation_timeout(
    missing: Mapping[str, int], offered: str, timeout_s: float, *, now: float | None = None
) -> Failure:
    """The gang of an attempt did not get all its containers within ``allocation_timeout``.

    Args:
        missing: role → number of containers still missing.
        offered: what the cluster could offer, in words (``"3 of 4 containers of 2 GiB"``).
        timeout_s: the allocation timeout that ran out.
        now: when it ran out (epoch seconds).

    Returns:
        A retryable, uncounted ALLOCATION_TIMEOUT (the retry waits with backoff).
    """
    limit = _duration(timeout_s)
    wanted = ", ".join(f"{role} x{count}" for role, count in sorted(missing.items()))
    fields = " / ".join(
        f"roles.{role}.instances or roles.{role}.resources" for role in sorted(missing)
    )
    return _make(
        Category.ALLOCATION_TIMEOUT,
        time=now,
        evidence=[
            f"after {limit} still missing containers: {wanted or 'none'}",
            f"the cluster could offer: {offered}",
        ],
        hint=(
            f"the cluster could offer {offered}; raise scheduling.allocation_timeout "
            f"(now {limit}) to wait longer, or lower {fields or 'roles.*.resources'} "
            "so the gang fits"
        ),
    )


def deadline_exceeded(max_runtime_s: float, *, now: float | None = None) -> Failure:
    """The job ran past ``scheduling.max_runtime``.

    Args:
        max_runtime_s: the limit that was reached.
        now: when it was reached (epoch seconds).

    Returns:
        A DEADLINE_EXCEEDED that no policy retries.
    """
    limit = _duration(max_runtime_s)
    return _make(
        Category.DEADLINE_EXCEEDED,
        time=now,
        evidence=[f"the job ran longer than scheduling.max_runtime ({limit})"],
        hint=f"raise scheduling.max_runtime (now {limit}; 0 = unlimited)",
    )


def user_cancelled(*, now: float | None = None) -> Failure:
    """The user stopped the job (``dlsubmit kill``).

    Args:
        now: when the kill arrived (epoch seconds).

    Returns:
        A USER_CANCELLED that no policy retries.
    """
    return _make(Category.USER_CANCELLED, time=now, evidence=["stopped by dlsubmit kill"])


def spec_invalid(message: str, *, now: float | None = None) -> Failure:
    """The spec was rejected (validation, preflight or the ResourceManager).

    Args:
        message: the error, starting with the field path (``roles.worker.resources.gpus: …``).
        now: when it was rejected (epoch seconds).

    Returns:
        A SPEC_INVALID that no policy retries; the hint names the field when the message does.
    """
    field = re.match(r"([\w.\[\]*<>-]+):\s", message)
    hint = f"fix {field.group(1)} in the job spec" if field else "fix the job spec"
    return _make(Category.SPEC_INVALID, time=now, evidence=[message], hint=hint)


# ---------------------------------------------------------------------------------------------
# Rules, in precedence order (see the module docstring)
# ---------------------------------------------------------------------------------------------


def _peer_aborted(ctx: _Context) -> Failure | None:
    stopped = ctx.report is not None and ctx.report.stopped_by_appmaster
    if not stopped and _yarn_category(ctx) is not Category.PEER_ABORTED:
        return None
    return _build(
        ctx,
        Category.PEER_ABORTED,
        [
            "stopped by the AppMaster (another task failed, a kill or the deadline)",
            *ctx.diagnostics[:1],
        ],
        hint="collateral: see the attempt's root cause",
    )


def _yarn_verdict(ctx: _Context) -> Failure | None:
    category = _yarn_category(ctx)
    if category is None or category is Category.PEER_ABORTED:
        return None
    # YARN appends a process-tree dump to its diagnostics: keep the line that says why.
    patterns = dict(YARN_TEXTS)
    evidence = [line for line in ctx.diagnostics if patterns[category].search(line)]
    evidence = evidence or list(ctx.diagnostics[:1])
    if ctx.yarn_exit_status is not None:
        evidence.insert(0, f"YARN exit status {ctx.yarn_exit_status}")
    if category is Category.HOST_OOM:
        return _host_oom(ctx, evidence)
    return _build(ctx, category, evidence, hint=_YARN_HINTS[category])


_YARN_HINTS = {
    Category.PREEMPTED: "YARN preempted the container for another queue's work; retried "
    "without counting (a queue with guaranteed capacity avoids this)",
    Category.NODE_FAILURE: "the node {host} failed; retried on another node without counting",
}


def _rss_oom(ctx: _Context) -> Failure | None:
    report = ctx.report
    limit = ctx.memory_limit_mib
    if ctx.signal != SIGKILL or report is None or report.peak_rss_mib is None or not limit:
        return None
    if report.peak_rss_mib < RSS_OOM_FRACTION * limit:
        return None
    line = f"killed by SIGKILL at a peak RSS of {_size(report.peak_rss_mib)} (limit {_size(limit)})"
    return _host_oom(ctx, [*ctx.output[-2:], line])


def _setup_error(ctx: _Context) -> Failure | None:
    if ctx.report is None or not ctx.report.setup_error:
        return None
    text = ctx.report.setup_error
    return _build(
        ctx,
        Category.SETUP_FAILED,
        text.splitlines(),
        hint="the task's environment could not be prepared: check environment.* "
        "and mounts (the reason is above)",
        retryable=bool(TRANSIENT_IO.search(text)),
    )


def _data_access_error(ctx: _Context) -> Failure | None:
    if ctx.report is None or not ctx.report.data_access_error:
        return None
    lines = ctx.report.data_access_error.splitlines()
    return _build(ctx, Category.DATA_ACCESS, lines, hint=_HDFS)


def _gpu_health(ctx: _Context) -> Failure | None:
    if ctx.report is None or not ctx.report.gpu_health_errors:
        return None
    return _build(ctx, Category.GPU_HARDWARE, list(ctx.report.gpu_health_errors), hint=_GPU_HW)


def _launch_failure(ctx: _Context) -> Failure | None:
    report = ctx.report
    launcher_ran = report is not None and (report.exit_code is not None or report.registered)
    if launcher_ran:
        return None
    return _match(ctx, LAUNCH_SIGNATURES, ctx.diagnostics)


def _user_declared(ctx: _Context) -> Failure | None:
    if ctx.exit_code == EXIT_RETRY:
        what, retryable = "declared transient: retry requested", True
        hint = "the task asked for a retry (exit 200)"
    elif ctx.exit_code == EXIT_NO_RETRY:
        what, retryable = "declared permanent: do not retry", False
        hint = "the task declared a permanent failure (exit 210): see its log, fix {role}.command"
    else:
        return None
    evidence = [*ctx.output[-3:], f"exit {ctx.exit_code}: {what}"]
    return _build(ctx, Category.USER_DECLARED, evidence, hint=hint, retryable=retryable)


def _log_signature(ctx: _Context) -> Failure | None:
    return _match(ctx, LOG_SIGNATURES, (*ctx.output, *ctx.diagnostics))


def _command_not_found(ctx: _Context) -> Failure | None:
    if ctx.exit_code not in (126, 127):
        return None
    lines = [line for line in ctx.output if _COMMAND_TEXT.search(line)][-3:]
    what = "not executable" if ctx.exit_code == 126 else "command not found"
    return _build(
        ctx,
        Category.COMMAND_NOT_FOUND,
        [f"exit {ctx.exit_code}: {what}", *lines],
        hint="check {role}.command: the program must be on PATH in the environment "
        "(environment.python / archive / image) or shipped in files, and executable",
    )


def _crash_signal(ctx: _Context) -> Failure | None:
    if ctx.signal not in _CRASH_SIGNALS:
        return None
    evidence = [f"exit {ctx.exit_code}: killed by {_signal_name(ctx.signal)}", *ctx.output[-3:]]
    return _build(
        ctx,
        Category.CRASH_SIGNAL,
        evidence,
        hint="the process crashed in native code; retried. If it repeats, check the "
        "libraries in environment.* and the code run by {role}.command",
    )


def _killed_externally(ctx: _Context) -> Failure | None:
    if ctx.signal not in _KILL_SIGNALS:
        return None
    evidence = [
        *ctx.output[-2:],
        *ctx.diagnostics[:1],
        f"exit {ctx.exit_code}: {_signal_name(ctx.signal)} not sent by the AppMaster, "
        "no memory-limit evidence",
    ]
    return _build(
        ctx,
        Category.KILLED_EXTERNALLY,
        evidence,
        hint="something outside dlsubmit killed the task (an admin, the NodeManager "
        "or the kernel); retried",
    )


def _user_code_error(ctx: _Context) -> Failure | None:
    traceback = _traceback_evidence(ctx.output)
    failed = ctx.exit_code is not None and ctx.exit_code != 0
    if not (traceback or ctx.error_message or failed):
        return None
    if traceback:
        evidence = traceback
    elif ctx.error_message:
        evidence = [ctx.error_message]
    else:
        evidence = [*ctx.output[-3:], f"exit code {ctx.exit_code}"]
    return _build(
        ctx,
        Category.USER_CODE_ERROR,
        evidence,
        hint="fix the code run by {role}.command (full log: dlsubmit logs APP_ID --task {task})",
    )


_RULES = (
    _peer_aborted,
    _yarn_verdict,
    _rss_oom,
    _setup_error,
    _data_access_error,
    _gpu_health,
    _launch_failure,
    _user_declared,
    _log_signature,
    _command_not_found,
    _crash_signal,
    _killed_externally,
    _user_code_error,
)


def _unknown(ctx: _Context) -> Failure:
    facts = []
    if ctx.exit_code is not None:
        facts.append(f"exit code {ctx.exit_code}")
    if ctx.yarn_exit_status is not None and ctx.yarn_exit_status != ctx.exit_code:
        facts.append(f"YARN exit status {ctx.yarn_exit_status}")
    if ctx.report is None:
        facts.append("the launcher sent no report")
    elif not ctx.report.registered:
        facts.append("the launcher never registered")
    evidence = ["; ".join(facts) or "no exit code", *ctx.diagnostics[:1], *ctx.output[-3:]]
    return _build(
        ctx,
        Category.UNKNOWN,
        evidence,
        hint="no known failure signature; read the task's log: dlsubmit logs APP_ID --task {task}",
    )


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _context(
    task: str,
    yarn: YarnView | None,
    report: LauncherReport | None,
    memory_limit_mib: int | None,
    role_field: str,
    now: float | None,
) -> _Context:
    exit_code = report.exit_code if report is not None else None
    yarn_status = yarn.exit_status if yarn is not None else None
    if exit_code is None and yarn_status is not None and yarn_status > 0:
        exit_code = yarn_status  # the container's own exit code, when YARN passed it on
    signal = report.signal if report is not None else None
    if signal is None and exit_code is not None and 128 < exit_code < 160:
        signal = exit_code - 128
    if exit_code is None and signal is not None:
        exit_code = 128 + signal  # the shell's convention, which the launcher follows
    if role_field == _ROLE_PLACEHOLDER:
        role_field = f"roles.{task.split(':', 1)[0]}"
    limit = (
        memory_limit_mib
        if memory_limit_mib is not None
        else (yarn.memory_limit_mib if yarn is not None else None)
    )
    error_lines = _error_file_lines(report.error_file if report else None)
    output = (*error_lines, *(report.log_tail if report else ()))
    return _Context(
        task=task,
        host=yarn.host if yarn is not None else None,
        exit_code=exit_code,
        signal=signal,
        yarn_exit_status=yarn_status,
        yarn_state=(yarn.state or "").upper() or None if yarn is not None else None,
        diagnostics=_lines(yarn.diagnostics if yarn is not None else ""),
        output=tuple(line.rstrip() for line in output if line.strip()),
        error_message=error_lines[0] if error_lines else None,
        report=report,
        memory_limit_mib=float(limit) if limit is not None else None,
        role_field=role_field,
        now=now,
    )


def _yarn_category(ctx: _Context) -> Category | None:
    """What YARN's exit status, or failing that its diagnostics, say on their own."""
    text = "\n".join(ctx.diagnostics)
    if ctx.yarn_state == "KILLED" or AM_STOP_TEXT.search(text):
        return Category.PEER_ABORTED  # Skein marks KILLED only what its AppMaster killed
    status = ctx.yarn_exit_status
    if status is not None and status in YARN_EXIT_STATUSES:
        return YARN_EXIT_STATUSES[status]
    for category, pattern in YARN_TEXTS:
        if pattern.search(text):
            return category
    return None


def _match(ctx: _Context, table: Sequence[Signature], lines: Sequence[str]) -> Failure | None:
    """The failure of the first row in ``table`` that matches any of ``lines``."""
    for sig in table:
        hits = [line for line in lines if sig.pattern.search(line)]
        if not hits:
            continue
        retryable = sig.retryable
        if sig.category is Category.SETUP_FAILED and not retryable:
            retryable = any(TRANSIENT_IO.search(line) for line in lines)
        return _build(
            ctx, sig.category, hits, hint=sig.hint, retryable=retryable, counted=sig.counted
        )
    return None


def _host_oom(ctx: _Context, evidence: list[str]) -> Failure:
    return _build(ctx, Category.HOST_OOM, [line for line in evidence if line], hint="{memory}")


def _memory_hint(ctx: _Context) -> str:
    """``raise roles.w.resources.memory (now 512 MiB; the task used 573 MiB)`` from the numbers.

    The limit shown is what the spec asked for when the caller passed it (the field the user
    edits), else what YARN enforced. The usage is YARN's measurement, else the launcher's peak RSS.
    """
    field = f"{ctx.role_field}.resources.memory"
    text = "\n".join(ctx.diagnostics)
    usage = _USAGE.search(text)
    kind = _MEMORY_LIMIT_KIND.search(text)
    if kind and kind.group(1).upper() == "VIRTUAL" and usage and usage.group(5):
        used, vlimit = _mib(usage.group(5), usage.group(6)), _mib(usage.group(7), usage.group(8))
        return (
            f"the task used {_size(used)} of its {_size(vlimit)} virtual memory limit: ask "
            f"the admin to set yarn.nodemanager.vmem-check-enabled=false, or raise {field}"
        )
    used_mib: float | None = _mib(usage.group(1), usage.group(2)) if usage else None
    limit_mib = ctx.memory_limit_mib
    if limit_mib is None and usage:
        limit_mib = _mib(usage.group(3), usage.group(4))
    if used_mib is None and ctx.report is not None and ctx.report.peak_rss_mib is not None:
        used_mib = float(ctx.report.peak_rss_mib)
    facts = []
    if limit_mib is not None:
        facts.append(f"now {_size(limit_mib)}")
    if used_mib is not None:
        facts.append(f"the task used {_size(used_mib)}")
    return f"raise {field}" + (f" ({'; '.join(facts)})" if facts else "")


def _build(
    ctx: _Context,
    category: Category,
    evidence: Iterable[str],
    *,
    hint: str = "",
    retryable: bool | None = None,
    counted: bool | None = None,
) -> Failure:
    """A task failure with the context's identity fields and a filled-in hint."""
    items = list(evidence)
    if category is Category.GPU_OOM and ctx.report and ctx.report.gpu_peak_memory_mib is not None:
        items.insert(0, f"GPU memory peak: {_size(ctx.report.gpu_peak_memory_mib)}")
    fields = _HintFields(ctx, items)
    return _make(
        category,
        task=ctx.task,
        host=ctx.host,
        exit_code=ctx.exit_code,
        yarn_exit_status=ctx.yarn_exit_status,
        time=ctx.now,
        evidence=items,
        hint=hint.format_map(fields) if hint else "",
        retryable=retryable,
        counted=counted,
    )


class _HintFields(dict[str, str]):
    """The placeholders a hint template may use, computed only when used."""

    def __init__(self, ctx: _Context, evidence: Sequence[str]) -> None:
        super().__init__()
        self._ctx = ctx
        self._evidence = evidence

    def __missing__(self, key: str) -> str:
        ctx = self._ctx
        if key == "role":
            return ctx.role_field
        if key == "task":
            return ctx.task
        if key == "host":
            return ctx.host or "the node"
        if key == "exit":
            return str(ctx.exit_code)
        if key == "memory":
            return _memory_hint(ctx)
        if key == "path":
            return _first_path(self._evidence) or "the HDFS path"
        raise KeyError(key)


def _make(
    category: Category,
    *,
    task: str | None = None,
    host: str | None = None,
    exit_code: int | None = None,
    yarn_exit_status: int | None = None,
    time: float | None = None,
    evidence: Iterable[str] = (),
    hint: str = "",
    retryable: bool | None = None,
    counted: bool | None = None,
) -> Failure:
    """A :class:`Failure` with the category's defaults for what the caller leaves None."""
    return Failure(
        category=category,
        retryable=DEFAULTS[category] if retryable is None else retryable,
        task=task,
        host=host,
        exit_code=exit_code,
        yarn_exit_status=yarn_exit_status,
        evidence=_evidence(evidence),
        hint=hint,
        counted=category not in INFRASTRUCTURE if counted is None else counted,
        avoid_host=category in AVOID_HOST,
        time=time,
    )


def _evidence(items: Iterable[str]) -> tuple[str, ...]:
    """Stripped, de-duplicated, the last :data:`MAX_EVIDENCE` items, each trimmed."""
    seen: dict[str, None] = {}
    for item in items:
        text = " ".join(item.split())
        if len(text) > MAX_EVIDENCE_CHARS:
            text = text[: MAX_EVIDENCE_CHARS - 1] + "…"
        if text:
            seen.pop(text, None)  # keep the latest position: the last item is the headline
            seen[text] = None
    return tuple(seen)[-MAX_EVIDENCE:]


def _traceback_evidence(lines: Sequence[str]) -> list[str]:
    """The innermost frame and the exception line of the last Python traceback, if any."""
    starts = [i for i, line in enumerate(lines) if _TRACEBACK in line]
    if not starts:
        return []
    tail = lines[starts[-1] + 1 :]
    frames = [i for i, line in enumerate(tail) if _FRAME.match(line)]
    after = tail[frames[-1] + 1 :] if frames else tail
    exception = next(
        (line for line in after if line[:1] not in (" ", "\t") and not _CONTINUATION.match(line)),
        None,
    )
    evidence = [tail[frames[-1]]] if frames else []
    if exception is not None:
        evidence.append(exception)
    return evidence or [lines[starts[-1]]]


def _error_file_lines(error_file: Mapping[str, Any] | None) -> list[str]:
    """The message (first) and Python call stack of a torchelastic error file."""
    if not error_file:
        return []
    message = error_file.get("message")
    if isinstance(message, str):
        return list(_lines(message))
    if not isinstance(message, Mapping):
        return []
    lines = list(_lines(message.get("message")))
    extra = message.get("extraInfo")
    if isinstance(extra, Mapping):
        lines += _lines(extra.get("py_callstack"))
    return lines


def _lines(text: object) -> tuple[str, ...]:
    if not isinstance(text, str):
        return ()
    return tuple(line.rstrip() for line in text.splitlines() if line.strip())


def _first_path(evidence: Sequence[str]) -> str | None:
    for line in evidence:
        found = _HDFS_PATH.search(line)
        if found:
            return found.group(0)
    return None


def _signal_name(signal: int | None) -> str:
    return _SIGNAL_NAMES.get(signal or 0, f"signal {signal}")


def _mib(number: str, unit: str) -> float:
    return float(number) * _UNIT_MIB[unit.upper()]


def _size(mib: float) -> str:
    """``512 MiB``, ``2 GiB``, ``2.3 GiB``: as users write sizes in a spec."""
    if mib < 1024:
        return f"{round(mib)} MiB"
    gib = round(mib / 1024, 1)
    return f"{gib:g} GiB"


def _duration(seconds: float) -> str:
    """``90s``, ``5m``, ``2h``: as users write durations in a spec."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"

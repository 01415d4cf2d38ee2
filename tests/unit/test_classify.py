"""Unit tests for appmaster.classify: every category, the precedence rules, hints, root cause."""

# Real log lines are long and are kept whole so that the tests show what the classifier sees.

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from appmaster.classify import (
    LAUNCH_SIGNATURES,
    LOG_SIGNATURES,
    MAX_EVIDENCE,
    MAX_EVIDENCE_CHARS,
    LauncherReport,
    YarnView,
    allocation_timeout,
    classify,
    deadline_exceeded,
    rendezvous_timeout,
    root_cause,
    spec_invalid,
    user_cancelled,
)
from client.failures import Category, Failure

# --- realistic inputs ---------------------------------------------------------------------------

PMEM_KILL = (
    "Container [pid=1234,containerID=container_1_0001_01_000002] is running 61440000B beyond "
    "the 'PHYSICAL' memory limit. Current usage: 572.6 MB of 512 MB physical memory used; "
    "2.6 GB of 1.0 GB virtual memory used. Killing container."
)
PMEM_DIAGNOSTICS = "\n".join(
    [
        PMEM_KILL,
        "Dump of the process-tree for container_1_0001_01_000002 :",
        "\t|- PID PPID PGRPID SESSID CMD_NAME USER_MODE_TIME(MILLIS) SYSTEM_TIME(MILLIS) "
        "VMEM_USAGE(BYTES) RSSMEM_USAGE(PAGES) FULL_CMD_LINE",
        "\t|- 1240 1234 1234 1234 (python3) 812 95 2791571456 146583 python3 train.py",
        "\t|- 1234 1231 1234 1234 (bash) 0 0 115847168 353 /bin/bash -c python3 -m "
        "appmaster.launcher",
        "",
        "Container killed on request. Exit code is 143",
        "Container exited with a non-zero exit code 143. ",
    ]
)
VMEM_KILL = PMEM_KILL.replace("'PHYSICAL'", "'VIRTUAL'")

TRACEBACK = (
    "epoch 0 step 10 loss 2.3021",
    "Traceback (most recent call last):",
    '  File "/data/nm-local/usercache/alice/appcache/application_1_0001/'
    'container_1_0001_01_000002/train.py", line 42, in <module>',
    "    main()",
    '  File "/data/nm-local/usercache/alice/appcache/application_1_0001/'
    'container_1_0001_01_000002/train.py", line 37, in main',
    "    loss = model(batch).sum() / n_samples",
    "           ~~~~~~~~~~~~~~~~~~~^~~~~~~~~~~",
    "ZeroDivisionError: division by zero",
)

CUDA_OOM = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total "
    "capacity of 79.10 GiB of which 6.75 MiB is free. Including non-PyTorch memory, this process "
    "has 79.08 GiB memory in use. Of the allocated memory 78.17 GiB is allocated by PyTorch, and "
    "318.06 MiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is "
    "large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation."
)
CUDA_OOM_LOG = (
    "Traceback (most recent call last):",
    '  File "train.py", line 51, in <module>',
    "    out = model(x)",
    '  File "/env/lib/python3.11/site-packages/torch/nn/modules/linear.py", line 125, in forward',
    "    return F.linear(input, self.weight, self.bias)",
    CUDA_OOM,
)

NCCL_LOG = (
    "[rank1]: Traceback (most recent call last):",
    "[rank1]: torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/"
    "ProcessGroupNCCL.cpp:1970, unhandled system error (run with NCCL_DEBUG=INFO for details), "
    "NCCL version 2.20.5",
    "[rank1]: ncclSystemError: System call (e.g. socket, malloc) or external library call failed "
    "or device error.",
)

HDFS_DENIED = (
    "sync of out to hdfs:///user/alice/runs/mnist failed: org.apache.hadoop.security."
    "AccessControlException: Permission denied: user=alice, access=WRITE, "
    'inode="/user/alice/runs":hdfs:supergroup:drwxr-xr-x'
)

LAUNCH_127 = (
    "Exception from container-launch.\n"
    "Container id: container_1_0001_01_000002\n"
    "Exit code: 127\n"
    "Stack trace: ExitCodeException exitCode=127: \n"
    "\tat org.apache.hadoop.util.Shell.runCommand(Shell.java:1008)\n"
    "\tat org.apache.hadoop.yarn.server.nodemanager.DefaultContainerExecutor.launchContainer"
    "(DefaultContainerExecutor.java:304)\n"
    "/bin/bash: line 1: /opt/conda/bin/python3: No such file or directory"
)


def report(**kwargs: object) -> LauncherReport:
    """A launcher report of a task that registered and ran, with ``kwargs`` on top."""
    fields: dict[str, object] = {"registered": True}
    fields.update(kwargs)
    return LauncherReport(**fields)  # type: ignore[arg-type]


def failed(diagnostics: str = "", status: int | None = None, **kwargs: object) -> YarnView:
    """Skein's record of a FAILED container on node-a."""
    fields: dict[str, object] = {
        "state": "FAILED",
        "exit_status": status,
        "diagnostics": diagnostics,
        "host": "node-a:8041",
        "memory_limit_mib": 512,
    }
    fields.update(kwargs)
    return YarnView(**fields)  # type: ignore[arg-type]


SKEIN_GENERIC = "Container failed during execution, see logs for more information."

# --- every category has at least one realistic input ----------------------------------------------

CASES: list[tuple[str, Callable[[], Failure], Category, bool, bool]] = [
    # (name, build, category, retryable, counted)
    (
        "spec rejected",
        lambda: spec_invalid("roles.worker.resources.gpus: must be an integer >= 0, got -1"),
        Category.SPEC_INVALID,
        False,
        True,
    ),
    (
        "gang not placed",
        lambda: allocation_timeout({"worker": 2}, "2 of 4 containers of 2 GiB", 300),
        Category.ALLOCATION_TIMEOUT,
        True,
        False,
    ),
    (
        "preempted",
        lambda: classify(
            "worker:0",
            failed("Container preempted by scheduler", -102),
            report(exit_code=143, signal=15),
        ),
        Category.PREEMPTED,
        True,
        False,
    ),
    (
        "lost node",
        lambda: classify("worker:0", failed("Container released on a *lost* node", -100), None),
        Category.NODE_FAILURE,
        True,
        False,
    ),
    (
        "memory kill",
        lambda: classify("worker:1", failed(PMEM_DIAGNOSTICS, -104), report(exit_code=143)),
        Category.HOST_OOM,
        False,
        True,
    ),
    (
        "cuda oom",
        lambda: classify(
            "worker:0", failed(SKEIN_GENERIC), report(exit_code=1, log_tail=CUDA_OOM_LOG)
        ),
        Category.GPU_OOM,
        False,
        True,
    ),
    (
        "gpu fell off the bus",
        lambda: classify(
            "worker:0",
            failed(SKEIN_GENERIC),
            report(
                exit_code=1,
                gpu_health_errors=("NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus.",),
            ),
        ),
        Category.GPU_HARDWARE,
        True,
        False,
    ),
    (
        "driver too old",
        lambda: classify(
            "worker:0",
            failed(SKEIN_GENERIC),
            report(
                exit_code=1,
                log_tail=(
                    "RuntimeError: The NVIDIA driver on your system is too old (found version "
                    "11040). Please update your GPU driver",
                ),
            ),
        ),
        Category.CUDA_ENV_MISMATCH,
        False,
        True,
    ),
    (
        "nccl",
        lambda: classify("worker:1", failed(SKEIN_GENERIC), report(exit_code=1, log_tail=NCCL_LOG)),
        Category.NCCL_ERROR,
        True,
        True,
    ),
    (
        "did not register",
        lambda: rendezvous_timeout("worker:1", "node-a:8041", 120),
        Category.RENDEZVOUS_TIMEOUT,
        True,
        True,
    ),
    (
        "archive broken",
        lambda: classify(
            "worker:0",
            failed(SKEIN_GENERIC),
            report(
                registered=False,
                setup_error="environment.archive: could not unpack torch.tar.gz: not a gzip file",
            ),
        ),
        Category.SETUP_FAILED,
        False,
        True,
    ),
    (
        "typo in command",
        lambda: classify(
            "worker:0",
            failed(SKEIN_GENERIC),
            report(exit_code=127, log_tail=("/bin/bash: line 1: trian.py: command not found",)),
        ),
        Category.COMMAND_NOT_FOUND,
        False,
        True,
    ),
    (
        "python traceback",
        lambda: classify(
            "worker:0", failed(SKEIN_GENERIC), report(exit_code=1, log_tail=TRACEBACK)
        ),
        Category.USER_CODE_ERROR,
        False,
        True,
    ),
    (
        "hdfs denied",
        lambda: classify("worker:0", failed(), report(exit_code=0, data_access_error=HDFS_DENIED)),
        Category.DATA_ACCESS,
        False,
        True,
    ),
    (
        "segfault",
        lambda: classify(
            "worker:0",
            failed(SKEIN_GENERIC),
            report(exit_code=139, signal=11, log_tail=("Segmentation fault (core dumped)",)),
        ),
        Category.CRASH_SIGNAL,
        True,
        True,
    ),
    (
        "sigterm from outside",
        lambda: classify("worker:0", failed(SKEIN_GENERIC), report(exit_code=143, signal=15)),
        Category.KILLED_EXTERNALLY,
        True,
        True,
    ),
    (
        "stopped by the AppMaster",
        lambda: classify(
            "worker:0",
            YarnView("KILLED", None, "Killed by user request.", "node-a:8041"),
            report(exit_code=143, signal=15, stopped_by_appmaster=True),
        ),
        Category.PEER_ABORTED,
        False,
        True,
    ),
    ("max_runtime", lambda: deadline_exceeded(7200), Category.DEADLINE_EXCEEDED, False, True),
    ("dlsubmit kill", lambda: user_cancelled(), Category.USER_CANCELLED, False, True),
    (
        "exit 200",
        lambda: classify("worker:0", failed(SKEIN_GENERIC), report(exit_code=200)),
        Category.USER_DECLARED,
        True,
        True,
    ),
    (
        "nothing known",
        lambda: classify("worker:0", failed(SKEIN_GENERIC), None),
        Category.UNKNOWN,
        True,
        True,
    ),
]


@pytest.mark.parametrize(
    ("build", "category", "retryable", "counted"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_category_defaults(
    build: Callable[[], Failure], category: Category, retryable: bool, counted: bool
) -> None:
    failure = build()
    assert failure.category is category
    assert failure.retryable is retryable
    assert failure.counted is counted
    assert failure.avoid_host is (category in (Category.NODE_FAILURE, Category.GPU_HARDWARE))
    assert failure.evidence, "every failure explains itself"
    assert len(failure.evidence) <= MAX_EVIDENCE
    assert all(len(item) <= MAX_EVIDENCE_CHARS for item in failure.evidence)


def test_every_category_has_a_case() -> None:
    assert {case[2] for case in CASES} == set(Category)


# --- YARN's verdict -------------------------------------------------------------------------------


def test_memory_kill_hint_has_used_and_limit_from_diagnostics() -> None:
    failure = classify("worker:1", failed(PMEM_DIAGNOSTICS, -104), report(exit_code=143))
    assert (
        failure.hint == "raise roles.worker.resources.memory (now 512 MiB; the task used 573 MiB)"
    )
    assert failure.yarn_exit_status == -104
    assert failure.exit_code == 143
    assert failure.host == "node-a:8041"
    # the process-tree dump stays out; the memory line is the headline
    assert failure.evidence[-1] == PMEM_KILL
    assert not any("|-" in item for item in failure.evidence)


def test_memory_hint_prefers_the_spec_limit_and_formats_gib() -> None:
    text = PMEM_KILL.replace("572.6 MB of 512 MB", "2.3 GB of 2 GB")
    failure = classify("worker:1", failed(text, -104), report(exit_code=143), memory_limit_mib=2048)
    assert failure.hint == "raise roles.worker.resources.memory (now 2 GiB; the task used 2.3 GiB)"


def test_memory_hint_rounds_yarn_mb() -> None:
    text = PMEM_KILL.replace("572.6 MB", "600.2 MB")
    failure = classify("worker:1", failed(text, -104), None)
    assert failure.hint.endswith("(now 512 MiB; the task used 600 MiB)")


def test_memory_hint_without_numbers_still_names_the_field() -> None:
    failure = classify("ps:0", YarnView("FAILED", -104, ""), None)
    assert failure.category is Category.HOST_OOM
    assert failure.hint == "raise roles.ps.resources.memory"


def test_memory_hint_uses_custom_role_field() -> None:
    failure = classify(
        "worker:1", failed(PMEM_KILL, -104), None, role_field="roles.trainer", memory_limit_mib=500
    )
    assert failure.hint.startswith("raise roles.trainer.resources.memory (now 500 MiB;")


def test_virtual_memory_kill() -> None:
    failure = classify("worker:0", failed(VMEM_KILL, -103), report(exit_code=143))
    assert failure.category is Category.HOST_OOM
    assert "2.6 GiB of its 1 GiB virtual memory limit" in failure.hint
    assert "yarn.nodemanager.vmem-check-enabled" in failure.hint
    assert "roles.worker.resources.memory" in failure.hint


def test_memory_text_without_status_is_host_oom() -> None:
    failure = classify("worker:0", failed(PMEM_DIAGNOSTICS), None)
    assert failure.category is Category.HOST_OOM


def test_exit_137_with_memory_diagnostics_is_host_oom() -> None:
    failure = classify("worker:0", failed(PMEM_DIAGNOSTICS, 137), report(exit_code=137, signal=9))
    assert failure.category is Category.HOST_OOM
    assert failure.exit_code == 137


def test_sigkill_near_the_limit_is_host_oom() -> None:
    failure = classify(
        "worker:0",
        failed(SKEIN_GENERIC),
        report(exit_code=137, signal=9, peak_rss_mib=500),
        memory_limit_mib=512,
    )
    assert failure.category is Category.HOST_OOM
    assert (
        failure.hint == "raise roles.worker.resources.memory (now 512 MiB; the task used 500 MiB)"
    )
    assert "peak RSS of 500 MiB" in failure.evidence[-1]


def test_sigkill_far_below_the_limit_is_killed_externally() -> None:
    failure = classify(
        "worker:0", failed(SKEIN_GENERIC), report(exit_code=137, signal=9, peak_rss_mib=100)
    )
    assert failure.category is Category.KILLED_EXTERNALLY
    assert failure.retryable and failure.counted


def test_dataloader_worker_killed_is_host_oom() -> None:
    log = (
        "RuntimeError: DataLoader worker (pid 4242) is killed by signal: Killed. ",
        "Traceback (most recent call last):",
        '  File "train.py", line 3, in <module>',
        "RuntimeError: DataLoader worker (pid(s) 4242) exited unexpectedly",
    )
    failure = classify("worker:0", failed(SKEIN_GENERIC), report(exit_code=1, log_tail=log))
    assert failure.category is Category.HOST_OOM
    assert failure.hint.startswith("raise roles.worker.resources.memory")


def test_python_memory_error_is_host_oom_but_cuda_oom_is_not() -> None:
    host = classify("w:0", failed(), report(exit_code=1, log_tail=("MemoryError",)))
    gpu = classify("w:0", failed(), report(exit_code=1, log_tail=(CUDA_OOM,)))
    assert host.category is Category.HOST_OOM
    assert gpu.category is Category.GPU_OOM


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (-100, "Container released on a *lost* node"),
        (-101, "Container exited because its local disks failed"),
        (-106, "Container Killed by ResourceManager"),
        (None, "Container released on a *lost* node"),
    ],
)
def test_node_failures(status: int | None, text: str) -> None:
    failure = classify("worker:0", failed(text, status), None)
    assert failure.category is Category.NODE_FAILURE
    assert failure.avoid_host and not failure.counted
    assert failure.host == "node-a:8041"
    assert "node-a:8041" in failure.hint


@pytest.mark.parametrize("status", [-102, -108])
def test_preemption_statuses(status: int) -> None:
    failure = classify("worker:0", failed("", status), report(exit_code=143, signal=15))
    assert failure.category is Category.PREEMPTED
    assert not failure.avoid_host


def test_container_that_failed_to_start_on_the_node() -> None:
    text = (
        "Failed to start, exception raised: java.net.ConnectException: Call From am-host to "
        "node-a:8041 failed on connection exception: Connection refused"
    )
    failure = classify("worker:0", failed(text), None)
    assert failure.category is Category.NODE_FAILURE
    assert failure.avoid_host


# --- precedence -----------------------------------------------------------------------------------


def test_appmaster_stopped_143_is_peer_aborted_not_killed_externally() -> None:
    failure = classify(
        "worker:0",
        failed("Container killed on request. Exit code is 143", 143),
        report(exit_code=143, signal=15, stopped_by_appmaster=True, log_tail=TRACEBACK),
        now=12.0,
    )
    assert failure.category is Category.PEER_ABORTED
    assert not failure.retryable
    assert failure.time == 12.0


@pytest.mark.parametrize(
    ("state", "status", "text"),
    [
        ("KILLED", None, "Killed by user request."),
        ("COMPLETE", -105, "Container killed by the ApplicationMaster."),
        ("COMPLETE", -100, "Container released by application"),  # -100 but not a lost node
        ("COMPLETE", -107, "Container of a completed application"),
    ],
)
def test_appmaster_kills_without_report_are_peer_aborted(
    state: str, status: int | None, text: str
) -> None:
    failure = classify("worker:0", YarnView(state, status, text, "node-a:8041"), None)
    assert failure.category is Category.PEER_ABORTED


def test_stop_by_appmaster_outranks_yarn() -> None:
    failure = classify(
        "worker:0", failed(PMEM_DIAGNOSTICS, -104), report(exit_code=143, stopped_by_appmaster=True)
    )
    assert failure.category is Category.PEER_ABORTED


def test_preemption_outranks_the_log() -> None:
    failure = classify(
        "worker:0",
        failed("Container preempted by scheduler", -102),
        report(exit_code=1, log_tail=NCCL_LOG),
    )
    assert failure.category is Category.PREEMPTED


def test_gpu_oom_then_sigabrt_is_gpu_oom_not_crash() -> None:
    log = (
        "terminate called after throwing an instance of 'c10::OutOfMemoryError'",
        "  what():  CUDA out of memory. Tried to allocate 2.00 GiB",
    )
    failure = classify("worker:0", failed(), report(exit_code=134, signal=6, log_tail=log))
    assert failure.category is Category.GPU_OOM
    assert failure.evidence[-1] == "what(): CUDA out of memory. Tried to allocate 2.00 GiB"


def test_gpu_oom_outranks_nccl_and_traceback() -> None:
    failure = classify(
        "worker:0", failed(), report(exit_code=1, log_tail=(*NCCL_LOG, *CUDA_OOM_LOG))
    )
    assert failure.category is Category.GPU_OOM
    assert "roles.worker.resources.gpus" in failure.hint
    assert failure.evidence[-1].startswith("torch.OutOfMemoryError: CUDA out of memory")


def test_gpu_oom_evidence_has_peak_memory() -> None:
    failure = classify(
        "worker:0", failed(), report(exit_code=1, log_tail=CUDA_OOM_LOG, gpu_peak_memory_mib=80_000)
    )
    assert "GPU memory peak: 78.1 GiB" in failure.evidence


def test_gpu_hardware_outranks_gpu_oom() -> None:
    log = ("RuntimeError: CUDA error: uncorrectable ECC error encountered", CUDA_OOM)
    failure = classify("worker:0", failed(), report(exit_code=1, log_tail=log))
    assert failure.category is Category.GPU_HARDWARE
    assert failure.avoid_host and not failure.counted


def test_user_declared_outranks_log_signatures() -> None:
    failure = classify("worker:0", failed(), report(exit_code=210, log_tail=CUDA_OOM_LOG))
    assert failure.category is Category.USER_DECLARED
    assert not failure.retryable
    assert failure.counted


def test_user_declared_200_is_retryable_and_counted() -> None:
    failure = classify(
        "worker:0", failed(), report(exit_code=200, log_tail=("checkpoint io flaky",))
    )
    assert failure.category is Category.USER_DECLARED
    assert failure.retryable and failure.counted
    assert failure.evidence[-1] == "exit 200: declared transient: retry requested"


def test_gpu_health_outranks_user_declared() -> None:
    failure = classify(
        "worker:0", failed(), report(exit_code=200, gpu_health_errors=("Xid 48: DBE",))
    )
    assert failure.category is Category.GPU_HARDWARE


# --- log signatures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "category"),
    [
        (
            "NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, GPU has fallen off the bus.",
            Category.GPU_HARDWARE,
        ),
        (
            "Unable to determine the device handle for GPU 0000:3B:00.0: GPU is lost.",
            Category.GPU_HARDWARE,
        ),
        ("Failed to initialize NVML: Driver/library version mismatch", Category.GPU_HARDWARE),
        (
            "RuntimeError: CUDA error: all CUDA-capable devices are busy or unavailable",
            Category.GPU_HARDWARE,
        ),
        ("RuntimeError: CUDA out of memory. Tried to allocate 1.00 GiB", Category.GPU_OOM),
        (
            "tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating tensor",
            Category.GPU_OOM,
        ),
        (
            "RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
            Category.GPU_OOM,
        ),
        (
            "jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8.0GiB",
            Category.GPU_OOM,
        ),
        (
            "ERROR: Unexpected bus error encountered in worker. This might be caused by insufficient shared memory (shm).",
            Category.HOST_OOM,
        ),
        (
            'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space',
            Category.HOST_OOM,
        ),
        (
            "RuntimeError: CUDA driver version is insufficient for CUDA runtime version",
            Category.CUDA_ENV_MISMATCH,
        ),
        (
            "RuntimeError: CUDA error: no kernel image is available for execution on the device",
            Category.CUDA_ENV_MISMATCH,
        ),
        (
            "RuntimeError: cuDNN version incompatibility: PyTorch was compiled against (8, 9, 2) but found runtime version (8, 1, 0).",
            Category.CUDA_ENV_MISMATCH,
        ),
        (
            "ImportError: libcudart.so.11.0: cannot open shared object file: No such file or directory",
            Category.CUDA_ENV_MISMATCH,
        ),
        (
            "ImportError: /env/lib/python3.11/site-packages/apex_C.so: undefined symbol: _ZN3c104cuda9SetDeviceEi",
            Category.CUDA_ENV_MISMATCH,
        ),
        ("RuntimeError: No CUDA GPUs are available", Category.CUDA_ENV_MISMATCH),
        (
            "[E ProcessGroupNCCL.cpp:475] [Rank 1] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=7, OpType=ALLREDUCE)",
            Category.NCCL_ERROR,
        ),
        (
            "ncclRemoteError: A call failed possibly due to a network error or a remote process exiting prematurely.",
            Category.NCCL_ERROR,
        ),
        ("ncclInternalError: Internal check failed.", Category.NCCL_ERROR),
        ("torch.distributed.DistNetworkError: Connection reset by peer", Category.NCCL_ERROR),
        (
            "java.io.FileNotFoundException: File does not exist: hdfs://nn:9000/datasets/mnist/train.csv",
            Category.DATA_ACCESS,
        ),
        ("OSError: [Errno 28] No space left on device: '/tmp/ckpt/model.pt'", Category.DATA_ACCESS),
        (
            "org.apache.hadoop.hdfs.protocol.DSQuotaExceededException: The DiskSpace quota of /user/alice is exceeded",
            Category.DATA_ACCESS,
        ),
        (
            'hdfs.util.HdfsError: Permission denied: user=bob, access=READ, inode="/datasets"',
            Category.DATA_ACCESS,
        ),
    ],
)
def test_log_signatures(line: str, category: Category) -> None:
    failure = classify("worker:0", failed(), report(exit_code=1, log_tail=("step 5", line)))
    assert failure.category is category
    assert failure.evidence[-1] == " ".join(line.split())[:MAX_EVIDENCE_CHARS]


def test_tensorflow_cpu_warning_is_not_a_cuda_mismatch() -> None:
    log = (
        "2024-05-01 10:00:00.000000: W tensorflow/stream_executor/platform/default/"
        "dso_loader.cc:64] Could not load dynamic library 'libcudart.so.11.0'; dlerror: "
        "libcudart.so.11.0: cannot open shared object file: No such file or directory",
        *TRACEBACK,
    )
    failure = classify("worker:0", failed(), report(exit_code=1, log_tail=log))
    assert failure.category is Category.USER_CODE_ERROR


def test_signatures_in_yarn_diagnostics_count_too() -> None:
    failure = classify(
        "worker:0", failed("NVRM: Xid 79, GPU has fallen off the bus"), report(exit_code=1)
    )
    assert failure.category is Category.GPU_HARDWARE


def test_error_file_message_is_scanned() -> None:
    error_file = {"message": {"message": "RuntimeError: NCCL error: remote process exited"}}
    failure = classify("worker:1", failed(), report(exit_code=1, error_file=error_file))
    assert failure.category is Category.NCCL_ERROR
    assert failure.retryable and failure.counted


def test_hdfs_path_appears_in_data_access_hint() -> None:
    failure = classify("worker:0", failed(), report(exit_code=0, data_access_error=HDFS_DENIED))
    assert "hdfs:///user/alice/runs/mnist" in failure.hint
    assert "mounts[].source" in failure.hint


def test_enospc_hint_points_at_rw_mounts() -> None:
    line = "OSError: [Errno 28] No space left on device"
    failure = classify("worker:0", failed(), report(exit_code=1, log_tail=(line,)))
    assert "mounts[].path" in failure.hint


def test_signature_tables_are_well_formed() -> None:
    for sig in (*LOG_SIGNATURES, *LAUNCH_SIGNATURES):
        assert isinstance(sig.category, Category)
        assert isinstance(sig.pattern, re.Pattern)
        assert sig.counted is (
            sig.category not in (Category.PREEMPTED, Category.NODE_FAILURE, Category.GPU_HARDWARE)
        )
        sig.hint.format(role="roles.w", task="w:0", host="h", path="p", exit="1", memory="m")


# --- setup and launch failures --------------------------------------------------------------------


def test_setup_error_with_transient_io_is_retryable() -> None:
    failure = classify(
        "worker:0",
        failed(),
        report(
            registered=False,
            setup_error="download hdfs:///envs/torch.tar.gz failed: Connection reset by peer",
        ),
    )
    assert failure.category is Category.SETUP_FAILED
    assert failure.retryable and failure.counted


def test_setup_error_outranks_log() -> None:
    failure = classify(
        "worker:0", failed(), report(setup_error="mount out: restore failed", log_tail=TRACEBACK)
    )
    assert failure.category is Category.SETUP_FAILED


def test_docker_launch_failure_is_setup_failed_with_image_hint() -> None:
    text = (
        "Exception from container-launch.\nContainer id: container_1_0001_01_000002\nExit code: 7\n"
        "Exception message: Launch container failed\n"
        "Shell error output: image: registry/torch:2.4 is not trusted.\n"
        "Disable mount volume for untrusted image\n"
        "Docker run failed"
    )
    failure = classify("worker:0", failed(text, 7), None)
    assert failure.category is Category.SETUP_FAILED
    assert not failure.retryable
    assert failure.hint.startswith("environment.image")


def test_localization_failure_is_setup_failed() -> None:
    text = "Failed to localize resource hdfs://nn/user/alice/.dlsubmit/app/files.zip"
    failure = classify("worker:0", failed(text, -1000), None)
    assert failure.category is Category.SETUP_FAILED
    assert "environment.archive" in failure.hint


def test_localization_timeout_is_retryable() -> None:
    text = "Resource localization failed: java.net.SocketTimeoutException: connect timed out"
    failure = classify("worker:0", failed(text), None)
    assert failure.category is Category.SETUP_FAILED
    assert failure.retryable


def test_missing_ro_mount_at_localization_is_data_access() -> None:
    text = (
        "Failed to localize: java.io.FileNotFoundException: File does not exist: "
        "hdfs://nn:9000/datasets/mnist"
    )
    failure = classify("worker:0", failed(text), None)
    assert failure.category is Category.DATA_ACCESS
    assert "hdfs://nn:9000/datasets/mnist" in failure.hint


def test_launcher_script_failure_without_report_is_setup_failed() -> None:
    failure = classify("worker:0", failed(LAUNCH_127, 127), None)
    assert failure.category is Category.SETUP_FAILED
    assert "environment.python" in failure.hint


def test_launch_text_ignored_once_the_launcher_ran() -> None:
    # DefaultContainerExecutor reports every non-zero exit as "Exception from container-launch".
    text = LAUNCH_127.replace("127", "1")
    failure = classify("worker:0", failed(text, 1), report(exit_code=1, log_tail=TRACEBACK))
    assert failure.category is Category.USER_CODE_ERROR


# --- exit codes -----------------------------------------------------------------------------------


def test_exit_126_is_command_not_found() -> None:
    failure = classify(
        "worker:0",
        failed(),
        report(exit_code=126, log_tail=("/bin/bash: ./run.sh: Permission denied",)),
    )
    assert failure.category is Category.COMMAND_NOT_FOUND
    assert "roles.worker.command" in failure.hint
    assert "Permission denied" in failure.evidence[-1]


@pytest.mark.parametrize(("code", "signal"), [(134, None), (135, None), (139, None), (None, 11)])
def test_crash_signals(code: int | None, signal: int | None) -> None:
    failure = classify("worker:0", failed(), report(exit_code=code, signal=signal))
    assert failure.category is Category.CRASH_SIGNAL
    assert failure.retryable and failure.counted


def test_exit_code_from_yarn_when_launcher_silent() -> None:
    failure = classify("worker:0", failed("", 143), report(exit_code=None))
    assert failure.category is Category.KILLED_EXTERNALLY
    assert failure.exit_code == 143


def test_traceback_evidence_is_frame_then_exception() -> None:
    failure = classify("worker:0", failed(SKEIN_GENERIC), report(exit_code=1, log_tail=TRACEBACK))
    assert failure.evidence[-1] == "ZeroDivisionError: division by zero"
    assert failure.evidence[-2].endswith('train.py", line 37, in main')
    assert failure.hint.startswith("fix the code run by roles.worker.command")
    assert "--task worker:0" in failure.hint


def test_chained_traceback_uses_the_last_exception() -> None:
    log = (
        *TRACEBACK[1:],
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        '  File "train.py", line 45, in <module>',
        "    raise RuntimeError('training failed') from exc",
        "RuntimeError: training failed",
    )
    failure = classify("worker:0", failed(), report(exit_code=1, log_tail=log))
    assert failure.evidence[-1] == "RuntimeError: training failed"


def test_error_file_alone_is_user_code_error() -> None:
    failure = classify(
        "worker:0",
        failed(),
        report(exit_code=None, error_file={"message": "ValueError: bad shape"}),
    )
    assert failure.category is Category.USER_CODE_ERROR
    assert failure.evidence == ("ValueError: bad shape",)


def test_error_file_callstack_gives_traceback() -> None:
    error_file = {
        "message": {
            "message": "KeyError: 'label'",
            "extraInfo": {
                "py_callstack": 'Traceback (most recent call last):\n  File "data.py", line 9, '
                "in __getitem__\n    return row['label']\nKeyError: 'label'\n",
                "timestamp": "1714550000",
            },
        }
    }
    failure = classify("worker:0", failed(), report(exit_code=1, error_file=error_file))
    assert failure.category is Category.USER_CODE_ERROR
    assert failure.evidence[-1] == "KeyError: 'label'"
    assert 'File "data.py", line 9, in __getitem__' in failure.evidence[-2]


def test_other_nonzero_exit_is_user_code_error() -> None:
    failure = classify("worker:0", failed(), report(exit_code=3, log_tail=("bad config",)))
    assert failure.category is Category.USER_CODE_ERROR
    assert failure.evidence == ("bad config", "exit code 3")


# --- UNKNOWN --------------------------------------------------------------------------------------


def test_unknown_keeps_exit_code_and_last_lines() -> None:
    log = tuple(f"line {i}" for i in range(10))
    failure = classify("worker:0", None, report(exit_code=None, log_tail=log))
    assert failure.category is Category.UNKNOWN
    assert failure.retryable and failure.counted
    assert failure.evidence[-3:] == ("line 7", "line 8", "line 9")


def test_unknown_mentions_missing_report_and_yarn_status() -> None:
    failure = classify("worker:0", YarnView("FAILED", -1000, ""), None)
    assert failure.category is Category.UNKNOWN
    assert failure.evidence[0] == "YARN exit status -1000; the launcher sent no report"


def test_unregistered_task_is_not_a_rendezvous_timeout_here() -> None:
    failure = classify("worker:0", None, LauncherReport(registered=False))
    assert failure.category is Category.UNKNOWN
    assert "never registered" in failure.evidence[0]


# --- evidence shape -------------------------------------------------------------------------------


def test_evidence_is_trimmed_and_bounded() -> None:
    long_line = "NCCL error: " + "x" * 1000
    log = (*(f"NCCL error {i}" for i in range(8)), long_line)
    failure = classify("worker:0", failed(), report(exit_code=1, log_tail=log))
    assert len(failure.evidence) == MAX_EVIDENCE
    assert len(failure.evidence[-1]) == MAX_EVIDENCE_CHARS
    assert failure.evidence[-1].endswith("…")


# --- attempt-wide constructors --------------------------------------------------------------------


def test_allocation_timeout_hint_names_offer_and_fields() -> None:
    failure = allocation_timeout(
        {"worker": 2, "ps": 1}, "3 of 4 containers of 2 GiB", 300, now=50.0
    )
    assert failure.task is None
    assert failure.time == 50.0
    assert "the cluster could offer 3 of 4 containers of 2 GiB" in failure.hint
    assert "scheduling.allocation_timeout (now 5m)" in failure.hint
    assert "roles.ps.instances or roles.ps.resources" in failure.hint
    assert "roles.worker.instances or roles.worker.resources" in failure.hint
    assert failure.evidence[0] == "after 5m still missing containers: ps x1, worker x2"


def test_rendezvous_timeout_fields() -> None:
    failure = rendezvous_timeout("worker:1", "node-a:8041", 90, now=7.0)
    assert (failure.task, failure.host, failure.time) == ("worker:1", "node-a:8041", 7.0)
    assert "scheduling.registration_timeout (now 90s)" in failure.hint


def test_deadline_hint() -> None:
    assert deadline_exceeded(7200).hint == "raise scheduling.max_runtime (now 2h; 0 = unlimited)"


def test_spec_invalid_hint_names_the_field() -> None:
    failure = spec_invalid("roles.worker.instnaces: unknown field; did you mean 'instances'?")
    assert failure.hint == "fix roles.worker.instnaces in the job spec"
    assert spec_invalid("queue does not exist").hint == "fix the job spec"


def test_user_cancelled_is_never_retryable() -> None:
    failure = user_cancelled(now=3.0)
    assert not failure.retryable and failure.time == 3.0


def test_failures_round_trip_through_the_record() -> None:
    failure = classify("worker:1", failed(PMEM_DIAGNOSTICS, -104), report(exit_code=143), now=1.5)
    assert Failure.from_dict(failure.to_dict()) == failure


# --- root cause -----------------------------------------------------------------------------------


def _f(category: Category, time: float | None, task: str = "worker:0") -> Failure:
    return Failure(category=category, retryable=False, task=task, time=time)


def test_root_cause_is_earliest_non_collateral() -> None:
    peer = _f(Category.PEER_ABORTED, 1.0, "worker:0")
    oom = _f(Category.HOST_OOM, 2.0, "worker:1")
    later = _f(Category.USER_CODE_ERROR, 3.0, "worker:2")
    assert root_cause([later, peer, oom]) is oom


def test_root_cause_ties_keep_input_order() -> None:
    first = _f(Category.NCCL_ERROR, 5.0, "worker:0")
    second = _f(Category.NCCL_ERROR, 5.0, "worker:1")
    assert root_cause([first, second]) is first
    assert root_cause([second, first]) is second


def test_root_cause_missing_times_go_last() -> None:
    untimed = _f(Category.UNKNOWN, None)
    timed = _f(Category.USER_CODE_ERROR, 100.0)
    assert root_cause([untimed, timed]) is timed
    assert root_cause([untimed]) is untimed


def test_root_cause_all_collateral_returns_earliest() -> None:
    a = _f(Category.PEER_ABORTED, 4.0, "worker:0")
    b = _f(Category.PEER_ABORTED, 2.0, "worker:1")
    assert root_cause([a, b]) is b


def test_root_cause_of_nothing() -> None:
    assert root_cause([]) is None


def test_root_cause_prefers_a_specific_failure_just_after_a_generic_one() -> None:
    from client.failures import Category, Failure

    lost_peer = Failure(Category.USER_CODE_ERROR, False, task="worker:1", time=100.00)
    declared = Failure(Category.USER_DECLARED, True, task="worker:0", time=100.05)
    assert root_cause([lost_peer, declared]) is declared
    # ...but not one that came long after: then the generic failure really came first.
    late = Failure(Category.USER_DECLARED, True, task="worker:0", time=110.0)
    assert root_cause([lost_peer, late]) is lost_peer
    # Two generic failures: the earliest stays the root cause.
    other = Failure(Category.USER_CODE_ERROR, False, task="worker:0", time=100.01)
    assert root_cause([lost_peer, other]) is lost_peer

"""The task launcher: runs in every task container (``python3 -m appmaster.launcher``).

1. reserves a port, binds GPUs, restores rw mounts;
2. registers ``host:port`` with the AppMaster (KV ``a<N>/reg/<task>``) and waits — bounded — for
   its environment (``a<N>/env/<task>``), published once the whole gang has registered;
3. runs the user command in the container's process group (so YARN's signals reach it too),
   copying its output to the container log, a local file and a tail buffer;
4. samples GPUs and syncs rw mounts while it runs;
5. on exit — also on SIGTERM from YARN — syncs rw mounts, uploads the log to the job record,
   publishes its exit report (``a<N>/exit/<task>``) and exits with the command's exit code.

The launcher runs with the node's Python (it needs skein); the user command runs with the
job's environment (``environment.python`` / a localized ``environment.archive``).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from appmaster.mounts import MountError, MountSyncer
from appmaster.skein_link import SkeinLink, SkeinLinkError
from client.errors import DLSubmitError
from client.hdfs import Hdfs
from client.record import task_log_path
from client.spec import JobSpec, TaskId
from client.yarn import SECRETS_KEY

logger = logging.getLogger("appmaster.launcher")

SPEC_FILE = "dlsubmit-spec.json"
TAIL_LINES = 40
ERROR_FILE = "dlsubmit-error.json"  # TORCHELASTIC_ERROR_FILE, in the working dir
METRICS_INTERVAL_S = 5.0
TERM_GRACE_S = 5.0
ENV_ARCHIVE_DIR = "dlsubmit-env"


def reserve_port() -> int:
    """A free TCP port on this host (released again for the task to bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


class OutputPump(threading.Thread):
    """Copies the command's output to the task's log file; keeps the last lines."""

    def __init__(self, stream: Any, log_path: Path) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.log_path = log_path
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)

    def run(self) -> None:
        with open(self.log_path, "ab") as log:
            for raw in iter(self.stream.readline, b""):
                log.write(raw)
                log.flush()
                self.tail.append(raw.decode("utf-8", "replace").rstrip("\n")[:500])


def task_index(env: Mapping[str, str]) -> int:
    """This task's index in its role.

    The AppMaster's requests say it (``DLSUBMIT_INDEX``); attempt 1's containers, which Skein
    starts from the submitted spec, are named ``<role>_<n>`` in Skein's ``SKEIN_CONTAINER_ID``.
    """
    if env.get("DLSUBMIT_INDEX"):
        return int(env["DLSUBMIT_INDEX"])
    return int(env["SKEIN_CONTAINER_ID"].rsplit("_", 1)[1])


class Launcher:
    """One task's life; see the module docstring."""

    def __init__(self, spec: JobSpec, link: SkeinLink, hdfs: Hdfs) -> None:
        env = os.environ
        self.spec = spec
        self.link = link
        self.hdfs = hdfs
        self.app_id = env["SKEIN_APPLICATION_ID"]
        self.user = env.get("DLSUBMIT_USER") or env.get("USER", "root")
        self.attempt = int(env["DLSUBMIT_ATTEMPT"])
        self.task = TaskId(env["DLSUBMIT_ROLE"], task_index(env))
        self.key = f"a{self.attempt}"
        self.host = env.get("NM_HOST") or socket.getfqdn()
        self.container_id = env.get("CONTAINER_ID", "")
        self.nm_http = f"{self.host}:{env.get('NM_HTTP_PORT', '8042')}"
        # The command's output goes to the container's own `stdout` log file: the NodeManager
        # serves it live, log aggregation keeps it, and the launcher uploads it to the record.
        log_dirs = env.get("LOG_DIRS", "")
        self.log_path = Path(log_dirs.split(",")[0]) / "stdout" if log_dirs else Path("stdout.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.terminated = threading.Event()
        self.report: dict[str, Any] = {}
        self.mounts = MountSyncer(spec, hdfs, Path.cwd())
        self.lease: Any = None
        self.secret_env: dict[str, str] = {}
        self.sampler: Any = None

    # ---- protocol ------------------------------------------------------------------------
    def _put(self, kind: str, value: Any) -> None:
        try:
            self.link.put_json(f"{self.key}/{kind}/{self.task}", value)
        except SkeinLinkError as exc:
            logger.warning("could not publish %s: %s", kind, exc)

    def _wait_json(self, key: str, timeout_s: float, interval_s: float) -> Any:
        """The JSON value under ``key`` once it is there; None after ``timeout_s`` or a stop."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.terminated.is_set():
            value = self.link.get_json(key)
            if value is not None:
                return value
            time.sleep(interval_s)
        return None

    def _wait_env(self) -> dict[str, str] | None:
        sched = self.spec.scheduling
        timeout_s = sched.allocation_timeout_s + sched.registration_timeout_s + 60
        env = self._wait_json(f"{self.key}/env/{self.task}", timeout_s, interval_s=0.2)
        return None if env is None else dict(env)

    # ---- setup -----------------------------------------------------------------------------
    def _bind_gpus(self) -> dict[str, str]:
        count = int(os.environ.get("DLSUBMIT_GPUS", "0"))
        if count == 0:
            return {"CUDA_VISIBLE_DEVICES": ""}
        from gpu_plugin import Sampler, bind, fetch_assignment, get_backend
        from gpu_plugin.errors import GpuPluginError

        try:
            assignment = fetch_assignment(self.nm_http, self.container_id)
        except GpuPluginError as exc:
            logger.info("no NodeManager GPU assignment (%s); using node-local leases", exc)
            assignment = None
        backend = get_backend()
        usable = [d.index for d in backend.devices() if d.reachable]
        self.lease = bind(
            count,
            node_assignment=assignment,
            all_indices=usable,
            container_id=self.container_id,
            timeout_s=60,
        )
        self.sampler = Sampler(self.lease.indices, backend=backend, interval_s=METRICS_INTERVAL_S)
        return dict(self.lease.environment())

    def _secrets(self) -> dict[str, str]:
        """``environment.secrets``, handed over by the client through Skein's key-value store."""
        if not self.spec.environment.secrets:
            return {}
        timeout_s = self.spec.scheduling.registration_timeout_s
        value = self._wait_json(SECRETS_KEY, timeout_s, interval_s=0.5)
        if value is not None:
            return {str(k): str(v) for k, v in value.items()}
        raise RuntimeError(
            "environment.secrets never arrived from the AppMaster (the client hands them over "
            "once the job is RUNNING; a restarted AppMaster restores them from the job record "
            "unless the first one was lost before it could seal them: resubmit the job)"
        )

    def _command_env(self, task_env: dict[str, str], gpu_env: dict[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("PYTHONPATH",):  # ours, not the user's
            if env.get(name, "").startswith("dlsubmit.zip"):
                rest = env[name].split(":", 1)[1:] or [""]
                env[name] = rest[0]
                if not env[name]:
                    del env[name]
        env.update(self.secret_env)
        env.update(task_env)
        env.update(gpu_env)
        env["TORCHELASTIC_ERROR_FILE"] = str(Path.cwd() / ERROR_FILE)
        env["DLSUBMIT_RESUME"] = "1" if self.mounts.resumed else "0"
        environment = self.spec.environment
        if environment.archive:
            bin_dir = Path.cwd() / ENV_ARCHIVE_DIR / "bin"
            env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
            env["VIRTUAL_ENV"] = str(bin_dir.parent)
        elif environment.python and environment.python != "python3":
            env["DLSUBMIT_PYTHON"] = environment.python
        return env

    def _check_image_runtime(self) -> None:
        """environment.image on a NodeManager that would ignore it: fail now (SETUP_FAILED)."""
        image = self.spec.environment.image
        if not image:
            return
        from client.envpack import image_runtime_problem

        problem = image_runtime_problem(self.nm_http, image)
        if problem:
            raise RuntimeError(problem)

    # ---- run -------------------------------------------------------------------------------
    def run(self) -> int:
        started = time.time()
        port = reserve_port()
        setup_error: str | None = None
        gpu_env: dict[str, str] = {}
        data_error: str | None = None
        try:
            gpu_env = self._bind_gpus()
            self._check_image_runtime()
            self.mounts.restore()
            self.secret_env = self._secrets()
        except MountError as exc:
            # The data, not the environment: an rw mount's HDFS dir cannot be created or read.
            # final_sync() hands it to the exit report as data_access_error (DATA_ACCESS).
            data_error = str(exc)
        except (DLSubmitError, OSError, RuntimeError) as exc:
            setup_error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # gpu_plugin errors and the like: still report, never hang
            setup_error = f"{type(exc).__name__}: {exc}"
        self._put(
            "reg",
            {
                "host": self.host,
                "port": port,
                "container_id": self.container_id,
                "nm_http_address": self.nm_http,
                "pid": os.getpid(),
                "time": started,
                "gpus": gpu_env.get("CUDA_VISIBLE_DEVICES", ""),
            },
        )
        if setup_error or data_error:
            logger.error("setup failed: %s", setup_error or data_error)
            return self._finish(1, None, started, setup_error=setup_error)
        task_env = self._wait_env()
        if task_env is None:
            return self._finish(
                1,
                None,
                started,
                setup_error=None
                if self.terminated.is_set()
                else "the AppMaster never published this task's environment",
            )
        return self._run_command(task_env, gpu_env, started)

    def _run_command(
        self, task_env: dict[str, str], gpu_env: dict[str, str], started: float
    ) -> int:
        role = self.spec.roles[self.task.role]
        env = self._command_env(task_env, gpu_env)
        logger.info(
            "running %s (rank %s): %s", self.task, task_env.get("DLSUBMIT_RANK"), role.command
        )
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", role.command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._put("started", {"time": time.time()})
        pump = OutputPump(self.proc.stdout, self.log_path)
        pump.start()
        self.pump = pump
        # The exit time decides which task failed first (the attempt's root cause), so take it
        # when the command ends, from a thread blocked in waitpid: not at the loop's next poll
        # (up to 0.5 s late) and not after the final sync of rw mounts (seconds, for a large
        # checkpoint). Otherwise a peer that fails *because* this task exited can look earlier.
        exit_time: list[float] = []
        proc = self.proc

        def reap() -> None:
            proc.wait()
            exit_time.append(time.time())

        reaper = threading.Thread(target=reap, daemon=True)
        reaper.start()
        while self.proc.poll() is None:
            self._periodic()
            if self.terminated.wait(0.5):
                self._stop_child()
                break
        code = self.proc.wait()
        reaper.join(timeout=1)
        pump.join(timeout=5)
        sig = -code if code < 0 else None
        exit_code = 128 + sig if sig else code
        finished = exit_time[0] if exit_time else time.time()
        return self._finish(exit_code, sig, started, tail=list(pump.tail), finished=finished)

    def _periodic(self) -> None:
        if self.sampler is not None and self.sampler.poll():
            self._put("metrics", self.sampler.summary())
        self.mounts.maybe_sync()

    def _stop_child(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(TERM_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def _finish(
        self,
        exit_code: int,
        sig: int | None,
        started: float,
        *,
        tail: list[str] | None = None,
        setup_error: str | None = None,
        finished: float | None = None,
    ) -> int:
        finished = finished or time.time()  # before the final sync, which may take a while
        data_error = self.mounts.final_sync()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        report: dict[str, Any] = {
            "exit_code": exit_code,
            "signal": sig,
            "log_tail": tail or [],
            "started": started,
            "finished": finished,
            "peak_rss_mib": int(usage.ru_maxrss / 1024),
            "setup_error": setup_error,
            "data_access_error": data_error,
            "error_file": _read_error_file(),
        }
        if self.sampler is not None:
            self.sampler.update()
            summary = self.sampler.summary()
            peaks = [d.get("mem_peak_mib") or 0 for d in summary.values()]
            report["gpu_peak_memory_mib"] = max(peaks) if peaks else None
            report["gpu_health_errors"] = self.sampler.faults()
            self._put("metrics", summary)
        self._put("exit", report)
        self._upload_log()
        if self.lease is not None:
            self.lease.release()
        logger.info("%s exited with %s", self.task, exit_code)
        return exit_code

    def _upload_log(self) -> None:
        if not self.log_path.exists():
            return
        try:
            self.hdfs.write_bytes(
                task_log_path(self.user, self.app_id, self.attempt, str(self.task)),
                self.log_path.read_bytes(),
            )
        except DLSubmitError as exc:
            logger.warning("could not upload the task log: %s", exc)


def _read_error_file() -> dict[str, Any] | None:
    path = Path(ERROR_FILE)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text()[:100_000])
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s dlsubmit-launcher %(levelname)s: %(message)s",
    )
    raw = json.loads(Path(SPEC_FILE).read_text())
    spec = JobSpec.from_dict(raw["spec"])
    user = os.environ.get("DLSUBMIT_USER") or os.environ.get("USER", "root")
    launcher = Launcher(spec, SkeinLink(), Hdfs(user=user))

    def on_term(signum: int, _frame: Any) -> None:
        # YARN (or the AppMaster) is stopping this container; the child got the same signal
        # (same process group). Finish quickly: SIGKILL follows shortly.
        launcher.terminated.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    return launcher.run()


if __name__ == "__main__":
    sys.exit(main())

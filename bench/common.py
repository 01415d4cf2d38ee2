"""Shared pieces of the benchmark suite: timing, statistics, the cluster, result tables.

Only public tools are used: ``time.perf_counter`` / ``time.time`` for wall time, ``os.wait4``
(the kernel's rusage of a finished child: user+sys CPU and peak RSS) for whole commands, and
plain ``/proc`` reads for running processes. Every comparison is run A/B alternated, and
figures are medians; ratios are the median of the per-pair ratios, so a machine whose speed
drifts during the run (the dev box is shared) still gives a fair ratio.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
# Scratch space on this machine: job specs, task timestamps, Skein's bench-only driver.
WORK = Path(os.environ.get("DLSUBMIT_BENCH_DIR", f"/tmp/dlsubmit-bench-{os.getuid()}"))
TAG = "dlsubmit-bench"
TASK_MEMORY_MIB = 256  # keep the shared dev cluster usable for everyone else

_SESSION = requests.Session()
_SESSION.headers.update({"Accept": "application/json"})


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ time budget

# run.py sets when the current section should be done (its share of the whole run's budget);
# sections run their first repetition always and further ones only while within it, so a
# busy shared cluster costs repetitions, not the 20-minute budget.
_SECTION_DEADLINE: list[float] = []
SELECTED: set[str] = set()  # the sections of this run (run.py)


def set_section_deadline(when: float) -> None:
    _SECTION_DEADLINE[:] = [when]


def time_left() -> float:
    """Seconds until the current section's share of the budget runs out (inf when unset)."""
    return _SECTION_DEADLINE[0] - time.monotonic() if _SECTION_DEADLINE else float("inf")


def another_rep(rep: int, need_s: float = 0.0) -> bool:
    """Whether repetition ``rep`` (0-based) should run: the first always, others in budget."""
    if rep == 0 or time_left() > need_s:
        return True
    say(f"time budget: skipping repetition {rep + 1} of this section")
    return False


# ------------------------------------------------------------------------------ statistics


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(min, median, max)."""
    if not values:
        nan = float("nan")
        return nan, nan, nan
    return min(values), statistics.median(values), max(values)


def fmt_s(seconds: float, digits: int | None = None) -> str:
    if seconds != seconds:  # NaN
        return "n/a"
    if digits is None:
        digits = 3 if seconds < 0.1 else 2 if seconds < 10 else 1
    return f"{seconds:.{digits}f} s"


def fmt_spread(values: Sequence[float]) -> str:
    """``median s (min–max, n)`` for a table cell."""
    if not values:
        return "n/a"
    lo, mid, hi = spread(values)
    if len(values) == 1:
        return fmt_s(mid)
    return f"{fmt_s(mid)} ({fmt_s(lo).removesuffix(' s')}–{fmt_s(hi)}, n={len(values)})"


def fmt_ratio(ratio: float, *, faster_word: str = "faster") -> str:
    """A baseline/dlsubmit ratio: >1 means dlsubmit takes less."""
    if ratio != ratio:
        return "n/a"
    if ratio >= 1:
        return f"**{ratio:.1f}×** {faster_word}"
    return f"{1 / ratio:.1f}× slower"


def pair_ratios(baseline: Sequence[float], ours: Sequence[float]) -> list[float]:
    """baseline[i] / ours[i] for each alternated pair."""
    return [b / o for b, o in zip(baseline, ours, strict=False) if o > 0]


# ------------------------------------------------------------------------------ commands


@dataclass
class Sample:
    """One finished command: wall seconds, exit code and output."""

    wall_s: float
    rc: int
    out: str
    err: str


def timed(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout_s: float = 120,
    cwd: Path | None = None,
) -> Sample:
    """Run ``argv`` once; wall time by perf_counter (the kernel's wait4 reaps it at once)."""
    out_path = WORK / f".out-{uuid.uuid4().hex[:8]}"
    err_path = out_path.with_suffix(".err")
    WORK.mkdir(parents=True, exist_ok=True)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd or REPO,
        )
        deadline = start + timeout_s
        while True:
            pid, status, _usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, _usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    text_out = out_path.read_text(errors="replace")
    text_err = err_path.read_text(errors="replace")
    out_path.unlink(missing_ok=True)
    err_path.unlink(missing_ok=True)
    return Sample(
        wall_s=wall,
        rc=proc.returncode,
        out=text_out,
        err=text_err,
    )


def alternate(
    commands: dict[str, Callable[[], float]],
    rounds: int,
    *,
    limits: dict[str, int] | None = None,
) -> dict[str, list[float]]:
    """Run each measurement once per round, A B C / B C A / ...; returns the samples by name.

    ``limits`` caps the rounds of slow commands (they take part in the first rounds only).
    """
    names = list(commands)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            if limits and r >= limits.get(name, rounds):
                continue
            samples[name].append(commands[name]())
    return samples


# ------------------------------------------------------------------------------ environment


def tool(name: str) -> str:
    """A console script of this Python (not a pyenv shim: those add their own startup)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"bench: `{name}` is not on PATH")
    return found


def bench_env() -> dict[str, str]:
    """Environment for every command the bench runs (Skein's bench-only config dir included)."""
    env = dict(os.environ)
    env["SKEIN_CONFIG"] = str(WORK / "skein")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def load_cluster_env() -> None:
    """HADOOP_CONF_DIR & co from ``docker/cluster env`` when the caller did not set them."""
    if os.environ.get("HADOOP_CONF_DIR"):
        return
    launcher = REPO / "docker" / "cluster"
    text = subprocess.run(
        [sys.executable, str(launcher), "env"], capture_output=True, text=True, check=True
    ).stdout
    for line in text.splitlines():
        if not line.startswith("export "):
            continue
        key, _, value = line[len("export ") :].partition("=")
        value = value.replace('"$PATH"', os.environ.get("PATH", "")).strip('"')
        os.environ[key] = value


# ------------------------------------------------------------------------------ the cluster


def rm_url() -> str:
    from client.hadoop_conf import addresses

    return addresses().rm_url


def rm_get(path: str, timeout_s: float = 10) -> Any:
    resp = _SESSION.get(f"{rm_url()}{path}", timeout=timeout_s)
    resp.raise_for_status()
    return resp.json()


def cluster_metrics() -> dict[str, Any]:
    return dict(rm_get("/ws/v1/cluster/metrics")["clusterMetrics"])


def running_nodes() -> list[dict[str, Any]]:
    nodes = (rm_get("/ws/v1/cluster/nodes").get("nodes") or {}).get("node") or []
    return [n for n in nodes if n.get("state") == "RUNNING"]


def largest_gang(am_vcores: int = 1, am_mib: int = 1024) -> int:
    """The most 1-vcore, 256 MiB tasks (plus an AM) the running NodeManagers can hold."""
    m = cluster_metrics()
    by_cpu = int(m["totalVirtualCores"]) - am_vcores
    by_mem = (int(m["totalMB"]) - am_mib) // TASK_MEMORY_MIB
    return max(0, min(by_cpu, by_mem))


def wait_for_room(vcores: int, mib: int, timeout_s: float = 180) -> bool:
    """Wait (bounded) until the cluster has ``vcores`` and ``mib`` free, so runs do not queue."""
    start = time.monotonic()
    said = False
    while True:
        m = cluster_metrics()
        if int(m["availableVirtualCores"]) >= vcores and int(m["availableMB"]) >= mib:
            return True
        # Fewer NodeManagers than needed (another developer's node-loss test): a minute for
        # the node to come back, not the whole wait.
        too_small = int(m["totalVirtualCores"]) < vcores or int(m["totalMB"]) < mib
        if time.monotonic() - start > (min(60.0, timeout_s) if too_small else timeout_s):
            return False
        if not said:
            say(
                f"waiting for {vcores} vcores / {mib} MiB free (now "
                f"{m['availableVirtualCores']} / {m['availableMB']}: other jobs are running)"
            )
            said = True
        time.sleep(1)


def app_info(app_id: str) -> dict[str, Any]:
    return dict(rm_get(f"/ws/v1/cluster/apps/{app_id}")["app"])


def app_containers(app_id: str) -> list[dict[str, Any]]:
    """The running containers of the application's current attempt (RM view, with alloc time)."""
    attempts = rm_get(f"/ws/v1/cluster/apps/{app_id}/appattempts")["appAttempts"]["appAttempt"]
    attempt = attempts[-1]["appAttemptId"]
    data = rm_get(f"/ws/v1/cluster/apps/{app_id}/appattempts/{attempt}/containers")
    found = data.get("container") or []
    return found if isinstance(found, list) else [found]


_LIVE_APPS: set[str] = set()


def track(app_id: str) -> str:
    _LIVE_APPS.add(app_id)
    return app_id


def kill_app(app_id: str, *, dlsubmit_job: bool = False) -> None:
    """Stop a bench application (as ``dlsubmit kill`` does for dlsubmit jobs)."""
    from client import Client
    from client.errors import DLSubmitError

    try:
        if dlsubmit_job:
            Client().job(app_id).kill()
        else:
            Client().rm.kill(app_id)
    except DLSubmitError as exc:
        say(f"could not kill {app_id}: {exc}")
    _LIVE_APPS.discard(app_id)


KEEP_ALIVE: set[str] = set()  # handed from one section to the next (run.py ends them last)


def kill_leftovers(*, everything: bool = False) -> None:
    for app_id in sorted(_LIVE_APPS):
        if app_id in KEEP_ALIVE and not everything:
            continue
        with contextlib.suppress(Exception):
            say(f"stopping leftover {app_id}")
            kill_app(app_id)


class StarvedError(RuntimeError):
    """Other applications took the containers this run needed (the cluster is shared)."""


def wait_for_files(
    directory: Path, count: int, timeout_s: float, app_id: str, containers: int | None = None
) -> list[Path]:
    """The task timestamp files, once ``count`` exist; [] when the app ended or time ran out.

    Raises:
        StarvedError: after 45 s the app still holds fewer than ``containers`` containers
            while the cluster has no vcore free: someone else's job got them first.
    """
    started = time.monotonic()
    last_state_check = 0.0
    while True:
        files = sorted(directory.glob("*.ts"))
        if len(files) >= count:
            return files
        now = time.monotonic()
        if now - started > timeout_s:
            return []
        if now - last_state_check > 3:
            last_state_check = now
            info = app_info(app_id)
            if info.get("state") in ("FINISHED", "FAILED", "KILLED"):
                say(f"{app_id} ended ({info.get('state')}) before its tasks started")
                return []
            if (
                containers
                and now - started > 45
                and int(info.get("runningContainers") or 0) < containers
                and int(cluster_metrics()["availableVirtualCores"]) == 0
            ):
                raise StarvedError(
                    f"{app_id} holds {info.get('runningContainers')} of {containers} containers "
                    "and the cluster has no vcore free"
                )
        time.sleep(0.1)


def read_stamp(path: Path) -> float:
    text = path.read_text().split()
    return float(text[0]) if text else float("nan")


def daemon_logs(main_class: str) -> list[Path]:
    """Log files of the running Hadoop daemons of ``main_class`` (their stdout, from /proc).

    docker/cluster sends each daemon's output to its log file; asking the processes finds the
    logs even when a daemon was restarted from another checkout. Falls back to the dev
    cluster's log directory.
    """
    found: set[Path] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if main_class.encode() not in Path(f"/proc/{entry}/cmdline").read_bytes():
                continue
            target = Path(os.readlink(f"/proc/{entry}/fd/1"))
        except OSError:
            continue
        if target.suffix == ".log" and target.exists():
            found.add(target)
    if not found:
        state = Path(os.environ.get("DLSUBMIT_CLUSTER_DIR", REPO / ".cluster"))
        prefix = "nm" if "NodeManager" in main_class else "rm"
        found.update((state / "logs").glob(f"{prefix}*.log"))
    return sorted(found)


# ------------------------------------------------------------------------------ Skein's driver


@contextlib.contextmanager
def skein_driver() -> Iterator[None]:
    """A Skein *global* driver that only the bench sees (its own SKEIN_CONFIG directory).

    ``dlsubmit submit`` and ``skein`` both reuse a running global driver; the bench starts its
    own so that it never stops (or depends on) a driver another developer started.
    """
    env = bench_env()
    skein = tool("skein")
    (WORK / "skein").mkdir(parents=True, exist_ok=True)
    running = skein_driver_running()
    if not running:
        say("starting the bench's Skein global driver (a JVM)")
        subprocess.run([skein, "driver", "start"], env=env, check=True, capture_output=True)
    try:
        yield
    finally:
        if not running:
            subprocess.run([skein, "driver", "stop"], env=env, capture_output=True)


def skein_driver_running() -> bool:
    res = subprocess.run(
        [tool("skein"), "driver", "address"], env=bench_env(), capture_output=True, text=True
    )
    return res.returncode == 0


# ------------------------------------------------------------------------------ job files


def fresh_dir(name: str) -> Path:
    path = WORK / f"{name}-{uuid.uuid4().hex[:6]}"
    path.mkdir(parents=True)
    return path


def stamp_command(marker_dir: Path, name_expr: str, then: str = "exec sleep 900") -> str:
    """Shell: write the time the command started (``date +%s.%N``) into the marker dir."""
    target = shlex.quote(str(marker_dir)) + f"/{name_expr}.ts"
    return f"date +%s.%N > {target}.tmp && mv {target}.tmp {target}; {then}"


def write_dlsubmit_job(
    path: Path,
    *,
    name: str,
    instances: int,
    command: str,
    retry: str = "{max_attempts: 1}",
    extra: str = "",
) -> Path:
    path.write_text(
        f"""spec_version: 1
name: {name}
tags: [{TAG}]
retry: {retry}
{extra}roles:
  worker:
    instances: {instances}
    resources: {{memory: {TASK_MEMORY_MIB} MiB, vcores: 1}}
    command: {json.dumps(command)}
"""
    )
    return path


def write_skein_spec(
    path: Path, *, name: str, instances: int, script: str, max_restarts: int = 0
) -> Path:
    spec = {
        "name": name,
        "queue": "default",
        "tags": [TAG],
        "services": {
            "worker": {
                "instances": instances,
                "max_restarts": max_restarts,
                "resources": {"memory": TASK_MEMORY_MIB, "vcores": 1},
                "script": script,
            }
        },
    }
    path.write_text(json.dumps(spec, indent=1))  # YAML is a superset of JSON
    return path


def submit_dlsubmit(job: Path, env: dict[str, str]) -> tuple[str, float, float]:
    """``dlsubmit submit JOB``: (app id, wall-clock start, client seconds)."""
    start = time.time()
    sample = timed([tool("dlsubmit"), "submit", str(job)], env=env, timeout_s=180)
    if sample.rc != 0:
        raise RuntimeError(f"dlsubmit submit failed ({sample.rc}): {sample.err[-2000:]}")
    return track(sample.out.strip().splitlines()[-1]), start, sample.wall_s


def submit_skein(spec: Path, env: dict[str, str]) -> tuple[str, float, float]:
    """``skein application submit SPEC``: (app id, wall-clock start, client seconds)."""
    start = time.time()
    sample = timed([tool("skein"), "application", "submit", str(spec)], env=env, timeout_s=180)
    if sample.rc != 0:
        raise RuntimeError(f"skein submit failed ({sample.rc}): {sample.err[-2000:]}")
    return track(sample.out.strip().splitlines()[-1]), start, sample.wall_s


def dlsubmit_record(app_id: str) -> dict[str, Any]:
    from client import Client

    return Client().job(app_id).record() or {}


def event_time(record: dict[str, Any], pattern: str, nth: int = 0) -> float | None:
    """Time of the ``nth`` event of the job record whose message matches ``pattern``."""
    rx = re.compile(pattern)
    hits = [e["time"] for e in record.get("events", []) if rx.search(e.get("message", ""))]
    return float(hits[nth]) if len(hits) > nth else None


# ------------------------------------------------------------------------------ results


@dataclass
class Row:
    """One line of a section's table."""

    figure: str
    dlsubmit: str
    baseline: str
    ratio: str
    bound: str


@dataclass
class Section:
    """What one benchmark module returns: its table, notes and the raw samples."""

    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    extra_tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)

    def table(self, caption: str, header: list[str], rows: list[list[str]]) -> None:
        """An additional table (e.g. a per-step breakdown) shown after the main one."""
        self.extra_tables.append((caption, header, rows))


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_section(section: Section, mode: str) -> str:
    parts = [f"## {section.title}", ""]
    parts.append(f"_Measured {time.strftime('%Y-%m-%d %H:%M')} ({mode}, {section.seconds:.0f} s)._")
    parts.append("")
    if section.rows:
        parts.append(
            markdown_table(
                ["figure", "dlsubmit", "baseline", "ratio", "what bounds it"],
                [[r.figure, r.dlsubmit, r.baseline, r.ratio, r.bound] for r in section.rows],
            )
        )
        parts.append("")
    for caption, header, rows in section.extra_tables:
        parts += [caption, "", markdown_table(header, rows), ""]
    if section.notes:
        parts += [f"- {note}" for note in section.notes]
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"

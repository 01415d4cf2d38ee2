"""Issue 5 on the real dev cluster: GPUs through our discovery, binding, health and metrics.

The dev cluster has no GPU: every NodeManager declares a test topology
(``.cluster/nmN/gpu-topology.json``, 2 GPUs, named by ``DLSUBMIT_GPU_TOPOLOGY`` in the
NodeManager's environment) and runs with ``allowed-gpu-devices=auto``, so YARN runs
``gpu_plugin/bin/nvidia-smi -x -q`` and parses our XML; ``gpu_plugin/bin/gpu-health`` is its
health script (every 5 s). The tests change a node's GPUs by rewriting its topology file
(atomically, as a real driver would change its answers) and always put the original back.

The cluster is shared with other people's jobs: tests wait for the GPUs they need to be free,
keep a faulty node faulty only for seconds, and restore it (and wait until it is healthy) in a
``finally``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpu_plugin.binding import default_lock_dir, holders
from gpu_plugin.device import Device
from gpu_plugin.discovery import xml_text
from gpu_plugin.health import check
from gpu_plugin.nvml import TOPOLOGY_ENV
from gpu_plugin.topology import TopologyBackend, write_topology
from tests.integration.helpers import dlsubmit, rm_app, status_json, wait_for, write_job

pytestmark = pytest.mark.yarn

RM = "http://127.0.0.1:8088"
GPU = "yarn.io/gpu"
NM_GPU_PATH = "/ws/v1/node/resources/yarn.io%2Fgpu"
# appmaster.launcher samples every 5 s; the AppMaster writes the record at most every second.
METRICS_INTERVAL_S = 5.0


# ------------------------------------------------------------------------------- helpers


def _get(url: str) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


def _rm_nodes() -> list[dict[str, Any]]:
    return list((_get(f"{RM}/ws/v1/cluster/nodes")["nodes"] or {}).get("node", []))


def _rm_node(node_id: str) -> dict[str, Any]:
    return dict(_get(f"{RM}/ws/v1/cluster/nodes/{node_id}")["node"])


def _resources(node: dict[str, Any], which: str) -> dict[str, int]:
    infos = node.get(which, {}).get("resourceInformations", {}).get("resourceInformation", [])
    return {r["name"]: int(r["value"]) for r in infos}


@dataclasses.dataclass(frozen=True)
class NodeManager:
    """One NodeManager of the dev cluster and the files that define its GPUs."""

    name: str  # nm1
    node_id: str  # localhost:45451, the RM's id
    http: str  # localhost:8042, the RM's nodeHTTPAddress (tasks report the same)
    pid: int
    topology: Path  # its DLSUBMIT_GPU_TOPOLOGY
    log: Path

    @property
    def lock_dir(self) -> str:
        return default_lock_dir({TOPOLOGY_ENV: str(self.topology)})

    def devices(self) -> list[Device]:
        return TopologyBackend(self.topology).devices()

    def gpu_info(self) -> dict[str, Any]:
        """The NodeManager's own view of its GPUs (YARN's parse of our discovery XML)."""
        info = _get(f"http://{self.http}{NM_GPU_PATH}")
        return dict(info.get("gpuDeviceInformation") or {})


def _state_dir() -> Path:
    state = Path(os.environ["HADOOP_CONF_DIR"]).resolve().parent
    assert (state / "nodemanagers").is_file(), (
        f"HADOOP_CONF_DIR={os.environ['HADOOP_CONF_DIR']} is not the dev cluster's (docker/cluster): "
        "these tests change its NodeManagers' declared GPU topologies"
    )
    return state


def _web_port(yarn_site: Path) -> int:
    for prop in ET.parse(yarn_site).getroot().iter("property"):
        if prop.findtext("name") == "yarn.nodemanager.webapp.address":
            return int((prop.findtext("value") or "").rsplit(":", 1)[1])
    raise AssertionError(f"{yarn_site}: no yarn.nodemanager.webapp.address")


def _process_env(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def node_managers() -> list[NodeManager]:
    """Every running NodeManager, matched to its RM node by web port."""
    state = _state_dir()
    rm_by_port = {int(n["nodeHTTPAddress"].rsplit(":", 1)[1]): n for n in _rm_nodes()}
    out = []
    for conf in sorted(state.glob("nm*/conf/yarn-site.xml")):
        name = conf.parent.parent.name
        pid_file = state / "run" / f"{name}.pid"
        if not pid_file.exists():
            continue
        pid = int(pid_file.read_text().split()[0])
        if not Path(f"/proc/{pid}").exists():
            continue
        node = rm_by_port.get(_web_port(conf))
        assert node is not None, f"{name} (pid {pid}) runs but the RM does not list it"
        topology = _process_env(pid).get(TOPOLOGY_ENV)
        assert topology, f"{name} was started without {TOPOLOGY_ENV}"
        out.append(
            NodeManager(
                name=name,
                node_id=node["id"],
                http=node["nodeHTTPAddress"],
                pid=pid,
                topology=Path(topology),
                log=state / "logs" / f"{name}.log",
            )
        )
    assert out, f"no running NodeManager under {state}"
    return out


def _by_http(nms: list[NodeManager]) -> dict[str, NodeManager]:
    return {nm.http: nm for nm in nms}


def _replace_file(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


@contextlib.contextmanager
def topology_changed(nm: NodeManager, **changes: dict[str, Any]) -> Iterator[None]:
    """Change some devices of a node's topology (``d1={"ecc_uncorrectable": 2}``); restore after."""
    original = nm.topology.read_bytes()
    backend = TopologyBackend(nm.topology)
    driver = backend.driver_version()
    devices = [
        dataclasses.replace(dev, **changes.get(f"d{dev.index}", {})) for dev in backend.devices()
    ]
    unknown = set(changes) - {f"d{dev.index}" for dev in devices}
    assert not unknown, f"{nm.topology} has no device {unknown}"
    try:
        write_topology(nm.topology, devices, driver_version=driver)
        yield
    finally:
        _replace_file(nm.topology, original)


def wait_gpus_free(timeout_s: float = 240) -> dict[str, int]:
    """Wait until no container holds a GPU (other people's jobs may); return GPUs per node."""

    def free() -> dict[str, int] | None:
        nodes = [n for n in _rm_nodes() if n["state"] == "RUNNING"]
        if any(_resources(n, "usedResource").get(GPU, 0) for n in nodes):
            return None
        return {n["nodeHTTPAddress"]: _resources(n, "totalResource").get(GPU, 0) for n in nodes}

    return dict(wait_for(free, timeout_s, "every GPU of the cluster to be free", 2.0))


def _submit(job: Path, *extra: str) -> str:
    res = dlsubmit("submit", str(job), *extra)
    lines = res.out.strip().splitlines()
    assert lines and lines[0].startswith("application_"), (res.code, res.out, res.err[-3000:])
    return lines[0]


def _kill(app_id: str) -> None:
    with contextlib.suppress(Exception):
        dlsubmit("kill", app_id, timeout=60)


def _running_tasks(app_id: str, attempt: int) -> dict[str, dict[str, Any]] | None:
    """Every task of ``attempt`` RUNNING with its GPUs bound, else None."""
    st = status_json(app_id)
    assert st["state"] not in ("FAILED", "KILLED", "SUCCEEDED") or st["attempt"] > attempt, st
    tasks = st.get("tasks") or {}
    if st["attempt"] != attempt or not tasks:
        return None
    if all(t["state"] == "RUNNING" and t.get("gpus") and t.get("nm_http_address") for t in tasks.values()):
        return dict(tasks)
    return None


def _launcher_pid(container_id: str) -> int:
    """The pid of ``python3 -m appmaster.launcher`` in a YARN container (same host)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if b"appmaster.launcher" not in cmdline:
                continue
            if _process_env(int(proc.name)).get("CONTAINER_ID") == container_id:
                return int(proc.name)
        except OSError:
            continue
    raise AssertionError(f"no launcher process for {container_id}")


def _distinct_per_node(tasks: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Group ``{task: gpus}`` by node and assert no device is named twice on one node."""
    per_node: dict[str, dict[str, str]] = defaultdict(dict)
    for name, task in tasks.items():
        gpus = task["gpus"]
        assert re.fullmatch(r"\d+", gpus), f"{name}: CUDA_VISIBLE_DEVICES={gpus!r} for 1 GPU"
        per_node[task["nm_http_address"]][name] = gpus
    for node, held in per_node.items():
        assert len(set(held.values())) == len(held), f"two tasks share a GPU on {node}: {held}"
    return dict(per_node)


# ----------------------------------------------------------------------------------- tests


def test_rm_counts_two_gpus_per_node_found_by_our_discovery_in_auto_mode(cluster) -> None:
    nms = node_managers()
    by_id = {n["id"]: n for n in _rm_nodes()}
    for nm in nms:
        node = by_id[nm.node_id]
        assert node["state"] == "RUNNING", node
        assert _resources(node, "totalResource").get(GPU) == 2, (nm.name, node["totalResource"])
        declared = nm.devices()
        assert len(declared) == 2

        # The NodeManager lists the devices exactly as our program declared them: YARN ran
        # gpu_plugin/bin/nvidia-smi and parsed its XML (an explicit device list has no
        # gpuDeviceInformation at all).
        info = nm.gpu_info()
        assert info.get("driverVersion") == TopologyBackend(nm.topology).driver_version()
        gpus = info["gpus"]
        gpus = gpus if isinstance(gpus, list) else [gpus]
        assert [(g["uuid"], g["productName"], int(g["minorNumber"])) for g in gpus] == [
            (d.uuid, d.name, d.minor_number) for d in declared
        ]
        assert [int(g["gpuMemoryUsage"]["totalMemoryMiB"]) for g in gpus] == [
            d.memory_total_mib for d in declared
        ]

        # ... and the log of its latest start says the count came from discovery of our binary.
        log = nm.log.read_text(errors="replace")
        latest = log[log.rfind(f"starting {nm.name}") :]
        discovery_dir = Path(__file__).resolve().parents[2] / "gpu_plugin" / "bin"
        assert f"path-to-executable:{discovery_dir}/nvidia-smi" in latest, nm.log
        found = re.search(r"Discovered GPU information: === GPUs in the system ===\n(.*?)\n\d{4}-", latest, re.S)
        assert found, f"{nm.log}: no 'Discovered GPU information' since the last start"
        assert found.group(1).count("ProductName=") == 2, found.group(1)


def test_concurrent_one_gpu_tasks_get_distinct_devices_and_a_killed_tasks_device_is_reused(
    cluster, record_app, tmp_path: Path
) -> None:
    per_node_total = wait_gpus_free()
    total = sum(per_node_total.values())
    assert total >= 3 and max(per_node_total.values()) >= 2, per_node_total
    # One task per GPU of the cluster: every node is full, so every node runs two tasks at once
    # and a task of the second attempt can only get the killed task's device back.
    job = write_job(
        tmp_path,
        f"""
        name: gpu-distinct
        retry: {{max_attempts: 2, policy: always, backoff: 1s}}
        scheduling: {{allocation_timeout: 3m}}
        appmaster: {{resources: {{memory: 512 MiB}}}}
        roles:
          worker:
            instances: {total}
            resources: {{memory: 256 MiB, vcores: 1, gpus: 1}}
            command: echo "attempt $DLSUBMIT_ATTEMPT CVD=[$CUDA_VISIBLE_DEVICES]"; sleep 600
        """,
    )
    app_id = record_app(_submit(job))
    try:
        first = wait_for(lambda: _running_tasks(app_id, 1), 240, "attempt 1 running with GPUs", 2.0)
        per_node = _distinct_per_node(first)
        for node, held in per_node.items():
            assert sorted(held.values()) == [str(i) for i in range(per_node_total[node])], per_node
        # The command saw what the launcher reported.
        logs = wait_for(
            lambda: len(re.findall(r"attempt 1 CVD=", out := dlsubmit("logs", app_id).out)) == total
            and out,
            60,
            "every task's CUDA_VISIBLE_DEVICES line",
        )
        for name, task in first.items():
            assert f"[{name}] attempt 1 CVD=[{task['gpus']}]" in logs, logs[-2000:]

        # SIGKILL one task's launcher on a full node: its lease ends with the process, while
        # the device stays YARN's to give to the next container.
        node, held = next(iter(per_node.items()))
        victim = sorted(held)[0]
        device = int(held[victim])
        lock_dir = _by_http(node_managers())[node].lock_dir
        assert device in holders(lock_dir, [device]), "the running task must hold its lease"
        killed_container = first[victim]["container_id"]
        os.kill(_launcher_pid(killed_container), signal.SIGKILL)
        wait_for(
            lambda: device not in holders(lock_dir, [device]), 10, "the killed task's lease to end", 0.2
        )

        # The attempt fails, the job retries, and a new task takes that device on that node.
        second = wait_for(lambda: _running_tasks(app_id, 2), 240, "attempt 2 running with GPUs", 2.0)
        per_node_2 = _distinct_per_node(second)
        for node_2, held_2 in per_node_2.items():
            assert sorted(held_2.values()) == [str(i) for i in range(per_node_total[node_2])]
        (taker,) = [t for t in second.values() if t["nm_http_address"] == node and t["gpus"] == str(device)]
        assert taker["container_id"] != killed_container
        assert taker["container_id"] in holders(lock_dir, [device])[device]
    finally:
        _kill(app_id)


def test_status_shows_each_tasks_gpu_utilisation_and_memory(cluster, record_app, tmp_path: Path) -> None:
    wait_gpus_free()
    job = write_job(
        tmp_path,
        """
        name: gpu-metrics
        retry: {max_attempts: 1}
        appmaster: {resources: {memory: 512 MiB}}
        roles:
          worker:
            instances: 1
            resources: {memory: 256 MiB, vcores: 1, gpus: 1}
            command: sleep 600
        """,
    )
    app_id = record_app(_submit(job))
    try:
        tasks = wait_for(lambda: _running_tasks(app_id, 1), 180, "the task running with a GPU", 2.0)
        task = tasks["worker:0"]
        nm = _by_http(node_managers())[task["nm_http_address"]]
        index = int(task["gpus"])
        (dev,) = [d for d in nm.devices() if d.index == index]

        def shown(util: int | None, mem: int | None) -> str | None:
            line = next(
                (ln for ln in dlsubmit("status", app_id).out.splitlines() if "worker:0" in ln), ""
            )
            return line if f"gpu{index}={util}%/{mem}MiB" in line else None

        wait_for(lambda: shown(dev.utilization_pct, dev.memory_used_mib), 30, "the first GPU sample", 1.0)

        with topology_changed(nm, **{f"d{index}": {"utilization_pct": 73, "memory_used_mib": 5120}}):
            changed = time.monotonic()
            line = wait_for(lambda: shown(73, 5120), 30, "the new GPU sample in `dlsubmit status`", 0.5)
            took = time.monotonic() - changed
            assert took < METRICS_INTERVAL_S + 10, f"status caught up after {took:.1f}s: {line}"
            gpu = status_json(app_id)["tasks"]["worker:0"]["gpu"][str(index)]
            assert gpu["util_pct"] == 73 and gpu["mem_used_mib"] == 5120
            assert gpu["mem_peak_mib"] == 5120 and gpu["mem_total_mib"] == dev.memory_total_mib
            # YARN's own parser reads the same values from our discovery program.
            info = nm.gpu_info()
            gpus = info["gpus"] if isinstance(info["gpus"], list) else [info["gpus"]]
            (mine,) = [g for g in gpus if int(g["minorNumber"]) == dev.minor_number]
            assert float(mine["gpuUtilizations"]["overallGpuUtilization"]) == 73.0
            assert int(mine["gpuMemoryUsage"]["usedMemoryMiB"]) == 5120
    finally:
        _kill(app_id)


def test_faulty_gpu_makes_its_node_unhealthy_and_new_containers_avoid_it(
    cluster, record_app, tmp_path: Path
) -> None:
    nms = node_managers()
    assert len(nms) >= 2, "needs a second node to take the work"
    wait_gpus_free()
    by_id = {n["id"]: n for n in _rm_nodes()}
    # The node running the fewest containers becomes faulty (its running containers keep running).
    sick = min(nms, key=lambda nm: by_id[nm.node_id]["numContainers"])
    last = max(d.index for d in sick.devices())
    try:
        with topology_changed(sick, **{f"d{last}": {"ecc_uncorrectable": 2}}):
            expected = check(TopologyBackend(sick.topology))
            assert expected.startswith("ERROR ") and "2 uncorrectable ECC errors" in expected
            node = wait_for(
                lambda: (n := _rm_node(sick.node_id))["state"] == "UNHEALTHY" and n,
                60,
                f"{sick.node_id} to turn UNHEALTHY",
            )
            assert expected in node["healthReport"], node["healthReport"]

            job = write_job(
                tmp_path,
                """
                name: gpu-avoid-sick-node
                retry: {max_attempts: 1}
                scheduling: {allocation_timeout: 2m}
                appmaster: {resources: {memory: 512 MiB}}
                roles:
                  worker:
                    instances: 2
                    resources: {memory: 256 MiB, vcores: 1, gpus: 1}
                    command: echo "on $NM_HOST:$NM_HTTP_PORT CVD=[$CUDA_VISIBLE_DEVICES]"
                """,
            )
            app_id = record_app(_submit(job, "--wait"))
            st = status_json(app_id)
            assert st["state"] == "SUCCEEDED", st
            places = {name: t["nm_http_address"] for name, t in st["tasks"].items()}
            assert sick.http not in places.values(), places
            attempts = _get(f"{RM}/ws/v1/cluster/apps/{app_id}/appattempts")["appAttempts"]
            am_nodes = [a["nodeHttpAddress"] for a in attempts["appAttempt"]]
            assert am_nodes and sick.http not in am_nodes, am_nodes
            assert _rm_node(sick.node_id)["state"] == "UNHEALTHY"
            assert rm_app(app_id)["finalStatus"] == "SUCCEEDED"
    finally:
        # Others share this node: it must be healthy again before the test ends.
        wait_for(
            lambda: (n := _rm_node(sick.node_id))["state"] == "RUNNING" and not n["healthReport"],
            60,
            f"{sick.node_id} to be healthy again",
        )


# YARN's own parser (the class the NodeManager uses in auto mode) on our program's output.
_PARSE_JAVA = """
import java.nio.file.*;
import org.apache.hadoop.yarn.server.nodemanager.webapp.dao.gpu.*;

public class ParseGpuXml {
  public static void main(String[] args) throws Exception {
    GpuDeviceInformationParser parser = new GpuDeviceInformationParser();
    for (String file : args) {
      try {
        GpuDeviceInformation info = parser.parseXml(new String(Files.readAllBytes(Paths.get(file))));
        StringBuilder out = new StringBuilder("OK " + info.getDriverVersion());
        for (PerGpuDeviceInformation g : info.getGpus()) {
          out.append(" | ").append(g.getMinorNumber()).append(",").append(g.getUuid())
             .append(",").append(g.getProductName())
             .append(",").append(g.getGpuUtilizations() == null ? null : g.getGpuUtilizations().getOverallGpuUtilization())
             .append(",").append(g.getGpuMemoryUsage() == null ? null : g.getGpuMemoryUsage().getUsedMemoryMiB())
             .append(",").append(g.getGpuMemoryUsage() == null ? null : g.getGpuMemoryUsage().getTotalMemoryMiB())
             .append(",").append(g.getTemperature() == null ? null : g.getTemperature().getCurrentGpuTemp())
             .append(",").append(g.getTemperature() == null ? null : g.getTemperature().getSlowThresholdGpuTemp());
        }
        System.out.println(out);
      } catch (Exception e) {
        System.out.println("ERR " + e.getMessage().replace('\\n', ' '));
      }
    }
  }
}
"""


def _hadoop_lib() -> Path:
    cache = Path(os.environ.get("DLSUBMIT_CACHE", Path.home() / ".cache" / "dlsubmit"))
    libs = sorted(cache.glob("hadoop-*/lib/hadoop-yarn-server-nodemanager-*.jar"))
    assert libs, f"no Hadoop NodeManager jar under {cache} (docker/cluster up fetches them)"
    return libs[-1].parent


def test_yarns_parser_accepts_our_discovery_xml(cluster, tmp_path: Path) -> None:
    full = Device(
        index=0, minor_number=0, uuid="GPU-aaaa", name="NVIDIA H100 80GB HBM3 <&>",
        memory_total_mib=81559, memory_used_mib=1234, utilization_pct=87, temperature_c=61,
        temp_slowdown_c=90, temp_max_c=95, pci_bus_id="00000000:3B:00.0",
    )
    sparse = Device(index=1, minor_number=3)  # a board NVML tells almost nothing about
    gone = Device(index=2, minor_number=4, reachable=False, error="GPU is lost")
    cases = {
        "full": xml_text("550.54.15", [full, sparse, gone]),
        "dev-topology": subprocess.run(
            [str(Path(__file__).resolve().parents[2] / "gpu_plugin" / "bin" / "nvidia-smi"), "-x", "-q"],
            env={**os.environ, TOPOLOGY_ENV: str(node_managers()[0].topology)},
            capture_output=True, text=True, check=True,
        ).stdout,
        # Negative control: a document YARN cannot read must come back as an error, so an
        # "OK" above means the parser really read our values.
        "broken": xml_text("550.54.15", [full]).replace("</nvidia_smi_log>", ""),
    }
    files = []
    for name, text in cases.items():
        (tmp_path / f"{name}.xml").write_text(text)
        files.append(str(tmp_path / f"{name}.xml"))
    source = tmp_path / "ParseGpuXml.java"
    source.write_text(_PARSE_JAVA)
    java = Path(os.environ.get("JAVA_HOME", "/usr")) / "bin" / "java"
    run = subprocess.run(
        [str(java), "-cp", f"{_hadoop_lib()}/*", str(source), *files],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = dict(zip(cases, run.stdout.splitlines(), strict=True))

    assert results["full"] == (
        "OK 550.54.15 | 0,GPU-aaaa,NVIDIA H100 80GB HBM3 <&>,87.0,1234,81559,61.0,90.0"
        # JAXB keeps YARN's defaults ("N/A" names, no usage) for what we leave out.
        " | 3,N/A,N/A,null,null,null,null,null"
    ), results["full"]
    declared = node_managers()[0].devices()
    assert results["dev-topology"].startswith("OK ")
    assert results["dev-topology"].count(" | ") == len(declared)
    for dev in declared:
        assert f"{dev.minor_number},{dev.uuid},{dev.name}," in results["dev-topology"]
    assert results["broken"].startswith("ERR"), results["broken"]

"""Real NVML on a real NVIDIA GPU: discovery, health, and metrics that move under load.

Run on a GPU machine with ``python -m pytest tests/gpu -m gpu -v`` (or ``make gpu-test``).
The only skip: no NVIDIA driver on this machine (CI has no GPU). Everything else that goes
wrong here is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpu_plugin.device import Device
from gpu_plugin.errors import NvmlError
from gpu_plugin.metrics import Sampler, health_errors
from gpu_plugin.nvml import TOPOLOGY_ENV, PynvmlBackend

pytestmark = pytest.mark.gpu

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "gpu_plugin" / "bin"
NO_DRIVER_CODES = (9, 12)  # NVML_ERROR_DRIVER_NOT_LOADED, NVML_ERROR_LIBRARY_NOT_FOUND


@pytest.fixture(scope="module")
def backend() -> Iterator[PynvmlBackend]:
    real = PynvmlBackend()
    try:
        real.driver_version()
    except NvmlError as exc:
        if exc.code in NO_DRIVER_CODES:
            pytest.skip(f"no NVIDIA driver on this machine: {exc}")
        raise
    yield real
    real.close()


@pytest.fixture(scope="module")
def devices(backend: PynvmlBackend) -> list[Device]:
    found = backend.devices()
    assert found, "the driver is loaded but NVML lists no GPU"
    return found


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != TOPOLOGY_ENV}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def _run(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / name), *args], env=_env(), capture_output=True, text=True, timeout=30
    )


def test_backend_reads_real_devices(backend: PynvmlBackend, devices: list[Device]) -> None:
    print(f"driver {backend.driver_version()}")
    for dev in devices:
        print(dev)
        assert dev.reachable, dev.error
        assert dev.uuid and dev.uuid.startswith(("GPU-", "MIG-"))
        assert dev.name
        assert dev.minor_number is not None
        assert dev.memory_total_mib and dev.memory_total_mib > 0
        assert dev.memory_used_mib is not None
        assert 0 <= dev.memory_used_mib <= dev.memory_total_mib


def test_discovery_xml_lists_the_real_devices(devices: list[Device]) -> None:
    result = _run("nvidia-smi", "-x", "-q")
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    root = ET.fromstring(result.stdout)
    assert root.tag == "nvidia_smi_log"
    assert "N/A" not in result.stdout
    gpus = root.findall("gpu")
    assert len(gpus) == len(devices) == int(root.findtext("attached_gpus", "-1"))
    for gpu, dev in zip(gpus, devices, strict=True):
        assert gpu.findtext("uuid") == dev.uuid
        assert int(gpu.findtext("minor_number", "-1")) == dev.minor_number
        # What YARN computes: total = used + free, each Long.valueOf(first word).
        used = int(gpu.findtext("fb_memory_usage/used", "").split(" ")[0])
        free = int(gpu.findtext("fb_memory_usage/free", "").split(" ")[0])
        assert used + free > 0
        for path in ("utilization/gpu_util", "temperature/gpu_temp"):
            text = gpu.findtext(path)
            if text is not None:  # present only where NVML supports it
                float(text.split(" ")[0])


def test_discovery_agrees_with_the_real_nvidia_smi(devices: list[Device]) -> None:
    ours = _run("nvidia-smi", "-x", "-q")
    assert ours.returncode == 0, ours.stderr
    candidates = [shutil.which("nvidia-smi"), "/usr/bin/nvidia-smi", "/usr/local/bin/nvidia-smi"]
    real_smi = next(
        (
            c
            for c in candidates
            if c and os.path.exists(c) and Path(c).resolve() != BIN.resolve() / "nvidia-smi"
        ),
        None,
    )
    if real_smi is None:
        # Not a skip: the driver's own tool is simply not installed; ours was checked above.
        print("no real nvidia-smi to compare with")
        return
    real = subprocess.run([real_smi, "-x", "-q"], capture_output=True, text=True, timeout=30)
    assert real.returncode == 0, real.stderr

    def ids(xml: str) -> list[tuple[str | None, str | None, int]]:
        root = ET.fromstring(xml)
        return [
            (
                g.findtext("uuid"),
                g.findtext("minor_number"),
                int(g.findtext("fb_memory_usage/total", "0 MiB").split(" ")[0]),
            )
            for g in root.findall("gpu")
        ]

    print(f"compared with {real_smi}")
    mine, theirs = ids(ours.stdout), ids(real.stdout)
    assert [m[:2] for m in mine] == [t[:2] for t in theirs]
    for (_, _, total), (_, _, real_total) in zip(mine, theirs, strict=True):
        # nvidia-smi may count driver-reserved memory differently from NVML's v1 memory info.
        assert abs(total - real_total) <= 0.02 * real_total, (total, real_total)


def test_list_for_humans(devices: list[Device]) -> None:
    result = _run("nvidia-smi", "-L")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == len(devices)


def test_health_reports_ok(devices: list[Device]) -> None:
    assert health_errors(devices) == []
    result = _run("gpu-health")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"OK {len(devices)} GPUs healthy\n"


def test_metrics_move_under_load(backend: PynvmlBackend, devices: list[Device]) -> None:
    from tests.gpu.cuda_load import GpuLoad, available_engine

    try:
        engine = available_engine()
    except OSError as exc:
        pytest.skip(f"no way to run CUDA work here (no torch, cupy or libcuda): {exc}")
    sampler = Sampler([devices[0].index], backend=backend, interval_s=0.0)
    sampler.update()
    before = sampler.stats(devices[0].index).mem_used_mib
    assert before is not None
    peak_util = 0
    with GpuLoad(mib=1024):
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            time.sleep(0.25)
            sampler.update()
            stats = sampler.stats(devices[0].index)
            peak_util = max(peak_util, stats.util_pct or 0)
            rose = (stats.mem_peak_mib or 0) - before
            if peak_util > 0 and rose >= 1024:
                break
    summary = sampler.summary()[str(devices[0].index)]
    print(f"engine={engine} before={before} MiB summary={summary} peak_util={peak_util}")
    assert summary["mem_peak_mib"] is not None
    assert summary["mem_peak_mib"] - before >= 1024, "1 GiB allocation not seen by NVML"
    assert peak_util > 0, "kernels ran but NVML utilisation stayed 0"
    assert sampler.faults() == []


_CUDA_VIEW = (
    "import json, torch; n = torch.cuda.device_count(); "
    "print(json.dumps({'count': n, 'uuids': ["
    "str(torch.cuda.get_device_properties(i).uuid) for i in range(n)]}))"
)


def _cuda_view(env: dict[str, str]) -> dict[str, object]:
    """What a task's CUDA sees: device count and UUIDs, from a fresh torch process."""
    import json

    result = subprocess.run(
        [sys.executable, "-c", _CUDA_VIEW],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_env(), **env},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_bound_task_sees_exactly_its_gpu_and_a_cpu_task_sees_none(
    devices: list[Device], tmp_path: Path
) -> None:
    pytest.importorskip("torch", reason="torch is how this check asks CUDA what it sees")
    from gpu_plugin.binding import bind
    from gpu_plugin.errors import BindingError

    usable = [d.index for d in devices if d.reachable]
    with bind(1, lock_dir=str(tmp_path), all_indices=usable, container_id="task-a") as lease:
        (held,) = lease.indices
        seen = _cuda_view(lease.environment())
        assert seen["count"] == 1, seen
        want = next(d.uuid for d in devices if d.index == held)
        assert want is not None
        # torch prints the UUID without NVML's "GPU-" prefix.
        assert want.removeprefix("GPU-") in str(seen["uuids"]), (want, seen)
        if len(usable) == 1:
            # The only GPU is held: a second task waits, then is told who holds it.
            with pytest.raises(BindingError, match="task-a"):
                bind(1, lock_dir=str(tmp_path), all_indices=usable, timeout_s=0.5)
    # gpus: 0 gives an empty CUDA_VISIBLE_DEVICES: the task cannot touch the node's GPUs.
    none = bind(0, lock_dir=str(tmp_path), all_indices=usable)
    assert _cuda_view(none.environment())["count"] == 0
    # Released on exit: every device can be bound again at once.
    with bind(len(usable), lock_dir=str(tmp_path), all_indices=usable, timeout_s=0.5) as again:
        assert held in again.indices

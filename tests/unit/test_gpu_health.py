"""The NodeManager health script: one line, ERROR naming the device, always exit 0."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
import threading
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from gpu_plugin.device import Device
from gpu_plugin.errors import NvmlError
from gpu_plugin.health import check, main
from gpu_plugin.nvml import TOPOLOGY_ENV, TopologyBackend
from gpu_plugin.topology import write_topology

REPO = Path(__file__).resolve().parents[2]
GPU_HEALTH = REPO / "gpu_plugin" / "bin" / "gpu-health"
HEALTHY = TopologyBackend(REPO / "conf" / "gpu-topology-2.json").devices()


class _Backend:
    def __init__(self, devices: list[Device] | None = None, error: str | None = None) -> None:
        self._devices = devices or []
        self._error = error

    def driver_version(self) -> str:
        return "1"

    def devices(self) -> list[Device]:
        if self._error:
            raise NvmlError(self._error)
        return self._devices


def _with(index: int, **changes: Any) -> list[Device]:
    return [dataclasses.replace(d, **changes) if d.index == index else d for d in HEALTHY]


def test_healthy_node_is_ok() -> None:
    assert check(_Backend(HEALTHY)) == "OK 2 GPUs healthy"


@pytest.mark.parametrize(
    ("devices", "expected"),
    [
        (_with(1, ecc_uncorrectable=2), "2 uncorrectable ECC errors"),
        (_with(1, retired_pages_pending=True), "retired memory pages pending"),
        (_with(1, reachable=False, error="GPU is lost"), "unreachable (GPU is lost)"),
        (_with(1, temperature_c=90), "temperature 90 C at or past its slowdown threshold 90 C"),
        (_with(1, temperature_c=97), "temperature 97 C"),
    ],
)
def test_each_fault_names_the_device(devices: list[Device], expected: str) -> None:
    line = check(_Backend(devices))
    assert line.startswith("ERROR GPU 1 (GPU-d15b0001-0000-4000-8000-000000000001): ")
    assert expected in line
    assert "\n" not in line


def test_several_faults_fit_on_one_line() -> None:
    devices = [
        dataclasses.replace(HEALTHY[0], ecc_uncorrectable=1, temperature_c=99),
        dataclasses.replace(HEALTHY[1], reachable=False, error="GPU is lost\nreset it"),
    ]
    line = check(_Backend(devices))
    assert line.startswith("ERROR GPU 0")
    assert line.count("; ") == 2 and "\n" not in line
    assert "GPU 1" in line and "reset it" in line


def test_unknown_values_are_not_faults() -> None:
    assert check(_Backend([Device(index=0)])) == "OK 1 GPUs healthy"


def test_nvml_failure_and_missing_gpus_are_errors() -> None:
    assert check(_Backend(error="NVML Shared Library Not Found")) == (
        "ERROR NVML failed: NVML Shared Library Not Found"
    )
    assert check(_Backend([])) == "ERROR 0 GPUs found, expected at least 1"
    assert check(_Backend([]), min_gpus=0) == "OK 0 GPUs healthy"
    assert check(_Backend(HEALTHY), min_gpus=4).startswith("ERROR 2 GPUs found")


def _main(argv: list[str], backend: Any = None) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(argv, backend=backend)
    return code, out.getvalue()


def test_main_prints_one_line_and_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    write_topology(path, _with(1, ecc_uncorrectable=2))
    code, out = _main(["--topology", str(path)])
    assert code == 0
    assert out.startswith("ERROR GPU 1") and out.count("\n") == 1


def test_main_reports_a_hung_nvml_instead_of_timing_out() -> None:
    release = threading.Event()

    class Hung(_Backend):
        def devices(self) -> list[Device]:
            release.wait(10)
            return []

    try:
        code, out = _main(["--timeout-s", "0.2"], backend=Hung())
    finally:
        release.set()
    assert (code, out) == (0, "ERROR NVML did not answer within 0.2 s\n")


def test_main_turns_a_crash_into_an_error_line() -> None:
    class Broken(_Backend):
        def devices(self) -> list[Device]:
            raise KeyError("bug")

    assert _main([], backend=Broken()) == (0, "ERROR gpu-health crashed: KeyError: 'bug'\n")


@pytest.mark.parametrize(
    ("topology", "expected"),
    [
        ("gpu-topology-2.json", "OK 2 GPUs healthy\n"),
        ("gpu-topology-faulty.json", "ERROR GPU 1 (GPU-d15b0001-0000-4000-8000-000000000001): "
                                     "2 uncorrectable ECC errors\n"),
    ],
)  # fmt: skip
def test_executable_with_the_shipped_topologies(topology: str, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env[TOPOLOGY_ENV] = str(REPO / "conf" / topology)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    result = subprocess.run(
        [str(GPU_HEALTH)], env=env, cwd="/", capture_output=True, text=True, timeout=30
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, expected, "")

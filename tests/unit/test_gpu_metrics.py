"""Per-task GPU samples: peaks, last values, faults, NVML failures, the sampling interval."""

from __future__ import annotations

import json
from pathlib import Path

from gpu_plugin.device import Device
from gpu_plugin.errors import NvmlError
from gpu_plugin.metrics import Sampler, health_errors, sample
from gpu_plugin.nvml import TopologyBackend

REPO = Path(__file__).resolve().parents[2]


class _Script:
    """A backend that plays back one list of devices per call (or an error)."""

    def __init__(self, *steps: list[Device] | str) -> None:
        self._steps = list(steps)
        self.calls = 0

    def driver_version(self) -> str:
        return "1"

    def devices(self) -> list[Device]:
        step = self._steps[min(self.calls, len(self._steps) - 1)]
        self.calls += 1
        if isinstance(step, str):
            raise NvmlError(step)
        return step


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _dev(index: int, used: int | None, util: int | None = 50, temp: int | None = 60) -> Device:
    return Device(
        index=index,
        memory_total_mib=16384,
        memory_used_mib=used,
        utilization_pct=util,
        temperature_c=temp,
        temp_slowdown_c=90,
    )


def test_sample_returns_only_the_asked_devices() -> None:
    backend = TopologyBackend(REPO / "conf" / "gpu-topology-2.json")
    assert [d.index for d in sample([1], backend)] == [1]
    assert [d.index for d in sample([0, 1, 7], backend)] == [0, 1]
    assert sample([], backend) == []


def test_summary_keeps_peak_memory_and_last_values() -> None:
    backend = _Script(
        [_dev(0, 1000, util=10), _dev(1, 50)],
        [_dev(0, 9000, util=99, temp=70), _dev(1, 60)],
        [_dev(0, 2000, util=5, temp=65), _dev(1, None, util=None, temp=None)],
    )
    sampler = Sampler([0, 1], backend=backend)
    for _ in range(3):
        sampler.update()
    summary = sampler.summary()
    assert summary == {
        "0": {"util_pct": 5, "mem_used_mib": 2000, "mem_peak_mib": 9000,
              "mem_total_mib": 16384, "temp_c": 65},
        "1": {"util_pct": None, "mem_used_mib": None, "mem_peak_mib": 60,
              "mem_total_mib": 16384, "temp_c": None},
    }  # fmt: skip
    assert json.loads(json.dumps(summary)) == summary
    assert sampler.samples == 3 and sampler.faults() == []


def test_summary_before_any_sample_is_all_unknown() -> None:
    sampler = Sampler([3], backend=_Script([]))
    assert sampler.summary() == {
        "3": {"util_pct": None, "mem_used_mib": None, "mem_peak_mib": None,
              "mem_total_mib": None, "temp_c": None},
    }  # fmt: skip


def test_poll_respects_the_interval_with_an_injected_clock() -> None:
    backend = _Script([_dev(0, 1)])
    clock = _Clock()
    sampler = Sampler([0], backend=backend, interval_s=5.0, clock=clock)
    assert sampler.poll() is True
    clock.now += 4.9
    assert sampler.poll() is False
    clock.now += 0.1
    assert sampler.poll() is True
    assert backend.calls == 2


def test_nvml_failure_never_raises_and_keeps_old_values() -> None:
    backend = _Script([_dev(0, 4000)], "GPU is lost", [_dev(0, 100)])
    sampler = Sampler([0], backend=backend)
    sampler.update()
    assert sampler.update() == []
    assert sampler.last_error == "GPU is lost"
    assert sampler.faults() == ["NVML failed: GPU is lost"]
    assert sampler.summary()["0"]["mem_used_mib"] == 4000
    sampler.update()
    assert sampler.last_error is None and sampler.faults() == []
    assert sampler.summary()["0"]["mem_peak_mib"] == 4000


def test_faults_of_the_task_devices_are_gpu_hardware_evidence() -> None:
    hot = Device(index=1, uuid="GPU-b", temperature_c=91, temp_slowdown_c=90)
    sampler = Sampler([1], backend=_Script([hot]))
    sampler.update()
    assert sampler.faults() == [
        "GPU 1 (GPU-b): temperature 91 C at or past its slowdown threshold 90 C"
    ]


def test_no_devices_means_no_reads() -> None:
    backend = _Script([_dev(0, 1)])
    sampler = Sampler([], backend=backend)
    assert sampler.poll() is True
    assert backend.calls == 0 and sampler.summary() == {}


def test_health_errors_is_empty_for_healthy_and_unknown() -> None:
    assert health_errors([Device(index=0), _dev(1, 5)]) == []
    assert health_errors([Device(index=0, ecc_uncorrectable=0, retired_pages_pending=False)]) == []

"""GPU samples for the task launcher, and the one definition of a GPU fault.

The launcher builds a :class:`Sampler` for the devices its task holds, calls :meth:`Sampler.poll`
from its loop, and sends :meth:`Sampler.summary` to the AppMaster; the AppMaster shows it per
task and uses ``mem_peak_mib`` as GPU_OOM evidence and :meth:`Sampler.faults` as GPU_HARDWARE
evidence. :func:`health_errors` is also what the NodeManager health script reports, so the node
and the task agree on what a fault is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from gpu_plugin.device import Backend, Device
from gpu_plugin.errors import NvmlError
from gpu_plugin.nvml import get_backend

__all__ = ["DeviceStats", "Sampler", "health_errors", "sample"]

logger = logging.getLogger(__name__)


def health_errors(devices: Iterable[Device]) -> list[str]:
    """Say what is wrong with each faulty device, one plain sentence per fault.

    A fault is: the device cannot be reached, it has uncorrectable ECC errors, a page
    retirement or row remap waits for a reset, or it is at or past its slowdown temperature.
    Unknown values (None) are never a fault.

    Args:
        devices: devices as a backend returned them.

    Returns:
        Messages naming the device, e.g. ``GPU 1 (GPU-…): 2 uncorrectable ECC errors``; empty
        when every device is healthy.
    """
    errors: list[str] = []
    for dev in devices:
        if not dev.reachable:
            errors.append(f"{dev.label}: unreachable ({dev.error or 'no reason given'})")
            continue
        if dev.ecc_uncorrectable:
            errors.append(f"{dev.label}: {dev.ecc_uncorrectable} uncorrectable ECC errors")
        if dev.retired_pages_pending:
            errors.append(f"{dev.label}: retired memory pages pending, the GPU needs a reset")
        if (
            dev.temperature_c is not None
            and dev.temp_slowdown_c is not None
            and dev.temperature_c >= dev.temp_slowdown_c
        ):
            errors.append(
                f"{dev.label}: temperature {dev.temperature_c} C at or past its slowdown "
                f"threshold {dev.temp_slowdown_c} C"
            )
    return errors


def sample(indices: Iterable[int], backend: Backend | None = None) -> list[Device]:
    """Read the given devices once.

    Args:
        indices: NVML indices of the devices wanted.
        backend: where to read; default :func:`gpu_plugin.nvml.get_backend`.

    Returns:
        The devices that exist among ``indices``, in index order.

    Raises:
        NvmlError: NVML (or the topology) cannot answer.
    """
    wanted = set(indices)
    backend = get_backend() if backend is None else backend
    return [dev for dev in backend.devices() if dev.index in wanted]


@dataclass
class DeviceStats:
    """What a :class:`Sampler` remembers about one device.

    Attributes:
        util_pct: utilisation at the last sample.
        mem_used_mib: memory used at the last sample.
        mem_peak_mib: the most memory used in any sample so far.
        mem_total_mib: the device's memory size.
        temp_c: temperature at the last sample.
        errors: faults seen at the last sample (see :func:`health_errors`).
    """

    util_pct: int | None = None
    mem_used_mib: int | None = None
    mem_peak_mib: int | None = None
    mem_total_mib: int | None = None
    temp_c: int | None = None
    errors: tuple[str, ...] = ()


class Sampler:
    """Samples a task's devices at most every ``interval_s`` and keeps peak memory per device.

    Sampling never raises: an NVML failure is logged, kept in :attr:`last_error`, reported by
    :meth:`faults`, and the previous values stay, so a flaky driver cannot kill the launcher.
    """

    def __init__(
        self,
        indices: Sequence[int],
        *,
        backend: Backend | None = None,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create a sampler; nothing is read until the first :meth:`poll`.

        Args:
            indices: NVML indices of the task's devices.
            backend: where to read; default :func:`gpu_plugin.nvml.get_backend`.
            interval_s: least time between two reads in :meth:`poll`.
            clock: monotonic seconds; tests inject a fake.
        """
        self.indices = tuple(indices)
        self._backend = backend
        self.interval_s = interval_s
        self._clock = clock
        self._last_read_s: float | None = None
        self._stats: dict[int, DeviceStats] = {i: DeviceStats() for i in self.indices}
        self.last_error: str | None = None
        self.samples = 0

    def poll(self) -> bool:
        """Read the devices if ``interval_s`` has passed since the last read.

        Returns:
            True when a read was attempted.
        """
        now = self._clock()
        if self._last_read_s is not None and now - self._last_read_s < self.interval_s:
            return False
        self._last_read_s = now
        self.update()
        return True

    def update(self) -> list[Device]:
        """Read the devices now and fold the values into the statistics.

        Returns:
            The devices read, or an empty list when NVML failed.
        """
        if not self.indices:
            return []
        try:
            if self._backend is None:
                self._backend = get_backend()
            devices = sample(self.indices, self._backend)
        except NvmlError as exc:
            logger.warning("GPU sample of %s failed: %s", list(self.indices), exc)
            self.last_error = str(exc)
            return []
        self.last_error = None
        self.samples += 1
        for dev in devices:
            stats = self._stats.setdefault(dev.index, DeviceStats())
            stats.util_pct = dev.utilization_pct
            stats.mem_used_mib = dev.memory_used_mib
            stats.temp_c = dev.temperature_c
            if dev.memory_total_mib is not None:
                stats.mem_total_mib = dev.memory_total_mib
            if dev.memory_used_mib is not None:
                stats.mem_peak_mib = max(stats.mem_peak_mib or 0, dev.memory_used_mib)
            stats.errors = tuple(health_errors([dev]))
        return devices

    def stats(self, index: int) -> DeviceStats:
        """Return the statistics of one device (all None before its first sample)."""
        return self._stats.setdefault(index, DeviceStats())

    def faults(self) -> list[str]:
        """Return the faults of the last sample, and NVML's failure if the last read failed."""
        faults = [err for index in self.indices for err in self.stats(index).errors]
        if self.last_error is not None:
            faults.append(f"NVML failed: {self.last_error}")
        return faults

    def summary(self) -> dict[str, dict[str, int | None]]:
        """Return the statistics as JSON-ready data keyed by device index.

        Returns:
            ``{"0": {"util_pct": 87, "mem_used_mib": 9000, "mem_peak_mib": 11000,
            "mem_total_mib": 16384, "temp_c": 61}}``; a value never read is None. Faults are
            reported separately by :meth:`faults`.
        """
        return {
            str(index): {
                "util_pct": stats.util_pct,
                "mem_used_mib": stats.mem_used_mib,
                "mem_peak_mib": stats.mem_peak_mib,
                "mem_total_mib": stats.mem_total_mib,
                "temp_c": stats.temp_c,
            }
            for index in self.indices
            for stats in (self.stats(index),)
        }

"""What gpu_plugin knows about one GPU, and the interface every NVML backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Backend", "Device"]


@dataclass(frozen=True)
class Device:
    """One GPU as NVML (or the test topology) reports it.

    Every measurement is ``None`` when the backend cannot tell (NVML returns "not supported"
    for many fields on consumer boards, and an unreachable device has no values at all);
    consumers omit unknown values instead of guessing.

    Attributes:
        index: NVML index (PCI bus order), the number ``CUDA_VISIBLE_DEVICES`` uses when
            ``CUDA_DEVICE_ORDER=PCI_BUS_ID``.
        minor_number: N in ``/dev/nvidiaN``; YARN's cgroups isolation works on this number.
        uuid: ``GPU-…`` identifier, stable across reboots.
        name: product name, e.g. ``NVIDIA H100 80GB HBM3``.
        memory_total_mib: framebuffer size in MiB.
        memory_used_mib: framebuffer in use in MiB.
        utilization_pct: percent of the last sample period in which a kernel ran.
        temperature_c: current core temperature in degrees Celsius.
        temp_slowdown_c: temperature at which the GPU starts to throttle.
        temp_max_c: temperature at which the GPU shuts down.
        ecc_uncorrectable: uncorrectable (double-bit) ECC errors since the last driver load.
        retired_pages_pending: a page retirement or row remapping waits for a GPU reset.
        reachable: False when NVML lists the device but cannot talk to it (fallen off the
            bus, needs a reset, no permission).
        error: why the device is unreachable, in NVML's words.
        pci_bus_id: e.g. ``00000000:3B:00.0``; the ``id`` attribute in nvidia-smi's XML.
    """

    index: int
    minor_number: int | None = None
    uuid: str | None = None
    name: str | None = None
    memory_total_mib: int | None = None
    memory_used_mib: int | None = None
    utilization_pct: int | None = None
    temperature_c: int | None = None
    temp_slowdown_c: int | None = None
    temp_max_c: int | None = None
    ecc_uncorrectable: int | None = None
    retired_pages_pending: bool | None = None
    reachable: bool = True
    error: str | None = None
    pci_bus_id: str | None = None

    @property
    def label(self) -> str:
        """How messages name this device: ``GPU 1 (GPU-8c2f…)``, or ``GPU 1`` without a uuid."""
        return f"GPU {self.index} ({self.uuid})" if self.uuid else f"GPU {self.index}"


class Backend(Protocol):
    """Where device facts come from: real NVML or a declared test topology.

    Implementations raise :class:`gpu_plugin.errors.NvmlError` (and nothing else) when they
    cannot answer at all; a single broken device is reported as ``reachable=False`` instead.
    """

    def driver_version(self) -> str:
        """Return the NVIDIA driver version, e.g. ``550.54.15``."""
        ...

    def devices(self) -> list[Device]:
        """Return every device the driver lists, in index order."""
        ...

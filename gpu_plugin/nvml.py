"""The only door to NVML: device facts from pynvml, or from a declared test topology.

Nothing else in gpu_plugin imports ``pynvml``. Every pynvml exception is translated here into
:class:`~gpu_plugin.errors.NvmlError`; a field NVML does not support on a board becomes None,
and a device NVML lists but cannot talk to comes back with ``reachable=False``. ``pynvml`` is
imported on first use, so the topology backend works where ``nvidia-ml-py`` is not installed.

``get_backend()`` picks the test topology when ``DLSUBMIT_GPU_TOPOLOGY`` names a file, else
real NVML.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from gpu_plugin.device import Backend, Device
from gpu_plugin.errors import NvmlError
from gpu_plugin.topology import TopologyBackend

__all__ = [
    "TOPOLOGY_ENV",
    "Backend",
    "Device",
    "PynvmlBackend",
    "TopologyBackend",
    "get_backend",
]

logger = logging.getLogger(__name__)

#: Environment variable naming a declared test topology file (see ``gpu_plugin.topology``).
TOPOLOGY_ENV = "DLSUBMIT_GPU_TOPOLOGY"

# NVML return codes that mean "this device is gone", not "this field is unsupported": the
# device is reported unreachable (a node-health fault) instead of silently losing a value.
_LOST_CODES = frozenset(
    {
        10,  # NVML_ERROR_TIMEOUT
        11,  # NVML_ERROR_IRQ_ISSUE
        15,  # NVML_ERROR_GPU_IS_LOST
        16,  # NVML_ERROR_RESET_REQUIRED
    }
)
_INIT_HINTS = {
    9: "the NVIDIA kernel driver is not loaded",  # NVML_ERROR_DRIVER_NOT_LOADED
    12: "no NVIDIA driver is installed (libnvidia-ml.so not found)",  # LIBRARY_NOT_FOUND
    4: "no permission to open the NVIDIA devices",  # NVML_ERROR_NO_PERMISSION
}
_MIB = 1024 * 1024


class _DeviceLostError(Exception):
    """Internal: a device answered with one of ``_LOST_CODES`` while being read."""


def _text(value: Any) -> str:
    """pynvml returns str in recent releases and bytes in old ones."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class PynvmlBackend:
    """A :class:`~gpu_plugin.device.Backend` on the real NVIDIA driver through ``pynvml``.

    NVML is initialised on first use and stays initialised (NVML reference-counts ``nvmlInit``)
    until :meth:`close`, so a sampler polling every few seconds pays the start-up once.
    """

    def __init__(self, module: Any = None) -> None:
        """Create the backend; nothing touches the driver yet.

        Args:
            module: the pynvml module; tests pass a fake. Default: ``import pynvml``.
        """
        self._module = module
        self._initialised = False

    def _nvml(self) -> Any:
        if self._module is None:
            try:
                import pynvml  # the one import of pynvml in dlsubmit
            except ImportError as exc:
                raise NvmlError(
                    "the pynvml module is missing: install the nvidia-ml-py package for this Python"
                ) from exc
            self._module = pynvml
        nv = self._module
        if not self._initialised:
            try:
                nv.nvmlInit()
            except nv.NVMLError as exc:
                code = getattr(exc, "value", None)
                hint = _INIT_HINTS.get(code, "NVML could not start") if code is not None else ""
                raise NvmlError(f"NVML init failed: {hint or exc} ({exc})", code=code) from exc
            self._initialised = True
        return nv

    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call an NVML function whose failure means NVML as a whole cannot answer."""
        nv = self._nvml()
        try:
            return fn(*args)
        except nv.NVMLError as exc:
            code = getattr(exc, "value", None)
            raise NvmlError(f"NVML failed to {what}: {exc}", code=code) from exc

    def _field(self, name: str, *args: Any) -> Any:
        """Read one device field: None when unsupported, :class:`_DeviceLostError` when gone."""
        nv = self._module
        fn = getattr(nv, name, None)
        if fn is None:  # an old nvidia-ml-py without this call
            return None
        try:
            return fn(*args)
        except nv.NVMLError as exc:
            if getattr(exc, "value", None) in _LOST_CODES:
                raise _DeviceLostError(str(exc)) from exc
            logger.debug("%s unavailable: %s", name, exc)
            return None

    def driver_version(self) -> str:
        """Return the driver version string.

        Raises:
            NvmlError: no driver, or NVML failed.
        """
        nv = self._nvml()
        return _text(self._call("read the driver version", nv.nvmlSystemGetDriverVersion))

    def devices(self) -> list[Device]:
        """Read every device NVML lists; a device that cannot be read is ``reachable=False``.

        Raises:
            NvmlError: no driver, or NVML cannot even count the devices.
        """
        nv = self._nvml()
        count = int(self._call("count the devices", nv.nvmlDeviceGetCount))
        found: list[Device] = []
        for index in range(count):
            try:
                handle = nv.nvmlDeviceGetHandleByIndex(index)
            except nv.NVMLError as exc:
                found.append(Device(index=index, reachable=False, error=str(exc)))
                continue
            found.append(self._read(index, handle))
        return found

    def _read(self, index: int, handle: Any) -> Device:
        nv = self._module
        values: dict[str, Any] = {}
        try:
            uuid = self._field("nvmlDeviceGetUUID", handle)
            values["uuid"] = None if uuid is None else _text(uuid)
            name = self._field("nvmlDeviceGetName", handle)
            values["name"] = None if name is None else _text(name)
            values["minor_number"] = self._field("nvmlDeviceGetMinorNumber", handle)
            pci = self._field("nvmlDeviceGetPciInfo", handle)
            values["pci_bus_id"] = None if pci is None else _text(pci.busId)
            memory = self._field("nvmlDeviceGetMemoryInfo", handle)
            if memory is not None:
                values["memory_total_mib"] = int(memory.total) // _MIB
                values["memory_used_mib"] = int(memory.used) // _MIB
            rates = self._field("nvmlDeviceGetUtilizationRates", handle)
            values["utilization_pct"] = None if rates is None else int(rates.gpu)
            values["temperature_c"] = self._field(
                "nvmlDeviceGetTemperature", handle, nv.NVML_TEMPERATURE_GPU
            )
            values["temp_slowdown_c"] = self._field(
                "nvmlDeviceGetTemperatureThreshold", handle, nv.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
            )
            values["temp_max_c"] = self._field(
                "nvmlDeviceGetTemperatureThreshold", handle, nv.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN
            )
            # Volatile = since the driver loaded: an old, already-handled error in the
            # aggregate counter must not keep the node unhealthy forever.
            values["ecc_uncorrectable"] = self._field(
                "nvmlDeviceGetTotalEccErrors",
                handle,
                nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                nv.NVML_VOLATILE_ECC,
            )
            values["retired_pages_pending"] = self._pending_repair(handle)
        except _DeviceLostError as lost:
            return Device(
                index=index,
                uuid=values.get("uuid"),
                name=values.get("name"),
                reachable=False,
                error=str(lost),
            )
        return Device(index=index, **values)

    def _pending_repair(self, handle: Any) -> bool | None:
        """Page retirement (up to Volta) or row remapping (Ampere on) waiting for a reset.

        A failed row remap is folded in as well: like a pending one, only a reset (or a new
        board) clears it, and until then the memory is not trustworthy.
        """
        nv = self._module
        pages = self._field("nvmlDeviceGetRetiredPagesPendingStatus", handle)
        rows = self._field("nvmlDeviceGetRemappedRows", handle)
        if pages is None and rows is None:
            return None
        pending = pages is not None and int(pages) == int(nv.NVML_FEATURE_ENABLED)
        if rows is not None:
            _corrected, _uncorrected, rows_pending, rows_failed = rows
            pending = pending or bool(rows_pending) or bool(rows_failed)
        return pending

    def close(self) -> None:
        """Shut NVML down if this backend started it; errors on the way out are ignored."""
        if self._initialised:
            self._initialised = False
            nv = self._module
            try:
                nv.nvmlShutdown()
            except nv.NVMLError as exc:
                logger.debug("nvmlShutdown failed: %s", exc)

    def __repr__(self) -> str:
        return "PynvmlBackend()"

    def __enter__(self) -> PynvmlBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def get_backend(env: Mapping[str, str] | None = None) -> Backend:
    """Choose the backend for this process.

    Args:
        env: environment to read (default ``os.environ``).

    Returns:
        A :class:`TopologyBackend` when ``DLSUBMIT_GPU_TOPOLOGY`` names a file, otherwise a
        :class:`PynvmlBackend`.
    """
    env = os.environ if env is None else env
    path = env.get(TOPOLOGY_ENV, "").strip()
    if path:
        return TopologyBackend(path)
    return PynvmlBackend()

"""The declared test topology: GPUs described in a JSON file, for machines without a GPU.

The file (see ``conf/gpu-topology-2.json``)::

    {"driver_version": "550.54.15",
     "nvml_error": null,
     "devices": [{"index": 0, "minor_number": 0, "uuid": "GPU-…", "name": "Test GPU",
                  "memory_total_mib": 16384, "memory_used_mib": 0, "utilization_pct": 0,
                  "temperature_c": 40, "temp_slowdown_c": 90, "temp_max_c": 95,
                  "ecc_uncorrectable": 0, "retired_pages_pending": false,
                  "reachable": true, "error": null, "pci_bus_id": null}]}

Only ``index`` is required in a device; a missing or null field is "unknown", as when NVML does
not support it. A non-null ``nvml_error`` makes every call fail as if NVML were broken, so the
node-health path can be tested. The file is read again on every call: tests edit it while a
NodeManager runs (write a new file and rename it over the old one, so no reader sees half).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from gpu_plugin.device import Device
from gpu_plugin.errors import NvmlError, TopologyError

__all__ = ["TopologyBackend", "parse_topology", "write_topology"]

_TOP_LEVEL_KEYS = ("driver_version", "devices", "nvml_error")
_INT_FIELDS = (
    "index",
    "minor_number",
    "memory_total_mib",
    "memory_used_mib",
    "utilization_pct",
    "temperature_c",
    "temp_slowdown_c",
    "temp_max_c",
    "ecc_uncorrectable",
)
_BOOL_FIELDS = ("retired_pages_pending", "reachable")
_STR_FIELDS = ("uuid", "name", "error", "pci_bus_id")
_DEVICE_KEYS = tuple(f.name for f in fields(Device))


def _unknown_key(where: str, key: str, allowed: tuple[str, ...]) -> TopologyError:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(allowed)}"
    return TopologyError(f"{where}.{key}: unknown field{hint}")


def _parse_device(raw: Any, where: str) -> Device:
    if not isinstance(raw, dict):
        raise TopologyError(f"{where}: expected an object, got {type(raw).__name__}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _DEVICE_KEYS:
            raise _unknown_key(where, key, _DEVICE_KEYS)
        if value is None and key not in ("index", "reachable"):
            values[key] = None
        elif key in _INT_FIELDS:
            # bool is an int in Python; `true` as a temperature is a typo, not a value.
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise TopologyError(f"{where}.{key}: expected an integer >= 0, got {value!r}")
            values[key] = value
        elif key in _BOOL_FIELDS:
            if not isinstance(value, bool):
                raise TopologyError(f"{where}.{key}: expected true or false, got {value!r}")
            values[key] = value
        else:
            if key not in _STR_FIELDS or not isinstance(value, str):
                raise TopologyError(f"{where}.{key}: expected a string, got {value!r}")
            values[key] = value
    if "index" not in values:
        raise TopologyError(f"{where}.index: required")
    return Device(**values)


def parse_topology(raw: Any, source: str) -> tuple[str, list[Device]]:
    """Validate a decoded topology document.

    Args:
        raw: the decoded JSON value.
        source: how errors name the document (usually its path).

    Returns:
        The driver version and the devices sorted by index.

    Raises:
        TopologyError: the document is malformed; the message names the field.
        NvmlError: the document declares ``nvml_error`` (simulated NVML failure).
    """
    if not isinstance(raw, dict):
        raise TopologyError(f"{source}: expected a JSON object at the top level")
    for key in raw:
        if key not in _TOP_LEVEL_KEYS:
            raise _unknown_key(source, key, _TOP_LEVEL_KEYS)
    if raw.get("nvml_error") is not None:
        raise NvmlError(f"{raw['nvml_error']} (declared by test topology {source})")
    driver = raw.get("driver_version", "0.0")
    if not isinstance(driver, str) or not driver:
        raise TopologyError(f"{source}.driver_version: expected a non-empty string, got {driver!r}")
    devices_raw = raw.get("devices")
    if not isinstance(devices_raw, list):
        raise TopologyError(f"{source}.devices: expected a list of devices")
    devices = [_parse_device(d, f"{source}.devices[{i}]") for i, d in enumerate(devices_raw)]
    indices = [d.index for d in devices]
    if len(set(indices)) != len(indices):
        raise TopologyError(f"{source}.devices: duplicate index in {indices}")
    return driver, sorted(devices, key=lambda d: d.index)


class TopologyBackend:
    """A :class:`~gpu_plugin.device.Backend` that reads a declared topology file on every call."""

    def __init__(self, path: str | Path) -> None:
        """Remember the file; nothing is read until the first call.

        Args:
            path: the topology JSON file.
        """
        self.path = Path(path)

    def _load(self) -> tuple[str, list[Device]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TopologyError(f"cannot read test topology {self.path}: {exc.strerror}") from exc
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TopologyError(f"{self.path}: not valid JSON: {exc}") from exc
        return parse_topology(raw, str(self.path))

    def driver_version(self) -> str:
        """Return the topology's ``driver_version``."""
        return self._load()[0]

    def devices(self) -> list[Device]:
        """Return the topology's devices, sorted by index."""
        return self._load()[1]

    def __repr__(self) -> str:
        return f"TopologyBackend({str(self.path)!r})"


def write_topology(
    path: str | Path,
    devices: Sequence[Device],
    *,
    driver_version: str = "550.54.15",
    nvml_error: str | None = None,
) -> None:
    """Write a topology file atomically, so a NodeManager reading it never sees half a file.

    Tests use this to change a running node's GPUs, e.g. to mark a device faulty with
    ``dataclasses.replace(device, ecc_uncorrectable=2)``.

    Args:
        path: the file to (re)place.
        devices: the devices to declare.
        driver_version: the declared driver version.
        nvml_error: when set, every NVML call on this topology fails with this message.
    """
    path = Path(path)
    document: dict[str, object] = {
        "driver_version": driver_version,
        "devices": [asdict(dev) for dev in devices],
    }
    if nvml_error is not None:
        document["nvml_error"] = nvml_error
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

"""PynvmlBackend against a fake pynvml module that raises pynvml's real exception classes."""

# The fake mirrors pynvml's camelCase function names.
# ruff: noqa: N802

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml
import pytest

from gpu_plugin.device import Device
from gpu_plugin.errors import NvmlError
from gpu_plugin.nvml import PynvmlBackend

PACKAGE = Path(__file__).resolve().parents[2] / "gpu_plugin"
MIB = 1024 * 1024

# Values per device; a value that is an int code wrapped in _Fail raises NVMLError(code).
FULL = {
    "uuid": b"GPU-1111",  # old pynvml releases return bytes
    "name": "NVIDIA Test",
    "minor": 3,
    "pci": SimpleNamespace(busId=b"00000000:3B:00.0"),
    "memory": SimpleNamespace(total=16 * 1024 * MIB, used=1500 * MIB + 123, free=0),
    "util": SimpleNamespace(gpu=87, memory=10),
    "temp": 61,
    "slowdown": 90,
    "shutdown": 95,
    "ecc": 0,
    "pages": pynvml.NVML_FEATURE_DISABLED,
    "rows": (0, 0, 0, 0),
}


class _Fail:
    def __init__(self, code: int) -> None:
        self.code = code


class FakeNvml:
    """Just enough of pynvml's surface; errors are pynvml's own classes."""

    NVMLError = pynvml.NVMLError
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_TEMPERATURE_THRESHOLD_SLOWDOWN = pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
    NVML_TEMPERATURE_THRESHOLD_SHUTDOWN = pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED = pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
    NVML_VOLATILE_ECC = pynvml.NVML_VOLATILE_ECC
    NVML_FEATURE_ENABLED = pynvml.NVML_FEATURE_ENABLED

    def __init__(self, devices: list[dict[str, Any]], **failures: int) -> None:
        self._devices = devices
        self._failures = failures  # top-level call name -> NVML code
        self.inits = 0
        self.shutdowns = 0
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def _top(self, name: str, value: Any) -> Any:
        if name in self._failures:
            raise pynvml.NVMLError(self._failures[name])
        return value

    def _get(self, handle: int, key: str, *args: Any) -> Any:
        self.calls.append((key, args))
        value = self._devices[handle][key]
        if isinstance(value, _Fail):
            raise pynvml.NVMLError(value.code)
        return value

    def nvmlInit(self) -> None:
        self._top("init", None)
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> Any:
        return self._top("driver", b"550.54.15")

    def nvmlDeviceGetCount(self) -> int:
        return int(self._top("count", len(self._devices)))

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if isinstance(self._devices[index].get("handle"), _Fail):
            raise pynvml.NVMLError(self._devices[index]["handle"].code)
        return index

    def nvmlDeviceGetUUID(self, h: int) -> Any:
        return self._get(h, "uuid")

    def nvmlDeviceGetName(self, h: int) -> Any:
        return self._get(h, "name")

    def nvmlDeviceGetMinorNumber(self, h: int) -> Any:
        return self._get(h, "minor")

    def nvmlDeviceGetPciInfo(self, h: int) -> Any:
        return self._get(h, "pci")

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        return self._get(h, "memory")

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        return self._get(h, "util")

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> Any:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        return self._get(h, "temp")

    def nvmlDeviceGetTemperatureThreshold(self, h: int, kind: int) -> Any:
        if kind == pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN:
            return self._get(h, "slowdown")
        assert kind == pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN
        return self._get(h, "shutdown")

    def nvmlDeviceGetTotalEccErrors(self, h: int, kind: int, counter: int) -> Any:
        return self._get(h, "ecc", kind, counter)

    def nvmlDeviceGetRetiredPagesPendingStatus(self, h: int) -> Any:
        return self._get(h, "pages")

    def nvmlDeviceGetRemappedRows(self, h: int) -> Any:
        return self._get(h, "rows")


def _device(**overrides: Any) -> dict[str, Any]:
    return {**FULL, **overrides}


def test_reads_every_field_in_the_units_we_use() -> None:
    nvml = FakeNvml([_device()])
    backend = PynvmlBackend(nvml)
    assert backend.driver_version() == "550.54.15"
    assert backend.devices() == [
        Device(
            index=0, minor_number=3, uuid="GPU-1111", name="NVIDIA Test",
            memory_total_mib=16384, memory_used_mib=1500, utilization_pct=87,
            temperature_c=61, temp_slowdown_c=90, temp_max_c=95, ecc_uncorrectable=0,
            retired_pages_pending=False, reachable=True, error=None,
            pci_bus_id="00000000:3B:00.0",
        )
    ]  # fmt: skip
    # Uncorrectable errors since the driver loaded, not the lifetime aggregate.
    assert ("ecc", (pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC)) in (
        nvml.calls
    )


@pytest.mark.parametrize(
    "code",
    [
        pynvml.NVML_ERROR_NOT_SUPPORTED,
        pynvml.NVML_ERROR_NO_PERMISSION,
        pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
        pynvml.NVML_ERROR_UNKNOWN,
    ],
)
def test_unsupported_fields_become_none(code: int) -> None:
    failing = {key: _Fail(code) for key in FULL if key not in ("uuid",)}
    (dev,) = PynvmlBackend(FakeNvml([_device(**failing)])).devices()
    assert dev == Device(index=0, uuid="GPU-1111")
    assert dev.reachable


@pytest.mark.parametrize(
    "code",
    [
        pynvml.NVML_ERROR_GPU_IS_LOST,
        pynvml.NVML_ERROR_RESET_REQUIRED,
        pynvml.NVML_ERROR_IRQ_ISSUE,
        pynvml.NVML_ERROR_TIMEOUT,
    ],
)
def test_a_lost_device_is_unreachable_and_keeps_what_was_read(code: int) -> None:
    (dev,) = PynvmlBackend(FakeNvml([_device(memory=_Fail(code))])).devices()
    assert not dev.reachable
    assert dev.uuid == "GPU-1111" and dev.name == "NVIDIA Test"
    assert dev.error == str(pynvml.NVMLError(code))
    assert dev.memory_total_mib is None


def test_a_device_without_a_handle_is_unreachable() -> None:
    nvml = FakeNvml([_device(), _device(handle=_Fail(pynvml.NVML_ERROR_GPU_IS_LOST))])
    good, lost = PynvmlBackend(nvml).devices()
    assert good.reachable
    assert lost == Device(index=1, reachable=False, error="GPU is lost")


@pytest.mark.parametrize(
    ("pages", "rows", "expected"),
    [
        (pynvml.NVML_FEATURE_DISABLED, (0, 0, 0, 0), False),
        (pynvml.NVML_FEATURE_ENABLED, (0, 0, 0, 0), True),
        (_Fail(pynvml.NVML_ERROR_NOT_SUPPORTED), (0, 1, 1, 0), True),  # Ampere: remap pending
        (_Fail(pynvml.NVML_ERROR_NOT_SUPPORTED), (0, 0, 0, 1), True),  # remap failed
        (_Fail(pynvml.NVML_ERROR_NOT_SUPPORTED), (5, 0, 0, 0), False),
        (pynvml.NVML_FEATURE_DISABLED, _Fail(pynvml.NVML_ERROR_NOT_SUPPORTED), False),
        (
            _Fail(pynvml.NVML_ERROR_NOT_SUPPORTED),
            _Fail(pynvml.NVML_ERROR_NOT_SUPPORTED),
            None,
        ),
    ],
)
def test_pending_page_retirement_or_row_remap(pages: Any, rows: Any, expected: bool | None) -> None:
    (dev,) = PynvmlBackend(FakeNvml([_device(pages=pages, rows=rows)])).devices()
    assert dev.retired_pages_pending is expected


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "no NVIDIA driver is installed"),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "driver is not loaded"),
        (pynvml.NVML_ERROR_NO_PERMISSION, "no permission"),
        (pynvml.NVML_ERROR_UNKNOWN, "NVML could not start"),
    ],
)
def test_init_failures_are_translated(code: int, hint: str) -> None:
    backend = PynvmlBackend(FakeNvml([], init=code))
    with pytest.raises(NvmlError, match=hint) as info:
        backend.devices()
    assert info.value.code == code
    assert not isinstance(info.value, pynvml.NVMLError)
    assert isinstance(info.value.__cause__, pynvml.NVMLError)


@pytest.mark.parametrize("call", ["count", "driver"])
def test_whole_nvml_failures_are_translated(call: str) -> None:
    backend = PynvmlBackend(FakeNvml([_device()], **{call: pynvml.NVML_ERROR_UNKNOWN}))
    with pytest.raises(NvmlError, match="NVML failed to") as info:
        backend.driver_version() if call == "driver" else backend.devices()
    assert info.value.code == pynvml.NVML_ERROR_UNKNOWN


@pytest.mark.parametrize("key", sorted(FULL))
@pytest.mark.parametrize("code", [1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 999])
def test_no_pynvml_error_leaks_from_any_field(key: str, code: int) -> None:
    (dev,) = PynvmlBackend(FakeNvml([_device(**{key: _Fail(code)})])).devices()
    assert dev.index == 0  # read, one way or another; never a pynvml exception


def test_a_missing_function_in_an_old_pynvml_is_none() -> None:
    nvml = FakeNvml([_device()])
    nvml.nvmlDeviceGetRemappedRows = None  # type: ignore[assignment,method-assign]
    (dev,) = PynvmlBackend(nvml).devices()
    assert dev.retired_pages_pending is False


def test_nvml_is_initialised_once_and_shut_down_on_close() -> None:
    nvml = FakeNvml([_device()])
    with PynvmlBackend(nvml) as backend:
        backend.devices()
        backend.devices()
        backend.driver_version()
        assert nvml.inits == 1
    assert nvml.shutdowns == 1
    backend.close()
    assert nvml.shutdowns == 1


def test_missing_pynvml_module_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(NvmlError, match="install the nvidia-ml-py package"):
        PynvmlBackend().devices()


def test_real_pynvml_here_answers_or_raises_nvml_error() -> None:
    # CI has no GPU: nvmlInit raises NVMLError_LibraryNotFound, which must come out translated.
    backend = PynvmlBackend()
    try:
        devices = backend.devices()
    except NvmlError as exc:
        assert exc.code is not None
    else:
        assert all(isinstance(dev, Device) for dev in devices)
    finally:
        backend.close()


def test_only_nvml_module_imports_pynvml() -> None:
    sources = sorted(PACKAGE.glob("*.py")) + sorted((PACKAGE / "bin").iterdir())
    importers = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(name.split(".")[0] == "pynvml" for name in names):
                importers.append(path.name)
    assert importers == ["nvml.py"]


def test_gpu_plugin_imports_nothing_from_client_or_appmaster() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                )
                assert not any(n.split(".")[0] in ("client", "appmaster") for n in names), path

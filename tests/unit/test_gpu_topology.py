"""The declared test topology: parsing, error messages, fresh reads, the shipped examples."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gpu_plugin.device import Device
from gpu_plugin.errors import NvmlError, TopologyError
from gpu_plugin.metrics import health_errors
from gpu_plugin.nvml import TOPOLOGY_ENV, PynvmlBackend, TopologyBackend, get_backend
from gpu_plugin.topology import write_topology

CONF = Path(__file__).resolve().parents[2] / "conf"


def _write(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_full_device_round_trips(tmp_path: Path) -> None:
    dev = Device(
        index=0, minor_number=0, uuid="GPU-a", name="Test GPU", memory_total_mib=16384,
        memory_used_mib=10, utilization_pct=5, temperature_c=40, temp_slowdown_c=90,
        temp_max_c=95, ecc_uncorrectable=0, retired_pages_pending=False, pci_bus_id="0:1",
    )  # fmt: skip
    path = tmp_path / "t.json"
    write_topology(path, [dev], driver_version="535.1")
    backend = TopologyBackend(path)
    assert backend.driver_version() == "535.1"
    assert backend.devices() == [dev]


def test_only_index_is_required_and_missing_fields_are_unknown(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.json", {"driver_version": "1", "devices": [{"index": 3}]})
    (dev,) = TopologyBackend(path).devices()
    assert dev == Device(index=3)
    assert dev.memory_total_mib is None and dev.reachable


def test_devices_come_back_sorted_by_index(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.json", {"devices": [{"index": 1}, {"index": 0}]})
    assert [d.index for d in TopologyBackend(path).devices()] == [0, 1]


def test_file_is_read_fresh_on_every_call(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    write_topology(path, [Device(index=0, ecc_uncorrectable=0)])
    backend = TopologyBackend(path)
    assert health_errors(backend.devices()) == []
    write_topology(path, [Device(index=0, ecc_uncorrectable=2)])
    assert health_errors(backend.devices()) == ["GPU 0: 2 uncorrectable ECC errors"]


def test_declared_nvml_error_fails_every_call(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    write_topology(path, [], nvml_error="Driver Not Loaded")
    with pytest.raises(NvmlError, match="Driver Not Loaded"):
        TopologyBackend(path).devices()
    with pytest.raises(NvmlError):
        TopologyBackend(path).driver_version()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], r"t\.json: expected a JSON object"),
        ({"devices": [{"index": 0, "temprature_c": 3}]},
         r"t\.json\.devices\[0\]\.temprature_c: unknown field; did you mean 'temperature_c'\?"),
        ({"devices": [{"index": 0, "memory_total_mib": "lots"}]},
         r"devices\[0\]\.memory_total_mib: expected an integer >= 0, got 'lots'"),
        ({"devices": [{"index": 0, "temperature_c": True}]},
         r"devices\[0\]\.temperature_c: expected an integer"),
        ({"devices": [{"index": 0, "reachable": "yes"}]},
         r"devices\[0\]\.reachable: expected true or false"),
        ({"devices": [{"index": 0, "uuid": 7}]}, r"devices\[0\]\.uuid: expected a string"),
        ({"devices": [{"minor_number": 0}]}, r"devices\[0\]\.index: required"),
        ({"devices": [{"index": 0}, {"index": 0}]}, r"duplicate index"),
        ({"devices": {"index": 0}}, r"\.devices: expected a list"),
        ({"devices": [], "driver": "1"}, r"\.driver: unknown field; did you mean 'driver_version'"),
        ({"devices": [], "driver_version": 550}, r"driver_version: expected a non-empty string"),
    ],
)  # fmt: skip
def test_malformed_topology_names_the_field(tmp_path: Path, document: object, message: str) -> None:
    path = _write(tmp_path / "t.json", document)
    with pytest.raises(TopologyError, match=message):
        TopologyBackend(path).devices()


def test_missing_and_broken_files_are_nvml_errors(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="cannot read test topology"):
        TopologyBackend(tmp_path / "absent.json").devices()
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(NvmlError, match="not valid JSON"):
        TopologyBackend(bad).devices()


def test_get_backend_follows_the_environment(tmp_path: Path) -> None:
    backend = get_backend({TOPOLOGY_ENV: str(tmp_path / "t.json")})
    assert isinstance(backend, TopologyBackend)
    assert backend.path == tmp_path / "t.json"
    assert isinstance(get_backend({}), PynvmlBackend)
    assert isinstance(get_backend({TOPOLOGY_ENV: "  "}), PynvmlBackend)


def test_shipped_two_gpu_topology_is_healthy() -> None:
    backend = TopologyBackend(CONF / "gpu-topology-2.json")
    devices = backend.devices()
    assert [(d.index, d.minor_number, d.memory_total_mib) for d in devices] == [
        (0, 0, 16384),
        (1, 1, 16384),
    ]
    assert len({d.uuid for d in devices}) == 2
    assert health_errors(devices) == []


def test_shipped_faulty_topology_differs_only_in_device_1_ecc() -> None:
    healthy = TopologyBackend(CONF / "gpu-topology-2.json").devices()
    faulty = TopologyBackend(CONF / "gpu-topology-faulty.json").devices()
    assert faulty[0] == healthy[0]
    assert faulty[1] == dataclasses.replace(healthy[1], ecc_uncorrectable=2)
    (error,) = health_errors(faulty)
    assert error.startswith("GPU 1 (GPU-") and "2 uncorrectable ECC errors" in error

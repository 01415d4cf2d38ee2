"""nvidia-smi -x -q: the XML YARN's GPU plugin reads, checked against a schema of it.

The schema mirrors Hadoop 3.3.6/3.4.x's JAXB classes (GpuDeviceInformation,
PerGpuDeviceInformation, PerGpuMemoryUsage, PerGpuUtilizations, PerGpuTemperature) and their
adapters: memory is ``Long.valueOf(text.split(" ")[0])``, utilisation and temperatures are
``Float.valueOf(text.split(" ")[0])``, ``minor_number`` is an ``int``. Any of those given "N/A"
makes YARN's whole parse fail, and the NodeManager with it.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from gpu_plugin.device import Device
from gpu_plugin.discovery import EXIT_NO_GPU, EXIT_NVML_FAILED, list_text, main, xml_text
from gpu_plugin.nvml import TOPOLOGY_ENV, TopologyBackend
from gpu_plugin.topology import write_topology

REPO = Path(__file__).resolve().parents[2]
NVIDIA_SMI = REPO / "gpu_plugin" / "bin" / "nvidia-smi"

# Value formats, as nvidia-smi writes them and YARN's adapters parse them.
LONG = re.compile(r"^\d+$")  # Long.valueOf / JAXB int
MIB = re.compile(r"^\d+ MiB$")  # StrToMemAdapter: Long.valueOf(first word)
PCT = re.compile(r"^\d+(\.\d+)? %$")  # StrToFloatBeforeSpaceAdapter
CELSIUS = re.compile(r"^\d+(\.\d+)? C$")
TEXT = re.compile(r"^\S.*$")

# element -> (value pattern | children schema, required when the device is fully known)
GPU_SCHEMA: dict[str, Any] = {
    "product_name": (TEXT, True),
    "uuid": (re.compile(r"^GPU-[0-9a-fA-F-]+$"), True),
    "minor_number": (LONG, True),
    "fb_memory_usage": ({"total": (MIB, True), "used": (MIB, True), "free": (MIB, True)}, True),
    "utilization": ({"gpu_util": (PCT, True)}, True),
    "temperature": (
        {
            "gpu_temp": (CELSIUS, True),
            "gpu_temp_max_threshold": (CELSIUS, True),
            "gpu_temp_slow_threshold": (CELSIUS, True),
        },
        True,
    ),
}
ROOT_SCHEMA: dict[str, Any] = {
    "driver_version": (re.compile(r"^\d+(\.\d+)*$"), True),
    "attached_gpus": (LONG, True),
    "gpu": (GPU_SCHEMA, True),
}


def check_schema(elem: ET.Element, schema: dict[str, Any], where: str, complete: bool) -> None:
    """Fail on unknown, repeated (except gpu), malformed or (if complete) missing elements."""
    assert not (elem.text or "").strip(), f"{where}: unexpected text {elem.text!r}"
    seen: dict[str, int] = {}
    for child in elem:
        path = f"{where}/{child.tag}"
        assert child.tag in schema, f"{path}: element YARN does not know"
        seen[child.tag] = seen.get(child.tag, 0) + 1
        assert child.tag == "gpu" or seen[child.tag] == 1, f"{path}: repeated"
        rule, _required = schema[child.tag]
        if isinstance(rule, dict):
            check_schema(child, rule, path, complete)
        else:
            assert len(child) == 0, f"{path}: must be a leaf"
            text = child.text or ""
            assert "N/A" not in text, f"{path}: N/A where YARN parses a number"
            assert rule.match(text), f"{path}: {text!r} does not match {rule.pattern}"
    if complete:
        missing = [tag for tag, (_, req) in schema.items() if req and tag not in seen]
        assert not missing, f"{where}: missing {missing}"


def yarn_reads(xml: str) -> dict[str, Any]:
    """Parse the way YARN's JAXB classes and adapters do (defaults where elements are absent)."""
    root = ET.fromstring(xml)
    assert root.tag == "nvidia_smi_log"

    def first_word(elem: ET.Element | None, path: str, conv: Any, default: Any) -> Any:
        found = None if elem is None else elem.find(path)
        return default if found is None else conv((found.text or "").split(" ")[0])

    gpus = []
    for gpu in root.findall("gpu"):
        memory = gpu.find("fb_memory_usage")
        used = first_word(memory, "used", int, -1)
        free = first_word(memory, "free", int, -1)
        temps = gpu.find("temperature")
        gpus.append(
            {
                "product_name": gpu.findtext("product_name", "N/A"),
                "uuid": gpu.findtext("uuid", "N/A"),
                "minor_number": int(gpu.findtext("minor_number", "-1")),
                "total_mib": used + free if memory is not None else None,
                "used_mib": used,
                "util": first_word(gpu.find("utilization"), "gpu_util", float, None),
                "temp": first_word(temps, "gpu_temp", float, None),
                "temp_max": first_word(temps, "gpu_temp_max_threshold", float, None),
                "temp_slow": first_word(temps, "gpu_temp_slow_threshold", float, None),
            }
        )
    return {"driver_version": root.findtext("driver_version", "N/A"), "gpus": gpus}


def full_device(index: int, **overrides: Any) -> Device:
    values: dict[str, Any] = dict(
        index=index, minor_number=index, uuid=f"GPU-0000000{index}-aaaa", name="Test GPU",
        memory_total_mib=16384, memory_used_mib=1024 * index, utilization_pct=10 * index,
        temperature_c=40 + index, temp_slowdown_c=90, temp_max_c=95, ecc_uncorrectable=0,
        retired_pages_pending=False, pci_bus_id=f"00000000:0{index}:00.0",
    )  # fmt: skip
    values.update(overrides)
    return Device(**values)


def run_main(argv: list[str], backend: Any = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv, backend=backend)
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_full_devices_match_the_schema_and_yarn_reads_the_values() -> None:
    devices = [full_device(0), full_device(1)]
    xml = xml_text("550.54.15", devices)
    root = ET.fromstring(xml)
    check_schema(root, ROOT_SCHEMA, "nvidia_smi_log", complete=True)
    assert root.findtext("attached_gpus") == "2"
    assert [gpu.get("id") for gpu in root.findall("gpu")] == [
        "00000000:00:00.0",
        "00000000:01:00.0",
    ]
    read = yarn_reads(xml)
    assert read["driver_version"] == "550.54.15"
    assert read["gpus"] == [
        {"product_name": "Test GPU", "uuid": "GPU-00000000-aaaa", "minor_number": 0,
         "total_mib": 16384, "used_mib": 0, "util": 0.0, "temp": 40.0, "temp_max": 95.0,
         "temp_slow": 90.0},
        {"product_name": "Test GPU", "uuid": "GPU-00000001-aaaa", "minor_number": 1,
         "total_mib": 16384, "used_mib": 1024, "util": 10.0, "temp": 41.0, "temp_max": 95.0,
         "temp_slow": 90.0},
    ]  # fmt: skip


def test_unknown_values_are_left_out_never_na() -> None:
    sparse = Device(index=0, uuid="GPU-abc", memory_total_mib=8192)
    bare = Device(index=1)
    xml = xml_text("1.0", [sparse, bare])
    assert "N/A" not in xml
    root = ET.fromstring(xml)
    check_schema(root, ROOT_SCHEMA, "nvidia_smi_log", complete=False)
    first, second = root.findall("gpu")
    assert [child.tag for child in first] == ["uuid", "fb_memory_usage"]
    # Without "used" there is no honest "free": only the total is written.
    assert [child.tag for child in first.find("fb_memory_usage")] == ["total"]  # type: ignore[union-attr]
    assert list(second) == [] and second.get("id") == "1"
    assert [gpu["minor_number"] for gpu in yarn_reads(xml)["gpus"]] == [-1, -1]


def test_used_above_total_never_gives_negative_free() -> None:
    xml = xml_text("1", [full_device(0, memory_total_mib=100, memory_used_mib=120)])
    assert ET.fromstring(xml).findtext("gpu/fb_memory_usage/free") == "0 MiB"


def test_unreachable_devices_are_omitted() -> None:
    lost = Device(index=1, uuid="GPU-1", reachable=False, error="GPU is lost")
    xml = xml_text("1", [full_device(0), lost, full_device(2)])
    root = ET.fromstring(xml)
    assert root.findtext("attached_gpus") == "2"
    assert [gpu.findtext("minor_number") for gpu in root.findall("gpu")] == ["0", "2"]


def test_names_are_escaped() -> None:
    xml = xml_text("1", [full_device(0, name="A & <B>")])
    assert ET.fromstring(xml).findtext("gpu/product_name") == "A & <B>"


@pytest.mark.parametrize("argv", [["-x", "-q"], ["-q", "-x"], ["-qx"], ["--query", "--xml-format"]])
def test_main_answers_yarn_in_any_argument_order(argv: list[str]) -> None:
    backend = TopologyBackend(REPO / "conf" / "gpu-topology-2.json")
    code, out, err = run_main(argv, backend)
    assert (code, err) == (0, "")
    check_schema(ET.fromstring(out), ROOT_SCHEMA, "nvidia_smi_log", complete=True)


def test_main_lists_for_humans() -> None:
    lost = Device(index=1, name="Test GPU", uuid="GPU-1", reachable=False, error="GPU is lost")
    backend = _StaticBackend([full_device(0), lost])
    code, out, _ = run_main(["-L"], backend)
    assert code == 0
    assert out == (
        "GPU 0: Test GPU (UUID: GPU-00000000-aaaa)\n"
        "GPU 1: Test GPU (UUID: GPU-1) UNREACHABLE: GPU is lost\n"
    )
    assert out == list_text(backend.devices())


def test_main_fails_clearly_without_gpus(tmp_path: Path) -> None:
    code, out, err = run_main(["-x", "-q"], _StaticBackend([]))
    assert (code, out) == (EXIT_NO_GPU, "")
    assert "no GPU found" in err
    lost = Device(index=0, reachable=False, error="GPU is lost")
    code, out, err = run_main(["-x", "-q"], _StaticBackend([lost]))
    assert (code, out) == (EXIT_NO_GPU, "")
    assert "no reachable GPU" in err


def test_main_fails_clearly_when_nvml_fails(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    write_topology(path, [full_device(0)], nvml_error="Driver Not Loaded")
    code, out, err = run_main(["-x", "-q", "--topology", str(path)])
    assert (code, out) == (EXIT_NVML_FAILED, "")
    assert "Driver Not Loaded" in err


def test_x_without_q_is_a_usage_error() -> None:
    code, _out, err = run_main(["-x"], _StaticBackend([full_device(0)]))
    assert code == 2 and "-x needs -q" in err


class _StaticBackend:
    def __init__(self, devices: list[Device]) -> None:
        self._devices = devices

    def driver_version(self) -> str:
        return "550.54.15"

    def devices(self) -> list[Device]:
        return self._devices


def _run_script(
    args: list[str], env_extra: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (TOPOLOGY_ENV, "PYTHONPATH")}
    env.update(env_extra)
    return subprocess.run(
        [str(NVIDIA_SMI), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=30
    )


def test_executable_works_from_anywhere_through_a_symlinked_directory(tmp_path: Path) -> None:
    # YARN's setting names a directory holding "nvidia-smi"; it may be a link to ours.
    assert os.access(NVIDIA_SMI, os.X_OK)
    assert NVIDIA_SMI.read_text(encoding="utf-8").startswith("#!/usr/bin/env python3\n")
    link_dir = tmp_path / "discovery"
    link_dir.mkdir()
    (link_dir / "nvidia-smi").symlink_to(NVIDIA_SMI)
    topology = tmp_path / "t.json"
    write_topology(topology, [full_device(0), full_device(1)])
    env = {TOPOLOGY_ENV: str(topology), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    result = subprocess.run(
        [str(link_dir / "nvidia-smi"), "-x", "-q"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(yarn_reads(result.stdout)["gpus"]) == 2


def test_executable_sees_topology_edits_and_faults_do_not_hide_devices(tmp_path: Path) -> None:
    topology = tmp_path / "t.json"
    write_topology(topology, [full_device(0), full_device(1)])
    env = {TOPOLOGY_ENV: str(topology), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    # A faulty (but reachable) device is still listed: the health script reports it.
    write_topology(
        topology, [full_device(0), dataclasses.replace(full_device(1), ecc_uncorrectable=2)]
    )
    result = _run_script(["-x", "-q"], env, tmp_path)
    assert result.returncode == 0 and len(yarn_reads(result.stdout)["gpus"]) == 2
    write_topology(topology, [], nvml_error="GPU is lost")
    result = _run_script(["-x", "-q"], env, tmp_path)
    assert result.returncode == EXIT_NVML_FAILED and result.stdout == ""
    assert "GPU is lost" in result.stderr

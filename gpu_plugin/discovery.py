"""``nvidia-smi -x -q`` for YARN's GPU plugin, answered from NVML or the test topology.

With ``yarn.nodemanager.resource-plugins.gpu.allowed-gpu-devices=auto`` the NodeManager runs
``<dir>/nvidia-smi -x -q`` (10 s limit) and unmarshals the XML with JAXB
(``GpuDeviceInformation`` and friends, Hadoop 3.3.6 and 3.4.x). What those classes read::

    nvidia_smi_log/driver_version
    nvidia_smi_log/gpu                              one per GPU; YARN's index = position
        product_name, uuid
        minor_number                                int; "N/A" would fail the whole parse
        fb_memory_usage/{used,free}                 "N MiB", Long.valueOf(first word)
        utilization/gpu_util                        "N %", Float.valueOf(first word)
        temperature/{gpu_temp,gpu_temp_max_threshold,gpu_temp_slow_threshold}   "N C"

Unknown values are left out (JAXB keeps its default) instead of written as "N/A". Devices
NVML cannot reach are left out: YARN must not schedule onto them (the health script reports
them). Because YARN numbers GPUs by position, a missing device shifts YARN's index for the
ones after it; ``minor_number`` stays right, and binding uses the NodeManager's numbers as is.

Exit codes follow nvidia-smi: 0 ok, 2 bad arguments, 6 no usable GPU, 9 NVML failed.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from gpu_plugin.device import Backend, Device
from gpu_plugin.errors import NvmlError
from gpu_plugin.nvml import TOPOLOGY_ENV, TopologyBackend, get_backend

__all__ = ["EXIT_NO_GPU", "EXIT_NVML_FAILED", "list_text", "main", "xml_text"]

EXIT_NO_GPU = 6
EXIT_NVML_FAILED = 9

_PROG = "nvidia-smi (dlsubmit gpu_plugin)"


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    elem = ET.SubElement(parent, tag)
    if text is not None:
        elem.text = text
    return elem


def _group(parent: ET.Element, tag: str, values: Sequence[tuple[str, str | None]]) -> None:
    """Add ``<tag>`` with the known children only; leave the group out when none is known."""
    known = [(child, text) for child, text in values if text is not None]
    if known:
        group = _sub(parent, tag)
        for child, text in known:
            _sub(group, child, text)


def _unit(value: int | None, unit: str) -> str | None:
    return None if value is None else f"{value} {unit}"


def _gpu_element(root: ET.Element, dev: Device) -> None:
    gpu = _sub(root, "gpu")
    gpu.set("id", dev.pci_bus_id or str(dev.index))
    if dev.name is not None:
        _sub(gpu, "product_name", dev.name)
    if dev.uuid is not None:
        _sub(gpu, "uuid", dev.uuid)
    if dev.minor_number is not None:
        _sub(gpu, "minor_number", str(dev.minor_number))
    free = None
    if dev.memory_total_mib is not None and dev.memory_used_mib is not None:
        # YARN computes total as used + free, so free is derived, never read separately.
        free = max(dev.memory_total_mib - dev.memory_used_mib, 0)
    _group(
        gpu,
        "fb_memory_usage",
        [
            ("total", _unit(dev.memory_total_mib, "MiB")),
            ("used", _unit(dev.memory_used_mib, "MiB")),
            ("free", _unit(free, "MiB")),
        ],
    )
    _group(gpu, "utilization", [("gpu_util", _unit(dev.utilization_pct, "%"))])
    _group(
        gpu,
        "temperature",
        [
            ("gpu_temp", _unit(dev.temperature_c, "C")),
            ("gpu_temp_max_threshold", _unit(dev.temp_max_c, "C")),
            ("gpu_temp_slow_threshold", _unit(dev.temp_slowdown_c, "C")),
        ],
    )


def xml_text(driver_version: str, devices: Sequence[Device]) -> str:
    """Render nvidia-smi-compatible XML for the reachable devices.

    Args:
        driver_version: the driver version string.
        devices: devices from a backend; unreachable ones are left out.

    Returns:
        The XML document, with declaration, ending in a newline.
    """
    listed = [dev for dev in devices if dev.reachable]
    root = ET.Element("nvidia_smi_log")
    _sub(root, "driver_version", driver_version)
    _sub(root, "attached_gpus", str(len(listed)))
    for dev in listed:
        _gpu_element(root, dev)
    ET.indent(root, space="\t")
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" ?>\n{body}\n'


def list_text(devices: Sequence[Device]) -> str:
    """Render ``nvidia-smi -L`` style lines, unreachable devices included and marked."""
    lines = []
    for dev in devices:
        line = f"GPU {dev.index}: {dev.name or 'unknown'} (UUID: {dev.uuid or 'unknown'})"
        if not dev.reachable:
            line += f" UNREACHABLE: {dev.error or 'no reason given'}"
        lines.append(line)
    return "".join(f"{line}\n" for line in lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nvidia-smi",
        description="nvidia-smi compatible GPU discovery for YARN, backed by NVML "
        f"or by the test topology named in ${TOPOLOGY_ENV}.",
    )
    parser.add_argument(
        "-q", "--query", action="store_true", help="query the devices (always as XML here)"
    )
    parser.add_argument("-x", "--xml-format", action="store_true", help="XML output (with -q)")
    parser.add_argument("-L", "--list-gpus", action="store_true", help="list the GPUs")
    parser.add_argument("--topology", help=f"test topology file (overrides ${TOPOLOGY_ENV})")
    return parser


def main(argv: Sequence[str] | None = None, backend: Backend | None = None) -> int:
    """Run the discovery program.

    Args:
        argv: arguments without the program name (default ``sys.argv[1:]``).
        backend: where to read (default: ``--topology``, else :func:`get_backend`).

    Returns:
        The exit status: 0, or 2 (usage), 6 (no usable GPU), 9 (NVML failed).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.xml_format and not args.query:
        parser.error("-x needs -q (YARN runs: nvidia-smi -x -q)")
    if backend is None:
        backend = TopologyBackend(args.topology) if args.topology else get_backend()
    try:
        devices = backend.devices()
        driver = backend.driver_version()
    except NvmlError as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        return EXIT_NVML_FAILED
    if args.list_gpus or not args.query:
        if not devices:
            print(f"{_PROG}: no devices were found", file=sys.stderr)
            return EXIT_NO_GPU
        sys.stdout.write(list_text(devices))
        return 0
    if not any(dev.reachable for dev in devices):
        reason = "no GPU found" if not devices else "no reachable GPU"
        print(f"{_PROG}: {reason} ({len(devices)} listed by {backend!r})", file=sys.stderr)
        return EXIT_NO_GPU
    sys.stdout.write(xml_text(driver, devices))
    return 0

"""NodeManager health script: one line, ``OK …`` or ``ERROR <reason naming the device>``.

YARN runs ``yarn.nodemanager.health-checker.script.path`` every
``yarn.nodemanager.health-checker.interval-ms``; a line starting with ``ERROR`` marks the node
UNHEALTHY and the RM shows our output as the node's ``healthReport``. YARN ignores the exit
code, so this always exits 0; a script that hangs is also "unhealthy" (after the script
timeout) but says nothing useful, so NVML gets ``--timeout-s`` to answer and a hang becomes an
``ERROR`` line of its own.

What counts as a fault is :func:`gpu_plugin.metrics.health_errors`, shared with the launcher.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from gpu_plugin.device import Backend
from gpu_plugin.errors import NvmlError
from gpu_plugin.metrics import health_errors
from gpu_plugin.nvml import TOPOLOGY_ENV, TopologyBackend, get_backend

__all__ = ["check", "main", "run"]


def check(backend: Backend, *, min_gpus: int = 1) -> str:
    """Decide the node's GPU health.

    Args:
        backend: where to read the devices.
        min_gpus: fewer devices than this is a fault (a GPU that fell off the bus can vanish
            from the driver's list altogether).

    Returns:
        ``OK <n> GPUs healthy`` or ``ERROR <reasons joined by '; '>``, one line.
    """
    try:
        devices = backend.devices()
    except NvmlError as exc:
        return _one_line(f"ERROR NVML failed: {exc}")
    errors = health_errors(devices)
    if len(devices) < min_gpus:
        errors.insert(0, f"{len(devices)} GPUs found, expected at least {min_gpus}")
    if errors:
        return _one_line("ERROR " + "; ".join(errors))
    return f"OK {len(devices)} GPUs healthy"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpu-health", description="NodeManager health script for NVIDIA GPUs."
    )
    parser.add_argument("--topology", help=f"test topology file (overrides ${TOPOLOGY_ENV})")
    parser.add_argument(
        "--min-gpus", type=int, default=1, help="fewer GPUs than this is a fault (default 1)"
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=20.0,
        help="how long NVML may take (default 20; keep it under YARN's script timeout)",
    )
    return parser


def main(argv: Sequence[str] | None = None, backend: Backend | None = None) -> int:
    """Print the health line and return 0.

    Args:
        argv: arguments without the program name (default ``sys.argv[1:]``).
        backend: where to read (default: ``--topology``, else :func:`get_backend`).

    Returns:
        Always 0 (YARN reads the output, not the status).
    """
    args = _parser().parse_args(argv)
    if backend is None:
        backend = TopologyBackend(args.topology) if args.topology else get_backend()
    result: list[str] = []
    chosen = backend

    def run() -> None:
        try:
            result.append(check(chosen, min_gpus=args.min_gpus))
        except Exception as exc:  # a bug here must still leave one readable line for the RM
            result.append(_one_line(f"ERROR gpu-health crashed: {type(exc).__name__}: {exc}"))

    # NVML can block inside C for a long time on a sick board; a thread keeps our own deadline.
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(args.timeout_s)
    line = result[0] if result else f"ERROR NVML did not answer within {args.timeout_s:g} s"
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return 0


def run() -> NoReturn:
    """Entry point of ``bin/gpu-health``: :func:`main`, then leave at once.

    ``os._exit`` because a thread still stuck inside NVML must not hold up the exit.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

"""GPU support for dlsubmit on NodeManagers and in tasks; stands alone (no client/appmaster).

- :mod:`gpu_plugin.nvml` — the only module that talks to NVML (pynvml), plus the declared test
  topology for machines without GPUs (``DLSUBMIT_GPU_TOPOLOGY``).
- :mod:`gpu_plugin.discovery` — ``nvidia-smi -x -q`` for YARN's GPU plugin (``bin/nvidia-smi``).
- :mod:`gpu_plugin.health` — NodeManager health script (``bin/gpu-health``).
- :mod:`gpu_plugin.binding` — which devices a task gets (``CUDA_VISIBLE_DEVICES``).
- :mod:`gpu_plugin.nm_assignment` — the NodeManager's own device assignment, over REST.
- :mod:`gpu_plugin.metrics` — per-task samples and the one definition of a GPU fault.
"""

from gpu_plugin.binding import Lease, bind
from gpu_plugin.device import Backend, Device
from gpu_plugin.errors import (
    BindingError,
    GpuPluginError,
    NmAssignmentError,
    NvmlError,
    TopologyError,
)
from gpu_plugin.metrics import Sampler, health_errors, sample
from gpu_plugin.nm_assignment import fetch_assignment
from gpu_plugin.nvml import PynvmlBackend, TopologyBackend, get_backend

__all__ = [
    "Backend",
    "BindingError",
    "Device",
    "GpuPluginError",
    "Lease",
    "NmAssignmentError",
    "NvmlError",
    "PynvmlBackend",
    "Sampler",
    "TopologyBackend",
    "TopologyError",
    "bind",
    "fetch_assignment",
    "get_backend",
    "health_errors",
    "sample",
]

"""The exception tree of gpu_plugin.

gpu_plugin is installed on NodeManagers without the rest of dlsubmit, so it has its own small
tree instead of importing ``client.errors``::

    GpuPluginError
    ├── NvmlError(RuntimeError)          NVML (or the declared test topology) could not answer
    │   └── TopologyError(ValueError)    the test topology file is missing or malformed
    ├── BindingError(RuntimeError)       not enough free GPUs for a task within its timeout
    └── NmAssignmentError(ConnectionError)  the NodeManager's GPU REST endpoint failed

pynvml's own exceptions are translated in ``gpu_plugin.nvml`` and never leave it.
"""

from __future__ import annotations

__all__ = [
    "BindingError",
    "GpuPluginError",
    "NmAssignmentError",
    "NvmlError",
    "TopologyError",
]


class GpuPluginError(Exception):
    """Root of every error gpu_plugin raises on purpose."""


class NvmlError(GpuPluginError, RuntimeError):
    """NVML failed: no driver, a lost device, or a broken test topology.

    Attributes:
        code: NVML's numeric return code when NVML produced the error, else None.
    """

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TopologyError(NvmlError, ValueError):
    """The declared test topology file cannot be read; the message names the file and field."""


class BindingError(GpuPluginError, RuntimeError):
    """A task could not get the GPUs it was granted; the message names who holds them."""


class NmAssignmentError(GpuPluginError, ConnectionError):
    """The NodeManager's ``/ws/v1/node/resources/yarn.io%2Fgpu`` endpoint could not be read."""

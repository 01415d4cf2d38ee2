"""The GPUs YARN's NodeManager assigned to a container, from its REST API.

``GET http://<nm>/ws/v1/node/resources/yarn.io%2Fgpu`` answers (Hadoop 3.x)::

    {"gpuDeviceInformation": {...},
     "totalGpuDevices": [{"index": 0, "minorNumber": 0}, ...],
     "assignedGpuDevices": [{"index": 0, "minorNumber": 0,
                             "containerId": "container_1712_0001_01_000002"}]}

YARN fills ``assignedGpuDevices`` only when it assigns devices itself (LinuxContainerExecutor
with the GPU resource handler); with the default executor it stays empty. Jersey's JSON may
wrap the document in one extra key, turn a one-element list into an object, and write numbers
as strings; all three are accepted.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from gpu_plugin.errors import NmAssignmentError

__all__ = ["NM_GPU_PATH", "fetch_assignment", "nm_web_address_from_env", "parse_assignment"]

#: The NodeManager's GPU resource endpoint (``/`` in the resource name is URL-encoded).
NM_GPU_PATH = "/ws/v1/node/resources/yarn.io%2Fgpu"


def nm_web_address_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """Return ``http://$NM_HOST:$NM_HTTP_PORT``, which YARN sets in every container.

    Args:
        env: environment to read (default ``os.environ``).

    Returns:
        The NodeManager's web address, or None outside a YARN container.
    """
    env = os.environ if env is None else env
    host, port = env.get("NM_HOST"), env.get("NM_HTTP_PORT")
    if not host or not port:
        return None
    return f"http://{host}:{port}"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse_assignment(document: Any, container_id: str) -> list[int] | None:
    """Pick one container's devices out of the endpoint's JSON.

    Args:
        document: the decoded JSON.
        container_id: e.g. ``container_1712345678901_0001_01_000002``.

    Returns:
        The container's device indices, ascending; None when the NodeManager lists no device
        for this container (it does not assign devices, or this container has none).

    Raises:
        NmAssignmentError: the document is not shaped like the endpoint's answer.
    """
    if not isinstance(document, dict):
        raise NmAssignmentError(f"unexpected answer from {NM_GPU_PATH}: {document!r:.200}")
    if "assignedGpuDevices" not in document and len(document) == 1:
        (inner,) = document.values()
        if isinstance(inner, dict):
            document = inner
    indices: list[int] = []
    for item in _as_list(document.get("assignedGpuDevices")):
        if not isinstance(item, dict) or item.get("containerId") != container_id:
            continue
        try:
            indices.append(int(item["index"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise NmAssignmentError(f"assigned GPU without a usable index: {item!r}") from exc
    return sorted(indices) or None


def fetch_assignment(
    nm_web_address: str, container_id: str, *, timeout_s: float = 5.0
) -> list[int] | None:
    """Ask the NodeManager which GPUs it assigned to a container.

    Args:
        nm_web_address: ``http://host:port`` of the NodeManager's web server (``host:port``
            alone means http); see :func:`nm_web_address_from_env`.
        container_id: the container's id (``$CONTAINER_ID`` in a YARN container).
        timeout_s: how long to wait for an answer.

    Returns:
        The device indices, ascending, or None when the NodeManager assigns none to this
        container (including a NodeManager without the GPU plugin, which answers 404).

    Raises:
        NmAssignmentError: the NodeManager could not be reached or answered nonsense.
    """
    base = nm_web_address if "://" in nm_web_address else f"http://{nm_web_address}"
    url = base.rstrip("/") + NM_GPU_PATH
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise NmAssignmentError(f"GET {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NmAssignmentError(f"GET {url}: {reason}") from exc
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise NmAssignmentError(f"GET {url}: not JSON: {body[:200]!r}") from exc
    return parse_assignment(document, container_id)

"""The one module of ``appmaster/`` that imports skein.

Inside a Skein application, the AppMaster (master script) and the task launchers talk to
Skein's Java AppMaster over gRPC: containers, the key-value store, progress, the web UI and
shutdown. Every skein error is translated into :class:`SkeinLinkError` here.

Why the key-value store carries the task protocol (register → environment → exit report):
it already exists in every Skein application, is authenticated with the application's own TLS
certificates, needs no extra port or service, and its contents die with the application
(nothing persists in clear). What must outlive the AppMaster goes to the job record in HDFS.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import skein
import skein.exceptions

logger = logging.getLogger(__name__)

__all__ = ["ContainerInfo", "SkeinLink", "SkeinLinkError"]


class SkeinLinkError(RuntimeError):
    """Skein's AppMaster refused or failed a request."""


@dataclass(frozen=True)
class ContainerInfo:
    """What Skein knows of one container (RUNNING means allocated, not started)."""

    id: str  # skein's "<service>_<instance>"
    service: str
    state: str  # WAITING REQUESTED RUNNING SUCCEEDED FAILED KILLED
    yarn_container_id: str | None
    node_http_address: str | None
    start_time_s: float | None
    finish_time_s: float | None
    exit_message: str


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value.timestamp())
    except (AttributeError, OSError, ValueError):
        return None


class SkeinLink:
    """A connection to the Skein AppMaster of the current application."""

    def __init__(self, client: Any | None = None) -> None:
        try:
            self._app = client or skein.ApplicationClient.from_current()
        except (skein.exceptions.SkeinError, ValueError, OSError) as exc:
            raise SkeinLinkError(f"cannot reach Skein's AppMaster: {exc}") from exc

    def _do(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except skein.exceptions.SkeinError as exc:
            raise SkeinLinkError(f"{what}: {exc}") from exc
        except Exception as exc:  # grpc errors surface as various types
            if type(exc).__module__.startswith(("grpc", "skein")):
                raise SkeinLinkError(f"{what}: {exc}") from exc
            raise

    # --- containers -----------------------------------------------------------------------
    def add_container(self, service: str, env: Mapping[str, str]) -> str:
        """Ask for one more container of ``service``; returns Skein's container id."""
        container = self._do("add_container", self._app.add_container, service, env=dict(env))
        return str(container.id)

    def kill_container(self, container_id: str) -> None:
        """Kill (or cancel the request of) a container; no error if it already ended."""
        try:
            self._do("kill_container", self._app.kill_container, container_id)
        except SkeinLinkError as exc:
            logger.debug("kill %s: %s", container_id, exc)

    def containers(self, services: list[str] | None = None) -> list[ContainerInfo]:
        """Every container of ``services`` (all services if None), in every state."""
        states = ["WAITING", "REQUESTED", "RUNNING", "SUCCEEDED", "FAILED", "KILLED"]
        found = self._do(
            "get_containers", self._app.get_containers, services=services, states=states
        )
        return [
            ContainerInfo(
                id=str(c.id),
                service=c.service_name,
                state=str(c.state),
                yarn_container_id=c.yarn_container_id or None,
                node_http_address=c.yarn_node_http_address or None,
                start_time_s=_epoch(c.start_time),
                finish_time_s=_epoch(c.finish_time),
                exit_message=c.exit_message or "",
            )
            for c in found
        ]

    # --- key-value store ----------------------------------------------------------------------
    def put_json(self, key: str, value: Any) -> None:
        """Store ``value`` as JSON under ``key``."""
        self._do("kv put", self._app.kv.put, key, json.dumps(value).encode())

    def get_json(self, key: str) -> Any:
        """The JSON value under ``key``, or None."""
        raw = self._do("kv get", self._app.kv.get, key)
        return None if raw is None else json.loads(raw)

    def get_prefix_json(self, prefix: str) -> dict[str, Any]:
        """Every key under ``prefix`` with its JSON value."""
        raw = self._do("kv get_prefix", self._app.kv.get_prefix, prefix)
        return {key: json.loads(value) for key, value in raw.items()}

    # --- the application ------------------------------------------------------------------
    def set_progress(self, fraction: float) -> None:
        """Progress shown in the RM UI (0..1)."""
        self._do("set_progress", self._app.set_progress, min(1.0, max(0.0, fraction)))

    def add_page(self, route: str, target: str, link_name: str) -> None:
        """Proxy ``target`` (an HTTP URL) under the application's web UI at ``/pages/route``."""
        self._do("add_page", self._app.ui.add_page, route, target, link_name=link_name)

    def ui_address(self) -> str | None:
        """The proxied web UI's base address, when Skein reports one."""
        try:
            return str(self._app.ui.proxy_prefix)
        except Exception:  # only informative
            return None

    def shutdown(self, status: str, diagnostics: str) -> None:
        """End the application with YARN final status ``status`` and one line of diagnostics."""
        self._do("shutdown", self._app.shutdown, status, diagnostics[:4000])

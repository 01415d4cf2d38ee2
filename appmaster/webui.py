"""The job's tracking page, registered in Skein's web UI (reached from the RM UI's tracking URL).

A tiny HTTP server on loopback inside the AppMaster container; Skein's Java AppMaster proxies
it under ``/pages/dlsubmit``. ``/`` is HTML for people, ``/status.json`` the same record as
``status.json`` in HDFS.
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["StatusServer", "render_html"]

_STYLE = (
    "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
    ".FAILED{color:#b00}.SUCCEEDED{color:#070}.RUNNING{color:#05a}"
)


def _cell(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def render_html(record: dict[str, Any]) -> str:
    """The tracking page for one job record."""
    e = _cell
    rows = []
    for name, t in record.get("tasks", {}).items():
        gpu = t.get("gpu") or {}
        gpu_text = ", ".join(
            f"gpu{d}: {m.get('util_pct', '?')}% {m.get('mem_used_mib', '?')} MiB"
            for d, m in gpu.items()
            if isinstance(m, dict)
        )
        log = ""
        if t.get("nm_http_address") and t.get("container_id"):
            log = (
                f'<a href="http://{e(t["nm_http_address"])}/node/containerlogs/'
                f'{e(t["container_id"])}/{e(record.get("user", ""))}">logs</a>'
            )
        rows.append(
            f"<tr><td>{e(name)}</td><td>{e(t.get('rank'))}</td><td>{e(t.get('host'))}</td>"
            f'<td class="{e(t.get("state"))}">{e(t.get("state"))}</td>'
            f"<td>{e(t.get('exit_code'))}</td><td>{e(gpu_text)}</td><td>{log}</td></tr>"
        )
    attempts = "".join(
        f'<tr><td>{e(a.get("attempt"))}</td>'
        f'<td class="{e(a.get("state"))}">{e(a.get("state"))}</td>'
        f"<td>{e((a.get('failure') or {}).get('category'))}</td>"
        f"<td>{e(a.get('decision'))}</td></tr>"
        for a in record.get("attempts", [])
    )
    root = record.get("root_cause") or {}
    events = "".join(
        f"<li>{time.strftime('%H:%M:%S', time.localtime(ev['time']))} {e(ev['message'])}</li>"
        for ev in record.get("events", [])[-30:]
    )
    root_html = (
        f"<p><b>Root cause:</b> {e(root.get('category'))} {e(root.get('task'))} "
        f"- {e(root.get('hint'))}</p>"
        if root
        else ""
    )
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>{e(record.get("name"))} - dlsubmit</title><meta http-equiv="refresh" content="5">
<style>{_STYLE}</style></head><body>
<h2>{e(record.get("name"))} <small>{e(record.get("app_id"))}</small></h2>
<p>State <b class="{e(record.get("state"))}">{e(record.get("state"))}</b>,
attempt {e(record.get("attempt"))}/{e(record.get("max_attempts"))}</p>
{root_html}
<h3>Tasks</h3><table><tr><th>task</th><th>rank</th><th>host</th><th>state</th><th>exit</th>
<th>GPU</th><th>log</th></tr>{"".join(rows)}</table>
<h3>Attempts</h3><table><tr><th>#</th><th>state</th><th>failure</th><th>decision</th></tr>
{attempts}</table><h3>Events</h3><ul>{events}</ul>
<p><a href="status.json">status.json</a></p></body></html>"""


class StatusServer:
    """Serves the record from ``snapshot()`` over HTTP on 127.0.0.1 in a daemon thread."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        """Start serving; returns the base URL."""
        snapshot = self._snapshot

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                record = snapshot()
                if self.path.rstrip("/").endswith("status.json"):
                    body, ctype = json.dumps(record).encode(), "application/json"
                else:
                    body, ctype = render_html(record).encode(), "text/html; charset=utf-8"
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

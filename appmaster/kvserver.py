"""Horovod's gloo rendezvous, served by the AppMaster: a small HTTP key-value store.

Horovod's ``HTTPStore`` (gloo controller) keeps its rendezvous keys at
``http://HOROVOD_GLOO_RENDEZVOUS_ADDR:PORT/<scope>/<key>``: ``PUT`` stores a value, ``GET``
answers 200 with it or 404 while it is missing (the client polls), ``DELETE`` removes it. That
is all this server does. It is cleared when a new attempt starts, so a retry never sees the
keys of the attempt before it.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["KeyValueServer"]


class KeyValueServer:
    """An in-memory HTTP key-value store on every interface, in a daemon thread."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self, host: str = "0.0.0.0", port: int = 0) -> int:
        """Start serving; returns the port."""
        store, lock = self._data, self._lock

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, code: int, body: bytes = b"") -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                with lock:
                    value = store.get(self.path)
                self._reply(404) if value is None else self._reply(200, value)

            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                value = self.rfile.read(length)
                with lock:
                    store[self.path] = value
                self._reply(200)

            def do_DELETE(self) -> None:
                with lock:
                    store.pop(self.path, None)
                self._reply(200)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return int(self._server.server_address[1])

    def clear(self) -> None:
        """Forget every key (a new attempt starts)."""
        with self._lock:
            self._data.clear()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

"""The one module that speaks to HDFS (WebHDFS through the ``hdfs`` package).

WebHDFS works from any machine with no JVM and no libhdfs, which is what the client, the
AppMaster and the task launchers need. Every error of the ``hdfs``/``requests`` libraries is
translated here: a dead NameNode becomes :class:`ClusterUnreachableError`, anything else an
:class:`HdfsError` naming the path and the reason.
"""

from __future__ import annotations

import builtins
import json
import posixpath
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlparse

from client.errors import ClusterUnreachableError, HdfsError
from client.hadoop_conf import addresses, hadoop_user

__all__ = ["Hdfs", "hdfs_path"]

_T = TypeVar("_T")


def hdfs_path(uri: str) -> str:
    """``hdfs://nn:9000/a/b`` or ``hdfs:///a/b`` → ``/a/b``; plain absolute paths unchanged."""
    if uri.startswith("hdfs://"):
        return urlparse(uri).path or "/"
    return uri


class Hdfs:
    """A small WebHDFS client: the operations dlsubmit needs, with translated errors."""

    def __init__(self, url: str | None = None, user: str | None = None, timeout_s: float = 30):
        self.url = (url or addresses().webhdfs_url).rstrip("/")
        self.user = user or hadoop_user()
        self.timeout_s = timeout_s
        self._hdfscli: Any = None

    @property
    def _client(self) -> Any:
        # HdfsCLI (and requests under it) is imported on first use: reading a job record
        # (`dlsubmit status`) needs only read_bytes(), which uses the standard library.
        if self._hdfscli is None:
            import hdfs as hdfscli

            self._hdfscli = hdfscli.InsecureClient(self.url, user=self.user, timeout=self.timeout_s)
        return self._hdfscli

    def _call(self, what: str, path: str, fn: Callable[[], _T]) -> _T:
        import hdfs as hdfscli
        import requests

        try:
            return fn()
        except requests.exceptions.ConnectionError as exc:
            raise ClusterUnreachableError(
                f"HDFS NameNode at {self.url} is unreachable ({what} {path}); is the cluster up?"
            ) from exc
        except requests.exceptions.Timeout as exc:
            raise ClusterUnreachableError(f"HDFS at {self.url} timed out ({what} {path})") from exc
        except hdfscli.util.HdfsError as exc:
            raise HdfsError(f"HDFS {what} {path}: {_reason(exc)}") from exc

    def status(self, path: str) -> dict[str, Any] | None:
        """FileStatus of ``path``, or None when it does not exist."""
        path = hdfs_path(path)
        status: dict[str, Any] | None = self._call(
            "stat", path, lambda: self._client.status(path, strict=False)
        )
        return status

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""
        return self.status(path) is not None

    def makedirs(self, path: str, permission: str | None = None) -> None:
        """Create ``path`` and its parents (no error if it exists)."""
        path = hdfs_path(path)
        self._call("mkdir", path, lambda: self._client.makedirs(path, permission=permission))

    def write_bytes(self, path: str, data: bytes, permission: str | None = None) -> None:
        """Create or replace the file ``path`` with ``data`` (``permission`` e.g. ``"600"``)."""
        path = hdfs_path(path)
        self._call(
            "write",
            path,
            lambda: self._client.write(path, data=data, overwrite=True, permission=permission),
        )

    def write_json(self, path: str, value: Any) -> None:
        """Replace ``path`` with ``value`` as JSON; readers never see a half-written file."""
        tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"  # writers (AppMaster, `kill`) never share one
        self.write_bytes(tmp, json.dumps(value, sort_keys=True).encode())
        self.rename(tmp, path, overwrite=True)  # one atomic swap, also between two writers

    def read_bytes(self, path: str) -> bytes | None:
        """Content of the file ``path``, or None when it does not exist.

        Plain ``urllib``: OPEN answers with a redirect to a DataNode, which urllib follows.
        """
        path = hdfs_path(path)
        query = urllib.parse.urlencode({"op": "OPEN", "user.name": self.user})
        url = f"{self.url}/webhdfs/v1{urllib.parse.quote(path)}?{query}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as answer:
                return bytes(answer.read())
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")
            if exc.code == 404 or "FileNotFoundException" in body:
                return None
            raise HdfsError(f"HDFS read {path}: HTTP {exc.code} {_remote(body)}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ClusterUnreachableError(
                f"HDFS NameNode at {self.url} is unreachable (read {path}); is the cluster up?"
            ) from exc

    def read_json(self, path: str) -> Any:
        """Parsed JSON content of ``path``, or None when it does not exist."""
        data = self.read_bytes(path)
        try:
            return None if data is None else json.loads(data)
        except ValueError as exc:
            raise HdfsError(f"HDFS read {path}: not valid JSON ({exc})") from exc

    def upload(self, local: str, remote: str) -> None:
        """Copy a local file or directory tree to ``remote`` (replacing it)."""
        remote = hdfs_path(remote)
        self._call(
            "upload",
            remote,
            lambda: self._client.upload(remote, local, overwrite=True, n_threads=1),
        )

    def download(self, remote: str, local: str) -> None:
        """Copy ``remote`` (file or directory) to the local path ``local``."""
        remote = hdfs_path(remote)
        self._call(
            "download",
            remote,
            lambda: self._client.download(remote, local, overwrite=True, n_threads=1),
        )

    def list(self, path: str) -> list[str]:
        """Names in directory ``path`` ([] when it does not exist)."""
        path = hdfs_path(path)
        if not self.exists(path):
            return []
        return self._call("list", path, lambda: list(self._client.list(path)))

    def walk_files(self, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(relative path, FileStatus) of every file under directory ``path``."""
        path = hdfs_path(path)
        if not self.exists(path):
            return
        walker = self._call("walk", path, lambda: list(self._client.walk(path, status=True)))
        for (dirpath, _dirstatus), _dirs, files in walker:
            for name, status in files:
                full = posixpath.join(dirpath, name)
                yield posixpath.relpath(full, path), status

    def delete(self, path: str, recursive: bool = False) -> None:
        """Delete ``path`` (no error if absent)."""
        path = hdfs_path(path)
        self._call("delete", path, lambda: self._client.delete(path, recursive=recursive))

    def rename(self, src: str, dst: str, *, overwrite: bool = False) -> None:
        """Rename ``src`` to ``dst``; ``overwrite`` replaces a file at ``dst`` atomically.

        With ``overwrite`` the NameNode's rename2 (``renameoptions=OVERWRITE``) swaps the file in
        one step, so a reader (or a restart after SIGKILL) sees the old or the new file, never
        neither.
        """
        src, dst = hdfs_path(src), hdfs_path(dst)
        if not overwrite:
            self._call("rename", src, lambda: self._client.rename(src, dst))
            return
        # hdfscli's rename() has no options; its generated request helper takes any parameter.
        self._call(
            "rename",
            src,
            lambda: self._client._rename(src, destination=dst, renameoptions="OVERWRITE"),
        )

    def write_file(self, path: str, local: str) -> None:
        """Create or replace the file ``path`` with the local file ``local`` (streamed)."""
        path = hdfs_path(path)

        def write() -> None:
            with open(local, "rb") as reader:
                self._client.write(path, data=reader, overwrite=True)

        self._call("write", path, write)

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        """``length`` bytes of the file ``path`` from ``offset`` (fewer at its end)."""
        path = hdfs_path(path)

        def read() -> bytes:
            with self._client.read(path, offset=offset, length=length) as reader:
                return bytes(reader.read())

        return self._call("read", path, read)

    def list_status(self, path: str) -> builtins.list[tuple[str, dict[str, Any]]]:
        """(name, FileStatus) of each entry of directory ``path`` (one LISTSTATUS call)."""
        path = hdfs_path(path)
        return self._call("list", path, lambda: list(self._client.list(path, status=True)))

    @contextmanager
    def open_write(self, path: str) -> Iterator[Any]:
        """A writer for a new file ``path`` (streamed upload)."""
        path = hdfs_path(path)
        writer = self._call("write", path, lambda: self._client.write(path, overwrite=True))
        with writer as handle:
            yield handle


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def _remote(body: str) -> str:
    """The message of a WebHDFS RemoteException answer (or the body's first line)."""
    try:
        return str(json.loads(body)["RemoteException"]["message"])[:500]
    except (ValueError, KeyError, TypeError):
        return body.strip().splitlines()[0][:500] if body.strip() else "(no message)"

"""A pyarrow filesystem for user code: read (and write) Parquet/Arrow data in HDFS.

    from client.hdfs_fs import filesystem
    import pyarrow.parquet as pq
    table = pq.read_table("/datasets/events/part-0.parquet", filesystem=filesystem())
    dataset = pyarrow.dataset.dataset("hdfs:///datasets/events", filesystem=filesystem())

:func:`filesystem` returns ``pyarrow.fs.HadoopFileSystem`` where libhdfs can be loaded (it
needs libjvm, ``libhdfs.so`` and the Hadoop CLASSPATH: see HADOOP.md), else a
``pyarrow.fs.PyFileSystem`` over :class:`WebHdfsHandler`, which speaks WebHDFS through
:class:`client.hdfs.Hdfs` and works from any machine with no JVM — the dev cluster's case, since
Maven's Hadoop jars carry no libhdfs. ``DLSUBMIT_HDFS_BACKEND=webhdfs|libhdfs`` forces a choice.

Inside a task, dlsubmit's own code is ``dlsubmit.zip`` in the working dir (it is not on the
user command's ``PYTHONPATH``, so that its package names never shadow the user's); run the
command as ``PYTHONPATH=dlsubmit.zip python train.py`` to import this module, or install
dlsubmit into the job's environment.

Errors name the path and the reason in the vocabulary dlsubmit's failure classifier reads as
DATA_ACCESS: a missing path raises :class:`FileNotFoundError` ("File does not exist: ..."), a
refused one :class:`PermissionError` ("Permission denied: ... AccessControlException"), any
other HDFS failure :class:`OSError` with ``DATA_ACCESS hdfs://...: reason``. The WebHDFS
backend does not append to files (``open_append_stream`` raises :class:`NotImplementedError`
naming the path).
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from client.errors import ClusterUnreachableError, HdfsError
from client.hdfs import Hdfs, hdfs_path

logger = logging.getLogger(__name__)

__all__ = ["WebHdfsHandler", "filesystem", "libhdfs_available"]

BACKEND_ENV = "DLSUBMIT_HDFS_BACKEND"
READ_BLOCK = 4 << 20  # bytes fetched per WebHDFS OPEN: Parquet reads footers, then column chunks


def libhdfs_available() -> bool:
    """Whether pyarrow can load libhdfs here (``libhdfs.so`` found and JAVA_HOME set)."""
    if not os.environ.get("JAVA_HOME"):
        return False
    dirs = [os.environ.get("ARROW_LIBHDFS_DIR", "")]
    if os.environ.get("HADOOP_HOME"):
        dirs.append(os.path.join(os.environ["HADOOP_HOME"], "lib", "native"))
    return any(d and os.path.exists(os.path.join(d, "libhdfs.so")) for d in dirs)


def filesystem(user: str | None = None, url: str | None = None) -> pafs.FileSystem:
    """A pyarrow filesystem for HDFS: libhdfs where it loads, else WebHDFS.

    Args:
        user: HDFS user (default: ``DLSUBMIT_USER`` in tasks, else ``HADOOP_USER_NAME``/login).
        url: WebHDFS URL (default: ``DLSUBMIT_WEBHDFS_URL`` in tasks, else ``HADOOP_CONF_DIR``).
    """
    user = user or os.environ.get("DLSUBMIT_USER") or None
    backend = os.environ.get(BACKEND_ENV, "auto").lower()
    if backend == "libhdfs" or (backend == "auto" and libhdfs_available()):
        try:
            return pafs.HadoopFileSystem("default", user=user)
        except (OSError, pa.ArrowException) as exc:
            if backend == "libhdfs":
                raise OSError(f"DATA_ACCESS hdfs: libhdfs could not connect: {exc}") from exc
            logger.info("libhdfs could not connect (%s); using WebHDFS", exc)
    return pafs.PyFileSystem(WebHdfsHandler(Hdfs(url=url, user=user)))


def _error(path: str, exc: Exception) -> OSError:
    """An HDFS failure as the builtin error a pyarrow caller expects, path and reason named."""
    text = str(exc)
    uri = f"hdfs://{path}"
    lowered = text.lower()
    if "permission denied" in lowered or "accesscontrolexception" in lowered:
        return PermissionError(f"DATA_ACCESS {uri}: {text} (AccessControlException)")
    if "does not exist" in lowered or "not found" in lowered:
        return FileNotFoundError(f"DATA_ACCESS {uri}: File does not exist: {path}")
    if isinstance(exc, ClusterUnreachableError):
        return ConnectionError(f"DATA_ACCESS {uri}: {text}")
    return OSError(f"DATA_ACCESS {uri}: {text}")


def _info(path: str, status: dict[str, Any] | None) -> pafs.FileInfo:
    if status is None:
        return pafs.FileInfo(path, pafs.FileType.NotFound)
    mtime_ns = int(status.get("modificationTime", 0)) * 1_000_000
    if status.get("type") == "DIRECTORY":
        return pafs.FileInfo(path, pafs.FileType.Directory, mtime_ns=mtime_ns)
    return pafs.FileInfo(
        path, pafs.FileType.File, mtime_ns=mtime_ns, size=int(status.get("length", 0))
    )


class _Reader(io.RawIOBase):
    """A seekable read-only HDFS file over WebHDFS ranged reads, one block cached."""

    def __init__(self, hdfs: Hdfs, path: str, size: int) -> None:
        super().__init__()
        self.hdfs = hdfs
        self.path = path
        self.size = size
        self.pos = 0
        self._block_start = 0
        self._block = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), max(0, self.size - self.pos))
        done = 0
        while done < wanted:
            start = self.pos + done
            end_cached = self._block_start + len(self._block)
            if not (self._block_start <= start < end_cached):
                length = max(READ_BLOCK, wanted - done)
                try:
                    self._block = self.hdfs.read_range(self.path, start, length)
                except (HdfsError, ClusterUnreachableError) as exc:
                    raise _error(self.path, exc) from exc
                self._block_start = start
                if not self._block:
                    break  # the file shrank under us
            offset = start - self._block_start
            chunk = self._block[offset : offset + wanted - done]
            view[done : done + len(chunk)] = chunk
            done += len(chunk)
        self.pos += done
        return done


class _Writer(io.RawIOBase):
    """Spools to a local temporary file; on close, streams it to HDFS and renames into place."""

    def __init__(self, hdfs: Hdfs, path: str) -> None:
        super().__init__()
        self.hdfs = hdfs
        self.path = path
        self._spool = tempfile.NamedTemporaryFile(prefix="dlsubmit-hdfs-", delete=False)  # noqa: SIM115 (closed in close())

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self._spool.write(data)

    def tell(self) -> int:
        return self._spool.tell()

    def close(self) -> None:
        if self.closed:
            return
        self._spool.close()
        tmp = f"{self.path}.{uuid.uuid4().hex[:8]}._COPYING_"
        try:
            self.hdfs.write_file(tmp, self._spool.name)
            self.hdfs.rename(tmp, self.path, overwrite=True)
        except (HdfsError, ClusterUnreachableError) as exc:
            raise _error(self.path, exc) from exc
        finally:
            Path(self._spool.name).unlink(missing_ok=True)
            super().close()


class WebHdfsHandler(pafs.FileSystemHandler):  # type: ignore[misc]
    """pyarrow's filesystem interface over :class:`client.hdfs.Hdfs` (WebHDFS, no JVM)."""

    def __init__(self, hdfs: Hdfs) -> None:
        self.hdfs = hdfs

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WebHdfsHandler) and (self.hdfs.url, self.hdfs.user) == (
            other.hdfs.url,
            other.hdfs.user,
        )

    def __hash__(self) -> int:
        return hash((self.hdfs.url, self.hdfs.user))

    def get_type_name(self) -> str:
        return "webhdfs"

    def normalize_path(self, path: str) -> str:
        return hdfs_path(path)

    def _status(self, path: str) -> dict[str, Any] | None:
        try:
            return self.hdfs.status(path)
        except (HdfsError, ClusterUnreachableError) as exc:
            raise _error(path, exc) from exc

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return [_info(p, self._status(hdfs_path(p))) for p in paths]

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        base = hdfs_path(selector.base_dir).rstrip("/") or "/"
        status = self._status(base)
        if status is None:
            if selector.allow_not_found:
                return []
            raise FileNotFoundError(f"DATA_ACCESS hdfs://{base}: File does not exist: {base}")
        if status.get("type") != "DIRECTORY":
            raise NotADirectoryError(f"DATA_ACCESS hdfs://{base}: not a directory")
        return list(self._walk(base, selector.recursive))

    def _walk(self, base: str, recursive: bool) -> Iterator[pafs.FileInfo]:
        try:
            entries = self.hdfs.list_status(base)
        except (HdfsError, ClusterUnreachableError) as exc:
            raise _error(base, exc) from exc
        for name, status in entries:
            path = posixpath.join(base, name)
            yield _info(path, status)
            if recursive and status.get("type") == "DIRECTORY":
                yield from self._walk(path, recursive)

    def create_dir(self, path: str, recursive: bool) -> None:
        path = hdfs_path(path)
        if not recursive and self._status(posixpath.dirname(path)) is None:
            raise FileNotFoundError(f"DATA_ACCESS hdfs://{path}: parent does not exist")
        try:
            self.hdfs.makedirs(path)
        except (HdfsError, ClusterUnreachableError) as exc:
            raise _error(path, exc) from exc

    def _delete(self, path: str, recursive: bool) -> None:
        try:
            self.hdfs.delete(path, recursive=recursive)
        except (HdfsError, ClusterUnreachableError) as exc:
            raise _error(path, exc) from exc

    def delete_dir(self, path: str) -> None:
        self._delete(hdfs_path(path), True)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        path = hdfs_path(path)
        if self._status(path) is None:
            if missing_dir_ok:
                return
            raise FileNotFoundError(f"DATA_ACCESS hdfs://{path}: File does not exist: {path}")
        for info in self._walk(path, recursive=False):
            self._delete(info.path, True)

    def delete_root_dir_contents(self) -> None:
        raise PermissionError("DATA_ACCESS hdfs:///: refusing to delete everything in HDFS")

    def delete_file(self, path: str) -> None:
        self._delete(hdfs_path(path), False)

    def move(self, src: str, dest: str) -> None:
        src, dest = hdfs_path(src), hdfs_path(dest)
        try:
            self.hdfs.rename(src, dest, overwrite=True)
        except (HdfsError, ClusterUnreachableError) as exc:
            raise _error(src, exc) from exc

    def copy_file(self, src: str, dest: str) -> None:
        with self.open_input_file(src) as reader, self.open_output_stream(dest, None) as out:
            while chunk := reader.read(READ_BLOCK):
                out.write(chunk)

    def open_input_file(self, path: str) -> pa.NativeFile:
        path = hdfs_path(path)
        status = self._status(path)
        if status is None:
            raise FileNotFoundError(f"DATA_ACCESS hdfs://{path}: File does not exist: {path}")
        if status.get("type") == "DIRECTORY":
            raise IsADirectoryError(f"DATA_ACCESS hdfs://{path}: is a directory, not a file")
        reader = _Reader(self.hdfs, path, int(status.get("length", 0)))
        return pa.PythonFile(reader, mode="r")

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self.open_input_file(path)

    def open_output_stream(self, path: str, metadata: Any) -> pa.NativeFile:
        return pa.PythonFile(_Writer(self.hdfs, hdfs_path(path)), mode="w")

    def open_append_stream(self, path: str, metadata: Any) -> pa.NativeFile:
        # pyarrow's way to refuse an operation a filesystem does not offer.
        raise NotImplementedError(
            f"hdfs://{hdfs_path(path)}: appending is not supported by the WebHDFS backend; "
            f"write a new file, or use libhdfs ({BACKEND_ENV}=libhdfs)"
        )

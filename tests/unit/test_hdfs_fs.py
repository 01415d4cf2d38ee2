"""Unit tests for client.hdfs_fs: pyarrow over a fake WebHDFS, backend choice, error messages."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from client import hdfs_fs
from client.errors import HdfsError
from client.hdfs import Hdfs


class FakeHdfs:
    """What WebHdfsHandler uses of :class:`client.hdfs.Hdfs`, in memory."""

    url, user = "http://nn:9870", "alice"

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = {"/"}
        self.ranged_reads = 0
        self.denied: set[str] = set()

    def _check(self, path: str) -> None:
        if path in self.denied:
            raise HdfsError(f"HDFS read {path}: Permission denied: user=alice, access=READ")

    def status(self, path: str) -> dict[str, Any] | None:
        self._check(path)
        if path in self.files:
            return {"type": "FILE", "length": len(self.files[path]), "modificationTime": 1000}
        if path in self.dirs:
            return {"type": "DIRECTORY", "length": 0, "modificationTime": 1000}
        return None

    def list_status(self, path: str) -> list[tuple[str, dict[str, Any]]]:
        names = sorted(p for p in [*self.files, *self.dirs] if p != "/" and posixpath.dirname(p) == path)
        return [(posixpath.basename(p), cast(dict[str, Any], self.status(p))) for p in names]

    def makedirs(self, path: str, permission: str | None = None) -> None:
        while path not in self.dirs:
            self.dirs.add(path)
            path = posixpath.dirname(path)

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        self._check(path)
        self.ranged_reads += 1
        return self.files[path][offset : offset + length]

    def write_file(self, path: str, local: str) -> None:
        self.makedirs(posixpath.dirname(path))
        self.files[path] = Path(local).read_bytes()

    def rename(self, src: str, dst: str, *, overwrite: bool = False) -> None:
        self.files[dst] = self.files.pop(src)

    def delete(self, path: str, recursive: bool = False) -> None:
        self.files.pop(path, None)
        self.dirs.discard(path)


@pytest.fixture
def fake() -> FakeHdfs:
    return FakeHdfs()


@pytest.fixture
def fs(fake: FakeHdfs) -> pafs.FileSystem:
    return pafs.PyFileSystem(hdfs_fs.WebHdfsHandler(cast(Hdfs, fake)))


def test_parquet_round_trip_and_datasets_over_webhdfs(fake: FakeHdfs, fs: pafs.FileSystem) -> None:
    table = pa.table({"x": list(range(5000)), "s": [str(i) for i in range(5000)]})
    pq.write_table(table, "hdfs:///data/t/part-0.parquet", filesystem=fs)
    pq.write_table(table.slice(0, 10), "/data/t/part-1.parquet", filesystem=fs)
    assert set(fake.files) == {"/data/t/part-0.parquet", "/data/t/part-1.parquet"}  # renamed

    assert pq.read_table("/data/t/part-0.parquet", filesystem=fs).equals(table)
    dataset = ds.dataset("hdfs:///data/t", filesystem=fs, format="parquet")
    assert sorted(dataset.files) == ["/data/t/part-0.parquet", "/data/t/part-1.parquet"]
    assert dataset.to_table().num_rows == 5010
    # Ranged reads with a block cache, not one request per small read.
    assert fake.ranged_reads < 10


def test_file_info_and_listing(fake: FakeHdfs, fs: pafs.FileSystem) -> None:
    fake.makedirs("/a/b")
    fake.files["/a/b/f"] = b"12345"
    info, missing = fs.get_file_info(["/a/b/f", "/a/nope"])
    assert (info.type, info.size) == (pafs.FileType.File, 5)
    assert missing.type == pafs.FileType.NotFound
    listed = fs.get_file_info(pafs.FileSelector("/a", recursive=True))
    assert [(i.path, i.type) for i in listed] == [
        ("/a/b", pafs.FileType.Directory), ("/a/b/f", pafs.FileType.File)
    ]
    assert fs.get_file_info(pafs.FileSelector("/x", allow_not_found=True)) == []
    with fs.open_input_file("/a/b/f") as f:
        f.seek(2)
        assert f.read() == b"345"


def test_errors_name_the_path_in_data_access_terms(fake: FakeHdfs, fs: pafs.FileSystem) -> None:
    with pytest.raises(FileNotFoundError, match=r"DATA_ACCESS hdfs:///nope: File does not exist"):
        fs.open_input_file("/nope")
    with pytest.raises(FileNotFoundError, match="File does not exist"):
        fs.get_file_info(pafs.FileSelector("/nope"))
    fake.files["/secret"] = b"x"
    fake.denied.add("/secret")
    with pytest.raises(PermissionError, match=r"DATA_ACCESS hdfs:///secret: .*Permission denied"):
        fs.open_input_file("/secret")


def test_webhdfs_is_chosen_without_libhdfs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARROW_LIBHDFS_DIR", raising=False)
    monkeypatch.delenv("HADOOP_HOME", raising=False)
    monkeypatch.delenv(hdfs_fs.BACKEND_ENV, raising=False)
    assert hdfs_fs.libhdfs_available() is False
    fs = hdfs_fs.filesystem(user="bob", url="http://nn:9870")
    assert fs.type_name == "py::webhdfs"


def test_libhdfs_is_found_where_arrow_looks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "libhdfs.so").write_bytes(b"")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    monkeypatch.setenv("ARROW_LIBHDFS_DIR", str(tmp_path))
    assert hdfs_fs.libhdfs_available() is True
    monkeypatch.delenv("JAVA_HOME")
    assert hdfs_fs.libhdfs_available() is False  # libjvm is needed too


def test_append_is_refused_naming_the_path_and_the_way_out(fs: pafs.FileSystem) -> None:
    with pytest.raises(NotImplementedError, match=r"hdfs:///logs/run\.txt: appending") as info:
        fs.open_append_stream("/logs/run.txt")
    assert "DLSUBMIT_HDFS_BACKEND=libhdfs" in str(info.value)

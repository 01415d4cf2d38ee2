"""Unit tests for appmaster.mounts: rw mounts restored from and synced back to a fake HDFS."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from appmaster.mounts import MountError, MountSyncer
from client.errors import HdfsError
from client.hdfs import Hdfs
from client.spec import JobSpec

REMOTE = "/user/alice/runs/mnist"


class FakeHdfs:
    """The part of :class:`client.hdfs.Hdfs` MountSyncer uses, in memory."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.files = dict(files or {})
        self.dirs: set[str] = set()
        self.writes: list[str] = []
        self.fail_writes_under: str | None = None

    def makedirs(self, path: str, permission: str | None = None) -> None:
        self.dirs.add(path)

    def walk_files(self, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        prefix = path.rstrip("/") + "/"
        for name in sorted(self.files):
            if name.startswith(prefix):
                yield name[len(prefix):], {"length": len(self.files[name]), "type": "FILE"}

    def read_bytes(self, path: str) -> bytes | None:
        return self.files.get(path)

    def write_bytes(self, path: str, data: bytes) -> None:
        if self.fail_writes_under and path.startswith(self.fail_writes_under):
            raise HdfsError(f"HDFS write {path}: DSQuotaExceededException: quota exceeded")
        self.writes.append(path)
        self.files[path] = data

    def write_file(self, path: str, local: str) -> None:
        self.write_bytes(path, Path(local).read_bytes())

    def download(self, remote: str, local: str) -> None:
        Path(local).write_bytes(self.files[remote])

    def delete(self, path: str, recursive: bool = False) -> None:
        self.files.pop(path, None)

    def rename(self, src: str, dst: str, *, overwrite: bool = False) -> None:
        assert overwrite or dst not in self.files
        self.files[dst] = self.files.pop(src)

    def makedirs_fails(self, reason: str) -> None:
        def fail(path: str, permission: str | None = None) -> None:
            raise HdfsError(f"HDFS mkdir {path}: {reason}")

        self.makedirs = fail  # type: ignore[method-assign]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_spec(interval: str = "60s") -> JobSpec:
    return JobSpec.from_dict({
        "name": "mnist",
        "roles": {"worker": {"command": "python train.py"}},
        "mounts": [
            {"source": "hdfs:///datasets/mnist", "path": "data"},  # ro: not ours to sync
            {"source": f"hdfs://{REMOTE}", "path": "out", "mode": "rw",
             "sync_interval": interval},
        ],
    })


def make_syncer(tmp_path: Path, hdfs: FakeHdfs, clock: Clock | None = None) -> MountSyncer:
    return MountSyncer(make_spec(), cast(Hdfs, hdfs), tmp_path, clock or Clock())


def touch(path: Path, data: bytes, mtime: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_restore_of_an_empty_mount_is_not_a_resume(tmp_path: Path) -> None:
    hdfs = FakeHdfs()
    syncer = make_syncer(tmp_path, hdfs)

    syncer.restore()

    assert syncer.resumed is False
    assert REMOTE in hdfs.dirs  # created for the syncs to come
    assert (tmp_path / "out").is_dir()
    assert not (tmp_path / "data").exists()  # ro mounts are YARN's business


def test_restore_copies_content_and_marks_resume(tmp_path: Path) -> None:
    hdfs = FakeHdfs({
        f"{REMOTE}/ckpt/epoch-3.pt": b"weights",
        f"{REMOTE}/metrics.json": b"{}",
        f"{REMOTE}/ckpt/epoch-4.pt._COPYING_": b"half",  # a sync cut short
        "/user/alice/runs/other/x": b"not ours",
    })
    syncer = make_syncer(tmp_path, hdfs)

    syncer.restore()

    assert syncer.resumed is True
    assert (tmp_path / "out/ckpt/epoch-3.pt").read_bytes() == b"weights"
    assert (tmp_path / "out/metrics.json").read_bytes() == b"{}"
    assert not (tmp_path / "out/ckpt/epoch-4.pt._COPYING_").exists()
    assert not (tmp_path / "out/ckpt/epoch-4.pt").exists()
    assert not (tmp_path / "out/x").exists()


def test_only_a_partial_upload_is_not_a_resume(tmp_path: Path) -> None:
    syncer = make_syncer(tmp_path, FakeHdfs({f"{REMOTE}/ckpt.pt._COPYING_": b"half"}))
    syncer.restore()
    assert syncer.resumed is False


def test_restored_files_are_not_uploaded_again(tmp_path: Path) -> None:
    hdfs = FakeHdfs({f"{REMOTE}/ckpt.pt": b"weights"})
    clock = Clock()
    syncer = make_syncer(tmp_path, hdfs, clock)
    syncer.restore()

    clock.t += 60
    syncer.maybe_sync()

    assert hdfs.writes == []
    assert syncer.final_sync() is None
    assert hdfs.writes == []


def test_maybe_sync_honours_sync_interval(tmp_path: Path) -> None:
    hdfs = FakeHdfs()
    clock = Clock()
    syncer = make_syncer(tmp_path, hdfs, clock)
    syncer.restore()
    touch(tmp_path / "out/ckpt.pt", b"v1")

    clock.t += 59.9
    syncer.maybe_sync()
    assert hdfs.writes == []

    clock.t += 0.1
    syncer.maybe_sync()
    assert hdfs.files[f"{REMOTE}/ckpt.pt"] == b"v1"
    assert not any(name.endswith("._COPYING_") for name in hdfs.files)  # renamed into place

    # The next sync is due a full interval later.
    touch(tmp_path / "out/ckpt.pt", b"v2, longer")
    clock.t += 30
    syncer.maybe_sync()
    assert hdfs.files[f"{REMOTE}/ckpt.pt"] == b"v1"
    clock.t += 30
    syncer.maybe_sync()
    assert hdfs.files[f"{REMOTE}/ckpt.pt"] == b"v2, longer"


def test_only_changed_files_are_uploaded(tmp_path: Path) -> None:
    hdfs = FakeHdfs()
    syncer = make_syncer(tmp_path, hdfs)
    syncer.restore()
    touch(tmp_path / "out/a.txt", b"aaa", mtime=1_000_000)
    touch(tmp_path / "out/sub/b.txt", b"bbb", mtime=1_000_000)
    assert syncer.final_sync() is None
    assert sorted(posixpath.relpath(p, REMOTE) for p in hdfs.writes) == [
        "a.txt._COPYING_", "sub/b.txt._COPYING_"
    ]
    hdfs.writes.clear()

    touch(tmp_path / "out/sub/b.txt", b"BBB", mtime=1_000_100)  # same size, newer
    assert syncer.final_sync() is None

    assert hdfs.writes == [f"{REMOTE}/sub/b.txt._COPYING_"]
    assert hdfs.files[f"{REMOTE}/sub/b.txt"] == b"BBB"
    assert hdfs.files[f"{REMOTE}/a.txt"] == b"aaa"


def test_failed_write_is_reported_with_its_path_and_keeps_the_old_copy(tmp_path: Path) -> None:
    hdfs = FakeHdfs({f"{REMOTE}/ckpt.pt": b"old"})
    syncer = make_syncer(tmp_path, hdfs)
    syncer.restore()
    touch(tmp_path / "out/ckpt.pt", b"new weights", mtime=2_000_000)
    hdfs.fail_writes_under = REMOTE

    error = syncer.final_sync()

    assert error is not None
    assert "out/ckpt.pt" in error
    assert f"{REMOTE}/ckpt.pt" in error
    assert "quota exceeded" in error
    assert hdfs.files[f"{REMOTE}/ckpt.pt"] == b"old"
    # Once HDFS takes writes again, the file is uploaded: a failure is not marked as synced.
    hdfs.fail_writes_under = None
    syncer.final_sync()
    assert hdfs.files[f"{REMOTE}/ckpt.pt"] == b"new weights"


def test_no_rw_mount_means_nothing_to_do(tmp_path: Path) -> None:
    spec = JobSpec.from_dict({"name": "x", "roles": {"worker": {"command": "true"}}})
    hdfs = FakeHdfs()
    syncer = MountSyncer(spec, cast(Hdfs, hdfs), tmp_path, Clock())
    syncer.restore()
    syncer.maybe_sync()
    assert syncer.final_sync() is None
    assert syncer.resumed is False
    assert hdfs.dirs == set() and hdfs.writes == []


def test_an_rw_target_that_cannot_be_created_is_a_mount_error_naming_it(tmp_path: Path) -> None:
    hdfs = FakeHdfs()
    hdfs.makedirs_fails("/user/alice/runs (is not a directory)")
    syncer = make_syncer(tmp_path, hdfs)

    with pytest.raises(MountError) as info:
        syncer.restore()

    assert "out" in str(info.value) and REMOTE in str(info.value)
    assert "is not a directory" in str(info.value)
    # The launcher reports it as the task's data-access error; nothing is synced afterwards.
    touch(tmp_path / "out/x", b"x")
    assert syncer.final_sync() == str(info.value)
    assert hdfs.writes == []


def test_files_deleted_in_the_task_after_upload_are_deleted_in_hdfs(tmp_path: Path) -> None:
    hdfs = FakeHdfs({f"{REMOTE}/restored.pt": b"old"})
    syncer = make_syncer(tmp_path, hdfs)
    syncer.restore()
    touch(tmp_path / "out/.ckpt.tmp", b"partial")
    assert syncer.final_sync() is None
    assert f"{REMOTE}/.ckpt.tmp" in hdfs.files

    (tmp_path / "out/.ckpt.tmp").unlink()
    (tmp_path / "out/restored.pt").unlink()  # restored, not ours: kept in HDFS
    assert syncer.final_sync() is None

    assert f"{REMOTE}/.ckpt.tmp" not in hdfs.files
    assert hdfs.files[f"{REMOTE}/restored.pt"] == b"old"


def test_files_become_visible_oldest_first_and_a_failure_stops_the_later_ones(
    tmp_path: Path,
) -> None:
    hdfs = FakeHdfs()
    renames: list[str] = []
    rename = hdfs.rename

    def recording_rename(src: str, dst: str, *, overwrite: bool = False) -> None:
        renames.append(posixpath.relpath(dst, REMOTE))
        rename(src, dst, overwrite=overwrite)

    hdfs.rename = recording_rename  # type: ignore[method-assign]
    syncer = make_syncer(tmp_path, hdfs)
    syncer.restore()
    # Written shard-b, shard-a, then the commit marker: names sort otherwise.
    touch(tmp_path / "out/step-10/shard-b", b"b", mtime=1_000_001)
    touch(tmp_path / "out/step-10/shard-a", b"a", mtime=1_000_002)
    touch(tmp_path / "out/step-10/.metadata", b"m", mtime=1_000_003)
    assert syncer.final_sync() is None
    assert renames == ["step-10/shard-b", "step-10/shard-a", "step-10/.metadata"]

    renames.clear()
    touch(tmp_path / "out/step-20/shard", b"s", mtime=1_000_010)
    touch(tmp_path / "out/step-20/.metadata", b"m", mtime=1_000_011)
    hdfs.fail_writes_under = f"{REMOTE}/step-20/shard"
    assert syncer.final_sync() is not None
    assert renames == []  # the marker stays invisible while its shard is missing
    assert f"{REMOTE}/step-20/.metadata" not in hdfs.files

"""Unit tests for client.staging and client.envpack: uploads, visibility, packed environments."""

from __future__ import annotations

import json
import posixpath
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, cast

import pytest

from client import envpack, staging
from client.appspec import build_app_spec
from client.errors import SpecError
from client.hdfs import Hdfs
from client.spec import JobSpec
from client.staging import localizable_publicly, stage

USER = "alice"


class FakeHdfs:
    """The part of :class:`client.hdfs.Hdfs` staging uses: files and dirs with permissions."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {"/": "755"}
        self.mtimes: dict[str, int] = {}
        self.writes: list[str] = []
        self.clock = 1000

    def _parents(self, path: str) -> None:
        parent = posixpath.dirname(path)
        while parent not in self.modes:
            self.modes[parent] = "755"
            parent = posixpath.dirname(parent)

    def put(self, path: str, data: bytes = b"x", mode: str = "644") -> None:
        self._parents(path)
        self.files[path], self.modes[path] = data, mode
        self.clock += 1
        self.mtimes[path] = self.clock

    def mkdir(self, path: str, mode: str = "755") -> None:
        self._parents(path)
        self.modes[path] = mode

    def status(self, path: str) -> dict[str, Any] | None:
        path = path.rstrip("/") or "/"
        if path in self.files:
            return {"type": "FILE", "length": len(self.files[path]),
                    "permission": self.modes[path], "modificationTime": self.mtimes[path]}
        if path in self.modes:
            return {"type": "DIRECTORY", "length": 0, "permission": self.modes[path]}
        return None

    def list_status(self, path: str) -> list[tuple[str, dict[str, Any]]]:
        names = {p for p in [*self.files, *self.modes] if posixpath.dirname(p) == path and p != "/"}
        return [(posixpath.basename(p), cast(dict[str, Any], self.status(p))) for p in sorted(names)]

    def write_bytes(self, path: str, data: bytes) -> None:
        self.writes.append(path)
        self.put(path, data)

    def write_file(self, path: str, local: str) -> None:
        self.write_bytes(path, Path(local).read_bytes())

    def rename(self, src: str, dst: str, *, overwrite: bool = False) -> None:
        assert overwrite or dst not in self.files
        self.put(dst, self.files.pop(src), self.modes.pop(src))
        self.mtimes.pop(src, None)


def blobs(hdfs: FakeHdfs) -> list[str]:
    return sorted(p for p in hdfs.files if "/blobs/" in p)


def make_spec(tmp_path: Path, **extra: Any) -> JobSpec:
    (tmp_path / "train.py").write_text("print('hi')\n")
    raw = {"name": "job", "roles": {"worker": {"command": "python train.py"}},
           "files": {"train.py": "train.py"}, **extra}
    return JobSpec.from_dict(raw, base_dir=tmp_path)


def do_stage(spec: JobSpec, hdfs: FakeHdfs) -> staging.Staged:
    return stage(spec, cast(Hdfs, hdfs), USER)


# ---------------------------------------------------------------------------------------------
# Content-addressed uploads


def test_unchanged_content_is_uploaded_once_and_blobs_are_cached_per_user(tmp_path: Path) -> None:
    hdfs = FakeHdfs()
    spec = make_spec(tmp_path)

    first = do_stage(spec, hdfs)
    assert first.uploaded_bytes > 0
    assert {posixpath.basename(p) for p in first.uploaded} == {"dlsubmit.zip", "train.py"}
    assert not [p for p in hdfs.files if p.endswith(".tmp")]  # renamed into place
    assert first.package.visibility == "private"  # immutable: the per-user NM cache
    assert first.files["train.py"].visibility == "private"
    assert first.spec.visibility == "application"  # one per submission

    second = do_stage(spec, hdfs)
    assert second.uploaded == () and second.uploaded_bytes == 0
    assert second.files["train.py"].uri == first.files["train.py"].uri
    assert second.to_dict()["uploaded"] == []

    (tmp_path / "train.py").write_text("print('changed')\n")
    third = do_stage(spec, hdfs)
    assert [posixpath.basename(p) for p in third.uploaded] == ["train.py"]
    assert third.files["train.py"].uri != first.files["train.py"].uri


def test_a_partial_blob_of_the_wrong_length_is_uploaded_again(tmp_path: Path) -> None:
    hdfs = FakeHdfs()
    spec = make_spec(tmp_path)
    uri = do_stage(spec, hdfs).files["train.py"].uri
    hdfs.files[uri[len("hdfs://"):]] = b"trunc"
    assert [posixpath.basename(p) for p in do_stage(spec, hdfs).uploaded] == ["train.py"]


# ---------------------------------------------------------------------------------------------
# ro mounts: PUBLIC where the NodeManager may read them as anyone


def test_world_readable_ro_mounts_are_public_others_private(tmp_path: Path) -> None:
    hdfs = FakeHdfs()
    hdfs.put("/datasets/mnist/train/part-0", mode="644")
    hdfs.put("/datasets/vocab.tar.gz", mode="644")
    hdfs.put("/user/alice/private/data/x", mode="644")
    hdfs.mkdir("/user/alice/private", mode="700")  # an ancestor without o+x
    hdfs.put("/datasets/secret/x", mode="600")  # a file below the mount, not o+r
    spec = make_spec(tmp_path, mounts=[
        {"source": "hdfs:///datasets/mnist", "path": "data"},
        {"source": "/datasets/vocab.tar.gz", "path": "vocab"},
        {"source": "hdfs:///user/alice/private/data", "path": "mine"},
        {"source": "hdfs:///datasets/secret", "path": "secret"},
        {"source": "hdfs:///user/alice/runs", "path": "out", "mode": "rw"},
    ])

    staged = do_stage(spec, hdfs)

    mounts = {path: f.to_dict() for path, f in staged.mounts.items()}
    assert mounts == {
        "data": {"source": "hdfs:///datasets/mnist", "type": "file", "visibility": "public"},
        "vocab": {"source": "hdfs:///datasets/vocab.tar.gz", "type": "archive",
                  "visibility": "public"},
        "mine": {"source": "hdfs:///user/alice/private/data", "type": "file",
                 "visibility": "private"},
        "secret": {"source": "hdfs:///datasets/secret", "type": "file", "visibility": "private"},
    }
    files = build_app_spec(spec, staged, user=USER, cluster_env={})["services"]["worker"]["files"]
    assert files["data"]["visibility"] == "public" and files["mine"]["visibility"] == "private"
    assert "out" not in files  # rw: the launcher syncs it


@pytest.mark.parametrize(
    ("mode", "public"), [("755", True), ("751", True), ("750", False), ("754", False)]
)
def test_public_needs_read_and_execute_on_directories(mode: str, public: bool) -> None:
    hdfs = FakeHdfs()
    hdfs.put("/d/sub/f", mode="644")
    hdfs.mkdir("/d/sub", mode=mode)
    # The mount itself (/d/sub) must be r-x for others; an ancestor (/d) needs only x.
    assert localizable_publicly(cast(Hdfs, hdfs), "/d/sub") is (mode in ("755",))
    hdfs.modes["/d/sub"] = "755"
    hdfs.modes["/d"] = mode
    assert localizable_publicly(cast(Hdfs, hdfs), "hdfs:///d/sub") is public


# ---------------------------------------------------------------------------------------------
# environment.archive


def make_venv(root: Path, marker: str = "one") -> Path:
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "probe.py").write_text(f"MARK = {marker!r}\n")
    return venv


def test_a_local_venv_is_packed_once_by_content_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = make_venv(tmp_path)
    packs: list[Path] = []
    real_pack = envpack.pack_env

    def counting_pack(path: Path, output: Path, kind: Any = None) -> None:
        packs.append(path)
        real_pack(path, output, kind)

    monkeypatch.setattr(staging, "pack_env", counting_pack)
    hdfs = FakeHdfs()
    spec = make_spec(tmp_path, environment={"archive": "venv"})

    first = do_stage(spec, hdfs)
    assert first.archive is not None
    assert first.archive.type == "archive" and first.archive.visibility == "private"
    assert first.archive.uri.endswith("/venv.tar.gz")  # YARN unpacks by the name's suffix
    assert first.archive.uri[len("hdfs://"):] in first.uploaded
    assert len(packs) == 1
    packed = tmp_path / "got.tar.gz"
    packed.write_bytes(hdfs.files[first.archive.uri[len("hdfs://"):]])
    with tarfile.open(packed) as tar:
        names = tar.getnames()
    assert "pyvenv.cfg" in names and any(n.endswith("site-packages/probe.py") for n in names)

    # Used locally in between: byte code does not make it a new environment.
    cache = next(venv.glob("lib/python3*/site-packages")) / "__pycache__"
    cache.mkdir()
    (cache / "probe.cpython-311.pyc").write_bytes(b"\0" * 16)
    second = do_stage(spec, hdfs)
    assert second.archive == first.archive
    assert second.uploaded == () and len(packs) == 1

    (next(venv.glob("lib/python3*/site-packages")) / "probe.py").write_text("MARK = 'two'\n")
    third = do_stage(spec, hdfs)
    assert third.archive is not None and third.archive.uri != first.archive.uri
    assert len(packs) == 2


def test_a_packed_archive_file_is_shipped_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "env.tar.gz").write_bytes(b"packed")
    hdfs = FakeHdfs()
    staged = do_stage(make_spec(tmp_path, environment={"archive": "env.tar.gz"}), hdfs)
    assert staged.archive is not None and staged.archive.uri.endswith("/env.tar.gz")
    assert staged.archive.type == "archive"


def test_an_hdfs_env_archive_is_public_when_world_readable(tmp_path: Path) -> None:
    hdfs = FakeHdfs()
    hdfs.put("/envs/torch.tar.gz", mode="644")
    staged = do_stage(make_spec(tmp_path, environment={"archive": "hdfs:///envs/torch.tar.gz"}),
                      hdfs)
    assert staged.archive == staging.StagedFile("hdfs:///envs/torch.tar.gz", "archive", "public")


def test_a_directory_that_is_no_env_and_a_file_that_is_no_archive_are_spec_errors(
    tmp_path: Path,
) -> None:
    (tmp_path / "notenv").mkdir()
    (tmp_path / "env.txt").write_text("x")
    with pytest.raises(SpecError, match=r"environment.archive: .*notenv.*neither a venv"):
        do_stage(make_spec(tmp_path, environment={"archive": "notenv"}), FakeHdfs())
    with pytest.raises(SpecError, match=r"environment.archive: .*env.txt is not an archive"):
        do_stage(make_spec(tmp_path, environment={"archive": "env.txt"}), FakeHdfs())


def test_tree_digest_follows_content_links_and_exec_bits(tmp_path: Path) -> None:
    root = tmp_path / "t"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("#!/bin/sh\n")
    (root / "lib").symlink_to("bin")
    base = envpack.tree_digest(root)
    (root / "bin" / "tool").chmod(0o755)
    assert envpack.tree_digest(root) != base
    (root / "lib").unlink()
    (root / "lib").symlink_to("elsewhere")
    assert len({base, envpack.tree_digest(root)}) == 2


# ---------------------------------------------------------------------------------------------
# environment.image: what the NodeManager can run


@pytest.fixture
def fake_nm() -> Iterator[tuple[str, dict[str, str]]]:
    conf: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            key = self.path.split("name=", 1)[-1]
            if key not in conf:
                self.send_response(400)
                self.end_headers()
                return
            body = json.dumps({"property": {"key": key, "value": conf[key]}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", conf
    server.shutdown()


def test_an_image_on_the_default_container_executor_is_refused_with_a_hint(
    fake_nm: tuple[str, dict[str, str]],
) -> None:
    address, conf = fake_nm
    conf["yarn.nodemanager.container-executor.class"] = (
        "org.apache.hadoop.yarn.server.nodemanager.DefaultContainerExecutor"
    )
    problem = envpack.image_runtime_problem(address, "registry/torch:2.4")
    assert problem is not None
    first, second = problem.splitlines()
    assert "environment.image 'registry/torch:2.4'" in first
    assert "DefaultContainerExecutor" in first and address in first
    assert "environment.archive" in second
    assert all(len(line) < 280 for line in (first, second))  # kept whole as evidence


def test_an_image_needs_docker_among_the_allowed_runtimes(
    fake_nm: tuple[str, dict[str, str]],
) -> None:
    address, conf = fake_nm
    conf["yarn.nodemanager.container-executor.class"] = (
        "org.apache.hadoop.yarn.server.nodemanager.LinuxContainerExecutor"
    )
    conf["yarn.nodemanager.runtime.linux.allowed-runtimes"] = "default"
    problem = envpack.image_runtime_problem(address, "img")
    assert problem is not None and "not docker" in problem
    conf["yarn.nodemanager.runtime.linux.allowed-runtimes"] = "default,docker"
    assert envpack.image_runtime_problem(address, "img") is None


def test_an_unreachable_nodemanager_is_no_verdict() -> None:
    assert envpack.image_runtime_problem("127.0.0.1:9", "img", timeout_s=1) is None

"""Stage what a job needs in HDFS and decide how YARN localizes each piece.

Uploads are content-addressed (``<staging>/blobs/<digest>/<name>``): a file, a package or an
environment that did not change since an earlier submit is not uploaded again. Each upload is
streamed to a temporary name and renamed into place, so a blob that exists is complete. Local
directories in ``files`` ship as zip archives that YARN unpacks; a local venv or conda env in
``environment.archive`` is packed with venv-pack / conda-pack (:mod:`client.envpack`), named
by the digest of its content, and packed and uploaded only when that digest is new.

Visibility (YARN's LocalResourceVisibility) decides who shares the NodeManager's copy:

* ``public``: every job on the node (the NodeManager's ``filecache``). Used for read-only
  mounts and HDFS environment archives that the NodeManager may read as any user: YARN
  requires the file — or every file and directory below a directory — to be world-readable
  and every ancestor directory world-executable (``FSDownload.isPublic``); otherwise the
  localization fails. :func:`localizable_publicly` applies the same rule before submit.
* ``private``: every job of the same user on the node (``usercache/<user>/filecache``). Used
  for staged blobs (immutable, content-addressed) and for mounts that are not world-readable.
* ``application``: this job only; the per-submission spec file.

Everything is uploaded before the application is submitted, and only after preflight passed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import posixpath
import tempfile
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client.envpack import env_kind, pack_env, tree_digest
from client.errors import HdfsError, SpecError
from client.hdfs import Hdfs, hdfs_path
from client.record import staging_root
from client.spec import JobSpec, MountMode

logger = logging.getLogger(__name__)

__all__ = [
    "ARCHIVE_SUFFIXES",
    "Staged",
    "StagedFile",
    "localizable_publicly",
    "mount_file",
    "package_zip",
    "stage",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("client", "appmaster", "gpu_plugin")
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)
# What YARN's FSDownload unpacks (it goes by the source's name).
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar", ".jar")
_DIGEST_CHARS = 32
_CHUNK = 1 << 20


@dataclass(frozen=True)
class StagedFile:
    """One localized resource: an HDFS URI and how YARN should treat it."""

    uri: str
    type: str  # "file" | "archive"
    visibility: str = "application"  # "application" | "private" | "public"

    def to_dict(self) -> dict[str, str]:
        return {"source": self.uri, "type": self.type, "visibility": self.visibility}


@dataclass(frozen=True)
class Staged:
    """Everything a submission localizes, by name in the container's working dir.

    Attributes:
        mounts: each read-only mount by its ``path`` (empty: build the default, public).
        uploaded: HDFS paths uploaded by this submission (nothing for unchanged content).
    """

    package: StagedFile
    spec: StagedFile
    files: dict[str, StagedFile]
    archive: StagedFile | None
    uploaded_bytes: int
    mounts: dict[str, StagedFile] = field(default_factory=dict)
    uploaded: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "package": self.package.to_dict(),
            "spec": self.spec.to_dict(),
            "files": {k: v.to_dict() for k, v in self.files.items()},
            "archive": self.archive.to_dict() if self.archive else None,
            "mounts": {k: v.to_dict() for k, v in self.mounts.items()},
            "uploaded": list(self.uploaded),
            "uploaded_bytes": self.uploaded_bytes,
        }


def _is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def mount_file(source: str, visibility: str = "public") -> StagedFile:
    """The localized resource of a read-only mount: an archive is unpacked, else copied."""
    uri = source if source.startswith("hdfs://") else f"hdfs://{hdfs_path(source)}"
    return StagedFile(uri, "archive" if _is_archive(source) else "file", visibility)


# --------------------------------------------------------------------------------------------
# Visibility


def _other_can(status: dict[str, Any], bits: int) -> bool:
    try:
        mode = int(str(status.get("permission", "0")), 8)
    except ValueError:
        return False
    return mode & bits == bits


def localizable_publicly(hdfs: Hdfs, path: str) -> bool:
    """Whether a NodeManager will put ``path`` in its public cache (YARN's FSDownload.isPublic).

    Every ancestor directory must be world-executable; a file must be world-readable; a
    directory world-readable and -executable, and so, recursively, everything below it.
    ``dfs.permissions.enabled=false`` does not change this: the NodeManager reads the bits.
    """
    path = hdfs_path(path)
    status = hdfs.status(path)
    if status is None:
        return False
    parent = posixpath.dirname(path.rstrip("/"))
    while True:
        parent_status = hdfs.status(parent)
        if parent_status is None or not _other_can(parent_status, 0o001):
            return False
        if parent == "/":
            break
        parent = posixpath.dirname(parent)
    return _tree_public(hdfs, path, status)


def _tree_public(hdfs: Hdfs, path: str, status: dict[str, Any]) -> bool:
    if status.get("type") != "DIRECTORY":
        return _other_can(status, 0o004)
    if not _other_can(status, 0o005):
        return False
    for name, child in hdfs.list_status(path):
        if not _tree_public(hdfs, posixpath.join(path, name), child):
            return False
    return True


def _visibility(hdfs: Hdfs, uri: str) -> str:
    try:
        public = localizable_publicly(hdfs, uri)
    except HdfsError as exc:  # cannot tell: the per-user cache works whatever the bits
        logger.info("cannot check the permissions of %s (%s); localizing it privately", uri, exc)
        public = False
    if not public:
        logger.info(
            "%s is not world-readable: cached per user (private), not in the public cache", uri
        )
    return "public" if public else "private"


# --------------------------------------------------------------------------------------------
# Archives of local directories and of dlsubmit itself


def _zip_dir(root: Path, *, only_py: bool = False) -> bytes:
    """A deterministic zip of ``root`` (same content, same bytes, same hash)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if only_py and not (name.endswith(".py") or Path(dirpath).name == "bin"):
                    continue
                info = zipfile.ZipInfo(
                    path.relative_to(root.parent if only_py else root).as_posix(), _FIXED_TIME
                )
                info.external_attr = (path.stat().st_mode & 0o777) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def package_zip() -> bytes:
    """dlsubmit's own packages as one importable zip (put on PYTHONPATH in containers)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for package in PACKAGES:
            data = _zip_dir(REPO_ROOT / package, only_py=True)
            with zipfile.ZipFile(io.BytesIO(data)) as inner:
                for info in inner.infolist():
                    zf.writestr(info, inner.read(info))
    return buf.getvalue()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Uploads


class _Uploader:
    """Content-addressed uploads under one staging root; remembers what it uploaded."""

    def __init__(self, hdfs: Hdfs, root: str) -> None:
        self.hdfs = hdfs
        self.root = root
        self.uploaded_bytes = 0
        self.uploaded: list[str] = []

    def _path(self, digest: str, name: str) -> str:
        return posixpath.join(self.root, "blobs", digest[:_DIGEST_CHARS], name)

    def _present(self, path: str, size: int | None) -> bool:
        status = self.hdfs.status(path)
        return status is not None and (size is None or status.get("length") == size)

    def _swap_in(self, path: str, write: Any, size: int) -> None:
        tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
        write(tmp)
        self.hdfs.rename(tmp, path, overwrite=True)
        self.uploaded_bytes += size
        self.uploaded.append(path)
        logger.info("uploaded %s (%d bytes)", path, size)

    def blob(self, name: str, data: bytes) -> str:
        path = self._path(hashlib.sha256(data).hexdigest(), name)
        if not self._present(path, len(data)):
            self._swap_in(path, lambda tmp: self.hdfs.write_bytes(tmp, data), len(data))
        return f"hdfs://{path}"

    def blob_file(self, name: str, local: Path) -> str:
        """Upload the local file ``local`` (streamed) unless its content is already staged."""
        path = self._path(_file_digest(local), name)
        size = local.stat().st_size
        if not self._present(path, size):
            self._swap_in(path, lambda tmp: self.hdfs.write_file(tmp, str(local)), size)
        return f"hdfs://{path}"

    def local(self, name: str, local: str) -> StagedFile:
        path = Path(local)
        if path.is_dir():
            return StagedFile(self.blob(f"{name}.zip", _zip_dir(path)), "archive", "private")
        kind = "archive" if _is_archive(path.name) else "file"
        return StagedFile(self.blob_file(path.name, path), kind, "private")

    def environment(self, local: str) -> StagedFile:
        """A local env: a packed archive as it is, a venv/conda dir packed once per content."""
        path = Path(local)
        if not path.is_dir():
            if not _is_archive(path.name):
                raise SpecError(
                    f"environment.archive: {local} is not an archive YARN can unpack "
                    f"({', '.join(ARCHIVE_SUFFIXES)}) nor a venv/conda directory"
                )
            return StagedFile(self.blob_file(path.name, path), "archive", "private")
        kind = env_kind(path)
        name = f"{path.name or 'env'}.tar.gz"
        remote = self._path(tree_digest(path), name)
        if self._present(remote, None):  # uploaded whole and renamed: complete
            logger.info("environment.archive: %s unchanged, reusing %s", local, remote)
        else:
            with tempfile.TemporaryDirectory(prefix="dlsubmit-env-") as tmp:
                packed = Path(tmp) / name
                logger.info("environment.archive: packing the %s %s", kind, local)
                pack_env(path, packed, kind)
                size = packed.stat().st_size
                self._swap_in(remote, lambda t: self.hdfs.write_file(t, str(packed)), size)
        return StagedFile(f"hdfs://{remote}", "archive", "private")


def stage(spec: JobSpec, hdfs: Hdfs, user: str) -> Staged:
    """Upload what ``spec`` needs; returns what to localize in the containers.

    Raises:
        SpecError: a local environment that cannot be packed.
        HdfsError / ClusterUnreachableError: an upload failed.
    """
    up = _Uploader(hdfs, staging_root(user))
    package = StagedFile(up.blob("dlsubmit.zip", package_zip()), "file", "private")
    files: dict[str, StagedFile] = {}
    for dest, source in spec.files.items():
        if "://" in source:
            kind = "archive" if _is_archive(source) else "file"
            files[dest] = StagedFile(source, kind)
        else:
            files[dest] = up.local(dest, source)
    archive = None
    if spec.environment.archive:
        src = spec.environment.archive
        if "://" in src:
            archive = StagedFile(src, "archive", _visibility(hdfs, src))
        else:
            archive = up.environment(src)
    mounts = {
        m.path: mount_file(m.source, _visibility(hdfs, m.source))
        for m in spec.mounts
        if m.mode is MountMode.RO
    }
    doc = {"spec": spec.to_dict()}
    spec_uri = posixpath.join(staging_root(user), "specs", f"{uuid.uuid4().hex}.json")
    hdfs.write_bytes(spec_uri, json.dumps(doc, sort_keys=True).encode())
    return Staged(
        package,
        StagedFile(f"hdfs://{spec_uri}", "file"),
        files,
        archive,
        up.uploaded_bytes,
        mounts=mounts,
        uploaded=tuple(up.uploaded),
    )

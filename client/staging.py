"""Stage what a job needs in HDFS: dlsubmit's own code, the user's files, the spec.

Blobs are content-addressed (``<staging>/blobs/<sha256>/<name>``): a file or package that did
not change since an earlier submit is not uploaded again. Directories are shipped as zip
archives that YARN unpacks. Everything is uploaded before the application is submitted, and
only after preflight passed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import posixpath
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.hdfs import Hdfs
from client.record import staging_root
from client.spec import JobSpec

logger = logging.getLogger(__name__)

__all__ = ["Staged", "StagedFile", "package_zip", "stage"]

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("client", "appmaster", "gpu_plugin")
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class StagedFile:
    """One localized resource: an HDFS URI and how YARN should treat it."""

    uri: str
    type: str  # "file" | "archive"
    visibility: str = "application"  # "application" | "public"

    def to_dict(self) -> dict[str, str]:
        return {"source": self.uri, "type": self.type, "visibility": self.visibility}


@dataclass(frozen=True)
class Staged:
    """Everything a submission localizes, by name in the container's working dir."""

    package: StagedFile
    spec: StagedFile
    files: dict[str, StagedFile]
    archive: StagedFile | None
    uploaded_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "package": self.package.to_dict(),
            "spec": self.spec.to_dict(),
            "files": {k: v.to_dict() for k, v in self.files.items()},
            "archive": self.archive.to_dict() if self.archive else None,
        }


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


class _Uploader:
    def __init__(self, hdfs: Hdfs, root: str) -> None:
        self.hdfs = hdfs
        self.root = root
        self.uploaded_bytes = 0

    def blob(self, name: str, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()[:32]
        path = posixpath.join(self.root, "blobs", digest, name)
        status = self.hdfs.status(path)
        if status is None or status.get("length") != len(data):
            self.hdfs.write_bytes(path, data)
            self.uploaded_bytes += len(data)
            logger.info("uploaded %s (%d bytes)", path, len(data))
        return f"hdfs://{path}"

    def local(self, name: str, local: str) -> StagedFile:
        path = Path(local)
        if path.is_dir():
            return StagedFile(self.blob(f"{name}.zip", _zip_dir(path)), "archive")
        kind = "archive" if path.name.endswith((".zip", ".tar.gz", ".tgz", ".tar")) else "file"
        return StagedFile(self.blob(path.name, path.read_bytes()), kind)


def stage(spec: JobSpec, hdfs: Hdfs, user: str) -> Staged:
    """Upload what ``spec`` needs; returns what to localize in the containers."""
    up = _Uploader(hdfs, staging_root(user))
    package = StagedFile(up.blob("dlsubmit.zip", package_zip()), "file")
    files: dict[str, StagedFile] = {}
    for dest, source in spec.files.items():
        if "://" in source:
            kind = "archive" if source.endswith((".zip", ".tar.gz", ".tgz")) else "file"
            files[dest] = StagedFile(source, kind)
        else:
            files[dest] = up.local(dest, source)
    archive = None
    if spec.environment.archive:
        src = spec.environment.archive
        archive = StagedFile(src, "archive") if "://" in src else up.local("env", src)
        if archive.type != "archive":
            archive = StagedFile(archive.uri, "archive")
    doc = {"spec": spec.to_dict()}
    spec_uri = posixpath.join(staging_root(user), "specs", f"{uuid.uuid4().hex}.json")
    hdfs.write_bytes(spec_uri, json.dumps(doc, sort_keys=True).encode())
    return Staged(
        package, StagedFile(f"hdfs://{spec_uri}", "file"), files, archive, up.uploaded_bytes
    )

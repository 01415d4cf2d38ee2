"""Read-write mounts in the task launcher: restore before the command, sync back while it runs.

Read-only mounts need no code here: they are YARN localized resources (cached by the
NodeManager). A read-write mount is a directory in the working dir mirrored to an HDFS
directory: restored before the user command starts (so a retry resumes from the last
checkpoint), synced every ``sync_interval`` and once more when the task ends — also when it
fails or YARN stops it. Each file is written to a temporary name and renamed, so a sync cut
short by SIGKILL leaves the previous version intact.
"""

from __future__ import annotations

import logging
import os
import posixpath
import time
from collections.abc import Callable
from pathlib import Path

from client.errors import DLSubmitError
from client.hdfs import Hdfs, hdfs_path
from client.spec import JobSpec, Mount, MountMode

logger = logging.getLogger(__name__)

__all__ = ["MountSyncer"]


class MountSyncer:
    """Keeps every rw mount of a task in step with HDFS."""

    def __init__(
        self, spec: JobSpec, hdfs: Hdfs, workdir: Path, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.mounts = [m for m in spec.mounts if m.mode is MountMode.RW]
        self.hdfs = hdfs
        self.workdir = workdir
        self.clock = clock
        self.resumed = False
        self._synced: dict[str, tuple[float, int]] = {}  # local path -> (mtime, size) uploaded
        self._next_sync = {m.path: clock() + m.sync_interval_s for m in self.mounts}
        self.last_error: str | None = None

    def restore(self) -> None:
        """Create each rw mount's HDFS dir if missing and copy its content into the task."""
        for mount in self.mounts:
            remote = hdfs_path(mount.source)
            local = self.workdir / mount.path
            local.mkdir(parents=True, exist_ok=True)
            self.hdfs.makedirs(remote)
            for rel, _status in self.hdfs.walk_files(remote):
                if rel.endswith("._COPYING_"):
                    continue
                target = local / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                data = self.hdfs.read_bytes(posixpath.join(remote, rel))
                if data is None:
                    continue
                target.write_bytes(data)
                st = target.stat()
                self._synced[str(target)] = (st.st_mtime, st.st_size)
                self.resumed = True
            if self.resumed:
                logger.info("restored %s from %s", mount.path, remote)

    def maybe_sync(self) -> None:
        """Sync each mount whose ``sync_interval`` has passed."""
        now = self.clock()
        for mount in self.mounts:
            if now >= self._next_sync[mount.path]:
                self._next_sync[mount.path] = now + mount.sync_interval_s
                self._sync(mount)

    def final_sync(self) -> str | None:
        """Sync everything now; returns the error (path and reason) if a sync failed."""
        for mount in self.mounts:
            self._sync(mount)
        return self.last_error

    def _sync(self, mount: Mount) -> None:
        remote = hdfs_path(mount.source)
        local = self.workdir / mount.path
        if not local.is_dir():
            return
        uploaded = 0
        for root, _dirs, files in os.walk(local):
            for name in files:
                path = Path(root) / name
                try:
                    st = path.stat()
                except OSError:
                    continue
                key = (st.st_mtime, st.st_size)
                if self._synced.get(str(path)) == key:
                    continue
                rel = path.relative_to(local).as_posix()
                target = posixpath.join(remote, rel)
                try:
                    self.hdfs.write_bytes(target + "._COPYING_", path.read_bytes())
                    self.hdfs.delete(target)
                    self.hdfs.rename(target + "._COPYING_", target)
                except (DLSubmitError, OSError) as exc:
                    self.last_error = f"sync of {mount.path}/{rel} to {target} failed: {exc}"
                    logger.warning("%s", self.last_error)
                    return
                self._synced[str(path)] = key
                uploaded += 1
        if uploaded:
            logger.info("synced %d file(s) of %s to %s", uploaded, mount.path, remote)

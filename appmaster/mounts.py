"""Read-write mounts in the task launcher: restore before the command, sync back while it runs.

Read-only mounts need no code here: they are YARN localized resources (cached by the
NodeManager; see :mod:`client.staging`). A read-write mount is a directory in the working dir
mirrored to an HDFS directory:

* :meth:`MountSyncer.restore` creates the HDFS directory when missing and copies its content
  into the task before the user command starts, so a retry resumes from the last checkpoint
  (``DLSUBMIT_RESUME=1``). An HDFS directory that cannot be created or read raises
  :class:`MountError` naming the mount, the HDFS path and the reason: the launcher reports it
  as a data-access failure (DATA_ACCESS), not as a broken environment.
* :meth:`MountSyncer.maybe_sync` uploads new and changed files every ``sync_interval``;
  :meth:`MountSyncer.final_sync` once more when the task ends — also when it fails or YARN stops
  it. YARN sends SIGKILL ``yarn.nodemanager.sleep-delay-before-sigkill.ms`` (250 ms by default)
  after SIGTERM, so the final sync of a killed task may be cut short: what is safe in HDFS is
  what the last periodic sync uploaded. Choose ``sync_interval`` as the work you can afford to
  lose.

Each file is streamed to ``<name>._COPYING_`` (several at once) and swapped in with the
NameNode's atomic rename (overwrite), oldest first: a sync cut short by SIGKILL leaves the
previous version of every file intact, a reader never sees a half-written file, and a file
becomes visible only after every file written before it (so a checkpoint's commit marker,
written last, never precedes its shards). Files this task uploaded and then deleted locally
(temporary files, old checkpoints) are deleted in HDFS too; files it only restored never are.
"""

from __future__ import annotations

import logging
import os
import posixpath
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from client.errors import DLSubmitError
from client.hdfs import Hdfs, hdfs_path
from client.spec import JobSpec, Mount, MountMode

logger = logging.getLogger(__name__)

__all__ = ["COPYING_SUFFIX", "MountError", "MountSyncer"]

COPYING_SUFFIX = "._COPYING_"  # as `hdfs dfs -put` names a file it is still writing
SYNC_THREADS = 8  # parallel uploads per sync


class MountError(DLSubmitError, OSError):
    """An rw mount's HDFS directory could not be created or restored (path and reason)."""


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
        self._synced: dict[str, tuple[float, int]] = {}  # local path -> (mtime, size) in HDFS
        self._uploaded: dict[str, str] = {}  # local path -> HDFS path, for files we uploaded
        self._next_sync = {m.path: clock() + m.sync_interval_s for m in self.mounts}
        self._broken: set[str] = set()  # mounts whose restore failed: never synced
        self.last_error: str | None = None

    def restore(self) -> None:
        """Create each rw mount's HDFS dir if missing and copy its content into the task.

        Raises:
            MountError: a mount's HDFS directory cannot be created or read; the message names
                the mount, the HDFS path and the reason (also kept in :attr:`last_error`).
        """
        for mount in self.mounts:
            remote = hdfs_path(mount.source)
            local = self.workdir / mount.path
            try:
                local.mkdir(parents=True, exist_ok=True)
                self.hdfs.makedirs(remote)
                restored = self._restore_files(remote, local)
            except (DLSubmitError, OSError) as exc:
                self._broken.add(mount.path)
                self.last_error = (
                    f"rw mount {mount.path}: cannot create or restore hdfs://{remote} "
                    f"from HDFS: {exc}"
                )
                raise MountError(self.last_error) from exc
            if restored:
                self.resumed = True
                logger.info("restored %d file(s) of %s from %s", restored, mount.path, remote)

    def _restore_files(self, remote: str, local: Path) -> int:
        restored = 0
        for rel, _status in self.hdfs.walk_files(remote):
            if rel.endswith(COPYING_SUFFIX):
                continue  # an upload cut short: the previous version (if any) is complete
            target = local / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            self.hdfs.download(posixpath.join(remote, rel), str(target))
            st = target.stat()
            self._synced[str(target)] = (st.st_mtime, st.st_size)
            restored += 1
        return restored

    def maybe_sync(self) -> None:
        """Sync each mount whose ``sync_interval`` has passed."""
        now = self.clock()
        for mount in self.mounts:
            if now >= self._next_sync[mount.path]:
                self._next_sync[mount.path] = now + mount.sync_interval_s
                self._sync(mount)

    def final_sync(self) -> str | None:
        """Sync everything now; returns the error (path and reason) if a sync or restore failed."""
        for mount in self.mounts:
            self._sync(mount)
        return self.last_error

    def _changed(self, local: Path) -> tuple[list[tuple[Path, tuple[float, int]]], set[str]]:
        """Files under ``local`` that differ from what HDFS holds, and every file seen."""
        changed: list[tuple[Path, tuple[float, int]]] = []
        seen: set[str] = set()
        for root, dirs, files in os.walk(local):
            dirs.sort()
            for name in sorted(files):
                path = Path(root) / name
                seen.add(str(path))
                try:
                    st = path.stat()
                except OSError:
                    continue  # vanished between listing and stat
                key = (st.st_mtime, st.st_size)
                if self._synced.get(str(path)) != key:
                    changed.append((path, key))
        return changed, seen

    def _sync(self, mount: Mount) -> None:
        if mount.path in self._broken:
            return  # never overwrite HDFS with a task that did not start from it
        remote = hdfs_path(mount.source)
        local = self.workdir / mount.path
        if not local.is_dir():
            return
        changed, seen = self._changed(local)
        # Oldest first: a file becomes visible in HDFS only after every file written before it,
        # so a commit marker written last (a checkpoint's index or metadata file) never shows
        # up before the files it commits, even when SIGKILL cuts a sync short.
        changed.sort(key=lambda item: (item[1][0], str(item[0])))
        uploaded = deleted = 0
        failed = False
        # The data goes up in parallel (each file costs a create, a write and a close that
        # waits for the NameNode: ~0.3-0.5 s even when small); the renames that make each file
        # visible follow in order, as the uploads complete.
        with ThreadPoolExecutor(max_workers=max(1, min(SYNC_THREADS, len(changed)))) as pool:
            uploads = []
            for path, key in changed:
                rel = path.relative_to(local).as_posix()
                target = posixpath.join(remote, rel)
                copying = target + COPYING_SUFFIX
                uploads.append(
                    (path, key, rel, target, pool.submit(self.hdfs.write_file, copying, str(path)))
                )
            for path, key, rel, target, future in uploads:
                if failed:
                    future.cancel()
                    continue
                try:
                    future.result()
                    self.hdfs.rename(target + COPYING_SUFFIX, target, overwrite=True)
                except FileNotFoundError:
                    continue  # deleted locally while we read it (a temporary file)
                except (DLSubmitError, OSError) as exc:
                    self.last_error = (
                        f"rw mount {mount.path}: sync of {mount.path}/{rel} to "
                        f"hdfs://{target} failed: {exc}"
                    )
                    logger.warning("%s", self.last_error)
                    failed = True
                    continue
                self._synced[str(path)] = key
                self._uploaded[str(path)] = target
                uploaded += 1
        if failed:
            return
        prefix = str(local) + os.sep
        for gone in [p for p in self._uploaded if p.startswith(prefix) and p not in seen]:
            target = self._uploaded.pop(gone)
            self._synced.pop(gone, None)
            try:
                self.hdfs.delete(target)
                deleted += 1
            except DLSubmitError as exc:
                logger.warning("could not delete %s (deleted in the task): %s", target, exc)
        if uploaded or deleted:
            logger.info(
                "synced %s to %s: %d file(s) uploaded, %d deleted",
                mount.path,
                remote,
                uploaded,
                deleted,
            )

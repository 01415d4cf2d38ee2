"""Environments that travel: pack a local venv / conda env, and check that an image can run.

``environment.archive`` may name a local directory. :func:`env_kind` tells a venv
(``pyvenv.cfg``) from a conda env (``conda-meta/``); :func:`tree_digest` names its content (so an
unchanged env is recognised without packing it again); :func:`pack_env` packs it with
`venv-pack <https://jcristharif.com/venv-pack/>`_ or `conda-pack
<https://conda.github.io/conda-pack/>`_ into a ``.tar.gz`` that YARN unpacks in every container.
:mod:`client.staging` uploads the archive once, under that digest.

A venv-pack archive keeps the venv's ``bin/python`` as a link to the interpreter it was made
from (venv-pack does not ship Python): every node needs that interpreter at the same path. A
conda-pack archive is self-contained.

``environment.image`` asks for YARN's Docker runtime. A NodeManager that runs the
DefaultContainerExecutor ignores the request and starts the command on the host, in the node's
own environment — no error, just the wrong software. :func:`image_runtime_problem` asks the
NodeManager (its ``/conf`` servlet) which executor and runtimes it has; the task launcher calls
it before the user command and fails the task (SETUP_FAILED) with the reason and a hint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import urllib.request
from pathlib import Path
from typing import Literal

from client.errors import SpecError

logger = logging.getLogger(__name__)

__all__ = ["EnvKind", "env_kind", "image_runtime_problem", "pack_env", "tree_digest"]

EnvKind = Literal["venv", "conda"]

# Byte code is rebuilt on the nodes: a venv used locally does not count as changed.
_SKIP_DIRS = frozenset({"__pycache__"})
_SKIP_SUFFIXES = (".pyc",)
_PACK_FILTERS = [("exclude", "*__pycache__*"), ("exclude", "*.pyc")]
_CHUNK = 1 << 20

LCE_CLASS = "LinuxContainerExecutor"


def env_kind(path: Path, where: str = "environment.archive") -> EnvKind:
    """Whether the directory ``path`` is a venv or a conda environment.

    Raises:
        SpecError: neither (names the field and what was expected).
    """
    if (path / "pyvenv.cfg").is_file():
        return "venv"
    if (path / "conda-meta").is_dir():
        return "conda"
    raise SpecError(
        f"{where}: {path} is a directory but neither a venv (no pyvenv.cfg) nor a conda "
        "environment (no conda-meta/); give a venv, a conda env, or a packed .tar.gz/.zip"
    )


def tree_digest(root: Path) -> str:
    """SHA-256 of a directory tree: names, symlink targets, exec bits and file contents.

    Byte code (``__pycache__``, ``*.pyc``) is left out; it changes whenever the env is used.
    """
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        base = Path(dirpath)
        for name in [*dirnames, *sorted(filenames)]:
            path = base / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                digest.update(f"L {rel} -> {os.readlink(path)}\n".encode())
            elif stat.S_ISDIR(st.st_mode):
                digest.update(f"D {rel}\n".encode())
            elif stat.S_ISREG(st.st_mode) and not name.endswith(_SKIP_SUFFIXES):
                digest.update(f"F {rel} {st.st_mode & 0o111:o} {st.st_size}\n".encode())
                with path.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        digest.update(chunk)
        # os.walk lists symlinks to directories among dirnames but does not descend into them
        # (followlinks=False): their link line above is what is hashed.
    return digest.hexdigest()


def pack_env(path: Path, output: Path, kind: EnvKind | None = None) -> None:
    """Pack the environment at ``path`` into ``output`` (a ``.tar.gz``).

    Raises:
        SpecError: the packer is not installed or refuses the environment (its reason, e.g. an
            editable install, is in the message).
    """
    kind = kind or env_kind(path)
    try:
        if kind == "venv":
            import venv_pack

            venv_pack.pack(
                prefix=str(path),
                output=str(output),
                format="tar.gz",
                force=True,
                compress_level=1,  # fast; data sets, not envs, are the big transfers
                filters=_PACK_FILTERS,
            )
        else:
            import conda_pack

            conda_pack.pack(
                prefix=str(path),
                output=str(output),
                format="tar.gz",
                force=True,
                compress_level=1,
                ignore_missing_files=True,
            )
    except ImportError as exc:
        tool = "venv-pack" if kind == "venv" else "conda-pack"
        raise SpecError(
            f"environment.archive: packing the {kind} {path} needs {tool} "
            f"(pip install {tool}), or pack it yourself and give the .tar.gz"
        ) from exc
    except Exception as exc:  # VenvPackException / CondaPackException and I/O errors
        raise SpecError(f"environment.archive: cannot pack {path}: {exc}") from exc


def image_runtime_problem(nm_http_address: str, image: str, timeout_s: float = 5.0) -> str | None:
    """Why the NodeManager at ``nm_http_address`` cannot run ``image`` (None when it can).

    Reads ``yarn.nodemanager.container-executor.class`` and
    ``yarn.nodemanager.runtime.linux.allowed-runtimes`` from the NodeManager's ``/conf``
    servlet. When the NodeManager does not answer (a secured web UI, say), nothing can be
    told and None is returned: YARN's own launch error, if any, is then the diagnosis.
    """
    executor = _nm_conf(nm_http_address, "yarn.nodemanager.container-executor.class", timeout_s)
    if executor is None:
        return None
    runtimes = _nm_conf(
        nm_http_address, "yarn.nodemanager.runtime.linux.allowed-runtimes", timeout_s
    )
    allowed = {r.strip().lower() for r in (runtimes or "default").split(",")}
    short = executor.rsplit(".", 1)[-1]
    if short == LCE_CLASS and "docker" in allowed:
        return None
    why = (
        f"it runs the {short}, which cannot start Docker containers"
        if short != LCE_CLASS
        else f"it allows the runtimes {', '.join(sorted(allowed))}, not docker"
    )
    # Two lines: the diagnosis keeps each line as one piece of evidence (each kept short).
    return (
        f"environment.image {image!r} cannot run on the NodeManager at {nm_http_address}: "
        f"{why}; the command would run on the host, not in the image\n"
        "use environment.archive (a packed venv or conda env) or environment.python instead, "
        "or ask the cluster admin for YARN's Docker runtime (LinuxContainerExecutor with docker "
        "in yarn.nodemanager.runtime.linux.allowed-runtimes)"
    )


def _nm_conf(nm_http_address: str, key: str, timeout_s: float) -> str | None:
    url = f"http://{nm_http_address}/conf?name={key}"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            data = json.load(resp)
    except (OSError, ValueError) as exc:  # URLError is an OSError
        logger.info("cannot read %s from the NodeManager (%s): %s", key, url, exc)
        return None
    prop = data.get("property") if isinstance(data, dict) else None
    if not isinstance(prop, dict):
        return None
    value = prop.get("value")
    return str(value) if value is not None else None

"""Where the cluster is: read from ``HADOOP_CONF_DIR``, as every Hadoop tool does.

Only the handful of keys dlsubmit needs are read (RM web address, NameNode HTTP address,
fs.defaultFS). ``DLSUBMIT_RM_URL`` / ``DLSUBMIT_WEBHDFS_URL`` override them; the AppMaster and
the task launchers get those from the client, so containers never need to parse XML.
"""

from __future__ import annotations

import getpass
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

from client.errors import ClusterUnreachableError

__all__ = ["ClusterAddresses", "addresses", "hadoop_user", "read_site"]


@cache
def read_site(conf_dir: str, name: str) -> dict[str, str]:
    """Properties of one ``*-site.xml`` in ``conf_dir`` ({} when the file is absent)."""
    path = Path(conf_dir) / name
    if not path.exists():
        return {}
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ClusterUnreachableError(f"{path}: not valid XML ({exc}); fix the file") from exc
    props: dict[str, str] = {}
    for prop in root.iter("property"):
        key, value = prop.findtext("name"), prop.findtext("value")
        if key and value is not None:
            props[key.strip()] = value.strip()
    return props


@dataclass(frozen=True)
class ClusterAddresses:
    """HTTP endpoints of the cluster."""

    rm_url: str  # http://host:8088
    webhdfs_url: str  # http://host:9870
    default_fs: str  # hdfs://host:9000


def _http(host_port: str, fallback_host: str) -> str:
    host, _, port = host_port.rpartition(":")
    if host in ("", "0.0.0.0"):
        host = fallback_host
    return f"http://{host}:{port}"


def addresses() -> ClusterAddresses:
    """The cluster's endpoints from the environment or ``HADOOP_CONF_DIR``.

    Raises:
        ClusterUnreachableError: neither the overrides nor ``HADOOP_CONF_DIR`` are set.
    """
    rm_env = os.environ.get("DLSUBMIT_RM_URL")
    hdfs_env = os.environ.get("DLSUBMIT_WEBHDFS_URL")
    conf_dir = os.environ.get("HADOOP_CONF_DIR")
    if rm_env and hdfs_env:
        return ClusterAddresses(
            rm_env.rstrip("/"), hdfs_env.rstrip("/"), os.environ.get("DLSUBMIT_DEFAULT_FS", "")
        )
    if not conf_dir:
        raise ClusterUnreachableError(
            "HADOOP_CONF_DIR is not set: point it at your cluster's Hadoop configuration, "
            'or start the dev cluster and run: eval "$(docker/cluster env)"'
        )
    core = read_site(conf_dir, "core-site.xml")
    hdfs = read_site(conf_dir, "hdfs-site.xml")
    yarn = read_site(conf_dir, "yarn-site.xml")
    default_fs = core.get("fs.defaultFS", "file:///")
    fs_host = urlparse(default_fs).hostname or "127.0.0.1"
    rm_host = yarn.get("yarn.resourcemanager.hostname", "0.0.0.0")
    rm_web = yarn.get("yarn.resourcemanager.webapp.address", f"{rm_host}:8088")
    nn_web = hdfs.get("dfs.namenode.http-address", f"{fs_host}:9870")
    return ClusterAddresses(
        rm_url=(rm_env or _http(rm_web, rm_host if rm_host != "0.0.0.0" else "127.0.0.1")),
        webhdfs_url=(hdfs_env or _http(nn_web, fs_host)),
        default_fs=default_fs,
    )


def hadoop_user() -> str:
    """The user dlsubmit acts as (``HADOOP_USER_NAME`` as for Hadoop's own clients)."""
    return os.environ.get("HADOOP_USER_NAME") or getpass.getuser()

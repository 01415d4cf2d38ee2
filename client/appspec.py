"""Build the Skein application spec for a job: one pure function, tested without a cluster.

The master script is the Python AppMaster; each role is a Skein service with
``max_restarts: 0`` and ``allow_failures: true`` (Skein's own restarts would hide the failure
cause from us). Attempt 1's containers are in the spec (``instances`` = the role's instances):
Skein's Java AppMaster asks YARN for them as it starts, while the Python AppMaster is still
booting, and the Python AppMaster adopts them (``DLSUBMIT_PRESTARTED``). Retries add containers
through the AppMaster. Without this, the first ask waits for the Python AppMaster's start and
then for Skein's next idle heartbeat to the RM (up to 5 s): see BENCHMARKS.md, section 2.
"""

from __future__ import annotations

from typing import Any

from client.spec import JobSpec, MountMode
from client.staging import Staged, mount_file

__all__ = ["build_app_spec"]

APP_TYPE_TAG = "dlsubmit"
PACKAGE_NAME = "dlsubmit.zip"
SPEC_NAME = "dlsubmit-spec.json"
ENV_ARCHIVE_NAME = "dlsubmit-env"
# YARN restarts a lost AppMaster once; the second one resumes from the HDFS record.
AM_MAX_ATTEMPTS = 2
# In the AppMaster's environment: the spec's services already ask for attempt 1's containers.
PRESTARTED_ENV = "DLSUBMIT_PRESTARTED"


def _script(module: str, node_python: str) -> str:
    return (
        f'export PYTHONPATH="{PACKAGE_NAME}${{PYTHONPATH:+:$PYTHONPATH}}"\n'
        f"exec {node_python} -m {module}\n"
    )


def build_app_spec(
    spec: JobSpec,
    staged: Staged,
    *,
    user: str,
    cluster_env: dict[str, str],
    node_python: str = "python3",
) -> dict[str, Any]:
    """The Skein ``ApplicationSpec`` (as a dict) that runs ``spec``.

    Args:
        spec: the validated job.
        staged: what :func:`client.staging.stage` uploaded.
        user: the submitting user (the job record lives under their HDFS home).
        cluster_env: ``DLSUBMIT_RM_URL``/``DLSUBMIT_WEBHDFS_URL``... for AppMaster and tasks.
        node_python: the interpreter on the nodes that runs the AppMaster and the launchers.
    """
    common_files = {PACKAGE_NAME: staged.package.to_dict(), SPEC_NAME: staged.spec.to_dict()}
    common_env = {"DLSUBMIT_USER": user, **cluster_env}
    services: dict[str, Any] = {}
    for name, role in spec.roles.items():
        files = dict(common_files)
        files.update({dest: f.to_dict() for dest, f in staged.files.items()})
        for mount in spec.mounts:
            if mount.mode is MountMode.RO:
                # Localized by the NodeManager: PUBLIC (cached for every job on the node) where
                # HDFS permissions allow it, else PRIVATE (cached per user); staging decided.
                ro = staged.mounts.get(mount.path) or mount_file(mount.source)
                files[mount.path] = ro.to_dict()
        if staged.archive is not None:
            files[ENV_ARCHIVE_NAME] = staged.archive.to_dict()
        # Attempt 1's containers start from the service alone: they find their index in
        # SKEIN_CONTAINER_ID (<role>_<n>); the AppMaster's own requests set all four.
        env = {
            **common_env,
            "DLSUBMIT_ATTEMPT": "1",
            "DLSUBMIT_ROLE": name,
            "DLSUBMIT_GPUS": str(role.resources.gpus),
        }
        if spec.environment.image:
            env.update(
                YARN_CONTAINER_RUNTIME_TYPE="docker",
                YARN_CONTAINER_RUNTIME_DOCKER_IMAGE=spec.environment.image,
            )
        services[name] = {
            "resources": {
                "memory": role.resources.memory_mib,
                "vcores": role.resources.vcores,
                "gpus": role.resources.gpus,
            },
            "instances": role.instances,
            "max_restarts": 0,
            "allow_failures": True,
            "node_label": spec.node_label_for(name),
            "files": files,
            "env": env,
            "script": _script("appmaster.launcher", node_python),
        }
    am = spec.appmaster.resources
    return {
        "name": spec.name,
        "queue": spec.queue,
        "tags": sorted({APP_TYPE_TAG, *spec.tags}),
        "max_attempts": AM_MAX_ATTEMPTS,
        "master": {
            "resources": {"memory": am.memory_mib, "vcores": am.vcores},
            "files": common_files,
            "env": {**common_env, PRESTARTED_ENV: "1"},
            "script": _script("appmaster", node_python),
        },
        "services": services,
    }

"""The one module of ``client/`` that imports skein: submitting an application.

Skein's client needs its Java driver. A driver started with ``skein driver start`` (the global
driver) is reused: submitting then costs one gRPC call instead of a JVM start (seconds).
Without one, a driver is started for this submission and stopped after it.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from typing import Any

from client.errors import ClusterUnreachableError, DLSubmitError, SpecError

logger = logging.getLogger(__name__)

__all__ = ["SECRETS_KEY", "submit_application"]

# Where environment.secrets wait in the application's key-value store: put there by the client,
# read by the task launchers (and sealed / restored by the AppMaster).
SECRETS_KEY = "dlsubmit/secrets"


def _client() -> Any:
    import skein

    try:
        return skein.Client.from_global_driver()
    except Exception:  # no global driver running: start one for this call
        logger.debug("no global skein driver; starting one")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return skein.Client(log=False)


def submit_application(
    app_spec: dict[str, Any], secrets: dict[str, str] | None = None, timeout_s: float = 180
) -> str:
    """Submit a Skein application spec (dict); returns the YARN application id.

    ``secrets`` (``environment.secrets``) are never written to the spec, HDFS or a log: once
    the AppMaster runs they are put into the application's in-memory key-value store (over
    Skein's TLS channel), where the task launchers read them.

    Raises:
        SpecError: the ResourceManager rejected the spec (exit 2).
        ClusterUnreachableError: Skein's driver could not reach the cluster (exit 3).
    """
    import skein

    try:
        spec = skein.ApplicationSpec.from_dict(app_spec)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"the generated Skein spec is invalid: {exc}") from exc
    if shutil.which("yarn") is None:
        raise ClusterUnreachableError(
            "Skein's driver needs Hadoop's `yarn` command on PATH; add your Hadoop bin dir to "
            'PATH (dev cluster: eval "$(docker/cluster env)")'
        )
    try:
        client = _client()
    except (skein.exceptions.SkeinError, OSError) as exc:
        raise ClusterUnreachableError(f"could not start Skein's driver: {exc}") from exc
    try:
        app_id = str(client.submit(spec))
        if secrets:
            _hand_over_secrets(client, app_id, secrets, timeout_s)
        return app_id
    except skein.exceptions.DriverError as exc:
        text = str(exc)
        if "queue" in text.lower() or "resource" in text.lower() or "Invalid" in text:
            raise SpecError(f"the ResourceManager rejected the job: {text}") from exc
        raise DLSubmitError(f"submission failed: {text}") from exc
    except skein.exceptions.SkeinError as exc:
        raise ClusterUnreachableError(f"submission failed: {exc}") from exc
    finally:
        if getattr(client, "_proc", None) is not None:
            client.close()


def _hand_over_secrets(client: Any, app_id: str, secrets: dict[str, str], timeout_s: float) -> None:
    import json
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        report = client.application_report(app_id)
        state = str(report.state)
        if state == "RUNNING":
            break
        if state in ("FINISHED", "FAILED", "KILLED") or time.monotonic() > deadline:
            raise DLSubmitError(
                f"{app_id} is {state}: could not hand over environment.secrets "
                f"(waited {timeout_s:.0f}s for the AppMaster)"
            )
        time.sleep(0.5)
    app = client.connect(app_id, wait=False)
    app.kv[SECRETS_KEY] = json.dumps(secrets).encode()

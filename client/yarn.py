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

from client.errors import (
    ClusterUnreachableError,
    DLSubmitError,
    JobFailedError,
    SpecError,
    WaitTimeoutError,
)

logger = logging.getLogger(__name__)

__all__ = ["SECRETS_KEY", "hand_over_secrets", "submit_application"]

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
        WaitTimeoutError, JobFailedError: the secrets could not be handed over (see
            :func:`hand_over_secrets`; the job was killed).
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
        try:
            app_id = str(client.submit(spec))
        except skein.exceptions.DriverError as exc:
            text = str(exc)
            if "queue" in text.lower() or "resource" in text.lower() or "Invalid" in text:
                raise SpecError(f"the ResourceManager rejected the job: {text}") from exc
            raise DLSubmitError(f"submission failed: {text}") from exc
        except skein.exceptions.SkeinError as exc:
            raise ClusterUnreachableError(f"submission failed: {exc}") from exc
        if secrets:
            hand_over_secrets(client, app_id, secrets, timeout_s, queue=spec.queue)
        return app_id
    finally:
        if getattr(client, "_proc", None) is not None:
            client.close()


def hand_over_secrets(
    client: Any,
    app_id: str,
    secrets: dict[str, str],
    timeout_s: float,
    *,
    queue: str,
    poll_s: float = 0.5,
) -> None:
    """Put ``secrets`` into the application's key-value store once its AppMaster runs.

    A job whose secrets cannot be handed over would only fail later, task by task; it is
    killed now instead, and the error says why and what to do.

    Raises:
        WaitTimeoutError: the AppMaster did not start within ``timeout_s`` (exit 5).
        JobFailedError: the application ended before its AppMaster started (exit 1).
        ClusterUnreachableError: Skein could not reach the application (exit 3).
    """
    import json
    import time

    import skein

    deadline = time.monotonic() + timeout_s
    try:
        state = str(client.application_report(app_id).state)
        while state != "RUNNING" and state not in _ENDED and time.monotonic() < deadline:
            time.sleep(poll_s)
            state = str(client.application_report(app_id).state)
        if state == "RUNNING":
            client.connect(app_id, wait=False).kv[SECRETS_KEY] = json.dumps(secrets).encode()
            return
    except skein.exceptions.SkeinError as exc:
        _kill_quietly(client, app_id)
        raise ClusterUnreachableError(
            f"{app_id}: could not hand over environment.secrets ({exc}); dlsubmit killed the "
            "job: resubmit it"
        ) from exc
    if state in _ENDED:
        raise JobFailedError(
            f"{app_id} ended ({state}) before its AppMaster started, so environment.secrets "
            f"were not handed over; see `dlsubmit diagnose {app_id}`"
        )
    _kill_quietly(client, app_id)
    raise WaitTimeoutError(
        f"{app_id} was still {state} after {timeout_s:.0f} s: queue '{queue}' had no room for "
        "its AppMaster, so environment.secrets could not be handed over, and dlsubmit killed "
        "the job; resubmit it when the queue has room (`dlsubmit list` shows what runs there)"
    )


_ENDED = ("FINISHED", "FAILED", "KILLED")


def _kill_quietly(client: Any, app_id: str) -> None:
    try:
        client.kill_application(app_id)
    except Exception as exc:  # the error that led here is the one to report
        logger.warning("could not kill %s: %s", app_id, exc)

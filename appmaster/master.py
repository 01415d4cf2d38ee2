"""The AppMaster process: the one loop that polls Skein and carries out the controller's actions.

Runs as Skein's master script (``python3 -m appmaster``). Each poll reads every container's
state and the task protocol keys (``a<N>/reg|started|exit|metrics/<task>``) from Skein's
key-value store, feeds them to :class:`~appmaster.controller.Controller`, executes the actions
it returns, and rewrites the job record in HDFS when something changed. This is the only place
in the AppMaster that sleeps.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from appmaster.controller import (
    Action,
    Controller,
    KillContainer,
    PublishEnv,
    RequestContainer,
    Shutdown,
)
from appmaster.kvserver import KeyValueServer
from appmaster.rendezvous import Endpoint
from appmaster.secret_store import SealError, seal, unseal
from appmaster.skein_link import SkeinLink, SkeinLinkError
from appmaster.webui import StatusServer
from client.appspec import PRESTARTED_ENV
from client.errors import DLSubmitError
from client.hdfs import Hdfs
from client.record import secrets_path, status_path
from client.spec import Framework, JobSpec
from client.yarn import SECRETS_KEY

logger = logging.getLogger("appmaster")

POLL_INTERVAL_S = 0.5
RECORD_MIN_INTERVAL_S = 1.0
SPEC_FILE = "dlsubmit-spec.json"
APP_KEY_FILE = ".skein.pem"  # the application's TLS key, localized into each of its containers
SECRETS_RETRY_S = 1.0
ACTIVE_STATES = ("WAITING", "REQUESTED", "RUNNING")  # Skein container states before an end


def _kind_order(key: str) -> int:
    """Registrations first, then command starts, exit reports last (``a2/reg/worker:0``)."""
    kind = key.split("/")[1] if key.count("/") >= 2 else ""
    return {"reg": 0, "started": 1, "exit": 2}.get(kind, 3)


def am_attempt_number() -> int:
    """YARN's application attempt of this AppMaster, from its container id."""
    parts = os.environ.get("CONTAINER_ID", "").split("_")
    # container_e<epoch>_<ts>_<app>_<attempt>_<container> or container_<ts>_<app>_<attempt>_<c>
    try:
        return int(parts[-2])
    except (IndexError, ValueError):
        return 1


class Master:
    """Owns the controller, the Skein link, the HDFS record and the status page."""

    def __init__(self, spec: JobSpec, app_id: str, user: str, link: SkeinLink, hdfs: Hdfs):
        self.spec = spec
        self.app_id = app_id
        self.user = user
        self.link = link
        self.hdfs = hdfs
        self.record_path = status_path(user, app_id)
        am_attempt = am_attempt_number()
        record = self._read_record() if am_attempt > 1 else None
        self.kv_server: KeyValueServer | None = None
        rendezvous = None
        if spec.framework is Framework.HOROVOD:
            self.kv_server = KeyValueServer()
            port = self.kv_server.start()
            rendezvous = Endpoint(os.environ.get("NM_HOST") or socket.getfqdn(), port)
        self.controller = Controller(
            spec,
            app_id,
            user=user,
            am_attempt=am_attempt,
            record=record,
            rendezvous=rendezvous,
            # A restarted AppMaster resumes past attempt 1 and does not adopt them: it stops
            # the containers Skein starts again from the spec (see poll()).
            prestarted=os.environ.get(PRESTARTED_ENV) == "1",
        )
        self._kv_attempt = 0
        self.terminate = threading.Event()
        self._last_record = 0.0
        self._seen: dict[str, Any] = {}  # protocol key -> the value last fed to the controller
        self._stopped: set[str] = set()  # containers stopped as not ours (restarted AppMaster)
        self.server = StatusServer(self.snapshot)
        # environment.secrets: sealed into the record once the client has handed them over.
        self._secrets_kept = not spec.environment.secrets
        self._next_seal_try = 0.0

    def _read_record(self) -> dict[str, Any] | None:
        try:
            record = self.hdfs.read_json(self.record_path)
        except DLSubmitError as exc:
            logger.warning("could not read the job record %s: %s", self.record_path, exc)
            return None
        return record if isinstance(record, dict) else None

    def snapshot(self) -> dict[str, Any]:
        return self.controller.snapshot(time.time())

    def write_record(self, force: bool = False) -> None:
        now = time.time()
        if not force and (
            not self.controller.dirty or now - self._last_record < RECORD_MIN_INTERVAL_S
        ):
            return
        self.controller.dirty = False
        self._last_record = now
        try:
            self.hdfs.write_json(self.record_path, self.controller.snapshot(now))
        except DLSubmitError as exc:
            logger.warning("could not write the job record: %s", exc)
            self.controller.dirty = True
        try:
            self.link.set_progress(self.controller.progress())
        except SkeinLinkError as exc:
            logger.debug("set_progress: %s", exc)

    def keep_secrets(self, now: float, force: bool = False) -> None:
        """Seal the client's ``environment.secrets`` into the job record, once.

        They arrive in Skein's key-value store, which dies with this AppMaster; the sealed copy
        is what a restarted AppMaster hands out again (:meth:`restore_secrets`).
        """
        if self._secrets_kept or (now < self._next_seal_try and not force):
            return
        self._next_seal_try = now + SECRETS_RETRY_S
        try:
            secrets = self.link.get_json(SECRETS_KEY)
        except SkeinLinkError as exc:
            logger.debug("kv get %s: %s", SECRETS_KEY, exc)
            return
        if secrets is None:
            return  # the client hands them over once the application is RUNNING
        try:
            blob = seal(secrets, Path(APP_KEY_FILE).read_bytes(), self.app_id)
            self.hdfs.write_bytes(secrets_path(self.user, self.app_id), blob, permission="600")
        except (OSError, SealError, DLSubmitError) as exc:
            logger.warning("could not keep a sealed copy of environment.secrets: %s", exc)
            return
        self._secrets_kept = True
        logger.info("environment.secrets sealed into the job record for AppMaster restarts")

    def restore_secrets(self) -> None:
        """A restarted AppMaster: put the sealed ``environment.secrets`` back for the launchers."""
        if self._secrets_kept or self.controller.am_attempt <= 1:
            return
        why = ""
        try:
            if self.link.get_json(SECRETS_KEY) is not None:
                self._secrets_kept = True
                return
            blob = self.hdfs.read_bytes(secrets_path(self.user, self.app_id))
            if blob is None:
                why = "the first AppMaster was lost before it could seal them"
            else:
                secrets = unseal(blob, Path(APP_KEY_FILE).read_bytes(), self.app_id)
                self.link.put_json(SECRETS_KEY, secrets)
                self._secrets_kept = True
                logger.info("environment.secrets restored from the job record")
                return
        except (OSError, SealError, DLSubmitError, SkeinLinkError) as exc:
            why = str(exc)
        logger.warning(
            "environment.secrets cannot be restored (%s): tasks will fail to set up", why
        )

    def execute(self, actions: list[Action]) -> Shutdown | None:
        """Carry out the controller's actions; returns the shutdown, if one was asked for."""
        done: Shutdown | None = None
        for action in actions:
            if isinstance(action, RequestContainer):
                cid = self.link.add_container(action.service, action.env)
                self.controller.bind_container(action.task, cid)
            elif isinstance(action, PublishEnv):
                self.link.put_json(action.key, action.env)
            elif isinstance(action, KillContainer):
                self.link.kill_container(action.container_id)
            elif isinstance(action, Shutdown):
                done = action
        return done

    def poll(self) -> list[Action]:
        now = time.time()
        ctl = self.controller
        actions: list[Action] = []
        # Read containers first and the launchers' reports second, then feed the reports
        # first: a report written before its container ended is then always seen together
        # with (or before) YARN's view, so its log tail takes part in the classification.
        containers = self.link.containers(services=list(self.spec.roles))
        if self.kv_server is not None and ctl.attempt != self._kv_attempt:
            self.kv_server.clear()  # a retry must not see the last attempt's rendezvous keys
            self._kv_attempt = ctl.attempt
        prefix = f"a{ctl.attempt}/"
        # Registrations before exit reports (an exit report is matched to its launcher's
        # registration), and a key again when its value changed: a container refused on an
        # avoided node and its replacement write the same task's keys.
        keys = self.link.get_prefix_json(prefix).items()
        for key, value in sorted(keys, key=lambda kv: (_kind_order(kv[0]), kv[0])):
            kind, _, task = key[len(prefix) :].partition("/")
            if kind == "env":
                continue  # what this AppMaster published, not a report
            if kind == "metrics":
                ctl.on_metrics(task, value)
                continue
            if key in self._seen and self._seen[key] == value:
                continue
            self._seen[key] = value
            if kind == "reg":
                actions += ctl.on_registration(task, value, now)
            elif kind == "started":
                ctl.on_started(task, float(value.get("time", now)))
            elif kind == "exit":
                actions += ctl.on_exit_report(task, value, now)
        if ctl.am_attempt > 1:
            # Skein's restarted AppMaster starts the spec's attempt-1 containers again; this
            # job is past attempt 1, so they have nothing to do.
            for c in containers:
                if c.state in ACTIVE_STATES and not ctl.owns(c.id) and c.id not in self._stopped:
                    self._stopped.add(c.id)
                    logger.info("stopping %s: started by Skein from the spec, not needed", c.id)
                    actions.append(KillContainer(c.id))
        for c in containers:
            actions += ctl.on_container(
                c.id,
                c.state,
                yarn_container_id=c.yarn_container_id,
                node_http_address=c.node_http_address,
                exit_message=c.exit_message,
                finish_time=c.finish_time_s,
                now=now,
            )
        actions += ctl.tick(now)
        return actions

    def run(self) -> int:
        if self.controller.state.is_terminal():
            # A second AppMaster of a job that had already ended (Skein leaves a FAILED or
            # KILLED app registered while YARN attempts remain): repeat the outcome, keep the
            # record as the first AppMaster left it.
            done = self.controller.start(time.time())[0]
            assert isinstance(done, Shutdown)
            logger.info("the job had already ended: %s", done.diagnostics)
            self.link.shutdown(done.status, done.diagnostics)
            return 0
        page = self.server.start()
        try:
            self.link.add_page("dlsubmit", page, link_name="dlsubmit job")
        except SkeinLinkError as exc:
            logger.warning("could not register the status page: %s", exc)
        self.restore_secrets()
        shutdown = self.execute(self.controller.start(time.time()))
        while shutdown is None:
            self.keep_secrets(time.time())
            if self.terminate.is_set():
                shutdown = self.execute(self.controller.on_terminate(time.time()))
                break
            try:
                shutdown = self.execute(self.poll())
            except SkeinLinkError as exc:
                logger.warning("Skein: %s", exc)
            self.write_record()
            if shutdown is None:
                self.terminate.wait(POLL_INTERVAL_S)
        self.keep_secrets(time.time(), force=True)  # the record is complete either way
        self.write_record(force=True)
        assert shutdown is not None
        logger.info("shutting down: %s %s", shutdown.status, shutdown.diagnostics)
        try:
            self.link.shutdown(shutdown.status, shutdown.diagnostics)
        except SkeinLinkError as exc:
            logger.warning("shutdown: %s", exc)
        self.server.stop()
        return 0


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app_id = os.environ["SKEIN_APPLICATION_ID"]
    user = os.environ.get("DLSUBMIT_USER") or os.environ.get("USER", "root")
    raw = json.loads(Path(SPEC_FILE).read_text())
    spec = JobSpec.from_dict(raw["spec"])
    master = Master(spec, app_id, user, SkeinLink(), Hdfs(user=user))

    def on_term(signum: int, _frame: Any) -> None:
        logger.info("signal %d: the application is being stopped", signum)
        master.terminate.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    return master.run()

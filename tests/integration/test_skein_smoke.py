"""Skein's driver and Java AppMaster work on our Hadoop 3.4.2 / JDK 17 cluster."""

from __future__ import annotations

import time
import uuid

import pytest
import skein

from tests.integration.conftest import yarn_logs

pytestmark = pytest.mark.yarn

MASTER = """
import time, skein, hdfs
app = skein.ApplicationClient.from_current()
# Wait (bounded) for the service container to finish printing.
deadline = time.time() + 120
while time.time() < deadline:
    done = app.get_containers(services=["hello"], states=["SUCCEEDED", "FAILED", "KILLED"])
    if done:
        break
    time.sleep(0.5)
assert done and done[0].state == "SUCCEEDED", done
client = hdfs.InsecureClient("http://127.0.0.1:9870", user="{user}")
client.write("{path}", data=b"written by the master\\n", overwrite=True)
"""


def test_skein_application_runs_master_and_service(cluster: dict[str, str], record_app) -> None:
    import getpass

    user = getpass.getuser()
    marker = f"hello-from-service-{uuid.uuid4().hex[:8]}"
    path = f"/tmp/dlsubmit-smoke-{uuid.uuid4().hex[:8]}.txt"
    spec = skein.ApplicationSpec(
        name="dlsubmit-smoke",
        queue="default",
        master=skein.Master(
            resources=skein.Resources(memory=512, vcores=1),
            script="python3 - <<'PY'\n" + MASTER.format(user=user, path=path) + "PY\n",
        ),
        services={
            "hello": skein.Service(
                resources=skein.Resources(memory=256, vcores=1),
                script=f"echo {marker}",
                instances=1,
            )
        },
    )
    with skein.Client() as client:
        app_id = record_app(client.submit(spec))
        deadline = time.monotonic() + 240
        while True:
            report = client.application_report(app_id)
            if str(report.state) in ("FINISHED", "FAILED", "KILLED"):
                break
            assert time.monotonic() < deadline, f"{app_id} still {report.state}"
            time.sleep(1)
    assert str(report.final_status) == "SUCCEEDED", report.diagnostics

    import hdfs

    fs = hdfs.InsecureClient("http://127.0.0.1:9870", user=user)
    with fs.read(path) as reader:
        assert reader.read() == b"written by the master\n"

    # Log aggregation runs after the app ends; give it a bounded while.
    deadline = time.monotonic() + 90
    logs = ""
    while time.monotonic() < deadline:
        logs = yarn_logs(app_id)
        if marker in logs:
            break
        time.sleep(2)
    assert marker in logs, logs[-3000:]

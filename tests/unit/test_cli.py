"""The CLI's contract without a cluster: exit codes and messages for bad input."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from client.cli import cli


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_unknown_field_exits_2_with_suggestion_and_no_traceback(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("name: x\nroles: {worker: {instnaces: 2, command: 'true'}}\n")
    code, out, err = _run("validate", str(job))
    assert code == 2
    assert "roles.worker.instnaces: unknown field; did you mean 'instances'?" in err
    assert "Traceback" not in err and out == ""


def test_missing_spec_file_exits_2(tmp_path: Path) -> None:
    code, _, err = _run("submit", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "nope.yaml" in err


def test_bad_set_override_exits_2(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("name: x\nroles: {worker: {command: 'true'}}\n")
    code, _, err = _run("validate", str(job), "--set", "roles.worker.instances")
    assert code == 2
    assert "roles.worker.instances" in err


def test_no_cluster_configured_exits_3(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    monkeypatch.delenv("DLSUBMIT_RM_URL", raising=False)
    code, _, err = _run("status", "application_1_0001")
    assert code == 3
    assert "HADOOP_CONF_DIR" in err


def test_malformed_application_id_exits_2(monkeypatch) -> None:
    monkeypatch.setenv("DLSUBMIT_RM_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("DLSUBMIT_WEBHDFS_URL", "http://127.0.0.1:2")
    code, _, err = _run("status", "not-an-app")
    assert code == 2
    assert "not-an-app" in err

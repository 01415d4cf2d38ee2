"""The ``dlsubmit`` command: thin click commands over :mod:`client.api`.

Data (ids, tables, ``--json``) goes to stdout, messages to stderr. A :class:`DLSubmitError` is
printed as ``Error: ...`` and exits with its code; anything else is a bug and shows a traceback.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from client.api import Client, JobStatus
from client.errors import DLSubmitError, JobFailedError
from client.states import JobState

F = TypeVar("F", bound=Callable[..., Any])

EXIT_INTERRUPTED = 130


def say(message: str) -> None:
    click.echo(message, err=True)


def handle_errors(fn: F) -> F:
    """Turn dlsubmit errors into ``Error: ...`` and the contract's exit codes."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DLSubmitError as exc:
            say(f"Error: {exc}")
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


def _overrides(items: tuple[str, ...]) -> dict[str, str]:
    from client.spec import parse_set_options

    return parse_set_options(list(items))


def _describe(status: JobStatus) -> str:
    roles = ", ".join(
        f"{role}: " + " ".join(f"{n} {state.lower()}" for state, n in sorted(counts.items()))
        for role, counts in sorted(status.roles.items())
    )
    text = f"{status.app_id} {status.state}"
    if status.attempt:
        text += f" (attempt {status.attempt}/{status.max_attempts})"
    if roles:
        text += f" [{roles}]"
    return text


def _print_status(status: JobStatus) -> None:
    out = click.echo
    out(f"Application  {status.app_id}  ({status.name})")
    out(f"State        {status.state}" + (f"  (YARN {status.yarn_state})"))
    if status.attempt:
        out(f"Attempt      {status.attempt}/{status.max_attempts}")
    for role, counts in sorted(status.roles.items()):
        out(f"  {role:10} " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())))
    for name, task in status.tasks.items():
        gpu = task.get("gpu") or {}
        gpu_text = " ".join(
            f"gpu{d}={m.get('util_pct')}%/{m.get('mem_used_mib')}MiB"
            for d, m in gpu.items()
            if isinstance(m, dict)
        )
        exit_text = "" if task.get("exit_code") is None else f" exit {task['exit_code']}"
        host = task.get("host") or ""
        line = f"  {name:12} {task.get('state', ''):10} {host:16}{exit_text} {gpu_text}"
        out(line.rstrip())
    if status.root_cause:
        rc = status.root_cause
        out(
            f"Failure      {rc.category} {rc.task or ''}"
            + (f" (exit {rc.exit_code})" if rc.exit_code is not None else "")
        )
        for line in rc.evidence[-5:]:
            out(f"  | {line}")
        if rc.hint:
            out(f"Hint         {rc.hint}")
    elif status.diagnostics:
        out(f"Diagnostics  {status.diagnostics}")
    out(f"Tracking URL {status.tracking_url}")


@click.group()
@click.version_option(package_name="dlsubmit")
def cli() -> None:
    """dlsubmit: deep-learning jobs on YARN (see JOBSPEC.md)."""


@cli.command()
@click.argument("job_yaml", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="K=V", help="override a spec field")
@click.option("--wait", is_flag=True, help="follow the job and exit with its result")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@handle_errors
def submit(job_yaml: str, sets: tuple[str, ...], wait: bool, as_json: bool) -> None:
    """Validate, upload and submit JOB_YAML; prints the application id."""
    spec = _load(job_yaml, sets)
    client = Client()
    job = client.submit(spec)
    if not wait:
        click.echo(json.dumps({"app_id": job.app_id}) if as_json else job.app_id)
        return
    click.echo(job.app_id if not as_json else "", nl=not as_json)
    _follow(job.app_id, client, as_json)


def _follow(app_id: str, client: Client, as_json: bool, timeout: float | None = None) -> None:
    job = client.job(app_id)
    say(f"following {app_id} (Ctrl-C stops following; the job keeps running)")
    try:
        status = job.wait(
            timeout=timeout, on_change=lambda s: say(f"{time.strftime('%H:%M:%S')} {_describe(s)}")
        )
    except KeyboardInterrupt:
        say(f"interrupted: {app_id} keeps running (dlsubmit kill {app_id} stops it)")
        sys.exit(EXIT_INTERRUPTED)
    if as_json:
        click.echo(json.dumps(status.to_dict(), indent=1))
    else:
        _print_status_to_stderr(status)
    if status.state is not JobState.SUCCEEDED:
        raise JobFailedError(
            f"{app_id} ended {status.state}"
            + (f": {status.diagnostics}" if status.diagnostics else "")
        )


def _print_status_to_stderr(status: JobStatus) -> None:
    if status.root_cause:
        rc = status.root_cause
        say(
            f"{status.state}: {rc.category} {rc.task or ''}"
            + (f" (exit {rc.exit_code})" if rc.exit_code is not None else "")
        )
        for line in rc.evidence[-3:]:
            say(f"  | {line}")
        if rc.hint:
            say(f"hint: {rc.hint}")
    else:
        say(f"{status.state}: {status.diagnostics}")
    say(f"RM UI: {status.tracking_url}")


@cli.command()
@click.argument("job_yaml", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="K=V")
@click.option("--print-env", is_flag=True, help="show each task's environment")
@handle_errors
def validate(job_yaml: str, sets: tuple[str, ...], print_env: bool) -> None:
    """Every check of submit against the live cluster; nothing is submitted."""
    from appmaster.rendezvous import placeholder_endpoints, task_env

    spec = _load(job_yaml, sets)
    for warning in Client().validate(spec):
        say(f"warning: {warning}")
    if print_env:
        endpoints = placeholder_endpoints(spec)
        for task in spec.tasks():
            click.echo(f"[{task}]")
            env = task_env(spec, task, app_id="<application id>", attempt=1, endpoints=endpoints)
            for key, value in sorted(env.items()):
                click.echo(f"{key}={value}")
    say(f"{job_yaml}: valid ({spec.world_size} tasks)")


@cli.command()
@click.argument("app_id")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def status(app_id: str, as_json: bool) -> None:
    """State, attempt, tasks, failure category, hint and tracking URL."""
    st = Client().job(app_id).status()
    if as_json:
        click.echo(json.dumps(st.to_dict(), indent=1))
    else:
        _print_status(st)


@cli.command(name="list")
@click.option("--state", "states", multiple=True, help="YARN state (RUNNING, FINISHED, ...)")
@click.option("--user")
@click.option("--tag", "tags", multiple=True)
@click.option("--all", "all_apps", is_flag=True, help="every application, not only dlsubmit's")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def list_jobs(
    states: tuple[str, ...], user: str | None, tags: tuple[str, ...], all_apps: bool, as_json: bool
) -> None:
    """A table of jobs (dlsubmit's own by default)."""
    apps = Client().jobs(
        states=[s.upper() for s in states], user=user, tags=tags, all_apps=all_apps
    )
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(a) for a in apps], indent=1, default=str))
        return
    click.echo(
        f"{'APPLICATION':32} {'NAME':20} {'USER':8} {'QUEUE':10} {'STATE':9} {'FINAL':10} PROGRESS"
    )
    for a in apps:
        click.echo(
            f"{a.id:32} {a.name[:20]:20} {a.user[:8]:8} {a.queue[:10]:10} "
            f"{a.state:9} {a.final_status:10} {a.progress:.0f}%"
        )


@cli.command()
@click.argument("app_id")
@click.option("--task", help="ROLE:INDEX")
@click.option("--attempt", type=int)
@click.option("--tail", type=int)
@click.option("--follow", is_flag=True)
@handle_errors
def logs(
    app_id: str, task: str | None, attempt: int | None, tail: int | None, follow: bool
) -> None:
    """Task logs, prefixed with the task (live while running, aggregated after)."""
    job = Client().job(app_id)
    if follow:
        try:
            for line in job.follow_logs(task=task):
                click.echo(line)
        except KeyboardInterrupt:
            sys.exit(EXIT_INTERRUPTED)
        return
    for line in job.logs(task=task, attempt=attempt, tail=tail):
        click.echo(line)


@cli.command()
@click.argument("app_id")
@click.option("--timeout", type=float, help="seconds; exit 5 when reached")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def wait(app_id: str, timeout: float | None, as_json: bool) -> None:
    """Block until the job reaches a terminal state; exit code = result."""
    _follow(app_id, Client(), as_json, timeout=timeout)


@cli.command()
@click.argument("app_id")
@handle_errors
def kill(app_id: str) -> None:
    """Stop the job (state KILLED)."""
    Client().job(app_id).kill()
    say(f"{app_id} killed")


@cli.command()
@click.argument("app_id")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def diagnose(app_id: str, as_json: bool) -> None:
    """Root cause and every attempt's failure."""
    doc = Client().job(app_id).diagnose()
    if as_json:
        click.echo(json.dumps(doc, indent=1))
        return
    click.echo(f"{doc['app_id']} ({doc['name']}): {doc['state']}")
    root = doc.get("root_cause")
    if root:
        click.echo(
            f"Root cause: {root.get('category')} {root.get('task') or ''} "
            f"(attempt {root.get('attempt', '?')}, retryable: {root.get('retryable')})"
        )
        for line in root.get("evidence", [])[-5:]:
            click.echo(f"  | {line}")
        if root.get("hint"):
            click.echo(f"Hint: {root['hint']}")
    for a in doc.get("attempts", []):
        failure = a.get("failure") or {}
        click.echo(
            f"  attempt {a['attempt']}: {a['state']} {failure.get('category', '')} "
            f"{failure.get('task') or ''} {a.get('decision', '')}".rstrip()
        )


@cli.command()
@click.argument("app_id")
@click.option("--set", "sets", multiple=True, metavar="K=V")
@handle_errors
def clone(app_id: str, sets: tuple[str, ...]) -> None:
    """Resubmit a job's stored spec and files, with overrides; prints the new id."""
    job = Client().clone(app_id, overrides=_overrides(sets))
    click.echo(job.app_id)


def main() -> None:
    """Console entry point."""
    cli(prog_name="dlsubmit")


def _load(job_yaml: str, sets: tuple[str, ...]) -> Any:
    from client.spec import JobSpec

    return JobSpec.load(job_yaml, overrides=_overrides(sets))


if __name__ == "__main__":
    main()

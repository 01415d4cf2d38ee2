"""The job spec model: defaults, checks and their messages, overrides, rank order, round trip."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from client.errors import SpecError, UsageError
from client.spec import (
    AppMasterSpec,
    Environment,
    Framework,
    JobSpec,
    Mount,
    MountMode,
    Resources,
    Retry,
    RetryPolicy,
    Role,
    Scheduling,
    TaskId,
    apply_overrides,
    parse_set_options,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# The example of JOBSPEC.md ("Job spec"), minus the comments.
CONTRACT_EXAMPLE = """\
spec_version: 1
name: mnist-ddp
framework: pytorch
queue: default
tags: [team-vision]
node_label: ""
environment:
  python: python3
  env: {OMP_NUM_THREADS: "4"}
  secrets: [WANDB_API_KEY]
files:
  train.py: examples/train.py
mounts:
  - source: hdfs:///datasets/mnist
    path: data
    mode: ro
  - source: hdfs:///user/alice/runs/mnist
    path: out
    mode: rw
    sync_interval: 60s
roles:
  worker:
    instances: 2
    resources: {memory: 2 GiB, vcores: 1, gpus: 0}
    command: python train.py --epochs 1
    env: {}
    node_label: ""
    tracked: true
retry:
  max_attempts: 3
  max_infra_retries: 10
  policy: smart
  backoff: 10s
scheduling:
  gang: true
  allocation_timeout: 5m
  registration_timeout: 2m
  max_runtime: 0
appmaster:
  resources: {memory: 1 GiB, vcores: 1}
"""


def minimal() -> dict[str, Any]:
    return {"name": "job", "roles": {"worker": {"command": "python train.py"}}}


def error_of(raw: Any, base_dir: str = "/specs") -> str:
    with pytest.raises(SpecError) as info:
        JobSpec.from_dict(raw, base_dir)
    return str(info.value)


def with_(path: str, value: Any, raw: dict[str, Any] | None = None) -> dict[str, Any]:
    """``minimal()`` (or ``raw``) with one dotted field set to exactly ``value``."""
    # JSON-quote strings so that apply_overrides' YAML reading keeps '2' and 'yes' strings.
    return apply_overrides(
        raw or minimal(), {path: json.dumps(value) if isinstance(value, str) else value}
    )


# ---- defaults and the contract example ------------------------------------------------------


def test_minimal_spec_takes_the_documented_defaults() -> None:
    spec = JobSpec.from_dict(minimal())
    assert spec.spec_version == 1
    assert spec.framework is Framework.GENERIC
    assert spec.queue == "default"
    assert spec.tags == ()
    assert spec.node_label == ""
    assert spec.environment == Environment(python="python3")
    assert spec.environment.kind == "python"
    assert spec.files == {}
    assert spec.mounts == ()
    assert spec.roles == {"worker": Role(name="worker", command="python train.py")}
    worker = spec.roles["worker"]
    assert (worker.instances, worker.tracked, worker.node_label) == (1, True, None)
    assert worker.resources == Resources(memory_mib=1024, vcores=1, gpus=0)
    assert spec.retry == Retry(max_attempts=3, max_infra_retries=10, backoff_s=10.0)
    assert spec.retry.policy is RetryPolicy.SMART
    assert spec.scheduling == Scheduling(
        gang=True, allocation_timeout_s=300, registration_timeout_s=120, max_runtime_s=0
    )
    assert spec.appmaster == AppMasterSpec(Resources(memory_mib=1024, vcores=1))


def test_null_sections_take_defaults() -> None:
    raw = minimal() | {"environment": None, "retry": None, "tags": None, "mounts": None}
    assert JobSpec.from_dict(raw) == JobSpec.from_dict(minimal())


def test_contract_example_parses() -> None:
    spec = JobSpec.from_yaml_text(CONTRACT_EXAMPLE, "/home/alice/project")
    assert spec.name == "mnist-ddp"
    assert spec.framework is Framework.PYTORCH
    assert spec.tags == ("team-vision",)
    assert spec.environment.env == {"OMP_NUM_THREADS": "4"}
    assert spec.environment.secrets == ("WANDB_API_KEY",)
    assert spec.files == {"train.py": "/home/alice/project/examples/train.py"}
    assert spec.mounts == (
        Mount(source="hdfs:///datasets/mnist", path="data"),
        Mount(source="hdfs:///user/alice/runs/mnist", path="out", mode=MountMode.RW),
    )
    worker = spec.roles["worker"]
    assert worker.resources == Resources(memory_mib=2048, vcores=1, gpus=0)
    assert worker.node_label == ""
    assert spec.scheduling.allocation_timeout_s == 300
    assert spec.scheduling.registration_timeout_s == 120
    assert spec.appmaster.resources.memory_mib == 1024


@pytest.mark.parametrize("name", ["job.yaml", "tf_job.yaml"])
def test_examples_are_valid(name: str) -> None:
    spec = JobSpec.load(EXAMPLES / name)
    assert spec.world_size >= 2


def test_example_job_ships_train_py_next_to_it() -> None:
    spec = JobSpec.load(EXAMPLES / "job.yaml")
    assert spec.framework is Framework.PYTORCH
    assert spec.files == {"train.py": str(EXAMPLES / "train.py")}
    assert spec.roles["worker"].resources.memory_mib == 512
    assert spec.retry.max_attempts == 2


def test_tf_example_ranks_chief_first() -> None:
    spec = JobSpec.load(EXAMPLES / "tf_job.yaml")
    assert spec.framework is Framework.TENSORFLOW
    assert [str(task) for task in spec.tasks()] == ["chief:0", "worker:0", "worker:1"]


# ---- round trip -----------------------------------------------------------------------------


def test_to_dict_round_trips_through_json_and_yaml() -> None:
    spec = JobSpec.from_yaml_text(CONTRACT_EXAMPLE, "/home/alice/project")
    data = spec.to_dict()
    assert JobSpec.from_dict(json.loads(json.dumps(data))) == spec
    assert JobSpec.from_dict(yaml.safe_load(yaml.safe_dump(data))) == spec
    assert list(data) == list(JobSpec.KEYS)


def test_to_dict_uses_yaml_names_and_plain_units() -> None:
    raw = with_("roles.worker.resources.memory", "1.5 GiB")
    raw = with_("retry.backoff", "1m30s", raw)
    data = JobSpec.from_dict(raw).to_dict()
    assert data["roles"]["worker"]["resources"] == {"memory": 1536, "vcores": 1, "gpus": 0}
    assert data["retry"]["backoff"] == 90
    assert data["scheduling"]["allocation_timeout"] == 300
    assert data["framework"] == "generic"
    assert "node_label" not in data["roles"]["worker"]  # inherits the job's


def test_round_trip_keeps_archive_image_and_role_node_label() -> None:
    for runtime in ({"archive": "hdfs:///envs/torch.tar.gz"}, {"image": "registry/torch:2.4"}):
        raw = minimal() | {"environment": runtime, "node_label": "cpu"}
        raw["roles"]["ps"] = {"command": "python ps.py", "tracked": False, "node_label": ""}
        spec = JobSpec.from_dict(raw)
        assert JobSpec.from_dict(spec.to_dict()) == spec
        assert spec.to_dict()["environment"] == {**runtime, "env": {}, "secrets": []}


# ---- local paths ----------------------------------------------------------------------------


def test_relative_local_paths_resolve_against_the_spec_directory(tmp_path: Path) -> None:
    spec_file = tmp_path / "jobs" / "job.yaml"
    spec_file.parent.mkdir()
    spec_file.write_text(
        textwrap.dedent(
            """\
            name: job
            environment: {archive: envs/torch.tar.gz}
            files:
              train.py: ../src/train.py
              conf.yaml: /etc/conf.yaml
              remote.txt: hdfs:///shared/remote.txt
            roles: {worker: {command: python train.py}}
            """
        )
    )
    spec = JobSpec.load(spec_file)
    assert spec.environment.archive == str(tmp_path / "jobs" / "envs" / "torch.tar.gz")
    assert spec.environment.python is None
    assert spec.environment.kind == "archive"
    assert spec.files == {
        "train.py": str(tmp_path / "src" / "train.py"),
        "conf.yaml": "/etc/conf.yaml",
        "remote.txt": "hdfs:///shared/remote.txt",
    }


def test_remote_archive_is_kept_as_is() -> None:
    spec = JobSpec.from_dict(minimal() | {"environment": {"archive": "hdfs:///envs/e.tar.gz"}})
    assert spec.environment.archive == "hdfs:///envs/e.tar.gz"


# ---- validation messages --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("name", "bad name!", "name: must be 1-64 of [A-Za-z0-9._-], got 'bad name!'"),
        ("name", "x" * 65, "name: must be 1-64 of [A-Za-z0-9._-], got 'xxxx"),
        ("name", 42, "name: must be a string, got 42"),
        ("spec_version", 2, "spec_version: must be 1 (the only version this dlsubmit knows)"),
        ("spec_version", True, "spec_version: must be 1"),
        (
            "framework",
            "pytorhc",
            "framework: must be one of pytorch, tensorflow, horovod, generic, got 'pytorhc'; "
            "did you mean 'pytorch'?",
        ),
        ("queue", "", "queue: must be a non-empty string, got ''"),
        ("tags", "team", "tags: must be a list of strings, e.g. [team-vision], got 'team'"),
        ("tags", ["a,b"], "tags[0]: must be ASCII, at most 100 characters, no commas"),
        ("tags", [1], "tags[0]: must be a string, got 1"),
        ("node_label", 3, "node_label: must be a string, got 3"),
        (
            "roles.worker.resources.gpus",
            -1,
            "roles.worker.resources.gpus: must be an integer >= 0, got -1",
        ),
        ("roles.worker.resources.gpus", 1.5, "roles.worker.resources.gpus: must be an integer"),
        (
            "roles.worker.resources.vcores",
            0,
            "roles.worker.resources.vcores: must be an integer >= 1, got 0",
        ),
        (
            "roles.worker.resources.memory",
            "lots",
            "roles.worker.resources.memory: expected a size like '2 GiB', got 'lots'",
        ),
        (
            "roles.worker.resources.memory",
            0,
            "roles.worker.resources.memory: must be a size > 0 (e.g. '2 GiB'), got 0",
        ),
        ("roles.worker.instances", 0, "roles.worker.instances: must be an integer >= 1, got 0"),
        ("roles.worker.instances", "2", "roles.worker.instances: must be an integer >= 1, got '2'"),
        ("roles.worker.instances", True, "roles.worker.instances: must be an integer >= 1"),
        ("roles.worker.tracked", "yes please", "roles.worker.tracked: must be true or false"),
        ("roles.worker.command", "  ", "roles.worker.command: must be a non-empty shell command"),
        ("roles.worker.command", ["python", "x.py"], "roles.worker.command: must be a string"),
        ("roles.worker.resources", [1], "roles.worker.resources: must be a mapping (key: value)"),
        ("roles.worker", ["a"], "roles.worker: must be a mapping (key: value), got a list"),
        ("roles", [{"worker": {}}], "roles: must be a mapping (key: value), got a list"),
        ("roles", {}, "roles: at least one role is required"),
        ("roles.Worker", {"command": "x"}, "roles.Worker: role names must match [a-z][a-z0-9_-]*"),
        ("retry.max_attempts", 0, "retry.max_attempts: must be an integer >= 1, got 0"),
        ("retry.max_infra_retries", -1, "retry.max_infra_retries: must be an integer >= 0"),
        ("retry.policy", "sometimes", "retry.policy: must be one of smart, always, never"),
        ("retry.backoff", "soon", "retry.backoff: expected a duration like '90s'"),
        ("scheduling.gang", "yes", "scheduling.gang: must be true or false, got 'yes'"),
        (
            "scheduling.allocation_timeout",
            0,
            "scheduling.allocation_timeout: must be a duration > 0",
        ),
        ("scheduling.max_runtime", -5, "scheduling.max_runtime: expected a duration"),
        ("appmaster.resources.gpus", 1, "appmaster.resources.gpus: must be 0, the AppMaster uses"),
        ("environment", "python3", "environment: must be a mapping (key: value), got 'python3'"),
        ("environment.python", "", "environment.python: must be a non-empty string"),
        ("environment.secrets", "TOKEN", "environment.secrets: must be a list of strings"),
        ("environment.secrets", ["1TOKEN"], "environment.secrets[0]: not a valid environment"),
        ("files", ["train.py"], "files: must be a mapping (key: value), got a list"),
        ("files", {"../x.py": "x.py"}, "files.../x.py: must be a path relative to the working"),
        ("files", {"/abs.py": "x.py"}, "files./abs.py: must be a path relative to the working"),
        ("files", {"a.py": 3}, "files.a.py: must be a string, got 3"),
        ("files", {"d": "x", "d/a.py": "y"}, "files.d/a.py: 'd/a.py' clashes with files.d"),
        ("mounts", {"source": "/d"}, "mounts: must be a list of mappings"),
        ("mounts", ["/d"], "mounts[0]: must be a mapping (key: value), got '/d'"),
    ],
)
def test_bad_field_is_named_with_what_was_found(path: str, value: Any, message: str) -> None:
    assert error_of(with_(path, value)).startswith(message)


def test_env_value_must_be_quoted() -> None:
    message = error_of(with_("environment.env", {"OMP_NUM_THREADS": 4}))
    assert message == (
        'environment.env.OMP_NUM_THREADS: must be a string, got 4; quote it: OMP_NUM_THREADS: "4"'
    )
    assert error_of(with_("roles.worker.env", {"DEBUG": True})).startswith(
        "roles.worker.env.DEBUG: must be a string, got true; quote it"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"1X": "a"}, "roles.worker.env.1X: not a valid environment variable name"),
        ({"DLSUBMIT_RANK": "0"}, "roles.worker.env.DLSUBMIT_RANK: names starting with DLSUBMIT_"),
    ],
)
def test_env_names_are_checked(env: dict[str, str], message: str) -> None:
    assert error_of(with_("roles.worker.env", env)).startswith(message)


def test_required_fields() -> None:
    assert error_of({"roles": minimal()["roles"]}) == (
        "name: required field is missing, e.g. name: mnist-ddp"
    )
    assert error_of({"name": "job"}).startswith("roles: required field is missing, e.g. roles:")
    assert error_of(with_("roles.worker", {"instances": 2})).startswith(
        "roles.worker.command: required field is missing, e.g. command: python train.py"
    )


def test_top_level_must_be_a_mapping() -> None:
    assert error_of(["name"]).startswith("spec: must be a mapping (key: value), got a list")
    assert error_of({1: "x"}) == "spec: keys must be strings, got 1"


@pytest.mark.parametrize(
    ("raw_path", "message"),
    [
        ("nmae", "nmae: unknown field; did you mean 'name'?"),
        (
            "roles.worker.instnaces",
            "roles.worker.instnaces: unknown field; did you mean 'instances'?",
        ),
        ("roles.worker.resources.gpu", "roles.worker.resources.gpu: unknown field; did you mean"),
        ("retry.max_attempt", "retry.max_attempt: unknown field; did you mean 'max_attempts'?"),
        ("scheduling.timeout", "scheduling.timeout: unknown field;"),
        ("environment.pyhton", "environment.pyhton: unknown field; did you mean 'python'?"),
        ("appmaster.memory", "appmaster.memory: unknown field; allowed: resources"),
    ],
)
def test_unknown_keys_get_a_suggestion(raw_path: str, message: str) -> None:
    raw = minimal()
    *parents, leaf = raw_path.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = 1
    assert error_of(raw).startswith(message)


def test_environment_allows_one_runtime() -> None:
    raw = with_("environment", {"python": "python3.11", "image": "torch:2.4"})
    assert error_of(raw) == (
        "environment: set at most one of python, archive, image; got python and image"
    )
    spec = JobSpec.from_dict(with_("environment.image", "torch:2.4"))
    assert (spec.environment.kind, spec.environment.python) == ("image", None)


@pytest.mark.parametrize(
    ("mounts", "message"),
    [
        ([{"path": "data"}], "mounts[0].source: required field is missing"),
        ([{"source": "data/mnist", "path": "data"}], "mounts[0].source: must be an HDFS path"),
        ([{"source": "/d", "path": "/data"}], "mounts[0].path: must be a path relative"),
        ([{"source": "/d", "path": "a/../../x"}], "mounts[0].path: must be a path relative"),
        ([{"source": "/d", "path": "."}], "mounts[0].path: must be a path relative"),
        ([{"source": "/d", "path": "d", "mode": "wr"}], "mounts[0].mode: must be one of ro, rw"),
        (
            [{"source": "/d", "path": "d", "sync_interval": "1m"}],
            "mounts[0].sync_interval: only rw mounts are synced back; remove it or set mode: rw",
        ),
        (
            [{"source": "/d", "path": "d", "mode": "rw", "sync_interval": 0}],
            "mounts[0].sync_interval: must be a duration > 0",
        ),
        (
            [{"source": "/a", "path": "data"}, {"source": "/b", "path": "data/"}],
            "mounts[1].path: 'data' clashes with mounts[0] ('data')",
        ),
        (
            [{"source": "/a", "path": "out"}, {"source": "/b", "path": "out/ckpt"}],
            "mounts[1].path: 'out/ckpt' clashes with mounts[0] ('out')",
        ),
        (
            [{"source": "/a", "path": "train.py"}],
            "mounts[0].path: 'train.py' clashes with files.train.py",
        ),
        ([{"source": "/a", "path": "d", "size": 1}], "mounts[0].size: unknown field"),
    ],
)
def test_mount_checks(mounts: list[dict[str, Any]], message: str) -> None:
    raw = minimal() | {"mounts": mounts, "files": {"train.py": "train.py"}}
    assert error_of(raw).startswith(message)


def test_mounts_normalise_paths_and_default_sync_interval() -> None:
    raw = minimal() | {
        "mounts": [
            {"source": "/datasets/mnist", "path": "./data/"},
            {"source": "hdfs://nn:8020/runs", "path": "out", "mode": "rw"},
            {"source": "/runs2", "path": "out2", "mode": "rw", "sync_interval": "5m"},
        ]
    }
    data, out, out2 = JobSpec.from_dict(raw).mounts
    assert (data.path, data.mode) == ("data", MountMode.RO)
    assert (out.mode, out.sync_interval_s) == (MountMode.RW, 60.0)
    assert out2.sync_interval_s == 300
    assert "sync_interval" not in data.to_dict()


def test_at_least_one_tracked_role() -> None:
    raw = with_("roles.worker.tracked", False)
    assert error_of(raw).startswith("roles: at least one role must have tracked: true")
    raw["roles"]["chief"] = {"command": "python chief.py"}
    assert JobSpec.from_dict(raw).roles["worker"].tracked is False


# ---- YAML text and files --------------------------------------------------------------------


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("name: job\nroles:\n  worker: {command: x\n")
    with pytest.raises(SpecError) as info:
        JobSpec.load(path)
    assert str(info.value).startswith(f"{path}:4:1: invalid YAML:")


def test_yaml_duplicate_key_is_an_error() -> None:
    text = "name: job\nroles:\n  worker: {command: a}\n  worker: {command: b}\n"
    with pytest.raises(SpecError) as info:
        JobSpec.from_yaml_text(text, source="job.yaml")
    assert str(info.value) == (
        "job.yaml:4:3: invalid YAML: while reading a mapping, found duplicate key 'worker'"
    )


def test_yaml_anchors_and_merge_keys_still_work() -> None:
    text = textwrap.dedent(
        """\
        name: job
        roles:
          worker: &base {command: python train.py, instances: 2}
          evaluator:
            <<: *base
            instances: 1
        """
    )
    spec = JobSpec.from_yaml_text(text)
    assert spec.roles["evaluator"].command == "python train.py"
    assert spec.roles["evaluator"].instances == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "job.yaml: the job spec is empty"),
        ("# nothing\n", "job.yaml: the job spec is empty"),
        ("- name: job\n", "job.yaml: the job spec must be a mapping of fields"),
        ("just text", "job.yaml: the job spec must be a mapping of fields"),
    ],
)
def test_yaml_document_must_be_a_mapping(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=f"^{message}"):
        JobSpec.from_yaml_text(text, source="job.yaml")


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError, match=r"nope\.yaml: cannot read the job spec: No such file"):
        JobSpec.load(path)


# ---- overrides ------------------------------------------------------------------------------


def test_parse_set_options() -> None:
    assert parse_set_options(["roles.worker.instances=4", "name=a=b", "queue="]) == {
        "roles.worker.instances": "4",
        "name": "a=b",
        "queue": "",
    }
    with pytest.raises(UsageError, match=r"--set 'oops': expected KEY=VALUE"):
        parse_set_options(["oops"])
    with pytest.raises(UsageError):
        parse_set_options(["=4"])


def test_override_values_are_read_as_yaml() -> None:
    raw = apply_overrides(
        minimal(),
        {
            "roles.worker.instances": "4",
            "tags": "[a, b]",
            "scheduling.gang": "false",
            "roles.worker.resources.memory": "4 GiB",
            "node_label": "",
            "environment.env.SEED": '"7"',
            "mounts": "[{source: /d, path: data}]",
        },
    )
    spec = JobSpec.from_dict(raw)
    assert spec.roles["worker"].instances == 4
    assert spec.tags == ("a", "b")
    assert spec.scheduling.gang is False
    assert spec.roles["worker"].resources.memory_mib == 4096
    assert spec.node_label == ""
    assert spec.environment.env == {"SEED": "7"}
    assert spec.mounts == (Mount(source="/d", path="data"),)


def test_overrides_of_string_fields_keep_the_text() -> None:
    raw = apply_overrides(
        minimal(),
        {
            "environment.env.SEED": "7",
            "roles.worker.env.DEBUG": "true",
            "roles.worker.command": "echo a: b",
            "name": "2024",
            "queue": "'quoted'",
        },
    )
    spec = JobSpec.from_dict(raw)
    assert spec.environment.env == {"SEED": "7"}
    assert spec.roles["worker"].env == {"DEBUG": "true"}
    assert spec.roles["worker"].command == "echo a: b"
    assert (spec.name, spec.queue) == ("2024", "quoted")


def test_overrides_do_not_touch_the_input() -> None:
    raw = minimal()
    apply_overrides(raw, {"roles.worker.instances": "4"})
    assert raw == minimal()


def test_overrides_create_intermediate_mappings() -> None:
    raw = apply_overrides(minimal(), {"roles.ps.command": "python ps.py", "retry.policy": "never"})
    spec = JobSpec.from_dict(raw)
    assert list(spec.roles) == ["worker", "ps"]
    assert spec.retry.policy is RetryPolicy.NEVER


def test_override_of_a_new_role_without_command_fails_at_validation() -> None:
    raw = apply_overrides(minimal(), {"roles.ps.instances": "1"})
    assert error_of(raw).startswith("roles.ps.command: required field is missing")


def test_override_names_under_files_may_contain_dots() -> None:
    raw = apply_overrides(minimal(), {"files.train.py": "src/train.py"})
    assert JobSpec.from_dict(raw, "/p").files == {"train.py": "/p/src/train.py"}


def test_override_list_items_by_index() -> None:
    raw = minimal() | {"mounts": [{"source": "/d", "path": "data"}]}
    for key in ("mounts.0.mode", "mounts[0].mode"):
        spec = JobSpec.from_dict(apply_overrides(raw, {key: "rw"}))
        assert spec.mounts[0].mode is MountMode.RW
    with pytest.raises(SpecError, match=r"^mounts\[3\]: no such entry; mounts has 1"):
        apply_overrides(raw, {"mounts.3.mode": "rw"})
    with pytest.raises(SpecError, match=r"^mounts\.x: expected a list index"):
        apply_overrides(raw, {"mounts.x.mode": "rw"})


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            "roles.worker.instnaces",
            "roles.worker.instnaces: unknown field; did you mean 'instances'?",
        ),
        ("retyr.max_attempts", "retyr: unknown field; did you mean 'retry'?"),
        ("scheduling.gang.x", "scheduling.gang: holds a single value"),
        ("name.first", "name: holds a single value"),
        ("roles..instances", "roles..instances: not a field path"),
    ],
)
def test_override_unknown_keys(key: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        apply_overrides(minimal(), {key: "4"})
    assert str(info.value).startswith(message)


def test_override_through_a_non_mapping_value() -> None:
    raw = minimal() | {"retry": [1]}
    with pytest.raises(SpecError, match=r"^retry: must be a mapping to set 'retry.policy'"):
        apply_overrides(raw, {"retry.policy": "never"})


def test_library_overrides_may_be_values(tmp_path: Path) -> None:
    # JOBSPEC.md's library example passes an int.
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(minimal()))
    spec = JobSpec.load(path, overrides={"roles.worker.instances": 4, "name": "run-2"})
    assert (spec.roles["worker"].instances, spec.name) == (4, "run-2")


def test_yaml_text_with_overrides() -> None:
    spec = JobSpec.from_yaml_text(CONTRACT_EXAMPLE, "/p", {"roles.worker.instances": "3"})
    assert spec.world_size == 3
    with pytest.raises(SpecError, match="did you mean 'instances'"):
        JobSpec.from_yaml_text(CONTRACT_EXAMPLE, "/p", {"roles.worker.instance": "3"})


# ---- tasks and ranks ------------------------------------------------------------------------


def ranked_spec() -> JobSpec:
    raw = {
        "name": "tf",
        "roles": {
            "worker": {"command": "w", "instances": 2},
            "ps": {"command": "p", "instances": 2, "tracked": False},
            "chief": {"command": "c"},
            "evaluator": {"command": "e", "node_label": "eval"},
        },
        "node_label": "gpu",
    }
    return JobSpec.from_dict(raw)


def test_rank_order_is_chief_then_spec_order_then_index() -> None:
    spec = ranked_spec()
    assert spec.role_order() == ["chief", "worker", "ps", "evaluator"]
    assert [str(task) for task in spec.tasks()] == [
        "chief:0",
        "worker:0",
        "worker:1",
        "ps:0",
        "ps:1",
        "evaluator:0",
    ]
    assert spec.world_size == 6
    assert [spec.rank(task) for task in spec.tasks()] == list(range(6))


def test_rank_of_unknown_task() -> None:
    with pytest.raises(UsageError, match=r"task worker:2: no such task; tasks are chief:0\.\.0"):
        ranked_spec().rank(TaskId("worker", 2))


def test_node_label_for_inherits_the_job_default() -> None:
    spec = ranked_spec()
    assert spec.node_label_for("worker") == "gpu"
    assert spec.node_label_for("evaluator") == "eval"


def test_task_id_parse_and_str() -> None:
    assert TaskId.parse("worker:0") == TaskId("worker", 0)
    assert str(TaskId.parse("ps:12")) == "ps:12"
    for bad in ("worker", "worker:", ":0", "worker:-1", "Worker:0", "worker:x"):
        with pytest.raises(UsageError, match=r"expected ROLE:INDEX, e\.g\. worker:0"):
            TaskId.parse(bad)


def test_spec_objects_are_frozen() -> None:
    spec = JobSpec.from_dict(minimal())
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]

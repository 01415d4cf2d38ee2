"""The job spec (JOBSPEC.md, "Job spec"): frozen dataclasses, parsed and checked in one place.

Every type mirrors one YAML mapping and has ``from_dict(raw, path)`` (checks and converts,
raising :class:`~client.errors.SpecError`) and ``to_dict()`` (YAML field names; sizes as int
MiB, durations as seconds; JSON/YAML-safe; parses back to an equal object)::

    JobSpec ── environment: Environment
            ├─ mounts: tuple[Mount, ...]
            ├─ roles: dict[str, Role] ── resources: Resources
            ├─ retry: Retry
            ├─ scheduling: Scheduling
            └─ appmaster: AppMasterSpec ── resources: Resources

Error messages start with the dotted path of the field (``mounts[1].path``,
``roles.worker.resources.gpus``), say what was found and what is allowed, and suggest a close
name for an unknown key. A field that is absent or null takes its default.

No validation library on purpose: this module is also imported inside containers, and it reads
more plainly as small checking functions than as a schema DSL. Nothing here touches the cluster
or the file system beyond reading the YAML file in :meth:`JobSpec.load`; checks that need the
cluster live in the preflight module.
"""

from __future__ import annotations

import copy
import difflib
import enum
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from client.errors import SpecError, UsageError
from client.units import describe_value, parse_duration_s, parse_size_mib

__all__ = [
    "CHIEF_ROLE",
    "SPEC_VERSION",
    "AppMasterSpec",
    "Environment",
    "Framework",
    "JobSpec",
    "Mount",
    "MountMode",
    "Resources",
    "Retry",
    "RetryPolicy",
    "Role",
    "Scheduling",
    "TaskId",
    "apply_overrides",
    "parse_set_options",
]

SPEC_VERSION = 1
CHIEF_ROLE = "chief"  # ranked first (JOBSPEC.md, "Vocabulary")

_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_ROLE_RE = re.compile(r"[a-z][a-z0-9_-]*")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_RESERVED_ENV_PREFIX = "DLSUBMIT_"  # the task environment set by dlsubmit itself

_T = TypeVar("_T")
_E = TypeVar("_E", bound=enum.StrEnum)


class Framework(enum.StrEnum):
    """Which distributed-training environment the tasks get (JOBSPEC.md, "What a task sees")."""

    PYTORCH = "pytorch"
    TENSORFLOW = "tensorflow"
    HOROVOD = "horovod"
    GENERIC = "generic"


class MountMode(enum.StrEnum):
    """How an HDFS path is mounted into the working dir."""

    RO = "ro"  # localized (and cached) by the NodeManager
    RW = "rw"  # synced back to HDFS periodically and at task exit


class RetryPolicy(enum.StrEnum):
    """Which failed attempts are retried (JOBSPEC.md, "Failure categories")."""

    SMART = "smart"  # by failure category
    ALWAYS = "always"  # every category but SPEC_INVALID, USER_CANCELLED, DEADLINE_EXCEEDED
    NEVER = "never"


# --------------------------------------------------------------------------------------------
# Small checking helpers. Each takes the dotted path of the value it checks.


def _at(path: str, key: str | int) -> str:
    """The path of ``key`` inside ``path``: ``roles`` + ``worker`` → ``roles.worker``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _unknown_field(path: str, key: str, allowed: Iterable[str]) -> SpecError:
    """The error for a key the schema does not have, with a difflib suggestion."""
    choices = sorted(allowed)
    close = difflib.get_close_matches(key, choices, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(choices)}"
    return SpecError(f"{_at(path, key)}: unknown field; {hint}")


def _mapping(raw: Any, path: str, allowed: Sequence[str] | None = None) -> dict[str, Any]:
    """Check ``raw`` is a mapping with string keys (null reads as empty) and no unknown keys."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        where = path or "spec"
        raise SpecError(f"{where}: must be a mapping (key: value), got {describe_value(raw)}")
    for key in raw:
        if not isinstance(key, str):
            raise SpecError(f"{path or 'spec'}: keys must be strings, got {describe_value(key)}")
        if allowed is not None and key not in allowed:
            raise _unknown_field(path, key, allowed)
    return dict(raw)


def _required(data: Mapping[str, Any], key: str, path: str, example: str) -> Any:
    """The value of a field that has no default."""
    value = data.get(key)
    if value is None:
        raise SpecError(f"{_at(path, key)}: required field is missing, e.g. {example}")
    return value


def _string(value: Any, path: str, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise SpecError(f"{path}: must be a string, got {describe_value(value)}")
    if not allow_empty and not value.strip():
        raise SpecError(f"{path}: must be a non-empty string, got {describe_value(value)}")
    return value


def _integer(value: Any, path: str, minimum: int) -> int:
    # bool is an int subclass; `instances: true` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{path}: must be an integer >= {minimum}, got {describe_value(value)}")
    return value


def _boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{path}: must be true or false, got {describe_value(value)}")
    return value


def _choice(value: Any, path: str, kind: type[_E]) -> _E:
    allowed = [member.value for member in kind]
    if isinstance(value, str) and value in allowed:
        return kind(value)
    message = f"{path}: must be one of {', '.join(allowed)}, got {describe_value(value)}"
    close = difflib.get_close_matches(str(value).lower(), allowed, n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    raise SpecError(message)


def _size_mib(value: Any, path: str) -> int:
    mib = parse_size_mib(value, path)
    if mib <= 0:
        raise SpecError(f"{path}: must be a size > 0 (e.g. '2 GiB'), got {describe_value(value)}")
    return mib


def _duration_s(value: Any, path: str, *, allow_zero: bool) -> float:
    seconds = parse_duration_s(value, path)
    if seconds == 0 and not allow_zero:
        raise SpecError(f"{path}: must be a duration > 0 (e.g. '5m'), got {describe_value(value)}")
    return seconds


def _seconds(value: float) -> int | float:
    """Seconds for to_dict: ``300`` rather than ``300.0`` when whole."""
    return int(value) if value.is_integer() else value


def _string_list(value: Any, path: str, example: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise SpecError(
            f"{path}: must be a list of strings, e.g. {example}, got {describe_value(value)}"
        )
    return tuple(_string(item, _at(path, i), allow_empty=False) for i, item in enumerate(value))


def _env_name(name: str, path: str) -> str:
    if not _ENV_NAME_RE.fullmatch(name):
        raise SpecError(
            f"{path}: not a valid environment variable name "
            f"(letters, digits and '_', not starting with a digit), got {name!r}"
        )
    if name.startswith(_RESERVED_ENV_PREFIX):
        raise SpecError(f"{path}: names starting with {_RESERVED_ENV_PREFIX} are set by dlsubmit")
    return name


def _env_map(raw: Any, path: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for name, value in _mapping(raw, path).items():
        where = _at(path, name)
        _env_name(name, where)
        if not isinstance(value, str):
            # Silently turning `true` into "True" or 1.0 into "1.0" surprises; make it explicit.
            shown = describe_value(value)
            raise SpecError(f'{where}: must be a string, got {shown}; quote it: {name}: "{value}"')
        env[name] = value
    return env


def _secrets(raw: Any, path: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    names = _string_list(raw, path, "[WANDB_API_KEY]")
    return tuple(_env_name(name, _at(path, i)) for i, name in enumerate(names))


def _relative_path(value: Any, path: str) -> str:
    """A path inside the task's working dir: relative, normalised, never escaping it."""
    text = _string(value, path, allow_empty=False)
    normal = posixpath.normpath(text)
    if posixpath.isabs(normal) or normal == "." or normal.split("/")[0] == "..":
        raise SpecError(
            f"{path}: must be a path relative to the working dir, without '..', got {text!r}"
        )
    return normal


def _local_path(value: str, base_dir: Path) -> str:
    """A local path made absolute against the spec file's directory; URIs are kept as they are."""
    if _SCHEME_RE.match(value):
        return value
    return os.path.abspath(os.path.join(base_dir, os.path.expanduser(value)))


def _overlaps(first: str, second: str) -> bool:
    """True when one working-dir path is the other or lies inside it."""
    return first == second or first.startswith(second + "/") or second.startswith(first + "/")


# --------------------------------------------------------------------------------------------
# The spec types, leaves first.


@dataclass(frozen=True)
class Resources:
    """What one container asks YARN for (``resources: {memory: 2 GiB, vcores: 1, gpus: 0}``)."""

    memory_mib: int = 1024
    vcores: int = 1
    gpus: int = 0

    KEYS: ClassVar[tuple[str, ...]] = ("memory", "vcores", "gpus")

    @classmethod
    def from_dict(cls, raw: Any, path: str) -> Resources:
        """Parse a ``resources`` mapping.

        Args:
            raw: the mapping from YAML (null means all defaults).
            path: its dotted path, e.g. ``roles.worker.resources``.

        Raises:
            SpecError: a field is unknown or out of range.
        """
        data = _mapping(raw, path, cls.KEYS)
        memory, vcores, gpus = (data.get(key) for key in cls.KEYS)
        return cls(
            memory_mib=cls.memory_mib if memory is None else _size_mib(memory, _at(path, "memory")),
            vcores=cls.vcores if vcores is None else _integer(vcores, _at(path, "vcores"), 1),
            gpus=cls.gpus if gpus is None else _integer(gpus, _at(path, "gpus"), 0),
        )

    def to_dict(self) -> dict[str, Any]:
        """YAML form; memory as int MiB."""
        return {"memory": self.memory_mib, "vcores": self.vcores, "gpus": self.gpus}


@dataclass(frozen=True)
class Environment:
    """The software every task runs with: an interpreter, a packed env or a Docker image.

    Exactly one of ``python``/``archive``/``image`` is set after parsing: ``python`` is
    ``"python3"`` unless the spec chose an archive or an image.

    Attributes:
        python: interpreter already installed on every node.
        archive: packed environment; an ``hdfs://`` URI, or an absolute local path (a relative
            one in the spec is resolved against the spec file's directory).
        image: Docker image for YARN's Docker runtime.
        env: variables for every task.
        secrets: names of variables read from the submitter's environment.
    """

    python: str | None = "python3"
    archive: str | None = None
    image: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()

    KEYS: ClassVar[tuple[str, ...]] = ("python", "archive", "image", "env", "secrets")
    _RUNTIMES: ClassVar[tuple[str, ...]] = ("python", "archive", "image")

    @classmethod
    def from_dict(
        cls, raw: Any, path: str = "environment", base_dir: str | os.PathLike[str] | None = None
    ) -> Environment:
        """Parse an ``environment`` mapping.

        Args:
            raw: the mapping from YAML (null means all defaults).
            path: its dotted path.
            base_dir: directory a relative local ``archive`` is resolved against (default: cwd).

        Raises:
            SpecError: more than one runtime, or a bad field.
        """
        data = _mapping(raw, path, cls.KEYS)
        chosen = [key for key in cls._RUNTIMES if data.get(key) is not None]
        if len(chosen) > 1:
            raise SpecError(
                f"{path}: set at most one of python, archive, image; got {' and '.join(chosen)}"
            )
        runtime = {key: _string(data[key], _at(path, key), allow_empty=False) for key in chosen}
        if "archive" in runtime:
            runtime["archive"] = _local_path(runtime["archive"], Path(base_dir or Path.cwd()))
        return cls(
            python=runtime.get("python", None if runtime else "python3"),
            archive=runtime.get("archive"),
            image=runtime.get("image"),
            env=_env_map(data.get("env"), _at(path, "env")),
            secrets=_secrets(data.get("secrets"), _at(path, "secrets")),
        )

    @property
    def kind(self) -> str:
        """Which runtime the tasks use: ``"image"``, ``"archive"`` or ``"python"``."""
        if self.image is not None:
            return "image"
        return "archive" if self.archive is not None else "python"

    def to_dict(self) -> dict[str, Any]:
        """YAML form; only the runtime in use is written."""
        value = getattr(self, self.kind)
        return {self.kind: value, "env": dict(self.env), "secrets": list(self.secrets)}


@dataclass(frozen=True)
class Mount:
    """An HDFS path made visible in every task's working dir.

    Attributes:
        source: ``hdfs://...`` URI or absolute HDFS path.
        path: normalised path relative to the working dir.
        mode: ``ro`` (localized, cached) or ``rw`` (synced back).
        sync_interval_s: how often an rw mount is synced back; unused for ro mounts.
    """

    source: str
    path: str
    mode: MountMode = MountMode.RO
    sync_interval_s: float = 60.0

    KEYS: ClassVar[tuple[str, ...]] = ("source", "path", "mode", "sync_interval")

    @classmethod
    def from_dict(cls, raw: Any, path: str) -> Mount:
        """Parse one item of ``mounts``.

        Args:
            raw: the mapping from YAML.
            path: its dotted path, e.g. ``mounts[0]``.

        Raises:
            SpecError: a bad source or path, or ``sync_interval`` on an ro mount.
        """
        data = _mapping(raw, path, cls.KEYS)
        if not data:
            raise SpecError(
                f"{path}: must be a mapping with source and path, got {describe_value(raw)}"
            )
        source = _string(
            _required(data, "source", path, "source: hdfs:///datasets/mnist"), _at(path, "source")
        )
        if not (source.startswith("hdfs://") or source.startswith("/")):
            raise SpecError(
                f"{_at(path, 'source')}: must be an HDFS path, 'hdfs://...' or an absolute "
                f"path like '/datasets/mnist', got {source!r}"
            )
        raw_mode = data.get("mode")
        mode = cls.mode if raw_mode is None else _choice(raw_mode, _at(path, "mode"), MountMode)
        interval = data.get("sync_interval")
        if interval is not None and mode is not MountMode.RW:
            raise SpecError(
                f"{_at(path, 'sync_interval')}: only rw mounts are synced back; "
                "remove it or set mode: rw"
            )
        return cls(
            source=source,
            path=_relative_path(_required(data, "path", path, "path: data"), _at(path, "path")),
            mode=mode,
            sync_interval_s=cls.sync_interval_s
            if interval is None
            else _duration_s(interval, _at(path, "sync_interval"), allow_zero=False),
        )

    def to_dict(self) -> dict[str, Any]:
        """YAML form; ``sync_interval`` (seconds) only for rw mounts."""
        data: dict[str, Any] = {"source": self.source, "path": self.path, "mode": self.mode.value}
        if self.mode is MountMode.RW:
            data["sync_interval"] = _seconds(self.sync_interval_s)
        return data


@dataclass(frozen=True)
class Role:
    """A group of identical tasks (``worker``, ``ps``, ``chief``, ...).

    Attributes:
        name: the key under ``roles``.
        command: shell command each task runs.
        instances: number of tasks.
        resources: what each task's container asks for.
        env: variables for this role's tasks (on top of ``environment.env``).
        node_label: node-label expression; None means the job's ``node_label``.
        tracked: whether the job waits for these tasks (false e.g. for parameter servers).
    """

    name: str
    command: str
    instances: int = 1
    resources: Resources = field(default_factory=Resources)
    env: dict[str, str] = field(default_factory=dict)
    node_label: str | None = None
    tracked: bool = True

    KEYS: ClassVar[tuple[str, ...]] = (
        "instances",
        "resources",
        "command",
        "env",
        "node_label",
        "tracked",
    )

    @classmethod
    def from_dict(cls, raw: Any, path: str, *, name: str) -> Role:
        """Parse one role.

        Args:
            raw: the role's mapping from YAML.
            path: its dotted path, e.g. ``roles.worker``.
            name: the role's key.

        Raises:
            SpecError: a bad name or field.
        """
        if not _ROLE_RE.fullmatch(name):
            raise SpecError(
                f"{path}: role names must match [a-z][a-z0-9_-]* "
                f"(a lower-case letter first), got {name!r}"
            )
        data = _mapping(raw, path, cls.KEYS)
        example = "command: python train.py"
        command = _string(_required(data, "command", path, example), _at(path, "command"))
        if not command.strip():
            raise SpecError(f"{_at(path, 'command')}: must be a non-empty shell command")
        instances, node_label, tracked = (
            data.get(k) for k in ("instances", "node_label", "tracked")
        )
        return cls(
            name=name,
            command=command,
            instances=1 if instances is None else _integer(instances, _at(path, "instances"), 1),
            resources=Resources.from_dict(data.get("resources"), _at(path, "resources")),
            env=_env_map(data.get("env"), _at(path, "env")),
            node_label=None if node_label is None else _string(node_label, _at(path, "node_label")),
            tracked=True if tracked is None else _boolean(tracked, _at(path, "tracked")),
        )

    def to_dict(self) -> dict[str, Any]:
        """YAML form, without the name (it is the key under ``roles``)."""
        data: dict[str, Any] = {
            "instances": self.instances,
            "resources": self.resources.to_dict(),
            "command": self.command,
            "env": dict(self.env),
            "tracked": self.tracked,
        }
        if self.node_label is not None:
            data["node_label"] = self.node_label
        return data


@dataclass(frozen=True)
class Retry:
    """When a failed attempt is followed by another one.

    Attributes:
        max_attempts: attempts whose failure counts, the first run included.
        max_infra_retries: extra attempts for uncounted (infrastructure) failures.
        policy: which failures are retried.
        backoff_s: wait before the next attempt.
    """

    max_attempts: int = 3
    max_infra_retries: int = 10
    policy: RetryPolicy = RetryPolicy.SMART
    backoff_s: float = 10.0

    KEYS: ClassVar[tuple[str, ...]] = ("max_attempts", "max_infra_retries", "policy", "backoff")

    @classmethod
    def from_dict(cls, raw: Any, path: str = "retry") -> Retry:
        """Parse the ``retry`` mapping (null means all defaults).

        Raises:
            SpecError: a field is unknown or out of range.
        """
        data = _mapping(raw, path, cls.KEYS)
        attempts, infra, policy, backoff = (data.get(key) for key in cls.KEYS)
        return cls(
            max_attempts=cls.max_attempts
            if attempts is None
            else _integer(attempts, _at(path, "max_attempts"), 1),
            max_infra_retries=cls.max_infra_retries
            if infra is None
            else _integer(infra, _at(path, "max_infra_retries"), 0),
            policy=cls.policy
            if policy is None
            else _choice(policy, _at(path, "policy"), RetryPolicy),
            backoff_s=cls.backoff_s
            if backoff is None
            else _duration_s(backoff, _at(path, "backoff"), allow_zero=True),
        )

    def to_dict(self) -> dict[str, Any]:
        """YAML form; backoff in seconds."""
        return {
            "max_attempts": self.max_attempts,
            "max_infra_retries": self.max_infra_retries,
            "policy": self.policy.value,
            "backoff": _seconds(self.backoff_s),
        }


@dataclass(frozen=True)
class Scheduling:
    """How an attempt's containers are obtained and how long things may take.

    Attributes:
        gang: run an attempt only when every task has a container.
        allocation_timeout_s: longest wait for the containers (then ALLOCATION_TIMEOUT).
        registration_timeout_s: longest wait for every task to report to the AppMaster.
        max_runtime_s: longest an attempt may run; 0 means unlimited.
    """

    gang: bool = True
    allocation_timeout_s: float = 300.0
    registration_timeout_s: float = 120.0
    max_runtime_s: float = 0.0

    KEYS: ClassVar[tuple[str, ...]] = (
        "gang",
        "allocation_timeout",
        "registration_timeout",
        "max_runtime",
    )

    @classmethod
    def from_dict(cls, raw: Any, path: str = "scheduling") -> Scheduling:
        """Parse the ``scheduling`` mapping (null means all defaults).

        Only ``max_runtime`` may be 0 (unlimited); a zero timeout would fail every attempt.

        Raises:
            SpecError: a field is unknown or out of range.
        """
        data = _mapping(raw, path, cls.KEYS)
        gang, allocation, registration, runtime = (data.get(key) for key in cls.KEYS)
        return cls(
            gang=cls.gang if gang is None else _boolean(gang, _at(path, "gang")),
            allocation_timeout_s=cls.allocation_timeout_s
            if allocation is None
            else _duration_s(allocation, _at(path, "allocation_timeout"), allow_zero=False),
            registration_timeout_s=cls.registration_timeout_s
            if registration is None
            else _duration_s(registration, _at(path, "registration_timeout"), allow_zero=False),
            max_runtime_s=cls.max_runtime_s
            if runtime is None
            else _duration_s(runtime, _at(path, "max_runtime"), allow_zero=True),
        )

    def to_dict(self) -> dict[str, Any]:
        """YAML form; durations in seconds."""
        return {
            "gang": self.gang,
            "allocation_timeout": _seconds(self.allocation_timeout_s),
            "registration_timeout": _seconds(self.registration_timeout_s),
            "max_runtime": _seconds(self.max_runtime_s),
        }


@dataclass(frozen=True)
class AppMasterSpec:
    """The AppMaster's own container (it never gets a GPU)."""

    resources: Resources = field(default_factory=Resources)

    KEYS: ClassVar[tuple[str, ...]] = ("resources",)

    @classmethod
    def from_dict(cls, raw: Any, path: str = "appmaster") -> AppMasterSpec:
        """Parse the ``appmaster`` mapping (null means all defaults).

        Raises:
            SpecError: a bad resource, or gpus > 0.
        """
        data = _mapping(raw, path, cls.KEYS)
        resources = Resources.from_dict(data.get("resources"), _at(path, "resources"))
        if resources.gpus:
            where = _at(_at(path, "resources"), "gpus")
            raise SpecError(f"{where}: must be 0, the AppMaster uses no GPU, got {resources.gpus}")
        return cls(resources=resources)

    def to_dict(self) -> dict[str, Any]:
        """YAML form."""
        return {"resources": self.resources.to_dict()}


@dataclass(frozen=True)
class TaskId:
    """One task of a job: ``worker:0``.

    Attributes:
        role: the role's name.
        index: 0-based index within the role.
    """

    role: str
    index: int

    def __str__(self) -> str:
        """``worker:0``, the form the CLI and the logs use."""
        return f"{self.role}:{self.index}"

    @classmethod
    def parse(cls, text: str) -> TaskId:
        """Parse ``ROLE:INDEX``.

        Raises:
            UsageError: ``text`` is not of that form.
        """
        role, sep, index = text.partition(":")
        if not (sep and _ROLE_RE.fullmatch(role) and index.isdigit() and index.isascii()):
            raise UsageError(f"task {text!r}: expected ROLE:INDEX, e.g. worker:0")
        return cls(role, int(index))


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """A whole job spec, validated; see JOBSPEC.md for the meaning of each field.

    Build one with :meth:`load` (a file), :meth:`from_yaml_text` or :meth:`from_dict`.
    ``files`` values and a local ``environment.archive`` are absolute local paths.
    """

    spec_version: int = SPEC_VERSION
    name: str
    framework: Framework = Framework.GENERIC
    queue: str = "default"
    tags: tuple[str, ...] = ()
    node_label: str = ""
    environment: Environment = field(default_factory=Environment)
    files: dict[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    roles: dict[str, Role]
    retry: Retry = field(default_factory=Retry)
    scheduling: Scheduling = field(default_factory=Scheduling)
    appmaster: AppMasterSpec = field(default_factory=AppMasterSpec)

    KEYS: ClassVar[tuple[str, ...]] = (
        "spec_version",
        "name",
        "framework",
        "queue",
        "tags",
        "node_label",
        "environment",
        "files",
        "mounts",
        "roles",
        "retry",
        "scheduling",
        "appmaster",
    )

    # ---- construction ----------------------------------------------------------------------

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None
    ) -> JobSpec:
        """Read, override and validate a job spec file.

        Args:
            path: the YAML file; relative local paths inside it are resolved against its
                directory.
            overrides: ``--set`` style dotted keys → values (see :func:`apply_overrides`).

        Raises:
            SpecError: the file cannot be read, is not valid YAML, or is not a valid spec.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise SpecError(f"{os.fspath(path)}: cannot read the job spec: {reason}") from exc
        base_dir = Path(path).absolute().parent
        return cls.from_yaml_text(text, base_dir, overrides, source=os.fspath(path))

    @classmethod
    def from_yaml_text(
        cls,
        text: str,
        base_dir: str | os.PathLike[str] | None = None,
        overrides: Mapping[str, Any] | None = None,
        *,
        source: str = "<spec>",
    ) -> JobSpec:
        """Parse, override and validate a job spec given as YAML text.

        Args:
            text: the YAML document.
            base_dir: directory relative local paths are resolved against (default: cwd).
            overrides: dotted keys → values (see :func:`apply_overrides`).
            source: name of the text in YAML syntax errors (a file name).

        Raises:
            SpecError: invalid YAML (message ``<source>:<line>:<column>: invalid YAML: ...``)
                or an invalid spec.
        """
        raw = _parse_yaml(text, source)
        if raw is None:
            raise SpecError(f"{source}: the job spec is empty; it needs at least name and roles")
        if not isinstance(raw, dict):
            raise SpecError(
                f"{source}: the job spec must be a mapping of fields (name, roles, ...), "
                f"got {describe_value(raw)}"
            )
        if overrides:
            raw = apply_overrides(raw, overrides)
        return cls.from_dict(raw, base_dir)

    @classmethod
    def from_dict(cls, raw: Any, base_dir: str | os.PathLike[str] | None = None) -> JobSpec:
        """Validate a job spec given as a dict (parsed YAML, or :meth:`to_dict` output).

        Args:
            raw: the spec's top-level mapping.
            base_dir: directory relative local paths are resolved against (default: cwd).

        Raises:
            SpecError: the first problem found, its message starting with the field path.
        """
        data = _mapping(raw, "", cls.KEYS)
        base = Path(base_dir or Path.cwd())
        version = data.get("spec_version", SPEC_VERSION)
        if isinstance(version, bool) or version != SPEC_VERSION:
            raise SpecError(
                f"spec_version: must be {SPEC_VERSION} (the only version this dlsubmit knows), "
                f"got {describe_value(version)}"
            )
        name = _string(_required(data, "name", "", "name: mnist-ddp"), "name")
        if not _NAME_RE.fullmatch(name):
            raise SpecError(f"name: must be 1-64 of [A-Za-z0-9._-], got {name!r}")
        files = _files(data.get("files"), base)
        mounts = _mounts(data.get("mounts"), files)
        return cls(
            spec_version=SPEC_VERSION,
            name=name,
            framework=_optional(data, "framework", Framework.GENERIC, _framework),
            queue=_optional(data, "queue", "default", _queue),
            tags=_optional(data, "tags", (), _tags),
            node_label=_optional(data, "node_label", "", _string),
            environment=Environment.from_dict(data.get("environment"), "environment", base),
            files=files,
            mounts=mounts,
            roles=_roles(data.get("roles")),
            retry=Retry.from_dict(data.get("retry")),
            scheduling=Scheduling.from_dict(data.get("scheduling")),
            appmaster=AppMasterSpec.from_dict(data.get("appmaster")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data with JOBSPEC.md's field names; :meth:`from_dict` reads it back.

        Every field is written, defaults included, so a stored spec means the same thing even
        if a later dlsubmit changes a default.
        """
        return {
            "spec_version": self.spec_version,
            "name": self.name,
            "framework": self.framework.value,
            "queue": self.queue,
            "tags": list(self.tags),
            "node_label": self.node_label,
            "environment": self.environment.to_dict(),
            "files": dict(self.files),
            "mounts": [mount.to_dict() for mount in self.mounts],
            "roles": {name: role.to_dict() for name, role in self.roles.items()},
            "retry": self.retry.to_dict(),
            "scheduling": self.scheduling.to_dict(),
            "appmaster": self.appmaster.to_dict(),
        }

    # ---- tasks and ranks --------------------------------------------------------------------

    def role_order(self) -> list[str]:
        """Role names in rank order: ``chief`` first, then the others in spec order."""
        names = list(self.roles)
        return sorted(names, key=lambda name: name != CHIEF_ROLE)  # stable: keeps spec order

    def tasks(self) -> list[TaskId]:
        """Every task, in rank order (the list index of a task is its rank)."""
        return [
            TaskId(name, index)
            for name in self.role_order()
            for index in range(self.roles[name].instances)
        ]

    def rank(self, task: TaskId) -> int:
        """The rank of ``task``.

        Raises:
            UsageError: the job has no such task.
        """
        rank = 0
        for name in self.role_order():
            instances = self.roles[name].instances
            if name == task.role and 0 <= task.index < instances:
                return rank + task.index
            rank += instances
        raise UsageError(f"task {task}: no such task; tasks are {_task_range(self)}")

    @property
    def world_size(self) -> int:
        """Number of tasks across all roles."""
        return sum(role.instances for role in self.roles.values())

    def node_label_for(self, role: str) -> str:
        """The node-label expression a role's containers ask for ("" for none)."""
        label = self.roles[role].node_label
        return self.node_label if label is None else label


# --------------------------------------------------------------------------------------------
# JobSpec field readers.


def _optional(data: Mapping[str, Any], key: str, default: _T, read: Callable[[Any, str], _T]) -> _T:
    """``read(value, key)`` for a top-level field, or ``default`` when absent or null."""
    value = data.get(key)
    return default if value is None else read(value, key)


def _framework(value: Any, path: str) -> Framework:
    return _choice(value, path, Framework)


def _queue(value: Any, path: str) -> str:
    return _string(value, path, allow_empty=False)


def _tags(value: Any, path: str) -> tuple[str, ...]:
    tags = _string_list(value, path, "[team-vision]")
    for i, tag in enumerate(tags):
        # YARN stores tags comma-joined and rejects non-ASCII or > 100 characters.
        if "," in tag or not tag.isascii() or len(tag) > 100:
            raise SpecError(
                f"{_at(path, i)}: must be ASCII, at most 100 characters, no commas, got {tag!r}"
            )
    return tags


def _files(raw: Any, base_dir: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    for dest, source in _mapping(raw, "files").items():
        where = _at("files", dest)
        normal = _relative_path(dest, where)
        local = _string(source, where, allow_empty=False)
        for other in files:
            if _overlaps(normal, other):
                raise SpecError(f"{where}: {normal!r} clashes with files.{other}")
        files[normal] = _local_path(local, base_dir)
    return files


def _mounts(raw: Any, files: Mapping[str, str]) -> tuple[Mount, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list | tuple):
        raise SpecError(
            "mounts: must be a list of mappings, e.g. [{source: hdfs:///data, path: data}], "
            f"got {describe_value(raw)}"
        )
    mounts: list[Mount] = []
    for i, item in enumerate(raw):
        mount = Mount.from_dict(item, _at("mounts", i))
        taken = [(f"mounts[{j}]", other.path) for j, other in enumerate(mounts)]
        taken += [(f"files.{dest}", dest) for dest in files]
        for owner, other_path in taken:
            if _overlaps(mount.path, other_path):
                raise SpecError(
                    f"mounts[{i}].path: {mount.path!r} clashes with {owner} ({other_path!r}); "
                    "each mount needs its own place in the working dir"
                )
        mounts.append(mount)
    return tuple(mounts)


def _roles(raw: Any) -> dict[str, Role]:
    example = "roles: {worker: {command: python train.py}}"
    if raw is None:
        raise SpecError(f"roles: required field is missing, e.g. {example}")
    data = _mapping(raw, "roles")
    if not data:
        raise SpecError(f"roles: at least one role is required, e.g. {example}")
    roles = {
        name: Role.from_dict(value, _at("roles", name), name=name) for name, value in data.items()
    }
    if not any(role.tracked for role in roles.values()):
        raise SpecError(
            "roles: at least one role must have tracked: true (the job ends when the tracked "
            f"tasks end), got tracked: false on all of {', '.join(roles)}"
        )
    return roles


def _task_range(spec: JobSpec) -> str:
    return ", ".join(f"{name}:0..{spec.roles[name].instances - 1}" for name in spec.role_order())


# --------------------------------------------------------------------------------------------
# YAML reading.


class _SpecLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys, which YAML would silently collapse.

    Two ``worker:`` entries under ``roles`` are almost always a copy-paste mistake.
    """


def _construct_mapping(loader: _SpecLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key; construct_mapping reports it properly
            break
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_SpecLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` with errors turned into ``<source>:<line>:<column>: ...``."""
    try:
        return yaml.load(text, Loader=_SpecLoader)  # a SafeLoader subclass: safe
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = ", ".join(part for part in (exc.context, exc.problem) if part)
        raise SpecError(f"{where}: invalid YAML: {problem}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: invalid YAML: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Overrides (--set KEY=VALUE).


@dataclass(frozen=True)
class _Each:
    """Schema node for a mapping with free keys (roles, env) or a list (mounts)."""

    child: Any  # a schema node
    indexed: bool = False  # True: a list, keys are integer indexes


# Leaves of the schema: a single value (or a list set as a whole), and a value that is always a
# string. A string field keeps the command-line text as typed when YAML would read it as
# something else: `--set environment.env.SEED=7` means "7", `--set roles.worker.command=echo a: b`
# means that command, not a mapping.
_VALUE = "value"
_TEXT = "text"


def _leaves(keys: Iterable[str], text: Iterable[str]) -> dict[str, Any]:
    text = set(text)
    return {key: _TEXT if key in text else _VALUE for key in keys}


_RESOURCES_SCHEMA = _leaves(Resources.KEYS, ())
_ENV_SCHEMA = _Each(_TEXT)
_SCHEMA: dict[str, Any] = {
    **_leaves(JobSpec.KEYS, ("name", "framework", "queue", "node_label")),
    "environment": {
        **_leaves(Environment.KEYS, ("python", "archive", "image")),
        "env": _ENV_SCHEMA,
    },
    "files": _Each(_TEXT),
    "mounts": _Each(_leaves(Mount.KEYS, ("source", "path", "mode")), indexed=True),
    "roles": _Each(
        {
            **_leaves(Role.KEYS, ("command", "node_label")),
            "resources": _RESOURCES_SCHEMA,
            "env": _ENV_SCHEMA,
        }
    ),
    "retry": _leaves(Retry.KEYS, ("policy",)),
    "scheduling": _leaves(Scheduling.KEYS, ()),
    "appmaster": {"resources": _RESOURCES_SCHEMA},
}


def parse_set_options(items: Iterable[str]) -> dict[str, str]:
    """Turn ``--set KEY=VALUE`` arguments into an overrides mapping (a later key wins).

    Args:
        items: e.g. ``["roles.worker.instances=4", "name=run-2"]``.

    Returns:
        ``{"roles.worker.instances": "4", "name": "run-2"}``; values are parsed later.

    Raises:
        UsageError: an item has no ``=`` or an empty key.
    """
    overrides: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. roles.worker.instances=4")
        overrides[key.strip()] = value
    return overrides


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys on a raw (unvalidated) spec; the result is then validated as usual.

    Keys follow the YAML structure: ``roles.worker.instances``, ``environment.env.SEED``,
    ``files.train.py`` (free-form names under ``files``/``env`` may contain dots) and
    ``mounts.0.path`` or ``mounts[0].path``. String values are read as YAML, so ``4`` is an int,
    ``[a, b]`` a list and ``true`` a bool; an empty string stays "". Fields that only hold
    strings (names, commands, paths, env values) keep the text as typed when YAML would read it
    as something else (``SEED=7`` is "7"). Missing intermediate mappings are created
    (``roles.ps.command=...`` starts a ``ps`` role).

    Args:
        raw: the spec's top-level mapping; not modified.
        overrides: dotted key → value (a string from the command line, or any value).

    Returns:
        A new dict with the overrides applied.

    Raises:
        SpecError: a key the schema does not have (with a suggestion), or a key that goes
            through a value that is not a mapping.
    """
    result = copy.deepcopy(dict(raw))
    for key, value in overrides.items():
        _set_path(result, key, value)
    return result


def _override_value(value: Any, *, text: bool) -> Any:
    """A command-line value read as YAML; values that are not strings are taken as they are."""
    if not isinstance(value, str) or not value.strip():
        return value  # YAML would read "" as null; an empty string is what was meant
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value  # not YAML (e.g. an unbalanced quote in a command): take it literally
    return value if text and not isinstance(parsed, str) else parsed


def _split_key(key: str) -> list[str]:
    parts = re.sub(r"\[(\d+)\]", r".\1", key.strip()).split(".")
    if not all(parts):
        raise SpecError(f"{key}: not a field path; expected e.g. roles.worker.instances")
    return parts


def _set_path(root: dict[str, Any], key: str, value: Any) -> None:
    """Walk ``key`` through the schema and the raw dict together, then assign ``value``."""
    parts = _split_key(key)
    node: Any = _SCHEMA
    target: Any = root
    path = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        slot: str | int = part
        if isinstance(node, _Each):
            child = node.child
            if node.indexed:
                slot = _list_index(target, part, path)
            elif child in (_VALUE, _TEXT):
                slot, last = ".".join(parts[i:]), True  # files.train.py: the rest is the name
        elif part in node:
            child = node[part]
        else:
            raise _unknown_field(path, part, node)
        here = _at(path, slot)
        if last:
            target[slot] = _override_value(value, text=child == _TEXT)
            return
        if child in (_VALUE, _TEXT):
            raise SpecError(f"{here}: holds a single value; {key!r} cannot be set inside it")
        target = _container(target, slot, here, child, key)
        node, path = child, here


def _list_index(target: list[Any], part: str, path: str) -> int:
    if not part.isdigit():
        raise SpecError(f"{path}.{part}: expected a list index like {path}[0]")
    index = int(part)
    if index >= len(target):
        raise SpecError(
            f"{_at(path, index)}: no such entry; {path} has {len(target)} "
            "(set the whole list instead, e.g. mounts=[{source: ..., path: ...}])"
        )
    return index


def _container(target: Any, slot: str | int, path: str, node: Any, key: str) -> Any:
    """The mapping (or list) at ``target[slot]``, created empty when absent or null."""
    want_list = isinstance(node, _Each) and node.indexed
    current = target[slot] if isinstance(slot, int) else target.get(slot)
    if current is None:
        current = [] if want_list else {}
        target[slot] = current
    if want_list and not isinstance(current, list):
        raise SpecError(f"{path}: must be a list to set {key!r}, got {describe_value(current)}")
    if not want_list and not isinstance(current, dict):
        raise SpecError(f"{path}: must be a mapping to set {key!r}, got {describe_value(current)}")
    return current

"""Lifeboat's configuration: one TOML file, validated into frozen pydantic models.

Operators edit this file by hand, often in a hurry. So every mistake in it is reported at once,
one line each, as ``<key path>: <problem>; <fix>``, in a single ``ConfigError``: never a
traceback and never pydantic's own wording. Each section (and each source, against the model of
its ``kind``) is validated separately so that the errors carry the right key path prefix.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from engine import paths
from engine.config_schedules import (
    CatalogConfig,
    CoordinationConfig,
    RetentionConfig,
    ScheduleConfig,
)
from engine.config_types import MODEL_CONFIG, AbsolutePath, Duration, NonEmptyStr, Seconds
from engine.errors import ConfigError
from engine.repository import location_problem
from engine.source_configs import (
    SourceConfig,
)

ENV_VAR = "LIFEBOAT_CONFIG"
CWD_FILE_NAME = "lifeboat.toml"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # host and source names: file names, CLI args
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")  # TOML keys that need no quotes
_M = TypeVar("_M", bound=BaseModel)


class RepositoryConfig(BaseModel):
    """Where backups are kept."""

    model_config = MODEL_CONFIG
    path: AbsolutePath = Field(examples=["/var/backups/lifeboat"])
    """The repository directory: absolute, ``~`` is expanded."""


class HostConfig(BaseModel):
    """A machine reached over SSH."""

    model_config = MODEL_CONFIG
    address: NonEmptyStr = Field(examples=["10.0.0.5"])
    """Host name or IP address."""
    port: StrictInt = Field(22, gt=0, le=65535, examples=[22])
    """SSH port."""
    user: NonEmptyStr = Field(default_factory=paths.login_name, examples=["backup"])
    """Login name on the host; defaults to the local login name."""
    identity: AbsolutePath | None = Field(None, examples=["~/.ssh/id_ed25519"])
    """Private key file; when absent, the SSH agent and default keys are used."""
    known_hosts: AbsolutePath = Field(
        default_factory=paths.default_known_hosts, examples=["~/.ssh/known_hosts"]
    )
    """known_hosts file used to verify the host key."""
    trust_on_first_use: StrictBool = Field(False, examples=[True])
    """Accept and record the host key on first connection (never a changed key)."""
    connect_timeout: Seconds = Field(10.0, examples=[10])
    """Seconds to wait for the connection and login."""
    keepalive_interval: Seconds = Field(15.0, examples=[15])
    """Seconds between SSH keepalives on an idle connection."""
    bulk_transport: Literal["auto", "openssh", "asyncssh"] = Field("auto", examples=["auto"])
    """Client for backup data: the system ``ssh`` (about 2x faster) when ``auto`` finds it."""


SOURCE_KINDS: dict[str, type[BaseModel]] = {
    model.model_fields["kind"].default: model for model in get_args(SourceConfig)
}


class TierConfig(BaseModel):
    """A group of sources with a recovery point and time objective (a "tier")."""

    model_config = MODEL_CONFIG
    rpo: Duration = Field(examples=["24h"])
    """Most data the tier may lose: a backup covering all its sources must be this fresh."""
    rto: Duration = Field(examples=["1h"])
    """Longest a restore of the tier may take (measured by drills)."""
    sources: tuple[NonEmptyStr, ...] = Field(min_length=1, examples=[["mongo", "config"]])
    """Names of the ``[sources]`` the tier covers."""


class RunbooksConfig(BaseModel):
    """Extra runbook files (restore decision trees) beside the built-in ones."""

    model_config = MODEL_CONFIG
    paths: tuple[AbsolutePath, ...] = Field((), examples=[["/etc/lifeboat/restore.toml"]])
    """Tree files; a tree with the name of a built-in one replaces it."""


class ChecklistsConfig(BaseModel):
    """Validation checklists: extra files, and the values the built-in ones name."""

    model_config = MODEL_CONFIG
    paths: tuple[AbsolutePath, ...] = Field((), examples=[["/etc/lifeboat/post-restore.toml"]])
    """Checklist files; one with the name of a built-in checklist replaces it."""
    values: dict[str, NonEmptyStr] = Field(
        default_factory=dict, examples=[{"controller": "ctl1", "mongo": "mongo"}]
    )
    """Values for the ``{name}`` placeholders in checklists (hosts, URLs, sources)."""


class RestoreConfig(BaseModel):
    """How the restore validator judges a target."""

    model_config = MODEL_CONFIG
    free_space_margin: float = Field(1.2, ge=1.0, le=1e12, allow_inf_nan=False, examples=[1.2])
    """A target needs this many times the restored size free on its disk."""


class TargetSourceConfig(BaseModel):
    """Where one source goes when restored to an alternate target."""

    model_config = MODEL_CONFIG
    host: NonEmptyStr | None = Field(None, examples=["staging1"])
    """The ``[hosts.<name>]`` to restore onto (default: the source's own host)."""
    uri: SecretStr | None = Field(None, examples=["mongodb://127.0.0.1:27017"])
    """mongo: the target server's URI, as seen from that host."""
    endpoint: NonEmptyStr | None = Field(None, examples=["127.0.0.1:2379"])
    """etcd: the target member's client address, as seen from that host."""
    data_dir: AbsolutePath | None = Field(None, examples=["/var/lib/etcd-staging"])
    """etcd: the data directory the restore goes beside."""
    directory: AbsolutePath | None = Field(None, examples=["/srv/restore"])
    """files: extract under this directory instead of the original paths."""


TARGET_FIELDS_BY_KIND = {
    "uri": "mongo",
    "endpoint": "etcd",
    "data_dir": "etcd",
    "directory": "files",
}


class TargetConfig(BaseModel):
    """An alternate restore target (a staging cluster, a new cluster)."""

    model_config = MODEL_CONFIG
    description: str = Field("", examples=["the staging cluster"])
    """Shown when choosing the target."""
    sources: dict[str, TargetSourceConfig] = Field(min_length=1)
    """Per source name: where it goes. Sources not listed cannot be restored to this target."""
    drill: StrictBool = Field(False, examples=[True])
    """A DR drill may destroy and restore this target's data (``lifeboat drill --target``)."""


class DrillConfig(BaseModel):
    """How ``lifeboat drill`` proves a restore: markers, and the checklist it runs after."""

    model_config = MODEL_CONFIG
    markers: StrictInt = Field(100, gt=0, le=10_000, examples=[100])
    """Marker records seeded per Mongo database and etcd source (files: up to 10 per directory)."""
    checklist: NonEmptyStr | None = Field(None, examples=["post-restore"])
    """A checklist whose automatic items must pass after the drill's restore."""


class Config(BaseModel):
    """A whole Lifeboat configuration file."""

    model_config = MODEL_CONFIG
    operator: NonEmptyStr = Field(default_factory=paths.login_name, examples=["alice"])
    """Name recorded in manifests and logs; defaults to the local login name."""
    repository: RepositoryConfig
    """Where backups are kept."""
    hosts: dict[str, HostConfig] = Field(default_factory=dict)
    """Hosts by name."""
    sources: dict[str, Annotated[SourceConfig, Field(discriminator="kind")]] = Field(
        default_factory=dict
    )
    """Things to back up, by name."""
    tiers: dict[str, TierConfig] = Field(default_factory=dict)
    """Tiers by name, each with RPO/RTO targets and its sources."""
    runbooks: RunbooksConfig = RunbooksConfig()
    """Extra runbook files."""
    restore: RestoreConfig = RestoreConfig()
    """Restore validator settings."""
    checklists: ChecklistsConfig = ChecklistsConfig()
    """Validation checklists."""
    targets: dict[str, TargetConfig] = Field(default_factory=dict)
    """Alternate restore targets by name."""
    drill: DrillConfig = DrillConfig()
    """DR drill settings."""
    schedules: dict[str, ScheduleConfig] = Field(default_factory=dict)
    """Backups that run by themselves (``lifeboat scheduler run``), by name."""
    retention: RetentionConfig = RetentionConfig()
    """The prune policy for backups no schedule's own policy covers."""
    coordination: CoordinationConfig | None = None
    """etcd coordination between several Lifeboat instances."""
    catalog: CatalogConfig | None = None
    """A shared MongoDB catalog of backups, checklist runs and drills."""
    path: Path | None = None
    """The file this was loaded from (not a TOML key); None when parsed from a string."""

    @model_validator(mode="after")
    def _hosts_exist(self) -> Config:
        problems = [_unknown_host(n, s.host, self.hosts) for n, s in self.sources.items()]
        if any(problems):
            raise ValueError("; ".join(p for p in problems if p))
        return self


_TOP_KEYS = tuple(key for key in Config.model_fields if key != "path")
_EXPECTED = {  # pydantic error type -> what the value must be
    **dict.fromkeys(("int_type", "int_parsing", "int_from_float"), "an integer"),
    **dict.fromkeys(("float_type", "float_parsing"), "a number"),
    **dict.fromkeys(("tuple_type", "list_type"), "a list"),
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "string_type": "a string",
    "path_type": "a path (a string)",
}


def discover_config_path(
    explicit: Path | None, env: Mapping[str, str] = os.environ, cwd: Path | None = None
) -> Path:
    """Find the config file: ``--config``, then ``$LIFEBOAT_CONFIG``, then ./lifeboat.toml,
    then the per-user config file."""
    cwd = cwd if cwd is not None else Path.cwd()
    if explicit is not None:
        return _existing(cwd / explicit.expanduser(), "--config", "leave out --config to search")
    if env.get(ENV_VAR):
        return _existing(cwd / Path(env[ENV_VAR]).expanduser(), f"${ENV_VAR}", f"unset {ENV_VAR}")
    searched = [cwd / CWD_FILE_NAME, paths.user_config_file()]
    for candidate in searched:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        [
            f"no config file found: no --config, ${ENV_VAR} is not set, and neither "
            f"{searched[0]} nor {searched[1]} exists; run `lifeboat demo` for an example, "
            f"or write {CWD_FILE_NAME}; see README"
        ]
    )


def _existing(path: Path, origin: str, alternative: str) -> Path:
    if path.is_file():
        return path
    problem = "is not a file" if path.exists() else "does not exist"
    raise ConfigError([f"{origin}: config file {path} {problem}; fix the path, or {alternative}"])


def load_config(path: Path) -> Config:
    """Read and validate the config file at ``path``; raises ``ConfigError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 (byte {exc.start}); save it as UTF-8"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror}); check the path"]) from None
    config = parse_config(text, source=str(path))
    if problem := location_problem(config.repository.path):
        raise ConfigError([f"repository.path: {problem}"])
    return config.model_copy(update={"path": path})


def parse_config(text: str, source: str = "<string>") -> Config:
    """Validate TOML text; ``source`` names it in syntax errors. Raises ``ConfigError``."""
    if text.startswith("\ufeff"):
        raise ConfigError(
            [
                f"{source}: starts with a UTF-8 byte order mark (BOM); save the file as UTF-8 "
                "without a BOM"
            ]
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_problem(source, str(exc))]) from None
    except ValueError:  # int() refuses a number of more than 4300 digits
        raise ConfigError(
            [f"{source}: a number is too long to read (thousands of digits); fix the value"]
        ) from None
    except RecursionError:
        raise ConfigError(
            [
                f"{source}: arrays or tables are nested too deeply (hundreds of levels); a "
                "Lifeboat config needs a few: fix the file"
            ]
        ) from None
    problems = [_unknown_key(_key(key), _TOP_KEYS) for key in data if key not in _TOP_KEYS]
    operator = data.get("operator")
    if operator is not None and not (isinstance(operator, str) and operator.strip()):
        problems.append(
            f'operator: must be a non-empty string, got {_show(operator)}; e.g. operator = "alice"'
        )
    repository = _validate(RepositoryConfig, data.get("repository", {}), "repository", problems)
    raw_hosts = _tables(data, "hosts", 'address = "10.0.0.5"', problems)
    hosts = {n: _validate(HostConfig, raw, f"hosts.{_key(n)}", problems) for n, raw in raw_hosts}
    sources: dict[str, BaseModel | None] = {}
    kinds = ", ".join(sorted(SOURCE_KINDS))
    for name, raw in _tables(data, "sources", 'kind = "files"', problems):
        where, kind = f"sources.{_key(name)}", raw.get("kind")
        if "kind" not in raw:
            choices = " or ".join(f'"{k}"' for k in sorted(SOURCE_KINDS))
            problems.append(f"{where}.kind: missing; set kind = {choices}")
        elif not isinstance(kind, str) or kind not in SOURCE_KINDS:
            problems.append(f"{where}.kind: unknown kind {_show(kind)}; valid kinds: {kinds}")
        else:
            sources[name] = _validate(SOURCE_KINDS[kind], raw, where, problems)
        if isinstance(raw.get("host"), str) and raw["host"]:
            problems.append(_unknown_host(name, raw["host"], hosts) or "")
    raw_tiers = _tables(data, "tiers", 'rpo = "24h"', problems)
    tiers = {n: _validate(TierConfig, raw, f"tiers.{_key(n)}", problems) for n, raw in raw_tiers}
    for name, raw in raw_tiers:
        problems.extend(_unknown_sources(f"tiers.{_key(name)}.sources", raw.get("sources"), data))
    runbooks = _validate(RunbooksConfig, data.get("runbooks", {}), "runbooks", problems)
    restore = _validate(RestoreConfig, data.get("restore", {}), "restore", problems)
    checklists = _validate(ChecklistsConfig, data.get("checklists", {}), "checklists", problems)
    raw_targets = _tables(data, "targets", 'description = "staging"', problems)
    targets = {
        n: _validate(TargetConfig, raw, f"targets.{_key(n)}", problems) for n, raw in raw_targets
    }
    problems.extend(_target_problems(raw_targets, data.get("sources", {}), hosts))
    drill = _validate(DrillConfig, data.get("drill", {}), "drill", problems)
    raw_schedules = _tables(data, "schedules", 'cron = "0 2 * * *"', problems)
    schedules = {
        n: _validate(ScheduleConfig, raw, f"schedules.{_key(n)}", problems)
        for n, raw in raw_schedules
    }
    for name, raw in raw_schedules:
        problems.extend(_unknown_sources(f"schedules.{_key(name)}.scope", raw.get("scope"), data))
    retention = _validate(RetentionConfig, data.get("retention", {}), "retention", problems)
    coordination = catalog = None
    if "coordination" in data:
        raw = data["coordination"]
        coordination = _validate(CoordinationConfig, raw, "coordination", problems)
        host = raw.get("host") if isinstance(raw, dict) else None
        if isinstance(host, str) and host and host not in hosts:
            problems.append(f"coordination.host: unknown host {_show(host)}; define [hosts.{host}]")
    if "catalog" in data:
        catalog = _validate(CatalogConfig, data["catalog"], "catalog", problems)
    problems = [p for p in problems if p]
    if problems:
        raise ConfigError(problems)
    fields = {
        "repository": repository,
        "hosts": hosts,
        "sources": sources,
        "tiers": tiers,
        "runbooks": runbooks,
        "restore": restore,
        "checklists": checklists,
        "targets": targets,
        "drill": drill,
        "schedules": schedules,
        "retention": retention,
        "coordination": coordination,
        "catalog": catalog,
    }
    config = _validate(Config, fields | ({"operator": operator} if operator else {}), "", problems)
    if config is None:  # every check above passed, so only a bug in this module gets here
        raise ConfigError(problems)
    return config


def _unknown_sources(where: str, wanted: Any, data: dict[str, Any]) -> list[str]:
    """A problem for each name in the list ``wanted`` that is not a configured source."""
    configured = data.get("sources", {}) if isinstance(data.get("sources"), dict) else {}
    known = ", ".join(sorted(configured)) or "none are configured"
    return [
        f"{where}: unknown source {_show(source)}; configured sources: {known}"
        for source in (wanted if isinstance(wanted, list) else [])
        if isinstance(source, str) and source and source not in configured
    ]


def _target_problems(
    raw_targets: list[tuple[str, Any]], raw_sources: Any, hosts: Mapping[str, object]
) -> list[str]:
    """Targets must name configured sources and hosts, with settings of the source's kind."""
    raw_sources = raw_sources if isinstance(raw_sources, dict) else {}
    problems = []
    for name, raw in raw_targets:
        entries = raw.get("sources") if isinstance(raw.get("sources"), dict) else {}
        for source, entry in entries.items():
            where = f"targets.{_key(name)}.sources.{_key(source)}"
            if source not in raw_sources:
                known = ", ".join(sorted(raw_sources)) or "none are configured"
                problems.append(f"{where}: unknown source {_show(source)}; configured: {known}")
                continue
            if not isinstance(entry, dict):
                continue
            host = entry.get("host")
            if isinstance(host, str) and host and host not in hosts:
                problems.append(f"{where}.host: unknown host {_show(host)}; define [hosts.{host}]")
            kind = (
                raw_sources[source].get("kind") if isinstance(raw_sources[source], dict) else None
            )
            for key, wanted in TARGET_FIELDS_BY_KIND.items():
                if key in entry and kind != wanted:
                    problems.append(
                        f"{where}.{key}: applies to {wanted} sources, and {source} is {kind}; "
                        "remove it"
                    )
    return problems


def _tables(
    data: dict[str, Any], section: str, example: str, problems: list[str]
) -> list[tuple[str, Any]]:
    """The ``[section.<name>]`` tables in ``data``, reporting names and values that are not."""
    value = data.get(section, {})
    if not isinstance(value, dict):
        problems.append(
            f"{section}: must be a table, got {_show(value)}; "
            f"write each entry as [{section}.<name>]"
        )
        return []
    seen: dict[str, str] = {}
    tables = []
    for name, raw in value.items():
        where = f"{section}.{_key(name)}"
        if not _NAME.fullmatch(name):
            problems.append(
                f'{where}: invalid name {_show(name)}; use letters, digits, "_", "." '
                'and "-", starting with a letter or digit'
            )
        elif (other := seen.setdefault(name.lower(), name)) != name:
            problems.append(
                f"{where}: same name as {section}.{_key(other)} apart from case; "
                "rename one (names become file names)"
            )
        if isinstance(raw, dict):
            tables.append((name, raw))
        else:
            problems.append(
                f"{where}: must be a table, got {_show(raw)}; write it as [{where}] "
                f"followed by lines like {example}"
            )
    return tables


def _validate(model: type[_M], raw: Any, prefix: str, problems: list[str]) -> _M | None:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems.extend(_describe(model, prefix, error))
        return None


def _describe(model: type[BaseModel], prefix: str, error: ErrorDetails) -> list[str]:
    """One line per problem in one pydantic error, in our words."""
    loc, kind, value, ctx = error["loc"], error["type"], error["input"], error.get("ctx", {})
    where = key_path(prefix, loc)
    field = loc[0] if loc and isinstance(loc[0], str) and loc[0] in model.model_fields else None
    examples = model.model_fields[field].examples if field else None
    example = f"{field} = {_show(examples[0])}" if examples else ""
    got = f", got {_show(value)}"
    if kind == "missing":
        return [
            f"{where}: missing; add {example} under [{prefix}]" if example else f"{where}: missing"
        ]
    if kind == "extra_forbidden":
        return [_unknown_key(where, _TOP_KEYS if model is Config else tuple(model.model_fields))]
    if kind in ("model_type", "dict_type"):
        return [f"{where}: must be a table{got}; write it as [{where}]"]
    if kind == "duplicate_path":
        return [
            f"{where}[{i}]: duplicate path {_show(path)} (already {where}[{j}]); "
            "list each path once"
            for i, path, j in ctx["duplicates"]
        ]
    if kind == "nul_path":
        return [f"{where}: {error['msg']}{got}; remove it"]
    if kind == "relative_path":
        full = examples[0] if examples else "/var/backups/lifeboat"
        full = full if isinstance(full, str) else full[0]  # the example of a list of paths
        return [f"{where}: must be an absolute path{got}; write the full path, e.g. {_show(full)}"]
    if kind in ("too_short", "string_too_short"):
        # pydantic also calls a list "too short" when its items failed: those are reported
        problem = "must not be empty" if not value else ""
    elif kind == "greater_than":
        problem = (
            f"must be a positive number{got}" if ctx["gt"] == 0 else f"must be > {ctx['gt']}{got}"
        )
    elif kind == "less_than_equal":
        limit = ctx["le"]  # a float field's limit comes as 604800.0: shown as written
        problem = f"must be at most {int(limit) if limit == int(limit) else limit}{got}"
    elif kind == "value_error":
        problem = str(ctx["error"])
    else:
        problem = f"must be {_EXPECTED[kind]}{got}" if kind in _EXPECTED else f"is invalid{got}"
    if not problem:
        return []
    return [f"{where}: {problem}; e.g. {example}" if example else f"{where}: {problem}"]


def _unknown_key(where: str, valid: Collection[str]) -> str:
    key = where.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"{where}: unknown key; {hint}valid keys: {', '.join(valid)}"


def _unknown_host(source: str, host: str, hosts: Collection[str]) -> str | None:
    if host in hosts:
        return None
    others = f" or use one of: {', '.join(_key(h) for h in sorted(hosts))}" if hosts else ""
    where = f"sources.{_key(source)}.host"
    return f"{where}: unknown host {_show(host)}; define [hosts.{_key(host)}]{others}"


def _syntax_problem(source: str, message: str) -> str:
    """tomllib's message as ``<file>: line N: <message>; <fix>``."""
    where = ""
    if match := re.search(r"\s*\(at line (\d+), column (\d+)\)$", message):
        where, message = f"line {match[1]}, column {match[2]}: ", message[: match.start()]
    elif match := re.search(r"\s*\(at end of document\)$", message):
        where, message = "end of file: ", message[: match.start()]
    # "Cannot declare ('hosts', 'db1') twice" -> "Cannot declare [hosts.db1] twice"
    message = re.sub(
        r"\(('[^']*'(?:, '[^']*')*)\)",
        lambda m: "[" + ".".join(re.findall(r"'([^']*)'", m[1])) + "]",
        message,
    )
    return f"{source}: {where}{message}; fix the TOML syntax"


def key_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    """A pydantic location as a key path: ``hosts.db1.port``, ``sources.x.paths[1]``."""
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text = f"{text}.{_key(part)}" if text else _key(part)
    return text


def _key(name: str) -> str:
    """A key as written in TOML: bare when it can be, quoted otherwise."""
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def _show(value: object, depth: int = 0) -> str:
    """A value as it would be written in TOML, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | Path):
        text = json.dumps(str(value), ensure_ascii=False)
    elif isinstance(value, list | tuple):  # deep nesting: shown as [...] past two levels
        items = ", ".join(_show(item, depth + 1) for item in value) if depth < 2 else "..."
        text = f"[{items}]"
    elif isinstance(value, dict):
        text = "a table"
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."

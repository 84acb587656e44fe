"""Lifeboat's configuration: one TOML file, validated into frozen pydantic models.

Operators edit this file by hand, often in a hurry. So every mistake in it is reported at once,
one line each, as ``<key path>: <problem>; <fix>``, in a single ``ConfigError``: never a
traceback and never pydantic's own wording. Each section (and each source, against the model of
its ``kind``) is validated separately so that the errors carry the right key path prefix.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ValidationError,
)

from engine import paths
from engine.config.encryption import EncryptionConfig
from engine.config.messages import (
    describe_error,
    quote_key,
    show_value,
    syntax_problem,
    toml_keys,
    unknown_host,
    unknown_key,
)
from engine.config.model import (
    ENVIRONMENT_MAX,
    ENVIRONMENT_PATTERN,
    REMOTE_KINDS,
    SOURCE_KINDS,
    TARGET_FIELDS_BY_KIND,
    ChecklistsConfig,
    Config,
    DrillConfig,
    HostConfig,
    RepositoryConfig,
    RestoreConfig,
    RunbooksConfig,
    TargetConfig,
    TierConfig,
)
from engine.config.notify import MetricsConfig, NotifyChannelConfig
from engine.config.schedules import (
    CatalogConfig,
    CoordinationConfig,
    RetentionConfig,
    ScheduleConfig,
)
from engine.errors import ConfigError
from engine.repo.repository import location_problem

ENV_VAR = "LIFEBOAT_CONFIG"
OPERATOR_VARIABLE = "LIFEBOAT_OPERATOR"  # who the operator is, over the file's ``operator``
CWD_FILE_NAME = "lifeboat.toml"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # host and source names: file names, CLI args
_M = TypeVar("_M", bound=BaseModel)

_TOP_KEYS = toml_keys(Config)


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
    """Validate TOML text; ``source`` names it in syntax errors. Raises ``ConfigError``.

    The operator is resolved here, once: ``$LIFEBOAT_OPERATOR``, else the file's
    ``operator``, else the login name (the model's default)."""
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
        raise ConfigError([syntax_problem(source, str(exc))]) from None
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
    problems = [unknown_key(quote_key(key), _TOP_KEYS) for key in data if key not in _TOP_KEYS]
    operator = data.get("operator")
    if operator is not None and not (isinstance(operator, str) and operator.strip()):
        problems.append(
            f"operator: must be a non-empty string, got {show_value(operator)}; "
            'e.g. operator = "alice"'
        )
    environment = data.get("environment")
    if environment is not None and not _good_environment(environment):
        problems.append(
            f"environment: must be a short label ({ENVIRONMENT_MAX} characters at most: letters, "
            f'digits, spaces, ".", "_", "-"), got {show_value(environment)}; '
            'e.g. environment = "production"'
        )
    repository = _validate(RepositoryConfig, data.get("repository", {}), "repository", problems)
    raw_hosts = _tables(data, "hosts", 'address = "10.0.0.5"', problems)
    hosts = {
        n: _validate(HostConfig, raw, f"hosts.{quote_key(n)}", problems) for n, raw in raw_hosts
    }
    sources: dict[str, BaseModel | None] = {}
    kinds = ", ".join(sorted(SOURCE_KINDS))
    for name, raw in _tables(data, "sources", 'kind = "files"', problems):
        where, kind = f"sources.{quote_key(name)}", raw.get("kind")
        if "kind" not in raw:
            choices = " or ".join(f'"{k}"' for k in sorted(SOURCE_KINDS))
            problems.append(f"{where}.kind: missing; set kind = {choices}")
        elif not isinstance(kind, str) or kind not in SOURCE_KINDS:
            problems.append(f"{where}.kind: unknown kind {show_value(kind)}; valid kinds: {kinds}")
        else:
            sources[name] = _validate(SOURCE_KINDS[kind], raw, where, problems)
        if isinstance(raw.get("host"), str) and raw["host"]:
            problems.append(unknown_host(name, raw["host"], hosts) or "")
    raw_tiers = _tables(data, "tiers", 'rpo = "24h"', problems)
    tiers = {
        n: _validate(TierConfig, raw, f"tiers.{quote_key(n)}", problems) for n, raw in raw_tiers
    }
    for name, raw in raw_tiers:
        problems.extend(
            _unknown_names(f"tiers.{quote_key(name)}.sources", raw.get("sources"), data)
        )
    runbooks = _validate(RunbooksConfig, data.get("runbooks", {}), "runbooks", problems)
    restore = _validate(RestoreConfig, data.get("restore", {}), "restore", problems)
    checklists = _validate(ChecklistsConfig, data.get("checklists", {}), "checklists", problems)
    raw_targets = _tables(data, "targets", 'description = "staging"', problems)
    targets = {
        n: _validate(TargetConfig, raw, f"targets.{quote_key(n)}", problems)
        for n, raw in raw_targets
    }
    problems.extend(_target_problems(raw_targets, data.get("sources", {}), hosts))
    drill = _validate(DrillConfig, data.get("drill", {}), "drill", problems)
    raw_schedules = _tables(data, "schedules", 'cron = "0 2 * * *"', problems)
    schedules = {
        n: _validate(ScheduleConfig, raw, f"schedules.{quote_key(n)}", problems)
        for n, raw in raw_schedules
    }
    for name, raw in raw_schedules:
        problems.extend(
            _unknown_names(f"schedules.{quote_key(name)}.scope", raw.get("scope"), data)
        )
        problems.extend(
            _unknown_names(
                f"schedules.{quote_key(name)}.copy_to", raw.get("copy_to"), data, "remotes"
            )
        )
    retention = _validate(RetentionConfig, data.get("retention", {}), "retention", problems)
    coordination = catalog = encryption = None
    if "coordination" in data:
        raw = data["coordination"]
        coordination = _validate(CoordinationConfig, raw, "coordination", problems)
        host = raw.get("host") if isinstance(raw, dict) else None
        if isinstance(host, str) and host and host not in hosts:
            problems.append(
                f"coordination.host: unknown host {show_value(host)}; define [hosts.{host}]"
            )
    if "catalog" in data:
        catalog = _validate(CatalogConfig, data["catalog"], "catalog", problems)
    if "encryption" in data:
        encryption = _validate(EncryptionConfig, data["encryption"], "encryption", problems)
    remotes: dict[str, BaseModel | None] = {}
    remote_kinds = " or ".join(f'"{k}"' for k in REMOTE_KINDS)
    for name, raw in _tables(data, "remotes", 'kind = "s3"', problems):
        where, kind = f"remotes.{quote_key(name)}", raw.get("kind")
        if not isinstance(kind, str) or kind not in REMOTE_KINDS:
            got = "missing" if kind is None else f"unknown kind {show_value(kind)}"
            problems.append(f"{where}.kind: {got}; set kind = {remote_kinds}")
        else:
            remotes[name] = _validate(REMOTE_KINDS[kind], raw, where, problems)
        if kind == "sftp" and isinstance(raw.get("host"), str) and raw["host"]:
            problems.append(unknown_host(name, raw["host"], hosts, table="remotes") or "")
    raw_channels = _tables(data, "notify", 'urls = ["json://hooks.example.com/lifeboat"]', problems)
    notify = {
        n: _validate(NotifyChannelConfig, raw, f"notify.{quote_key(n)}", problems)
        for n, raw in raw_channels
    }
    metrics = _validate(MetricsConfig, data.get("metrics", {}), "metrics", problems)
    problems = [p for p in problems if p]
    if problems:
        raise ConfigError(problems)
    fields: dict[str, object] = {
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
        "encryption": encryption,
        "remotes": remotes,
        "notify": notify,
        "metrics": metrics,
    }
    if environment is not None:
        fields["environment"] = environment
    operator = os.environ.get(OPERATOR_VARIABLE, "").strip() or operator
    config = _validate(Config, fields | ({"operator": operator} if operator else {}), "", problems)
    if config is None:  # every check above passed, so only a bug in this module gets here
        raise ConfigError(problems)
    return config


def _good_environment(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= ENVIRONMENT_MAX
        and re.fullmatch(ENVIRONMENT_PATTERN, value) is not None
    )


def _unknown_names(
    where: str, wanted: Any, data: dict[str, Any], table: str = "sources"
) -> list[str]:
    """A problem for each name in the list ``wanted`` that is not a table of ``[table]``."""
    configured = data.get(table, {}) if isinstance(data.get(table), dict) else {}
    known = ", ".join(sorted(configured)) or "none are configured"
    return [
        f"{where}: unknown {table[:-1]} {show_value(name)}; configured {table}: {known}"
        for name in (wanted if isinstance(wanted, list) else [])
        if isinstance(name, str) and name and name not in configured
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
            where = f"targets.{quote_key(name)}.sources.{quote_key(source)}"
            if source not in raw_sources:
                known = ", ".join(sorted(raw_sources)) or "none are configured"
                problems.append(
                    f"{where}: unknown source {show_value(source)}; configured: {known}"
                )
                continue
            if not isinstance(entry, dict):
                continue
            host = entry.get("host")
            if isinstance(host, str) and host and host not in hosts:
                problems.append(
                    f"{where}.host: unknown host {show_value(host)}; define [hosts.{host}]"
                )
            kind = (
                raw_sources[source].get("kind") if isinstance(raw_sources[source], dict) else None
            )
            for key, wanted in TARGET_FIELDS_BY_KIND.items():
                if key in entry and kind not in wanted:
                    problems.append(
                        f"{where}.{key}: applies to {' and '.join(wanted)} sources, and {source} "
                        f"is {kind}; remove it"
                    )
    return problems


def _tables(
    data: dict[str, Any], section: str, example: str, problems: list[str]
) -> list[tuple[str, Any]]:
    """The ``[section.<name>]`` tables in ``data``, reporting names and values that are not."""
    value = data.get(section, {})
    if not isinstance(value, dict):
        problems.append(
            f"{section}: must be a table, got {show_value(value)}; "
            f"write each entry as [{section}.<name>]"
        )
        return []
    seen: dict[str, str] = {}
    tables = []
    for name, raw in value.items():
        where = f"{section}.{quote_key(name)}"
        if not _NAME.fullmatch(name):
            problems.append(
                f'{where}: invalid name {show_value(name)}; use letters, digits, "_", "." '
                'and "-", starting with a letter or digit'
            )
        elif (other := seen.setdefault(name.lower(), name)) != name:
            problems.append(
                f"{where}: same name as {section}.{quote_key(other)} apart from case; "
                "rename one (names become file names)"
            )
        if isinstance(raw, dict):
            tables.append((name, raw))
        else:
            problems.append(
                f"{where}: must be a table, got {show_value(raw)}; write it as [{where}] "
                f"followed by lines like {example}"
            )
    return tables


def _validate(model: type[_M], raw: Any, prefix: str, problems: list[str]) -> _M | None:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems.extend(describe_error(model, prefix, error))
        return None

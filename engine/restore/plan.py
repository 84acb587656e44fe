"""What a restore will do: which artifacts go to which host, with which settings.

A request names a backup, the sources, and where they go: their original hosts, one other
host (``target_host``), or an alternate target from ``[targets.NAME]`` that maps each source
to another host, URI, endpoint or directory. Mistakes in the request that the operator must
fix before anything else (an unknown target) raise ``UsageError``; what the backup or the
target lacks becomes a failing check, so the validator's table shows it with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from engine.checks import Check
from engine.config.model import Config
from engine.config.sources import SourceConfig
from engine.errors import UsageError
from engine.repo.content import NO_KEYS, Keyring
from engine.repo.manifest import Artifact, Manifest
from engine.sources import SOURCE_CLASSES, RestoreOptions, source_from

SAFETY = "safety backup"  # the restore's step (and event source) that takes the safety backup


@dataclass(frozen=True)
class RestoreRequest:
    backup_id: str
    scope: tuple[str, ...] = ()
    target: str | None = None  # a [targets.NAME]; None: the sources' own hosts
    target_host: str | None = None  # every source onto this one configured host instead
    options: RestoreOptions = RestoreOptions()
    apply: bool = False
    confirm: tuple[str, ...] = ()
    safety_backup: bool = True
    skip_reason: str | None = None  # why the safety backup is skipped (required to skip it)
    keyring: Keyring = NO_KEYS  # the identities that open an encrypted backup


@dataclass(frozen=True)
class RestoreStep:
    source: str
    artifact: Artifact
    target_host: str
    config: SourceConfig  # the source's config with the target's settings applied
    options: RestoreOptions  # the request's options with the target's directory applied


@dataclass
class RestorePlan:
    manifest: Manifest
    target: str | None
    steps: list[RestoreStep] = field(default_factory=list)
    problems: list[Check] = field(default_factory=list)
    keyring: Keyring = NO_KEYS  # what opens the backup's files

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(step.target_host for step in self.steps))

    @property
    def confirm_names(self) -> tuple[str, ...]:
        """What the operator types to confirm: the target's name, or each target host's."""
        return (self.target,) if self.target else self.hosts

    def selection(self) -> dict[str, dict[str, Any]]:
        """What a selective restore takes of each source: its namespaces and renames (for
        the audit log and the report); empty when every source is restored whole."""
        chosen: dict[str, dict[str, Any]] = {"namespaces": {}, "renames": {}}
        for step in self.steps:
            options = step.options
            if options.namespaces:
                chosen["namespaces"][step.source] = list(options.namespaces)
            if options.ns_from and options.ns_to:
                chosen["renames"][step.source] = {"from": options.ns_from, "to": options.ns_to}
        return {key: value for key, value in chosen.items() if value}

    @staticmethod
    def selection_of(step: RestoreStep) -> list[str]:
        """What a selective restore takes of ``step``'s source, in words (nothing: all)."""
        options = step.options
        said = [f"namespaces {' '.join(options.namespaces)}"] if options.namespaces else []
        if options.ns_from and options.ns_to:
            said.append(f"renamed {options.ns_from} -> {options.ns_to}")
        return said

    def effect(self, step: RestoreStep) -> str:
        """What restoring ``step`` does to what its target holds now."""
        source = source_from(step.source, step.config)
        return source.restore_effect(step.options, self.manifest.id)

    def left_to_do(self, step: RestoreStep) -> tuple[str, ...]:
        """What is left for the operator once ``step`` is restored (etcd: bring it live)."""
        return source_from(step.source, step.config).after_restore(step.options, self.manifest.id)

    def target_config(self, config: Config) -> Config:
        """``config`` with each planned source pointed at where this plan restores it."""
        sources = dict(config.sources) | {step.source: step.config for step in self.steps}
        return config.model_copy(update={"sources": sources})


def build_plan(config: Config, manifest: Manifest, request: RestoreRequest) -> RestorePlan:
    if request.target is not None and request.target not in config.targets:
        known = ", ".join(config.targets) or "none; add a [targets.NAME] table"
        raise UsageError(f"unknown target {request.target!r}; configured targets: {known}")
    if request.target_host is not None and request.target_host not in config.hosts:
        raise UsageError(
            f"unknown target host {request.target_host!r}; configured hosts: "
            f"{', '.join(config.hosts)}"
        )
    if request.target and request.target_host:
        raise UsageError("choose one of --target and --target-host")
    plan = RestorePlan(manifest, request.target, keyring=request.keyring.for_backup(manifest))
    for name in request.scope or manifest.scope:
        artifact = manifest.artifact(name)
        if artifact is None:
            plan.problems.append(
                Check.fail(
                    f"source {name}",
                    f"backup {manifest.id} has no {name}; it holds {', '.join(manifest.scope)}: "
                    "choose another backup or leave the source out",
                )
            )
        elif name not in config.sources:
            plan.problems.append(
                Check.fail(
                    f"source {name}",
                    f"{name} is in the backup but not in the config, so there is no restore "
                    "command for it; add it back under [sources] to restore it",
                )
            )
        else:
            step = _step(config, name, artifact, request)
            if isinstance(step, Check):
                plan.problems.append(step)
            else:
                plan.steps.append(step)
    kinds = {step.config.kind for step in plan.steps}
    for flags, used in request.options.flags_used().items():
        applies = RestoreOptions.FLAGS[flags]
        if used and plan.steps and not kinds.intersection(applies):
            plan.problems.append(
                Check.fail(
                    "options",
                    f"{flags} applies to {' and '.join(applies)} sources, and none is "
                    "being restored; drop it or add a source of that kind",
                )
            )
    return plan


def _step(
    config: Config, name: str, artifact: Artifact, request: RestoreRequest
) -> RestoreStep | Check:
    source = config.sources[name]
    if (mismatch := _artifact_mismatch(name, artifact, source)) is not None:
        return Check.fail(f"source {name}", mismatch)
    options = request.options.only_for(source.kind)
    if request.target is None:
        host = request.target_host or source.host
        return RestoreStep(name, artifact, host, source, options)
    entry = config.targets[request.target].sources.get(name)
    if entry is None:
        return Check.fail(
            f"source {name}",
            f"target {request.target} does not say where {name} goes; add "
            f"[targets.{request.target}.sources.{name}] or leave {name} out",
        )
    updates: dict[str, Any] = {"host": entry.host or source.host}
    if entry.uri is not None:
        updates["uri"] = entry.uri
    if entry.endpoint is not None:
        updates["endpoint"] = entry.endpoint
    if entry.data_dir is not None:
        updates["data_dir"] = entry.data_dir
    if entry.address is not None:
        updates["address"] = entry.address
    if entry.port is not None:
        updates["port"] = entry.port
    if entry.directory is not None:
        options = replace(options, target_dir=entry.directory)
    return RestoreStep(name, artifact, updates["host"], source.model_copy(update=updates), options)


def _artifact_mismatch(name: str, artifact: Artifact, source: SourceConfig) -> str | None:
    """Why the configured source cannot restore this artifact: a manifest that says another
    kind (its structure check would not be the one this restore needs) or other files."""
    kind = SOURCE_CLASSES[source.kind]
    expected = kind.artifact_kind
    if artifact.kind != expected:
        return (
            f"the backup's {name} is a {artifact.kind} artifact, and a {source.kind} source "
            f"restores {expected} only; the manifest or sources.{name}.kind changed since: "
            "choose another backup"
        )
    if kind.single_file and len(artifact.files) != 1:
        return (
            f"the backup's {name} artifact lists {len(artifact.files)} files where a "
            f"{source.kind} source writes one; the manifest was changed: choose another backup"
        )
    return None

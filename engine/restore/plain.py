"""The plain, non-interactive restore: check everything it will use, then stream it back.

Nothing is written to a target before every check passed: the checksums and structure of
each artifact used, the per-source options, and the operator's typed confirmation of every
target host. A dry run stops after the checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine import audit
from engine.config import Config
from engine.errors import LifeboatError, UsageError, describe_error
from engine.events import (
    Emit,
    JobFinished,
    JobStarted,
    LogLine,
    ProgressMeter,
    SourceFailed,
    StageChanged,
)
from engine.jobs import JobFailedError
from engine.manifest import Artifact, Manifest
from engine.repository import Repository
from engine.sources import RestoreOptions, Source, SourceContext, make_source
from engine.ssh import ConnectionPool
from engine.verify import verify_backup_async


@dataclass(frozen=True)
class RestoreRequest:
    backup_id: str
    scope: tuple[str, ...] = ()
    target_host: str | None = None
    options: RestoreOptions = RestoreOptions()
    apply: bool = False
    confirm: tuple[str, ...] = ()


@dataclass(frozen=True)
class RestoreStep:
    source: str
    artifact: Artifact
    target_host: str


@dataclass
class RestoreReport:
    backup_id: str
    steps: list[RestoreStep] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    applied: bool = False

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(step.target_host for step in self.steps))


class RestoreRefusedError(LifeboatError):
    """The checks failed; nothing was touched."""


def plan_steps(config: Config, manifest: Manifest, request: RestoreRequest) -> list[RestoreStep]:
    """Which artifacts go to which host; refuses names that are not in the backup or config."""
    scope = request.scope or manifest.scope
    missing = [name for name in scope if manifest.artifact(name) is None]
    if missing:
        raise UsageError(
            f"backup {manifest.id} has no {', '.join(missing)}; it holds "
            f"{', '.join(manifest.scope)}"
        )
    unconfigured = [name for name in scope if name not in config.sources]
    if unconfigured:
        raise UsageError(
            f"source {', '.join(unconfigured)} is in the backup but not in the config, so there "
            "is no restore command for it; add it back under [sources] to restore it"
        )
    if request.target_host is not None and request.target_host not in config.hosts:
        raise UsageError(
            f"unknown target host {request.target_host!r}; configured hosts: "
            f"{', '.join(config.hosts)}"
        )
    steps = []
    for name in scope:
        artifact = manifest.artifact(name)
        assert artifact is not None
        steps.append(RestoreStep(name, artifact, request.target_host or config.sources[name].host))
    return steps


async def run_restore(
    config: Config, repo: Repository, request: RestoreRequest, emit: Emit
) -> RestoreReport:
    """Check, then (with ``request.apply``) restore. Raises RestoreRefusedError before any write."""
    manifest = repo.load(request.backup_id)
    report = RestoreReport(manifest.id, plan_steps(config, manifest, request))
    if request.apply and set(request.confirm) != set(report.targets):
        raise UsageError(
            f"to restore onto {', '.join(report.targets)}, confirm by typing each target "
            f"host's name: {' '.join('--confirm ' + t for t in report.targets)}"
        )
    emit(JobStarted(manifest.id, "restore", tuple(s.source for s in report.steps)))
    options = request.options
    sources = {step.source: make_source(config, step.source) for step in report.steps}
    for step in report.steps:
        report.problems.extend(sources[step.source].restore_problems(step.artifact, options))
    emit(StageChanged("restore", "verifying"))
    meter = ProgressMeter("verify", emit, sum(s.artifact.size for s in report.steps))
    verified = await verify_backup_async(
        repo.backup_dir(manifest.id),
        manifest,
        tuple(sources),
        lambda done, _total: meter.update(done),
    )
    meter.finish()
    report.problems.extend(str(p) for p in verified.problems)
    for problem in report.problems:
        emit(LogLine("restore", "error", problem))
    if report.problems:
        emit(JobFinished(manifest.id, ok=False))
        raise RestoreRefusedError(
            "restore refused, nothing was changed:\n" + "\n".join(report.problems)
        )
    if not request.apply:
        emit(JobFinished(manifest.id, ok=True))
        return report
    await _apply(config, repo, manifest, report, sources, options, emit)
    return report


async def _apply(
    config: Config,
    repo: Repository,
    manifest: Manifest,
    report: RestoreReport,
    sources: dict[str, Source],
    options: RestoreOptions,
    emit: Emit,
) -> None:
    audit.record(
        repo.path,
        config.operator,
        "restore.start",
        backup=manifest.id,
        sources=[s.source for s in report.steps],
        targets=list(report.targets),
        target_dir=str(options.target_dir) if options.target_dir else None,
    )
    pool = ConnectionPool(dict(config.hosts))
    failures: list[SourceFailed] = []
    result = "cancelled"
    try:
        for step in report.steps:  # one at a time: a restore is no place for surprises
            emit(StageChanged(step.source, "connecting"))
            try:
                host = await pool.get(step.target_host)
                ctx = SourceContext(step.source, host, repo.backup_dir(manifest.id), emit)
                await sources[step.source].restore(step.artifact, ctx, options)
            except Exception as exc:
                emit(StageChanged(step.source, "failed"))
                emit(LogLine(step.source, "error", describe_error(exc)))
                failures.append(SourceFailed(step.source, describe_error(exc)))
                break
            emit(StageChanged(step.source, "done"))
        result = "failed" if failures else "ok"
    finally:
        await pool.close()
        audit.record(
            repo.path,
            config.operator,
            "restore.finish",
            backup=manifest.id,
            result=result,
            errors=[f"{f.source}: {f.error}" for f in failures],
        )
    if failures:
        emit(JobFinished(manifest.id, ok=False, errors=tuple(failures)))
        raise JobFailedError(tuple(failures))
    report.applied = True
    emit(JobFinished(manifest.id, ok=True))

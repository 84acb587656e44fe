"""A restore from request to result: plan, validate (always), then apply when asked.

Nothing is written to a target before every check passed and the operator confirmed by
typing each name the plan asks for. ``--dry-run`` is a request without ``apply``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from engine.checks import Check, Status, down_sources
from engine.config.model import Config
from engine.errors import LifeboatError, UsageError, describe_error
from engine.events import CheckReported, Emit, JobFinished, JobStarted, SourceFailed, StageChanged
from engine.jobs import JobFailedError
from engine.repo import audit
from engine.repo.manifest import utc_now
from engine.repo.repository import Repository
from engine.restore.apply import SafetyBackupError, apply_plan
from engine.restore.locks import RepositoryTargetLocks, TargetLocks
from engine.restore.plan import SAFETY, RestorePlan, RestoreRequest, RestoreStep, build_plan
from engine.restore.validate import failed, validate
from engine.scaleout.coordination import open_coordinator


@dataclass
class RestoreReport:
    plan: RestorePlan
    checks: list[Check] = field(default_factory=list)
    safety_backup: str | None = None
    applied: bool = False

    @property
    def backup_id(self) -> str:
        return self.plan.manifest.id

    @property
    def steps(self) -> list[RestoreStep]:
        return self.plan.steps

    @property
    def failed(self) -> list[Check]:
        return failed(self.checks)

    @property
    def warnings(self) -> list[Check]:
        return [check for check in self.checks if check.status is Status.WARNING]


class RestoreRefusedError(LifeboatError):
    """A check failed; nothing was touched. ``report`` holds every check."""

    def __init__(self, report: RestoreReport) -> None:
        self.report = report
        lines = [f"{check.name}: {check.detail}" for check in report.failed]
        super().__init__("restore refused, nothing was changed:\n" + "\n".join(lines))


async def run_restore(
    config: Config,
    repo: Repository,
    request: RestoreRequest,
    emit: Emit,
    *,
    locks: TargetLocks | None = None,
    now: datetime | None = None,
) -> RestoreReport:
    """Validate, then (with ``request.apply``) restore. Raises RestoreRefusedError on a failed
    check, before anything is written. Targets are locked through etcd when ``[coordination]``
    is configured, else through the repository's lock files."""
    if locks is None:
        async with open_coordinator(config, repo) as coordinator:
            shared = coordinator.target_locks() if coordinator else RepositoryTargetLocks(repo.path)
            return await run_restore(config, repo, request, emit, locks=shared, now=now)
    plan = build_plan(config, repo.load(request.backup_id), request)
    if request.apply:
        _check_consent(plan, request)
    emit(JobStarted(plan.manifest.id, "restore", tuple(s.source for s in plan.steps)))
    emit(StageChanged("restore", "validating"))
    report = RestoreReport(plan)
    report.checks = await validate(
        config,
        repo,
        plan,
        locks,
        lambda check, order: emit(
            CheckReported(check.name, check.status.value, check.detail, order)
        ),
        emit,
        now or utc_now(),
    )
    if request.apply:
        audit.record(
            repo.path,
            config.operator,
            "restore.validate",
            backup=plan.manifest.id,
            target=plan.target,
            hosts=list(plan.hosts),
            result="refused" if report.failed else "ok",
            failed=[f"{check.name}: {check.detail}" for check in report.failed],
        )
    if report.failed:
        emit(JobFinished(plan.manifest.id, ok=False))
        raise RestoreRefusedError(report)
    if request.apply:
        try:
            down = down_sources(report.checks)
            report.safety_backup = await apply_plan(config, repo, plan, request, locks, emit, down)
        except BaseException as exc:
            emit(_finished_badly(plan.manifest.id, exc))
            raise
        report.applied = True
    emit(JobFinished(plan.manifest.id, ok=True))
    return report


def _finished_badly(backup_id: str, exc: BaseException) -> JobFinished:
    if isinstance(exc, JobFailedError):
        return JobFinished(backup_id, ok=False, errors=exc.errors)
    if isinstance(exc, SafetyBackupError):
        return JobFinished(backup_id, ok=False, errors=(SourceFailed(SAFETY, exc.cause),))
    if isinstance(exc, Exception):
        return JobFinished(
            backup_id, ok=False, errors=(SourceFailed("restore", describe_error(exc)),)
        )
    return JobFinished(backup_id, ok=False, cancelled=True)


def _check_consent(plan: RestorePlan, request: RestoreRequest) -> None:
    names = plan.confirm_names
    if names and set(request.confirm) != set(names):
        what = f"the target {plan.target}" if plan.target else "each target host"
        raise UsageError(
            f"to restore backup {request.backup_id} onto {', '.join(plan.hosts)}, "
            f"confirm by typing {what}'s name: " + " ".join(f"--confirm {name}" for name in names)
        )
    if not request.safety_backup and not (request.skip_reason or "").strip():
        raise UsageError(
            "skipping the safety backup needs a reason: --reason TEXT (it goes to the audit log)"
        )
    if not request.safety_backup and request.options.mirror:
        raise UsageError(
            "--mirror removes files, and the safety backup is what keeps them: drop "
            "--skip-safety-backup, or restore without --mirror"
        )

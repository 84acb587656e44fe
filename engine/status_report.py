"""Everything ``lifeboat status`` and the dashboard say, gathered once: tiers (RPO, RTO),
schedules (next runs, overdue), who holds which lock, and what killed jobs left behind.

Unhealthy means a tier past its RPO, a schedule overdue or unable to compute its runs, a
damaged backup, a restore that did not succeed (``engine.restore.journal``) or what a killed
job left (``engine.leftovers``): ``lifeboat status`` exits 1, so cron or monitoring can alert
on it. A warning (80% of the RPO) or a missed RTO is shown but does not fail the check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from engine import leftovers, locks
from engine.config import Config
from engine.coordination import open_coordinator
from engine.drill import history
from engine.durations import format_duration
from engine.errors import ManifestError
from engine.leftovers import Leftover
from engine.manifest import iso_z, utc_now
from engine.repository import Repository
from engine.restore import journal
from engine.restore.journal import RestoreRecord
from engine.schedule import ScheduleStatus, schedule_statuses
from engine.status import RpoState, TierStatus, tier_statuses


@dataclass(frozen=True)
class LockLine:
    """A held lock: what it guards and who holds it."""

    kind: str  # "repository", "restore", "schedule"
    name: str
    holder: str


@dataclass(frozen=True)
class StatusReport:
    at: datetime
    tiers: list[TierStatus]
    schedules: list[ScheduleStatus]
    locks: list[LockLine]
    leftovers: list[Leftover] = field(default_factory=list)
    restores: list[RestoreRecord] = field(default_factory=list)  # unfinished ones
    damaged: tuple[str, ...] = ()  # one message per damaged backup seen

    @property
    def problems(self) -> list[str]:
        """One line per breached tier, overdue schedule, schedule that cannot run, damaged
        backup and unfinished restore, and one for dead leftovers."""
        lines = []
        for tier in self.tiers:
            if tier.state is RpoState.BREACH:
                ago = (
                    f"last backup {format_duration(tier.age)} ago"
                    if tier.age is not None
                    else "never backed up"
                )
                lines.append(
                    f"tier {tier.name}: RPO {format_duration(tier.tier.rpo)} breached ({ago})"
                )
        lines.extend(f"schedule {s.name}: {p}" for s in self.schedules if (p := s.problem()))
        lines.extend(self.damaged)
        lines.extend(record.describe() for record in self.restores)
        if self.leftovers:
            lines.append(leftovers.describe(self.leftovers))
        return lines

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": iso_z(self.at),
            "healthy": self.healthy,
            "problems": self.problems,
            "tiers": [tier_dict(t) for t in self.tiers],
            "schedules": [schedule_dict(s) for s in self.schedules],
            "locks": [lock.__dict__ for lock in self.locks],
            "leftovers": [{"path": left.name, "bytes": left.bytes} for left in self.leftovers],
            "unfinished_restores": [asdict(record) for record in self.restores],
            "damaged": list(self.damaged),
        }


def local_locks(repo: Repository) -> list[LockLine]:
    """The repository's flock files that someone holds right now."""
    held = []
    if holder := locks.holder_of(repo.lock_path):
        held.append(LockLine("repository", str(repo.path), holder))
    directory = repo.path / "locks"
    for path in sorted(directory.glob("*.lock")) if directory.is_dir() else []:
        kind, _, name = path.stem.partition("-")
        if holder := locks.holder_of(path):
            held.append(LockLine(kind, name, holder))
    return held


async def shared_locks(config: Config, repo: Repository) -> list[LockLine]:
    """The etcd lock holders when ``[coordination]`` is configured (else none)."""
    async with open_coordinator(config, repo) as coordinator:
        held = await asyncio.to_thread(coordinator.holders) if coordinator else []
    return [LockLine(info.kind, info.name, info.describe()) for info in held]


def gather(
    config: Config,
    repo: Repository,
    now: datetime | None = None,
    shared_locks: Sequence[LockLine] = (),
) -> StatusReport:
    """The whole status; ``shared_locks`` are the coordination (etcd) lock holders. Tiers and
    schedules each read manifests lazily, newest first, only as far as they need; damage is
    reported for the manifests read, and for every entry that has none (a cheap look)."""
    moment = now or utc_now()
    damaged: list[ManifestError] = []
    tiers = tier_statuses(
        config,
        repo.iter_backups(problems=damaged),
        repo.verifications(),
        moment,
        history.load(repo.path),
    )
    schedules = schedule_statuses(config, repo, repo.iter_backups(problems=damaged), moment)
    by_backup = {str(e.backup_id): str(e) for e in [*damaged, *repo.unsound()]}
    return StatusReport(
        at=moment,
        tiers=tiers,
        schedules=schedules,
        locks=[*local_locks(repo), *shared_locks],
        leftovers=leftovers.find(repo),
        restores=journal.unfinished(repo.path),
        damaged=tuple(by_backup[key] for key in sorted(by_backup, reverse=True)),
    )


def repository_alerts(repo: Repository) -> list[str]:
    """Short lines for the dashboard: unfinished restores and dead leftovers."""
    lines = [record.short() for record in journal.unfinished(repo.path)]
    if dead := leftovers.find(repo):
        lines.append(f"{len(dead)} killed job(s) left {leftovers.total(dead)}: lifeboat repo clean")
    return lines


def tier_dict(status: TierStatus) -> dict[str, Any]:
    drill = status.last_drill
    return {
        "name": status.name,
        "state": status.state.value,
        "rpo_seconds": status.tier.rpo.total_seconds(),
        "age_seconds": status.age.total_seconds() if status.age is not None else None,
        "last_backup": status.last.id if status.last else None,
        "rto_seconds": status.tier.rto.total_seconds(),
        "last_drill": drill.id if drill else None,
        "drill_restore_seconds": drill.restore_seconds if drill else None,
        "rto_met": status.rto_met,
    }


def schedule_dict(status: ScheduleStatus) -> dict[str, Any]:
    state = status.state
    return {
        "name": status.name,
        "cron": status.schedule.cron,
        "timezone": status.schedule.timezone,
        "enabled": status.schedule.enabled,
        "next_runs": [iso_z(t) for t in status.next_runs],
        "last_backup": status.last.id if status.last else None,
        "last_outcome": state.last_outcome if state else None,
        "last_error": state.last_error if state else None,
        "overdue": status.overdue,
        "missed": iso_z(status.missed) if status.missed else None,
        "error": status.error,
    }

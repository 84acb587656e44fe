"""Where everything stands, gathered once for ``lifeboat status`` and the dashboard: each tier's
newest complete backup against its RPO and its measured RTO, schedules (next runs, overdue),
who holds which lock, and what killed jobs left behind.

A backup covers a tier when it holds an artifact of every source of the tier; a drill covers
it when it restored every source of the tier, and its restore time is the tier's measured RTO.

Unhealthy means a tier past its RPO, a schedule overdue or unable to compute its runs, a
damaged backup, a restore that did not succeed (``engine.restore.journal``) or what a killed
job left (``engine.repo.leftovers``): ``lifeboat status`` exits 1, so cron or monitoring can
alert on it. A warning (80% of the RPO) or a missed RTO is shown but does not fail the check.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from engine.config.model import Config, TierConfig
from engine.drill import history
from engine.drill.history import DrillRecord
from engine.durations import format_duration
from engine.errors import BackupNotFoundError, ManifestError
from engine.offsite.copies import CopyRecord, off_host
from engine.repo import leftovers, locks
from engine.repo.leftovers import Leftover
from engine.repo.manifest import Manifest, iso_z, utc_now
from engine.repo.repository import Repository, VerifyRecord
from engine.restore import journal
from engine.restore.journal import RestoreRecord
from engine.schedule.status import ScheduleStatus, schedule_statuses, trigger_of

if TYPE_CHECKING:
    from engine.scaleout.coordination import Coordinator

WARNING_FRACTION = 0.8


class RpoState(Enum):
    OK = "ok"
    WARNING = "warning"
    BREACH = "breach"


@dataclass(frozen=True)
class OffsiteStatus:
    """A tier's newest off-host copy: which backup, on which remotes, how old."""

    copy: CopyRecord | None
    remotes: tuple[str, ...]
    age: timedelta | None
    state: RpoState


@dataclass(frozen=True)
class TierStatus:
    name: str
    tier: TierConfig
    last: Manifest | None  # newest backup that covers every source of the tier
    age: timedelta | None
    state: RpoState
    last_verify: VerifyRecord | None
    last_drill: DrillRecord | None = None  # newest drill that restored every source of the tier
    offsite: OffsiteStatus | None = None  # None: no [remotes] are configured

    @property
    def offsite_rpo(self) -> timedelta:
        return self.tier.offsite_rpo or self.tier.rpo

    @property
    def rto_met(self) -> bool | None:
        """Whether the last drill passed within the tier's RTO (None: never drilled)."""
        drill = self.last_drill
        if drill is None:
            return None
        seconds = drill.restore_seconds
        return drill.passed and seconds is not None and seconds <= self.tier.rto.total_seconds()

    @property
    def size(self) -> int:
        if self.last is None:
            return 0
        return sum(a.size for a in self.last.artifacts if a.source in self.tier.sources)


def covers(manifest: Manifest, tier: TierConfig) -> bool:
    return all(manifest.artifact(source) is not None for source in tier.sources)


def rpo_state(age: timedelta | None, rpo: timedelta) -> RpoState:
    if age is None or age > rpo:
        return RpoState.BREACH
    if age > rpo * WARNING_FRACTION:
        return RpoState.WARNING
    return RpoState.OK


def tier_statuses(
    config: Config,
    manifests: Iterable[Manifest],
    verifications: dict[str, VerifyRecord],
    now: datetime | None = None,
    drills: Sequence[DrillRecord] = (),
    copies: Sequence[CopyRecord] = (),
) -> list[TierStatus]:
    """One status per configured tier; ``manifests`` newest first, read only as far as needed
    (a lazy ``Repository.iter_backups()`` stops once every tier is covered); ``drills``
    newest first; ``copies`` (off-host, newest first) judge each tier's off-host RPO."""
    moment = now or utc_now()
    newest: dict[str, Manifest] = {}
    for manifest in manifests:
        if len(newest) == len(config.tiers):
            break
        for name, tier in config.tiers.items():
            if name not in newest and covers(manifest, tier):
                newest[name] = manifest
    statuses = []
    for name, tier in config.tiers.items():
        last = newest.get(name)
        age = moment - last.finished_at if last else None
        statuses.append(
            TierStatus(
                name=name,
                tier=tier,
                last=last,
                age=age,
                state=rpo_state(age, tier.rpo),
                last_verify=verifications.get(last.id) if last else None,
                last_drill=next((d for d in drills if set(tier.sources) <= set(d.sources)), None),
                offsite=_offsite(tier, copies, moment) if config.remotes else None,
            )
        )
    return statuses


def _offsite(tier: TierConfig, copies: Sequence[CopyRecord], moment: datetime) -> OffsiteStatus:
    """The newest copy (``copies`` newest first) holding every source of ``tier``."""
    rpo = tier.offsite_rpo or tier.rpo
    newest = next((c for c in copies if set(tier.sources) <= set(c.scope)), None)
    if newest is None:
        return OffsiteStatus(None, (), None, rpo_state(None, rpo))
    remotes = tuple(sorted(c.remote for c in copies if c.backup == newest.backup))
    age = moment - newest.finished_at
    return OffsiteStatus(newest, remotes, age, rpo_state(age, rpo))


@dataclass(frozen=True)
class LockLine:
    """A held lock: what it guards and who holds it."""

    kind: str  # "repository", "restore", "schedule"
    name: str
    holder: str


@dataclass(frozen=True)
class Finding:
    """One problem of the status: its alert event (None: not one that is sent), what it is
    about (the same from one look to the next while the problem lasts) and its line."""

    event: str | None
    subject: str
    text: str


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
        return [finding.text for finding in self.findings]

    @property
    def findings(self) -> list[Finding]:
        """:attr:`problems`, each with what it is about and the event it is alerted as."""
        found = []
        for tier in self.tiers:
            if tier.state is RpoState.BREACH:
                ago = (
                    f"last backup {format_duration(tier.age)} ago"
                    if tier.age is not None
                    else "never backed up"
                )
                text = f"tier {tier.name}: RPO {format_duration(tier.tier.rpo)} breached ({ago})"
                found.append(Finding("rpo.breach", f"tier {tier.name}", text))
            offsite = tier.offsite
            if offsite is not None and offsite.state is RpoState.BREACH:
                ago = (
                    f"newest off-host copy {format_duration(offsite.age)} old"
                    if offsite.age is not None
                    else "no off-host copy; `lifeboat copy --missing --to NAME` makes one"
                )
                text = (
                    f"tier {tier.name}: off-host RPO {format_duration(tier.offsite_rpo)} "
                    f"breached ({ago})"
                )
                found.append(Finding("rpo.breach", f"tier {tier.name} off-host", text))
        for schedule in self.schedules:
            if problem := schedule.problem():
                event = "schedule.overdue" if schedule.overdue else None
                found.append(
                    Finding(
                        event, f"schedule {schedule.name}", f"schedule {schedule.name}: {problem}"
                    )
                )
        found.extend(Finding("damage.found", line, line) for line in self.damaged)
        found.extend(Finding(None, record.run, record.describe()) for record in self.restores)
        if self.leftovers:
            found.append(Finding(None, "leftovers", leftovers.describe(self.leftovers)))
        return found

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def alerts(self) -> list[str]:
        """Short lines for the dashboard, for what its tiers and schedules do not show:
        unfinished restores, dead leftovers and damaged backups."""
        lines = [record.short() for record in self.restores]
        if self.leftovers:
            left = leftovers.total(self.leftovers)
            lines.append(f"{len(self.leftovers)} killed job(s) left {left}: lifeboat repo clean")
        if self.damaged:
            lines.append(f"{len(self.damaged)} damaged backup(s): lifeboat status names them")
        return lines

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
    if config.coordination is None:
        return []  # without importing SSH and etcd (0.15 s of every `lifeboat status`)
    from engine.scaleout.coordination import open_coordinator

    async with open_coordinator(config, repo) as coordinator:
        return await asyncio.to_thread(lock_lines, coordinator) if coordinator else []


def lock_lines(coordinator: Coordinator) -> list[LockLine]:
    """The locks held in etcd now, as status lines (blocking: etcd answers on a thread)."""
    return [LockLine(info.kind, info.name, info.describe()) for info in coordinator.holders()]


# A backup's trigger, (source, bytes, how long it took) each, when it finished (epoch seconds).
Facts = tuple[str, tuple[tuple[str, int, float], ...], float]


@dataclass(frozen=True)
class SourceLast:
    """A source's newest backup: which, how many bytes of the source, how long it took."""

    backup_id: str
    bytes: int
    finished: float  # epoch seconds
    seconds: float


def _facts_of(manifest: Manifest) -> Facts:
    took = (manifest.finished_at - manifest.created_at).total_seconds()  # before meta.seconds
    sources = tuple(
        (sys.intern(a.source), a.size, float(a.meta.get("seconds", took)))
        for a in manifest.artifacts
    )
    return sys.intern(manifest.trigger), sources, manifest.finished_at.timestamp()


class BackupFacts:
    """What the status needs of each backup (its trigger, its sources with their sizes and
    times, when it finished), remembered by id.

    A manifest never changes once committed. A console that gathers the status every 30 s
    keeps these facts (plain tuples, which the garbage collector stops scanning) and reads
    from disk only the backups that are new and the few the status shows. Without them, a
    tier no backup covers means reading every manifest each time: seconds at 10,000 backups.
    Not thread-safe: one gather at a time uses it.
    """

    def __init__(self) -> None:
        self._known: dict[str, Facts] = {}

    def _walk(
        self, repo: Repository, problems: list[ManifestError]
    ) -> Iterator[tuple[str, Facts, Manifest | None]]:
        """Every readable backup, newest first, with its facts and, when it was read just now,
        its manifest; damaged ones are added to ``problems`` (and read again next time)."""
        ids = repo.backup_ids()
        for gone in self._known.keys() - set(ids):
            del self._known[gone]
        for backup_id in ids:
            facts, manifest = self._known.get(backup_id), None
            if facts is None:
                try:
                    manifest = repo.load(backup_id)
                except BackupNotFoundError:
                    continue
                except ManifestError as exc:
                    problems.append(exc)
                    continue
                facts = self._known[backup_id] = _facts_of(manifest)
            yield backup_id, facts, manifest

    def shown(
        self, config: Config, repo: Repository, problems: list[ManifestError]
    ) -> list[Manifest]:
        """The manifests the status shows, newest first: the newest backup covering each tier
        and the newest of each schedule (what ``tier_statuses`` and ``schedule_statuses``
        pick); the walk stops once each is found."""
        while True:
            tiers = {name: set(tier.sources) for name, tier in config.tiers.items()}
            triggers = {trigger_of(name) for name in config.schedules}
            chosen: dict[str, Manifest | None] = {}
            for backup_id, (trigger, held, _), manifest in self._walk(repo, problems):
                if not tiers and not triggers:
                    break
                sources = {source for source, *_ in held}
                covered = [name for name, needed in tiers.items() if needed <= sources]
                if covered or trigger in triggers:
                    chosen[backup_id] = manifest
                    triggers.discard(trigger)
                    for name in covered:
                        del tiers[name]
            shown = [m or self._read(repo, i) for i, m in chosen.items()]
            if all(shown):
                return [m for m in shown if m is not None]
            # one was deleted or damaged since its facts were read: choose again without it

    def _read(self, repo: Repository, backup_id: str) -> Manifest | None:
        try:
            return repo.load(backup_id)
        except (BackupNotFoundError, ManifestError):
            del self._known[backup_id]
            return None

    def sizes(self, repo: Repository, sources: Iterable[str]) -> dict[str, int]:
        """The size of each of ``sources`` in its newest backup: the estimate of the next."""
        return {name: last.bytes for name, last in self.newest(repo, sources).items()}

    def newest(self, repo: Repository, sources: Iterable[str]) -> dict[str, SourceLast]:
        """The newest backup of each of ``sources`` that has one."""
        wanted = set(sources)
        found: dict[str, SourceLast] = {}
        for backup_id, (_, held, finished), _ in self._walk(repo, []):
            if wanted <= found.keys():
                break
            for source, size, seconds in held:
                if source in wanted and source not in found:
                    found[source] = SourceLast(backup_id, size, finished, seconds)
        return found


def gather(
    config: Config,
    repo: Repository,
    now: datetime | None = None,
    shared_locks: Sequence[LockLine] = (),
    facts: BackupFacts | None = None,
) -> StatusReport:
    """The whole status; ``shared_locks`` are the coordination (etcd) lock holders. Manifests
    are read newest first, each once, only as far as the tiers and schedules need (``facts``
    remembered from an earlier gather spare reading them again); damage is reported for the
    manifests read, and for every entry that has none (a cheap look). Blocking: a console
    calls it off its UI loop."""
    moment = now or utc_now()
    damaged: list[ManifestError] = []
    shown = (facts or BackupFacts()).shown(config, repo, damaged)
    tiers = tier_statuses(
        config, shown, repo.verifications(), moment, history.load(repo.path), off_host(repo)
    )
    schedules = schedule_statuses(config, repo, shown, moment)
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
        "offsite": _offsite_dict(status),
    }


def _offsite_dict(status: TierStatus) -> dict[str, Any] | None:
    offsite = status.offsite
    if offsite is None:
        return None
    return {
        "state": offsite.state.value,
        "rpo_seconds": status.offsite_rpo.total_seconds(),
        "age_seconds": offsite.age.total_seconds() if offsite.age is not None else None,
        "last_copy": offsite.copy.backup if offsite.copy else None,
        "remotes": list(offsite.remotes),
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

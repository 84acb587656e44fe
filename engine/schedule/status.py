"""Where each schedule stands: its next runs, its last run, and whether it is overdue.

A schedule is overdue (the dead man's switch) when a tick more than its grace period old has no
backup made for it: no backup with trigger ``schedule:<name>`` started at or after that tick.
Ticks before the first time a scheduler saw the schedule do not count; a schedule no scheduler
has ever seen is overdue, because nothing is running it.

The scheduler keeps one small state file per schedule in the repository
(``schedules/<name>.json``): when it first saw the schedule, and the last tick it ran with its
outcome. Several schedulers on shared storage write the same files; the last writer wins.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta

from engine.config.model import Config
from engine.config.schedules import ScheduleConfig
from engine.repo.atomic import atomic_write, make_private_dir
from engine.repo.manifest import Manifest, iso_z, utc_now
from engine.repo.repository import Repository
from engine.schedule.cron import CronError

NEXT_RUNS = 5
MAX_DEFAULT_GRACE = timedelta(hours=1)
STATE_DIR = "schedules"


def trigger_of(name: str) -> str:
    return f"schedule:{name}"


@dataclass(frozen=True)
class ScheduleState:
    """What the scheduler last did with one schedule (``schedules/<name>.json``)."""

    first_seen: str
    last_fire: str | None = None
    last_outcome: str | None = None  # "ok", "failed" or "cancelled"
    last_backup: str | None = None
    last_error: str | None = None
    instance: str | None = None


def read_state(repo: Repository, name: str) -> ScheduleState | None:
    try:
        data = json.loads((repo.path / STATE_DIR / f"{name}.json").read_text())
        return ScheduleState(**data)
    except (OSError, ValueError, TypeError):
        return None


def write_state(repo: Repository, name: str, state: ScheduleState) -> None:
    make_private_dir(repo.path / STATE_DIR)
    atomic_write(repo.path / STATE_DIR / f"{name}.json", json.dumps(asdict(state)).encode())


@dataclass(frozen=True)
class ScheduleStatus:
    name: str
    schedule: ScheduleConfig
    next_runs: tuple[datetime, ...]
    last: Manifest | None  # the newest backup this schedule made
    state: ScheduleState | None
    grace: timedelta
    missed: datetime | None  # the tick that has no backup, when overdue
    error: str | None = None  # why its runs cannot be computed (then it is never overdue)

    @property
    def overdue(self) -> bool:
        return self.missed is not None

    def problem(self) -> str | None:
        """Why the schedule is overdue or broken, in one line (None when it is neither)."""
        if self.error is not None:
            return f"{self.error}; fix its cron in the config"
        if self.missed is None:
            return None
        if self.state is None:
            return "never run; start `lifeboat scheduler run`"
        state = self.state
        failed = f" (last run failed: {state.last_error})" if state.last_outcome == "failed" else ""
        return (
            f"no backup for the {iso_z(self.missed)} tick{failed}; "
            "is `lifeboat scheduler run` running? see its log"
        )


def grace_of(schedule: ScheduleConfig, now: datetime) -> timedelta:
    """How late a run may be: ``overdue_after``, else one interval capped at an hour."""
    if schedule.overdue_after is not None:
        return schedule.overdue_after
    return min(schedule.parsed.interval(now, schedule.zone), MAX_DEFAULT_GRACE)


def last_scheduled(manifests: Iterable[Manifest], names: Iterable[str]) -> dict[str, Manifest]:
    """The newest backup of each schedule in ``names``; ``manifests`` newest first."""
    wanted = {trigger_of(name): name for name in names}
    newest: dict[str, Manifest] = {}
    for manifest in manifests:
        if len(newest) == len(wanted):
            break
        name = wanted.get(manifest.trigger)
        if name is not None and name not in newest:
            newest[name] = manifest
    return newest


def schedule_statuses(
    config: Config, repo: Repository, manifests: Iterable[Manifest], now: datetime | None = None
) -> list[ScheduleStatus]:
    """One status per configured schedule; ``manifests`` newest first. A schedule whose runs
    cannot be computed gets a status carrying the error: the others are unaffected."""
    moment = now or utc_now()
    newest = last_scheduled(manifests, config.schedules)
    return [
        _status(name, schedule, read_state(repo, name), newest.get(name), moment)
        for name, schedule in config.schedules.items()
    ]


def _status(
    name: str,
    schedule: ScheduleConfig,
    state: ScheduleState | None,
    last: Manifest | None,
    now: datetime,
) -> ScheduleStatus:
    status = ScheduleStatus(name, schedule, (), last, state, MAX_DEFAULT_GRACE, None)
    try:
        grace = grace_of(schedule, now)
        return replace(
            status,
            next_runs=tuple(schedule.parsed.next_runs(now, schedule.zone, NEXT_RUNS)),
            grace=grace,
            missed=_missed_tick(schedule, state, last, now, grace),
        )
    except CronError as exc:
        return replace(status, error=str(exc))


def _missed_tick(
    schedule: ScheduleConfig,
    state: ScheduleState | None,
    last: Manifest | None,
    now: datetime,
    grace: timedelta,
) -> datetime | None:
    """The newest tick older than ``grace`` with no backup (``now`` when never run)."""
    if not schedule.enabled:
        return None
    if state is None:
        return now
    tick = schedule.parsed.previous_run(now - grace, schedule.zone)
    if tick is None or tick < datetime.fromisoformat(state.first_seen):
        return None
    if last is not None and last.created_at >= tick:
        return None
    return tick

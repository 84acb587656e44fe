"""The scheduler daemon: fire each enabled schedule on its ticks; after each success, copy the
backup to the schedule's ``copy_to`` remotes, then prune.

- Each tick is claimed first (``engine.schedule.ticks``), so N schedulers run it once between them.
- A schedule never overlaps itself: ticks that pass while its run goes on are skipped (logged).
- After downtime, the newest missed tick runs once, not once per missed tick.
- ``stop()`` lets running jobs finish; ``stop(cancel=True)`` cancels them (a cancelled backup
  leaves nothing under ``backups/``).
- Everything it does is one JSON object per line through ``log``.
- It watches the status (each minute, and after each run): it keeps ``[metrics] textfile`` up to
  date and tells the ``[notify]`` channels of each problem once, when it begins (a tier past
  its RPO, a schedule overdue, a damaged backup); a backup or copy that fails is told by the
  job itself.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from engine.config.model import Config
from engine.config.schedules import ScheduleConfig
from engine.errors import LifeboatError, RepositoryLockedError, describe_error
from engine.events import Event, LogLine
from engine.jobs import BackupRequest, run_backup
from engine.metrics import render, write_textfile
from engine.notify import Notice, deliver, notify
from engine.offsite.copy import run_copy
from engine.repo import retention
from engine.repo.manifest import Manifest, iso_z, utc_now
from engine.repo.repository import Repository
from engine.schedule.status import ScheduleState, read_state, trigger_of, write_state
from engine.schedule.ticks import Claim, ClaimTick
from engine.status import BackupFacts, LockLine, SourceLast, StatusReport, gather

Log = Callable[..., None]
MAX_SLEEP = 30.0  # seconds: wake up now and then, in case the clock jumped
WATCH_EVERY = timedelta(minutes=1)  # between two looks at the status (metrics, alerts)
LOCK_RETRY = 0.5  # seconds between tries of a repository another job holds
PRUNE_WAIT = timedelta(minutes=1)  # how long a prune waits for the repository
T = TypeVar("T")


class SchedulerError(LifeboatError):
    """A schedule's loop ended on an error: the scheduler exits non-zero."""


def default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def has_retention(config: Config) -> bool:
    policies = [config.retention, *(s.retention for s in config.schedules.values())]
    return any(policy is not None and policy.has_rules for policy in policies)


class Scheduler:
    def __init__(
        self,
        config: Config,
        repo: Repository,
        claim: ClaimTick,
        log: Log,
        instance: str,
        clock: Callable[[], datetime] = utc_now,
        shared_locks: Callable[[], list[LockLine]] | None = None,
    ) -> None:
        self.config, self.repo, self.claim, self.log = config, repo, claim, log
        self.instance, self.clock = instance, clock
        self.shared_locks = shared_locks  # the locks held in etcd, with [coordination]
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[str | None]] = []
        self._backups = asyncio.Lock()  # one backup at a time: they share the repository lock
        self._looking = asyncio.Lock()  # one look at the status at a time (its facts are shared)
        self._facts = BackupFacts()
        self._alerted: set[tuple[str, str]] = set()  # (event, subject) of problems told
        # Set once every enabled schedule has its state file (or failed): before that, the
        # status counts a schedule no scheduler has seen as overdue.
        self.registered = asyncio.Event()
        self._unregistered: set[str] = set()

    async def run(self) -> None:
        """Run every enabled schedule until :meth:`stop`. A schedule whose loop fails is
        logged at once and the others go on; once every loop has ended, raises
        ``SchedulerError`` naming the schedules that failed (so the daemon exits non-zero)."""
        enabled = {n: s for n, s in self.config.schedules.items() if s.enabled}
        self.log("started", schedules=sorted(enabled), pid=os.getpid())
        self._unregistered = set(enabled)
        if not enabled:
            self.registered.set()
        self._tasks = [asyncio.create_task(self._guarded(n, s)) for n, s in enabled.items()]
        watching = asyncio.create_task(self._watch()) if self._watches() else None
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        if watching is not None:
            self._stopping.set()  # every schedule ended: so does the watch
            await watching
        failed = {
            n: error for n, error in zip(enabled, results, strict=True) if isinstance(error, str)
        }
        self.log("stopped", failed=sorted(failed))
        if failed:
            errors = "; ".join(f"{name}: {error}" for name, error in failed.items())
            raise SchedulerError(
                f"the scheduler stopped firing {', '.join(failed)} after an error ({errors}); "
                "fix it and start `lifeboat scheduler run` again"
            )

    def stop(self, *, cancel: bool = False) -> None:
        """Stop firing; with ``cancel`` also cancel running jobs instead of letting them end."""
        if not self._stopping.is_set():
            self.log("stopping", cancel=cancel)
        self._stopping.set()
        if cancel:
            for task in self._tasks:
                task.cancel()

    async def _guarded(self, name: str, schedule: ScheduleConfig) -> str | None:
        """Run the schedule's loop; an error ends this schedule only: it is logged at once and
        returned (None when the loop ended because the scheduler stopped)."""
        try:
            await self._loop(name, schedule)
        except Exception as exc:  # one schedule's failure must not take the others down
            error = describe_error(exc)
            self.log("schedule.failed", level="error", schedule=name, error=error)
            return error
        finally:
            self._registered(name)
        return None

    def _registered(self, name: str) -> None:
        self._unregistered.discard(name)
        if not self._unregistered:
            self.registered.set()

    async def _loop(self, name: str, schedule: ScheduleConfig) -> None:
        cron, zone = schedule.parsed, schedule.zone
        handled = await self._catch_up(name, schedule)
        while not self._stopping.is_set():
            now = self.clock()
            if handled is not None and now > handled:
                missed = list(_until(cron.fire_times(handled, zone), now))
                if missed:
                    self.log(
                        "skipped",
                        schedule=name,
                        ticks=len(missed),
                        first=iso_z(missed[0]),
                        last=iso_z(missed[-1]),
                        reason="run still going",
                    )
            fire = next(cron.fire_times(max(now, handled or now), zone))
            if not await self._sleep_until(fire):
                return
            handled = fire
            await self._fire(name, schedule, fire)

    async def _catch_up(self, name: str, schedule: ScheduleConfig) -> datetime | None:
        """Run the newest missed tick once, if a tick passed since the last one run."""
        now = self.clock()
        state = await asyncio.to_thread(read_state, self.repo, name)
        if state is None:
            write_state(self.repo, name, ScheduleState(first_seen=iso_z(now)))
        self._registered(name)
        if state is None:
            return None
        missed = schedule.parsed.previous_run(now, schedule.zone)
        done = datetime.fromisoformat(state.last_fire) if state.last_fire else None
        first_seen = datetime.fromisoformat(state.first_seen)
        if missed is None or missed < first_seen or (done is not None and missed <= done):
            return None
        self.log("catch-up", schedule=name, fire=iso_z(missed), last=state.last_fire)
        await self._fire(name, schedule, missed)
        return missed

    async def _sleep_until(self, moment: datetime) -> bool:
        """Wait until ``moment`` (never wake early); False when stopped first."""
        while (remaining := (moment - self.clock()).total_seconds()) > 0:
            try:
                await asyncio.wait_for(self._stopping.wait(), min(remaining, MAX_SLEEP))
            except TimeoutError:
                continue
            return False
        return not self._stopping.is_set()

    async def _fire(self, name: str, schedule: ScheduleConfig, fire: datetime) -> None:
        try:
            claim = await asyncio.to_thread(self.claim, name, fire)
        except LifeboatError as exc:  # etcd did not answer in time: this tick only is lost
            claim = f"cannot claim it: {exc}"
        if isinstance(claim, str):
            self.log("skipped", schedule=name, fire=iso_z(fire), reason=claim)
            return
        self.log("fired", schedule=name, fire=iso_z(fire))
        outcome = ScheduleOutcome(fire)
        try:
            manifest = await self._backup(name, schedule, fire)
            outcome.succeeded(manifest)
            self.log(
                "backup.finished",
                schedule=name,
                fire=iso_z(fire),
                backup=manifest.id,
                seconds=round((manifest.finished_at - manifest.created_at).total_seconds(), 3),
                bytes=manifest.size,
            )
        except asyncio.CancelledError:
            outcome.cancelled()
            self.log("backup.cancelled", level="warning", schedule=name, fire=iso_z(fire))
            raise
        except Exception as exc:
            outcome.failed(describe_error(exc))
            self.log(
                "backup.failed", level="error", schedule=name, fire=iso_z(fire), error=outcome.error
            )
            if isinstance(exc, RepositoryLockedError):  # run_backup tells every other failure
                notice = Notice("backup.failed", f"schedule {name}: backup not run", str(exc))
                await notify(self.config, notice, self._job_log(name))
        finally:
            await self._record(name, claim, outcome)
        if outcome.outcome == "ok" and outcome.backup is not None:
            for remote in schedule.copy_to:
                await self._copy(name, remote, outcome.backup)
        if outcome.outcome == "ok" and has_retention(self.config):
            await self._prune(name)
        if self._watches():
            await self.look()

    async def _backup(self, name: str, schedule: ScheduleConfig, fire: datetime) -> Manifest:
        request = BackupRequest(schedule.scope, schedule.label, trigger_of(name))
        deadline = next(schedule.parsed.fire_times(fire, schedule.zone))
        async with self._backups:
            return await self._when_unlocked(
                lambda: run_backup(self.config, self.repo, request, self._job_log(name)), deadline
            )

    def _watches(self) -> bool:
        return self.config.metrics.textfile is not None or bool(self.config.notify)

    async def _watch(self) -> None:
        await self.registered.wait()  # before, a new schedule would look overdue (and be told)
        while True:
            await self.look()
            if not await self._sleep_until(self.clock() + WATCH_EVERY):
                return

    async def look(self) -> None:
        """Gather the status once: rewrite the metrics textfile, and tell the channels of each
        problem that began since the last look. A failure is logged; the scheduler goes on."""
        async with self._looking:
            shared = await self._read_shared_locks()
            try:
                report, sources = await asyncio.to_thread(self._gather, shared)
            except (LifeboatError, OSError) as exc:
                self.log("status.failed", level="error", error=describe_error(exc))
                return
            textfile = self.config.metrics.textfile
            if textfile is not None:
                try:
                    await asyncio.to_thread(write_textfile, textfile, render(report, sources))
                except OSError as exc:
                    self.log("metrics.failed", level="error", path=str(textfile), error=str(exc))
            await self._alert(report)

    async def _read_shared_locks(self) -> list[LockLine]:
        """The etcd locks, or none when etcd does not answer (logged): the rest of the
        status still counts."""
        if self.shared_locks is None:
            return []
        try:
            return await asyncio.to_thread(self.shared_locks)
        except LifeboatError as exc:
            self.log("locks.failed", level="error", error=describe_error(exc))
            return []

    def _gather(self, shared: list[LockLine]) -> tuple[StatusReport, dict[str, SourceLast]]:
        report = gather(
            self.config, self.repo, self.clock(), shared_locks=shared, facts=self._facts
        )
        return report, self._facts.newest(self.repo, self.config.sources)

    async def _alert(self, report: StatusReport) -> None:
        """Tell each problem once while it lasts (again if it ends and comes back)."""
        now = {(f.event, f.subject): f for f in report.findings if f.event is not None}
        self._alerted &= now.keys()
        for (event, subject), finding in now.items():
            if (event, subject) in self._alerted:
                continue
            self._alerted.add((event, subject))
            notice = Notice(event, finding.text, f"seen by the scheduler {self.instance}")
            for problem in await deliver(self.config, notice):
                self.log("notify.failed", level="warning", event=event, error=problem)

    async def _when_unlocked(self, call: Callable[[], Awaitable[T]], deadline: datetime) -> T:
        """``call()``, tried again while another job holds the repository, until ``deadline``."""
        while True:
            try:
                return await call()
            except RepositoryLockedError:
                if self.clock() + timedelta(seconds=LOCK_RETRY) >= deadline:
                    raise
                await asyncio.sleep(LOCK_RETRY)

    def _job_log(self, name: str) -> Callable[[Event], None]:
        """Pass a job's warnings and errors on to the log; progress is left out."""

        def emit(event: Event) -> None:
            if isinstance(event, LogLine) and event.level in ("warning", "error"):
                self.log(
                    "job", level=event.level, schedule=name, source=event.source, text=event.text
                )

        return emit

    async def _record(self, name: str, claim: Claim, outcome: ScheduleOutcome) -> None:
        """Write the schedule's state, then finish the claim (or release it when cancelled)."""
        try:
            state = await asyncio.to_thread(read_state, self.repo, name)
            write_state(self.repo, name, outcome.state(state, self.instance, self.clock()))
        finally:
            if claim.lost:
                self.log("claim.lost", level="warning", schedule=name, fire=iso_z(outcome.fire))
            if outcome.outcome == "cancelled":
                await asyncio.to_thread(claim.release)
            else:
                await asyncio.to_thread(claim.finish)

    async def _copy(self, name: str, remote: str, backup_id: str) -> None:
        """Copy the new backup off-host; a failure is logged as an error (the operator's
        alert) and never fails the backup before it."""
        try:
            (outcome,) = await run_copy(
                self.config, self.repo, remote, [backup_id], self._job_log(name)
            )
        except (LifeboatError, OSError) as exc:
            self.log(
                "copy.failed",
                level="error",
                schedule=name,
                backup=backup_id,
                remote=remote,
                error=describe_error(exc),
            )
            return
        self.log(
            "copy.finished",
            schedule=name,
            backup=backup_id,
            remote=remote,
            bytes=outcome.bytes_sent,
            files=len(outcome.sent),
        )

    async def _prune(self, name: str) -> None:
        """Prune by policy; a failure is logged and never fails the backup before it. The
        catalog hears of what was removed once, at the end (a warning when it does not answer)."""
        prune = partial(
            retention.prune, self.config, self.repo, self.config.operator, dry_run=False
        )
        deadline = self.clock() + PRUNE_WAIT

        def warn(text: str) -> None:
            self.log("catalog", level="warning", schedule=name, error=text)

        async with self.repo.write_hook.batch_async(warn):
            try:
                plan = await self._when_unlocked(lambda: asyncio.to_thread(prune), deadline)
            except (LifeboatError, OSError) as exc:
                self.log("prune.failed", level="warning", schedule=name, error=describe_error(exc))
                return
            self.log(
                "prune", schedule=name, kept=len(plan.keep), removed=[m.id for m in plan.remove]
            )


class ScheduleOutcome:
    """How one tick's run ended, for the schedule's state file."""

    def __init__(self, fire: datetime) -> None:
        self.fire = fire
        self.outcome = "failed"
        self.backup: str | None = None
        self.error: str | None = "interrupted"

    def succeeded(self, manifest: Manifest) -> None:
        self.outcome, self.backup, self.error = "ok", manifest.id, None

    def failed(self, error: str) -> None:
        self.outcome, self.error = "failed", error

    def cancelled(self) -> None:
        self.outcome, self.error = "cancelled", "cancelled when the scheduler stopped"

    def state(self, old: ScheduleState | None, instance: str, now: datetime) -> ScheduleState:
        """The new state; a cancelled run leaves the last tick run as it was (to run again)."""
        previous = old.last_fire if old else None
        return ScheduleState(
            first_seen=old.first_seen if old else iso_z(now),
            last_fire=previous if self.outcome == "cancelled" else iso_z(self.fire),
            last_outcome=self.outcome,
            last_backup=self.backup,
            last_error=self.error,
            instance=instance,
        )


def _until(times: Iterator[datetime], end: datetime) -> Iterator[datetime]:
    """The items of the increasing iterator ``times`` up to ``end``."""
    for moment in times:
        if moment > end:
            return
        yield moment

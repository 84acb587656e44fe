"""What the console knows about running and finished jobs, fed by engine events.

The engine reports through typed events; this model folds them into per-job, per-source
state that widgets render. It holds no reference to the App: the App feeds it and publishes
a signal when it changed.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime

from engine.events import (
    CheckReported,
    Event,
    JobFinished,
    JobStarted,
    LogLine,
    Progress,
    StageChanged,
)
from engine.repo.manifest import utc_now

MAX_LOG_LINES = 2000
FINAL_STAGES = frozenset({"done", "failed", "cancelled", "skipped", "checked"})
# A live stage a job that went well ends on, and what it then was: a restore's checks alone (a
# "check" job, the wizard's Checks step) end validating; they restored nothing: not "done".
ENDED_AS = {"validating": "checked"}


@dataclass
class SourceState:
    stage: str = "waiting"
    done: int = 0
    total: int | None = None
    rate: float = 0.0
    unit: str = "bytes"

    @property
    def final(self) -> bool:
        return self.stage in FINAL_STAGES


def final_stage(source: str, state: SourceState, finished: JobFinished) -> str:
    """What a source ended as once its job finished, whatever live stage it last reported:
    a final stage stays; a source the job's errors name failed; in a cancelled job the rest
    were cancelled; in a job that went well the rest (a part like the restore's own row) are
    done (or checked, after the checks alone); in a failed job a source that never
    started was skipped, one under way failed."""
    if state.final:
        return state.stage
    if any(failure.source == source for failure in finished.errors):
        return "failed"
    if finished.cancelled:
        return "cancelled"
    if finished.ok:
        return ENDED_AS.get(state.stage, "done")
    return "skipped" if state.stage == "waiting" else "failed"


def settle(job: JobState) -> None:
    """Give every source of a finished job its final stage, and no rate: nothing moves now.
    A source in the scope of a backup, or of a restore that reached its steps, that never
    reported gets a row too (cancelled or skipped). A verify reports as one row; a restore's
    checks (a "check" job, or a restore they refused) touch none of its sources."""
    finished = job.finished
    if finished is None:
        return
    reached = any(source in job.sources for source in job.scope)
    if job.kind == "backup" or (job.kind == "restore" and reached):
        for source in job.scope:
            job.sources.setdefault(source, SourceState())
    for source, state in job.sources.items():
        state.stage = final_stage(source, state, finished)
        state.rate = 0.0


@dataclass
class JobState:
    key: str  # the console's own name for the job, known before the engine names it
    kind: str
    started: datetime
    job_id: str | None = None  # the engine's (a backup id), from JobStarted
    scope: tuple[str, ...] = ()  # the sources the job covers, from JobStarted
    sources: dict[str, SourceState] = field(default_factory=dict)
    checks: list[CheckReported] = field(default_factory=list)  # a restore's, in fixed order
    finished: JobFinished | None = None

    @property
    def running(self) -> bool:
        return self.finished is None


@dataclass(frozen=True)
class LogEntry:
    at: datetime
    source: str
    level: str
    text: str


class JobBoard:
    """Every job of this console session, newest first, and the log of what they said."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobState] = {}
        self.log: list[LogEntry] = []
        self.logged = 0  # entries ever noted; the log keeps the newest MAX_LOG_LINES

    def open(self, key: str, kind: str) -> JobState:
        """Register a job the console is starting, before the engine says anything."""
        job = self.jobs[key] = JobState(key, kind, utc_now())
        return job

    def apply(self, key: str, event: Event) -> None:
        job = self.jobs[key]
        if isinstance(event, JobStarted):
            job.job_id = event.job_id
            job.scope = event.sources  # rows appear as parts report (verify reports as one)
            self.note("lifeboat", "info", f"{event.kind} {event.job_id} started")
        elif isinstance(event, JobFinished):
            job.finished = event
            settle(job)
            verdict = "cancelled" if event.cancelled else ("finished" if event.ok else "FAILED")
            self.note(
                "lifeboat", "info" if event.ok else "error", f"{job.kind} {event.job_id} {verdict}"
            )
        elif isinstance(event, StageChanged):
            job.sources.setdefault(event.source, SourceState()).stage = event.stage
        elif isinstance(event, Progress) and event.item is None:  # per-item counts: not here
            state = job.sources.setdefault(event.source, SourceState())
            state.done, state.total, state.rate, state.unit = (
                event.done,
                event.total,
                event.rate,
                event.unit,
            )
        elif isinstance(event, LogLine):
            self.note(event.source, event.level, event.text)
        elif isinstance(event, CheckReported):
            bisect.insort(job.checks, event, key=lambda check: check.order)
            if event.status != "ok":
                self.note("validator", "error" if event.status == "fail" else "warning",
                          f"{event.name}: {event.detail}")  # fmt: skip

    def fail(self, key: str, message: str) -> None:
        """A job ended with an error before or without its JobFinished (a worker error)."""
        job = self.jobs[key]
        if job.finished is None:
            job.finished = JobFinished(job.job_id or key, ok=False)
            settle(job)
        self.note(job.kind, "error", message)

    def running(self) -> list[JobState]:
        return [job for job in self.jobs.values() if job.running]

    def note(self, source: str, level: str, text: str) -> None:
        self.log.append(LogEntry(utc_now(), source, level, text))
        self.logged += 1
        del self.log[:-MAX_LOG_LINES]

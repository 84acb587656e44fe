"""The typed, immutable events a job emits, and a meter that throttles progress.

Front ends (CLI, console, JSON lines) only ever see these; a source never knows who listens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class JobStarted:
    job_id: str
    kind: str  # "backup", "restore", "verify"
    sources: tuple[str, ...]


@dataclass(frozen=True)
class StageChanged:
    source: str
    stage: str


@dataclass(frozen=True)
class Progress:
    source: str
    done: int
    total: int | None
    rate: float  # units per second, smoothed
    unit: str = "bytes"  # or "documents"
    item: str | None = None  # a part of the source, e.g. one Mongo namespace


@dataclass(frozen=True)
class LogLine:
    source: str
    level: str  # "info", "warning", "error"
    text: str


@dataclass(frozen=True)
class SourceFailed:
    source: str
    error: str


@dataclass(frozen=True)
class JobFinished:
    job_id: str
    ok: bool
    cancelled: bool = False
    manifest_id: str | None = None
    errors: tuple[SourceFailed, ...] = ()
    kept_at: str | None = field(default=None)  # where a failed staging dir was kept


@dataclass(frozen=True)
class CheckReported:
    """One verdict of the restore validator, as it arrives. Checks run at once end in any
    order; ``order`` is the place this one has in the validator's fixed order, the order
    its final report lists them in (front ends insert by it, so the list never reshuffles)."""

    name: str
    status: str  # "ok", "warning", "fail"
    detail: str
    order: tuple[int, int] = (0, 0)


Event = JobStarted | StageChanged | Progress | LogLine | CheckReported | JobFinished
Emit = Callable[[Event], None]


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-ready dict with the event's type name, for ``--json`` output."""
    return {"event": type(event).__name__, **asdict(event)}


class ProgressMeter:
    """Turns a stream of byte counts into at most ``max_hz`` Progress events with a rate."""

    def __init__(
        self,
        source: str,
        emit: Emit,
        total: int | None = None,
        *,
        unit: str = "bytes",
        item: str | None = None,
        max_hz: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.total = total
        self.unit = unit
        self.item = item
        self.done = 0
        self._emit = emit
        self._clock = clock
        self._interval = 1.0 / max_hz
        self._started = clock()
        self._last_emit = float("-inf")
        self._rate = 0.0
        self._rate_mark = (self._started, 0)

    def advance(self, amount: int) -> None:
        self.update(self.done + amount)

    def update(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        now = self._clock()
        if now - self._last_emit >= self._interval:
            self._emit_now(now)

    def finish(self) -> None:
        """Emit the final count whatever the throttle says."""
        self._emit_now(self._clock())

    def _emit_now(self, now: float) -> None:
        mark_time, mark_done = self._rate_mark
        elapsed = now - mark_time
        if elapsed >= 0.25:
            instant = (self.done - mark_done) / elapsed
            self._rate = instant if self._rate == 0 else 0.7 * self._rate + 0.3 * instant
            self._rate_mark = (now, self.done)
        elif self._rate == 0 and now > self._started:
            self._rate = self.done / (now - self._started)
        self._last_emit = now
        self._emit(Progress(self.source, self.done, self.total, self._rate, self.unit, self.item))

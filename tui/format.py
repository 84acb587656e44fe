"""Small, pure text helpers shared by CLI and console: sizes, ages, rates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.durations import format_duration
from engine.sizes import human_size as human_size  # the console imports it from here


def current_time() -> datetime:
    """The console's clock (one place, so snapshot tests can freeze it)."""
    return datetime.now(UTC)


def age(moment: datetime, now: datetime | None = None) -> str:
    """``3h 12m ago`` (the two largest units)."""
    delta = (now or current_time()) - moment
    return f"{format_duration(max(delta, timedelta(0)))} ago"


def eta(done: int, total: int | None, rate: float) -> str:
    if not total or rate <= 0 or done >= total:
        return ""
    return format_duration(timedelta(seconds=(total - done) / rate))


def seconds_text(seconds: float) -> str:
    """A measured time, short: 0.4s under ten seconds, else as durations are (12s, 3m 5s)."""
    return f"{seconds:.1f}s" if seconds < 10 else format_duration(timedelta(seconds=seconds))

"""One line per schedule under the tier cards: its next runs, how the last run went, and
OVERDUE in the breach colour; then one line per held lock (who, since when). Above them, in
the breach colour, the repository's problems: an unfinished restore, killed jobs' leftovers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.text import Text
from textual.widget import Widget

from engine.durations import format_duration
from engine.schedule.status import ScheduleStatus
from engine.status import LockLine
from tui import format as fmt

RUNS_SHOWN = 2


class ScheduleStrip(Widget):
    DEFAULT_CSS = """
    ScheduleStrip {
        height: auto;
        max-height: 4;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self) -> None:
        super().__init__(id="schedules")
        self.schedules: Sequence[ScheduleStatus] = ()
        self.locks: Sequence[LockLine] = ()
        self.alerts: Sequence[str] = ()

    def show(
        self,
        schedules: Sequence[ScheduleStatus],
        locks: Sequence[LockLine],
        alerts: Sequence[str] = (),
    ) -> None:
        """``alerts``: the repository's problems (an unfinished restore...), shown first."""
        self.schedules, self.locks, self.alerts = schedules, locks, alerts
        self.display = bool(schedules or locks or alerts)
        self.refresh(layout=True)

    def render(self) -> Text:
        colours = self.app.theme_variables
        now = fmt.current_time()
        text = Text(no_wrap=True, overflow="ellipsis")
        for alert in self.alerts:
            text.append(f"{alert}\n", style=f"bold {colours.get('rpo-breach')}")
        width = max((len(s.name) for s in self.schedules), default=0)
        for status in self.schedules:
            text.append(f"{status.name:<{width}} ", style="bold")
            text.append_text(schedule_line(status, now, colours))
            text.append("\n")
        for lock in self.locks:
            text.append(f"lock {lock.kind} {lock.name}: ", style="bold")
            text.append(f"{lock.holder}\n")
        text.rstrip()
        return text


def schedule_line(status: ScheduleStatus, now: datetime, colours: dict[str, str]) -> Text:
    """``next 02:00 CET (in 3h 12m), Sun 02:00 · last 21h ago``, OVERDUE first when it is."""
    line = Text()
    breach = f"bold {colours.get('rpo-breach')}"
    zone = status.schedule.zone
    if status.missed is not None:
        missed = status.missed.astimezone(zone)
        what = "never run" if status.state is None else f"missed {missed:%a %H:%M %Z}"
        line.append(f"OVERDUE {what}", style=breach).append(" · ")
    if not status.schedule.enabled:
        return line.append("disabled", style="dim")
    if status.error is not None:
        return line.append(f"ERROR {status.error}", style=breach)
    today = now.astimezone(zone).date()
    first, *more = [t.astimezone(zone) for t in status.next_runs[:RUNS_SHOWN]]
    day = "" if first.date() == today else f"{first:%a} "
    line.append(f"next {day}{first:%H:%M %Z} (in {format_duration(first - now)})")
    line.append("".join(f", {t:%a %H:%M}" if t.date() != today else f", {t:%H:%M}" for t in more))
    if status.last is not None:
        line.append(f" · last {format_duration(now - status.last.created_at)} ago")
    state = status.state
    if state is not None and state.last_outcome == "failed":
        line.append(" · last run FAILED", style=breach)
    return line

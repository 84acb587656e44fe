"""One tier at a glance: RPO state by colour and by word, age, size, last verify, and the
last drill's measured restore time against the tier's RTO."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from engine.durations import format_duration
from engine.status import RpoState, TierStatus
from tui.format import human_size, seconds_text

WORDS = {RpoState.OK: "OK", RpoState.WARNING: "WARNING", RpoState.BREACH: "BREACH"}


class TierCard(Widget):
    DEFAULT_CSS = """
    TierCard {
        width: 1fr;
        height: 6;
        border: round $foreground 30%;
        border-title-style: bold;
        padding: 0 1;
    }
    TierCard.ok { border: round $rpo-ok; }
    TierCard.warning { border: round $rpo-warning; }
    TierCard.breach { border: round $rpo-breach; }
    """

    def __init__(self, status: TierStatus) -> None:
        super().__init__(id=f"tier-{status.name}")
        self.status = status
        self.border_title = status.name
        self.set_classes(status.state.value)

    def update_status(self, status: TierStatus) -> None:
        self.status = status
        self.set_classes(status.state.value)
        self.refresh()

    def render(self) -> Text:
        """Four short lines; at 80 columns a card has 22, so a longer one ends in "…"."""
        status = self.status
        colours = self.app.theme_variables
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(WORDS[status.state], style=f"bold {colours.get('rpo-' + status.state.value)}")
        text.append(f"  RPO {format_duration(status.tier.rpo)}\n")
        if status.last is None or status.age is None:
            text.append("no backup covers it\n\n")
        else:
            text.append(f"last {format_duration(status.age)} ago\n{human_size(status.size)}, ")
            verify = status.last_verify
            if verify is None:
                text.append("not verified\n", style="dim")
            elif verify.ok:
                text.append("verified OK\n")
            else:
                text.append("verify FAILED\n", style=f"bold {colours.get('rpo-breach')}")
        text.append_text(self._drill_line(colours))
        return text

    def _drill_line(self, colours: dict[str, str]) -> Text:
        status = self.status
        rto = f"RTO {format_duration(status.tier.rto)}"
        drill = status.last_drill
        if drill is None:
            return Text(f"{rto}: never drilled", style="dim")
        if not drill.passed:
            return Text(f"{rto}: drill FAILED", style=f"bold {colours.get('rpo-breach')}")
        measured = f"{rto}: drill {seconds_text(drill.restore_seconds or 0)}"
        if status.rto_met:
            return Text(measured)
        return Text(measured + " OVER", style=f"bold {colours.get('rpo-warning')}")

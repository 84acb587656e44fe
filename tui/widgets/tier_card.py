"""One tier at a glance: RPO state by colour and by word, age, size, last verify."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from engine.durations import format_duration
from engine.status import RpoState, TierStatus
from tui.format import human_size

WORDS = {RpoState.OK: "OK", RpoState.WARNING: "WARNING", RpoState.BREACH: "BREACH"}


class TierCard(Widget):
    DEFAULT_CSS = """
    TierCard {
        width: 1fr;
        height: 5;
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
        status = self.status
        colours = self.app.theme_variables
        text = Text()
        text.append(WORDS[status.state], style=f"bold {colours.get('rpo-' + status.state.value)}")
        text.append(f"  RPO {format_duration(status.tier.rpo)}\n")
        if status.last is None or status.age is None:
            text.append("no backup covers it yet")
            return text
        text.append(f"last {format_duration(status.age)} ago, {human_size(status.size)}\n")
        verify = status.last_verify
        if verify is None:
            text.append("not verified yet", style="dim")
        elif verify.ok:
            text.append("verified OK")
        else:
            text.append("verify FAILED", style=f"bold {colours.get('rpo-breach')}")
        return text

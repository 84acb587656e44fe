"""One tier at a glance: RPO state by colour and by word, age, size, last verify, and the
last drill's measured restore time against the tier's RTO.

A card never wraps a line (a wrapped line pushes the RTO line out of the card). When every
card of the dashboard is wide enough, the state and the age share the first line (three lines
in all), otherwise they take two (four lines), so the cards of a row stay the same height; a
line still too long ends in "…".
"""

from __future__ import annotations

from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

from engine.durations import format_duration
from engine.status import RpoState, TierStatus
from tui.format import human_size, seconds_text

WORDS = {RpoState.OK: "OK", RpoState.WARNING: "WARNING", RpoState.BREACH: "BREACH"}
# The widest line a card needs at four lines ("RTO 15m: never drilled"), plus borders and
# padding: the narrowest a card is laid out (see DashboardScreen's tier columns).
CARD_MIN_WIDTH = 26
CHROME_WIDTH = 4  # the border and the padding, left and right


class TierCard(Widget):
    DEFAULT_CSS = """
    TierCard {
        width: 1fr;
        height: auto;
        border: round $foreground 30%;
        border-title-style: bold;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
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
        self.three_lines = False  # set by the dashboard, for every card at once

    def update_status(self, status: TierStatus) -> None:
        self.status = status
        self.set_classes(status.state.value)
        self.refresh(layout=True)  # the state line may now need a line of its own

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.lines())

    def render(self) -> Text:
        return Text("\n").join(self.lines())

    def three_line_width(self) -> int:
        """The content width this card needs to show its state and age on one line."""
        return self._parts()[0].cell_len

    def lines(self) -> list[Text]:
        joined, state, age, backup, drill = self._parts()
        lines = [joined, backup, drill] if self.three_lines else [state, age, backup, drill]
        offsite = self._offsite_line(self.app.theme_variables)
        return lines if offsite is None else [*lines, offsite]

    def _offsite_line(self, colours: dict[str, str]) -> Text | None:
        """The newest off-host copy's age (only when remotes are configured)."""
        status = self.status
        offsite = status.offsite
        if offsite is None:
            return None
        style = (
            ""
            if offsite.state.value == "ok"
            else f"bold {colours.get('rpo-' + offsite.state.value)}"
        )
        if offsite.age is None:
            return Text("no off-host copy", style=style)
        where = ", ".join(offsite.remotes)
        return Text(f"off-host {format_duration(offsite.age)} ago ({where})", style=style)

    def _parts(self) -> tuple[Text, Text, Text, Text, Text]:
        status = self.status
        colours = self.app.theme_variables
        state = Text(WORDS[status.state], style=f"bold {colours.get('rpo-' + status.state.value)}")
        state.append(f"  RPO {format_duration(status.tier.rpo)}")
        if status.last is None or status.age is None:
            age, backup = Text("no backup covers it"), Text("")
        else:
            age = Text(f"last {format_duration(status.age)} ago")
            backup = Text(f"{human_size(status.size)}, ")
            verify = status.last_verify
            if verify is None:
                backup.append("not verified", style="dim")
            elif verify.ok:
                backup.append("verified OK")
            else:
                backup.append("verify FAILED", style=f"bold {colours.get('rpo-breach')}")
        drill = self._drill_line(colours)
        joined = Text.assemble(state, " · ", age)
        return joined, state, age, backup, drill

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

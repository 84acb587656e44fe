"""The session's log: every job's stages, warnings and errors, kept and scrollable."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from tui.console.jobs import LogEntry


class LogPane(RichLog):
    DEFAULT_CSS = """
    LogPane {
        height: 1fr;
        min-height: 3;
        border: round $foreground 30%;
        border-title-color: $foreground;
    }
    """

    def __init__(self) -> None:
        super().__init__(wrap=True, markup=False, highlight=False, max_lines=2000, id="log")
        self.border_title = "log"
        self.shown = 0

    def show(self, entries: list[LogEntry], logged: int) -> None:
        """Append what is new: ``logged`` counts every entry ever, ``entries`` the kept tail."""
        new = min(logged - self.shown, len(entries))
        for entry in entries[len(entries) - new :]:
            self.write(self._line(entry))
        self.shown = logged

    def _line(self, entry: LogEntry) -> Text:
        colours = self.app.theme_variables
        style = {"error": f"bold {colours.get('error')}", "warning": colours.get("warning", "")}
        return Text.assemble(
            (f"{entry.at:%H:%M:%S} ", "dim"),
            (f"{entry.source}: ", "bold"),
            (entry.text, style.get(entry.level, "")),
        )

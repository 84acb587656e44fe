"""Every binding of the console, the screen underneath and the App, in one list."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 60; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    HelpScreen DataTable { height: auto; max-height: 18; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss(None)", "Close")
    ]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]Keys[/b]  (Ctrl+P: every action by name; Esc closes)")
            yield DataTable(cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("key", "does")
        underneath = self.app.screen_stack[-2] if len(self.app.screen_stack) > 1 else self.app
        seen: set[str] = set()
        for owner in (underneath, self.app):
            for binding in owner.BINDINGS:
                if isinstance(binding, Binding) and binding.description and binding.key not in seen:
                    seen.add(binding.key)
                    does = binding.tooltip or binding.description  # the longer, if any
                    table.add_row(binding.key_display or binding.key, does)
        table.add_row("ctrl+p", "command palette")
        table.add_row("tab / shift+tab", "move between panes")

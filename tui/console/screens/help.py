"""Every key that works on the screen underneath, read from its bindings (``tui.console.keys``)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from tui.console.keys import key_rows, shown_keys
from tui.console.widgets.footer import KeysFooter


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    HelpScreen DataTable { height: auto; max-height: 20; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss(None)", "Close", key_display="esc/q/?")
    ]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]Keys[/b] on this screen  (Esc closes; ↑↓ scroll)")
            yield DataTable(cursor_type="row", zebra_stripes=True)
        yield KeysFooter()  # the dialog's keys (Esc, y/n), not the screen's below

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("key", "does")
        underneath = self.app.screen_stack[-2] if len(self.app.screen_stack) > 1 else self.screen
        for row in key_rows(self.app, underneath):
            table.add_row(shown_keys(row), row.does)

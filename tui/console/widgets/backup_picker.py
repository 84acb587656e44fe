"""The guided restore's list of backups to restore from: one line each, with a cursor.

It looks and keys like an ``OptionList`` but paints only the lines on screen (``RowCursor``):
an OptionList measures every option before its first paint, a quarter of a second for 2,500
backups, and a repository may hold 10,000 that all cover the chosen sources.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from rich.segment import Segment
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.strip import Strip

from engine.repo.repository import VerifyRecord
from engine.restore.scenario import DRILL_TRIGGER, SAFETY_TRIGGER
from tui import format as fmt
from tui.console.backup_index import BackupRow
from tui.console.widgets.backup_list import fit
from tui.console.widgets.row_cursor import RowCursor
from tui.format import age


def describe(row: BackupRow, verify: VerifyRecord | None) -> str:
    """One backup's line: id, age, verified or not (or a safety backup), a drill's, label."""
    mark = "verified" if verify and verify.ok else "not verified"
    if row.trigger == SAFETY_TRIGGER:
        mark = "safety backup"
    elif row.trigger == DRILL_TRIGGER:
        mark = f"drill, {mark}"
    line = f"{row.id}  {age(row.created_at, fmt.current_time()):>8}  {mark}"
    return f"{line}  {row.label}" if row.label else line


class BackupPicker(RowCursor):
    """Backups, newest first; Enter (or a click) chooses the one under the cursor."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"backup-picker--highlighted"}
    DEFAULT_CSS = """
    BackupPicker {
        height: auto;
        max-height: 100%;
        color: $foreground;
        overflow-x: hidden;
        padding: 0 1;
        background: $surface;
        & > .backup-picker--highlighted {
            color: $foreground;
            background: $block-cursor-blurred-background;
        }
        &:focus {
            background-tint: $foreground 5%;
            & > .backup-picker--highlighted {
                color: $block-cursor-foreground;
                background: $block-cursor-background;
                text-style: $block-cursor-text-style;
            }
        }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select", "Select", show=False)]

    class Highlighted(Message):
        def __init__(self, backup_id: str) -> None:
            super().__init__()
            self.backup_id = backup_id

    class Selected(Message):
        def __init__(self, backup_id: str) -> None:
            super().__init__()
            self.backup_id = backup_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._rows: list[BackupRow] = []
        self._verifications: Mapping[str, VerifyRecord] = {}

    def show(
        self, rows: list[BackupRow], verifications: Mapping[str, VerifyRecord], highlighted: int
    ) -> None:
        """Offer ``rows`` with the cursor on row ``highlighted``."""
        self._rows, self._verifications = rows, verifications
        self.set_row_count(len(rows))
        self.scroll_to(y=0, animate=False)
        self.move_cursor(highlighted)

    @property
    def highlighted_id(self) -> str | None:
        return self._rows[self.cursor].id if self._rows else None

    def cursor_moved(self) -> None:
        if self.highlighted_id is not None:
            self.post_message(self.Highlighted(self.highlighted_id))

    def clicked(self) -> None:
        self.action_select()

    def action_select(self) -> None:
        if self.highlighted_id is not None:
            self.post_message(self.Selected(self.highlighted_id))

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        style = self.rich_style
        index = self.row_at(y)
        if index >= len(self._rows):
            return Strip.blank(width, style)
        if index == self.cursor:
            style += self.get_component_rich_style("backup-picker--highlighted")
        row = self._rows[index]
        text = describe(row, self._verifications.get(row.id))
        return Strip([Segment(fit(text, width), style)], width)

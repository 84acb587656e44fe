"""The guided restore's list of backups to restore from: one line each, with a cursor.

It looks and keys like an ``OptionList`` but paints only the lines on screen: an OptionList
measures every option before its first paint, a quarter of a second for 2,500 backups, and a
repository may hold 10,000 that all cover the chosen sources.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from rich.segment import Segment
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from engine.repo.repository import VerifyRecord
from engine.restore.scenario import DRILL_TRIGGER, SAFETY_TRIGGER
from tui import format as fmt
from tui.console.backup_index import BackupRow
from tui.console.widgets.backup_list import fit
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


class BackupPicker(ScrollView, can_focus=True):
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
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down", "move(1)", "Down", show=False),
        Binding("up", "move(-1)", "Up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "select", "Select", show=False),
    ]

    highlighted: reactive[int] = reactive(0)
    """The index of the backup under the cursor."""

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
        self._rows, self._verifications = rows, verifications
        self.virtual_size = Size(0, len(rows))
        self.scroll_to(y=0, animate=False)
        self.highlighted = highlighted
        self._reveal()
        self.refresh()

    @property
    def highlighted_id(self) -> str | None:
        return self._rows[self.highlighted].id if self._rows else None

    def validate_highlighted(self, index: int) -> int:
        return max(0, min(index, len(self._rows) - 1))

    def watch_highlighted(self) -> None:
        self._reveal()
        self.refresh()
        if self.highlighted_id is not None:
            self.post_message(self.Highlighted(self.highlighted_id))

    def _reveal(self) -> None:
        """Scroll so the cursor's line is on screen."""
        height = max(1, self.scrollable_content_region.height)
        top = round(self.scroll_y)
        if self.highlighted < top:
            self.scroll_to(y=self.highlighted, animate=False)
        elif self.highlighted >= top + height:
            self.scroll_to(y=self.highlighted - height + 1, animate=False)

    def action_move(self, step: int) -> None:
        self.highlighted += step

    def action_page(self, pages: int) -> None:
        self.highlighted += pages * max(1, self.scrollable_content_region.height - 1)

    def action_jump(self, index: int) -> None:
        self.highlighted = index if index >= 0 else len(self._rows) - 1

    def action_select(self) -> None:
        if self.highlighted_id is not None:
            self.post_message(self.Selected(self.highlighted_id))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None and round(self.scroll_y) + offset.y < len(self._rows):
            self.highlighted = round(self.scroll_y) + offset.y
            self.action_select()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        style = self.rich_style
        index = round(self.scroll_y) + y
        if index >= len(self._rows):
            return Strip.blank(width, style)
        if index == self.highlighted:
            style += self.get_component_rich_style("backup-picker--highlighted")
        row = self._rows[index]
        text = describe(row, self._verifications.get(row.id))
        return Strip([Segment(fit(text, width), style)], width)

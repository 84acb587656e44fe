"""A list that paints only the lines on screen, with a cursor over its rows.

Textual's DataTable and OptionList build or measure every row before their first paint, a
second for 10,000 backups. The backup browser's list and the guided restore's backup picker
both hold that many, so both are this: a ScrollView through the Line API, which knows only how
many rows there are; the keys, the mouse and keeping the cursor in view are here, and each
list paints its own lines and says what a move or a click means.
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView


class RowCursor(ScrollView, can_focus=True):
    """Rows under ``HEADER_LINES`` fixed lines (not scrolled past), one cursor among them."""

    HEADER_LINES: ClassVar[int] = 0
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.cursor = 0  # the row under the cursor (0 when there is none)
        self._row_count = 0

    @property
    def row_count(self) -> int:
        return self._row_count

    def set_row_count(self, count: int) -> None:
        """The rows changed: there are ``count`` now (the caller moves the cursor after)."""
        self._row_count = count
        self.virtual_size = Size(0, count + self.HEADER_LINES)

    @property
    def body_height(self) -> int:
        """How many rows fit on screen at once."""
        return max(1, self.scrollable_content_region.height - self.HEADER_LINES)

    def row_at(self, y: int) -> int:
        """The row painted on line ``y`` of the widget (a header line gives a negative one)."""
        return round(self.scroll_y) + y - self.HEADER_LINES

    def move_cursor(self, index: int) -> None:
        """Put the cursor on row ``index`` (kept within the rows) and scroll it into view."""
        self.cursor = max(0, min(index, self._row_count - 1))
        top = round(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + self.body_height:
            self.scroll_to(y=self.cursor - self.body_height + 1, animate=False)
        self.refresh()
        self.cursor_moved()

    def cursor_moved(self) -> None:
        """Called after every move (the row may be the same): tell whoever listens."""

    def clicked(self) -> None:
        """Called after a click put the cursor on a row."""

    def action_cursor(self, step: int) -> None:
        self.move_cursor(self.cursor + step)

    def action_page(self, pages: int) -> None:
        self.move_cursor(self.cursor + pages * max(1, self.body_height - 1))

    def action_jump(self, index: int) -> None:
        self.move_cursor(index if index >= 0 else self._row_count - 1)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < self.HEADER_LINES:
            return
        index = self.row_at(offset.y)
        if index < self._row_count:
            self.move_cursor(index)
            self.clicked()

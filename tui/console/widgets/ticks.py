"""Checkboxes whose state reads without colour: ``▐X▌`` ticked, ``▐ ▌`` not.

Textual draws every box as ``▐X▌`` and tells ticked from unticked by colour alone, which is
lost under NO_COLOR, on a low-contrast theme and in a copy of the screen."""

from __future__ import annotations

from rich.segment import Segment
from textual.content import Content
from textual.strip import Strip
from textual.widgets import Checkbox, SelectionList

TICKED = "X"
UNTICKED = " "


def tick(ticked: bool) -> str:
    """The glyph inside the box."""
    return TICKED if ticked else UNTICKED


class TickBox(Checkbox):
    """A Checkbox whose box is empty when it is not ticked."""

    def render(self) -> Content:
        self.BUTTON_INNER = tick(self.value)
        return super().render()


class TickList(SelectionList[str]):
    """A SelectionList whose boxes are empty where a row is not ticked."""

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        segments = list(strip)
        index = self.scroll_offset.y + y
        if (
            len(segments) < 3
            or segments[1].text != Checkbox.BUTTON_INNER
            or not 0 <= index < self.option_count
        ):
            return strip  # not a row with a box
        value = self.get_option_at_index(index).value
        inner = segments[1]
        segments[1] = Segment(tick(value in self.selected), inner.style, inner.control)
        return Strip(segments, strip.cell_length)

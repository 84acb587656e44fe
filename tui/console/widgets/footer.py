"""A compact footer that gives the palette's key up on narrow terminals."""

from __future__ import annotations

from textual import events
from textual.widgets import Footer

PALETTE_FROM = 100  # columns


class KeysFooter(Footer):
    """A compact ``Footer`` showing ``^p palette`` only from PALETTE_FROM columns: at 80 a
    screen with many keys needs the room (Ctrl+P still works, and Help lists it)."""

    def __init__(self) -> None:
        super().__init__(compact=True, show_command_palette=False)

    def on_resize(self, event: events.Resize) -> None:
        wanted = event.size.width >= PALETTE_FROM
        if wanted != self.show_command_palette:
            self.show_command_palette = wanted
            self.refresh(recompose=True)

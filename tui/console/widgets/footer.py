"""A compact footer that gives the palette's key up on narrow terminals."""

from __future__ import annotations

from textual import events
from textual.screen import Screen
from textual.widgets import Footer

PALETTE_FROM = 100  # columns


class KeysFooter(Footer):
    """A compact ``Footer`` showing ``^p palette`` only from PALETTE_FROM columns: at 80 a
    screen with many keys needs the room (Ctrl+P still works, and Help lists it)."""

    def __init__(self) -> None:
        super().__init__(compact=True, show_command_palette=False)

    def bindings_changed(self, screen: Screen[object]) -> None:
        """As Textual's, but one rebuild per frame: its Footer rebuilds its keys on every
        bindings change, and starting a screen brings several at once (four at the console's
        start, 0.08 s of CPU before the first paint)."""
        self._bindings_ready = True
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            self.refresh(recompose=True)

    def on_mount(self) -> None:
        self.show_command_palette = self.app.size.width >= PALETTE_FROM  # before its keys

    def on_resize(self, event: events.Resize) -> None:
        wanted = event.size.width >= PALETTE_FROM
        if wanted != self.show_command_palette:
            self.show_command_palette = wanted
            self.refresh(recompose=True)

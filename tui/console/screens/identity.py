"""The dialog that asks for the age identity opening an encrypted backup.

The operator types the path of an identity file or pastes the ``AGE-SECRET-KEY-1...`` itself
(both hidden); a passphrase-protected file asks for its passphrase next. The identity is read
on a thread (a passphrase costs a second or more of scrypt), checked against the backup's
recipients, and handed back to be kept in memory for this session only: never written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from engine.crypto.age import Identity
from engine.crypto.identities import needs_passphrase, read_identities
from engine.errors import UsageError
from tui.console.screens.modals import MODAL_CSS, wrapped
from tui.console.widgets.footer import KeysFooter

ASKED = "identity file path, or paste AGE-SECRET-KEY-1..."


def short_recipient(recipient: str) -> str:
    """A recipient as a dialog shows it: its start and end (62 characters do not fit)."""
    return f"{recipient[:18]}…{recipient[-8:]}"


class IdentityModal(ModalScreen[tuple[Identity, ...] | None]):
    """The identities that open ``what`` (encrypted to ``recipients``), or None (Esc)."""

    DEFAULT_CSS = MODAL_CSS.format(name="IdentityModal")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, what: str, recipients: Sequence[str]) -> None:
        super().__init__()
        self.what = what
        self.recipients = tuple(recipients)

    def compose(self) -> ComposeResult:
        keys = "\n".join(f"  {short_recipient(r)}" for r in self.recipients)
        with Vertical():
            yield Label(
                wrapped(
                    f"{self.what} is encrypted. To check and restore it, give the identity of one "
                    "of its recipients (kept in memory for this session only):"
                )
                + f"\n{keys}",
                id="about",
            )
            yield Input(placeholder=ASKED, password=True, id="identity")
            passphrase = Input(placeholder="its passphrase", password=True, id="passphrase")
            passphrase.display = False
            yield passphrase
            yield Label("", classes="problem", id="problem")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Open", variant="primary", id="open")
        yield KeysFooter()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "open":
            self._submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self) -> None:
        self._submit()

    def _submit(self) -> None:
        value = self.query_one("#identity", Input).value
        if not value.strip():
            self._say("type the identity file's path, or paste the key")
            return
        passphrase = self.query_one("#passphrase", Input)
        self._say("opening…", problem=False)
        self._open(value, passphrase.value if passphrase.display else None)

    @work(thread=True, exclusive=True)
    def _open(self, value: str, passphrase: str | None) -> None:
        if passphrase is None and needs_passphrase(value):
            self.app.call_from_thread(self._ask_passphrase)
            return
        try:
            found = read_identities(value, lambda: passphrase or "", attempts=1)
        except UsageError as exc:  # the path typed is on screen already
            self.app.call_from_thread(self._say, str(exc).removeprefix(f"{value.strip()}: "))
            return
        if not any(str(identity.recipient) in self.recipients for identity in found):
            given = ", ".join(short_recipient(str(i.recipient)) for i in found)
            self.app.call_from_thread(
                self._say, f"that identity is {given}, not one of these recipients"
            )
            return
        self.app.call_from_thread(self.dismiss, found)

    def _ask_passphrase(self) -> None:
        passphrase = self.query_one("#passphrase", Input)
        passphrase.display = True
        passphrase.focus()
        self._say("the file is protected by a passphrase: type it", problem=False)

    def _say(self, text: str, *, problem: bool = True) -> None:
        label = self.query_one("#problem", Label)
        label.update(wrapped(text))
        label.set_class(problem, "problem")

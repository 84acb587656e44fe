"""Small dialogs that return a typed result with ``dismiss``: choose, confirm, type a name."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, SelectionList
from textual.widgets.option_list import Option
from textual.worker import Worker

from tui.console.widgets.footer import KeysFooter
from tui.console.widgets.ticks import TickList

MODAL_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 64;
    max-width: 100%;
    height: auto;
    max-height: 100%;
    overflow-y: auto;  /* a short terminal scrolls the dialog: Tab brings its buttons */
    border: thick $primary;
    background: $surface;
    padding: 1 2;
}}
{name} Horizontal {{ height: auto; align-horizontal: right; margin-top: 1; }}
{name} Button {{ margin-left: 2; }}
{name} Label {{ width: 100%; }}
{name} .problem {{ color: $error; }}
"""
DIALOG_TEXT_WIDTH = 56  # inside the 64 columns of a modal


def wrapped(text: str) -> str:
    """``text`` as markup-safe lines that fit a confirmation dialog (its label does not wrap)."""
    return escape("\n".join(textwrap.wrap(text, DIALOG_TEXT_WIDTH)))


def worker_named(app: App[object], key: str) -> Worker[Any]:
    """The running worker of the job the console started as ``key``."""
    return next(worker for worker in app.workers if worker.name == key)


@dataclass(frozen=True)
class BackupChoice:
    scope: tuple[str, ...]
    label: str | None


class BackupModal(ModalScreen[BackupChoice | None]):
    """Choose the sources (all by default) and an optional label."""

    DEFAULT_CSS = MODAL_CSS.format(name="BackupModal")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, sources: tuple[str, ...]) -> None:
        super().__init__()
        self.sources = sources

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]Back up now[/b]: sources (space toggles)")
            yield TickList(*((s, s, True) for s in self.sources), id="sources")
            yield Input(placeholder="label (optional), e.g. pre-v1.4-upgrade", id="label")
            yield Label("", classes="problem", id="problem")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Start backup", variant="primary", id="start")
        yield KeysFooter()  # the dialog's keys (Esc, y/n), not the screen's below

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self._start()
        else:
            self.dismiss(None)

    def on_input_submitted(self) -> None:
        self._start()

    def _start(self) -> None:
        chosen = tuple(self.query_one("#sources", SelectionList).selected)
        if not chosen:
            self.query_one("#problem", Label).update("choose at least one source")
            return
        label = self.query_one("#label", Input).value.strip() or None
        self.dismiss(BackupChoice(chosen if len(chosen) < len(self.sources) else (), label))


class ConfirmModal(ModalScreen[bool]):
    """A yes/no question; ``y`` is yes, ``n`` and Esc are no."""

    DEFAULT_CSS = MODAL_CSS.format(name="ConfirmModal")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "dismiss(False)", "No", key_display="n/esc"),
        Binding("y", "dismiss(True)", "Yes"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            with Horizontal():
                yield Button("No", id="no")
                yield Button("Yes", variant="error", id="yes")
        yield KeysFooter()  # the dialog's keys (Esc, y/n), not the screen's below

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class TypedConfirmModal(ModalScreen[bool]):
    """A destructive step: the operator must type ``expected`` exactly."""

    DEFAULT_CSS = MODAL_CSS.format(name="TypedConfirmModal")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(False)", "Cancel")]

    def __init__(self, explanation: str, expected: str) -> None:
        super().__init__()
        self.explanation = explanation
        self.expected = expected

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.explanation)
            yield Label(f"Type [b]{self.expected}[/b] to confirm:")
            yield Input(placeholder=self.expected, id="typed")
            yield Label("", classes="problem", id="problem")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Confirm", variant="error", id="confirm")
        yield KeysFooter()  # the dialog's keys (Esc, y/n), not the screen's below

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "confirm":
            self._check()
        else:
            self.dismiss(False)

    def on_input_submitted(self) -> None:
        self._check()

    def _check(self) -> None:
        if self.query_one("#typed", Input).value == self.expected:
            self.dismiss(True)
        else:
            self.query_one("#problem", Label).update(f"that is not {self.expected!r}")


class ChoiceModal(ModalScreen[str | None]):
    """One of ``choices``, picked with the arrows and Enter; Esc is None."""

    DEFAULT_CSS = MODAL_CSS.format(name="ChoiceModal") + "ChoiceModal OptionList { height: auto; }"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, question: str, choices: list[str]) -> None:
        super().__init__()
        self.question = question
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(escape(self.question))
            yield OptionList(*(Option(escape(c), id=c) for c in self.choices), id="choices")
        yield KeysFooter()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class TextModal(ModalScreen[str | None]):
    """A line of text asked for (a note, a reason, a file name). ``required`` is what is said
    when it is left blank; without it, blank is an answer too. Esc is None."""

    DEFAULT_CSS = MODAL_CSS.format(name="TextModal")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(
        self,
        question: str,
        *,
        verb: str,
        value: str = "",
        placeholder: str = "",
        required: str | None = None,
    ) -> None:
        super().__init__()
        self.question = question
        self.verb = verb
        self.value = value
        self.placeholder = placeholder
        self.required = required

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            yield Input(self.value, placeholder=self.placeholder, id="text")
            yield Label("", classes="problem", id="problem")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button(self.verb, variant="primary", id="ok")
        yield KeysFooter()  # the dialog's keys (Esc, y/n), not the screen's below

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._answer()
        else:
            self.dismiss(None)

    def on_input_submitted(self) -> None:
        self._answer()

    def _answer(self) -> None:
        value = self.query_one("#text", Input).value
        if self.required is not None and not value.strip():
            self.query_one("#problem", Label).update(escape(self.required))
            return
        self.dismiss(value)

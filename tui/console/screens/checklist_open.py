"""Opening a checklist run: a new run of a checklist, or a run left open to resume, chosen in
a :class:`ChecklistPicker` when there is a choice.

The checklists and the stored runs are read, and a new run saved, in threads: the console's
loop never waits for the disk. ``show`` puts the opened session on screen
(``tui.console.screens.checklist.open_checklist`` passes the ChecklistScreen).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList
from textual.widgets.option_list import Option

from engine.checklist.model import Loaded, checklists_for
from engine.checklist.run import unsigned_runs
from engine.checklist.session import ChecklistSession
from engine.errors import ConfigError, LifeboatError, describe_error
from engine.repo.write_hook import Warn
from tui.console.screens.modals import MODAL_CSS, wrapped
from tui.console.services import services
from tui.console.widgets.footer import KeysFooter

Show = Callable[[ChecklistSession, bool], None]  # the session, and whether it is a new run


class ChecklistPicker(ModalScreen[str | None]):
    """Choose a checklist for a new run, or an unsigned run to resume; Esc is None."""

    DEFAULT_CSS = MODAL_CSS.format(name="ChecklistPicker") + (
        "ChecklistPicker OptionList { height: auto; max-height: 14; margin-top: 1; }"
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, heading: str, choices: list[tuple[str, str]]) -> None:
        super().__init__()
        self.heading = heading
        self.choices = choices  # (key, label): "new:NAME" or "resume:RUN"

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.heading)
            yield OptionList(*(Option(label, id=key) for key, label in self.choices))
            with Horizontal():
                yield Button("Cancel", id="cancel")
        yield KeysFooter()  # the dialog's keys (Esc, y/n), not the screen's below

    def on_mount(self) -> None:
        self.query_one(OptionList).highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def on_button_pressed(self) -> None:
        self.dismiss(None)


async def choose(
    app: App[Any],
    show: Show,
    backup_id: str | None,
    restore: dict[str, Any] | None,
    name: str | None,
) -> None:
    """A new run of ``name`` when it is configured; else of the only checklist when no run is
    left open; else the picker of new runs and the unsigned runs to resume."""
    try:
        available = await asyncio.to_thread(checklists_for, services(app).config)
    except ConfigError as exc:
        services(app).notify_problem(
            f"the checklists do not load: {exc}", cause="checklists", timeout=30
        )
        return
    services(app).fixed("checklists")
    if name is not None and name in available:
        await _open_new(app, show, available[name], backup_id, restore)
        return
    resumable = await asyncio.to_thread(unsigned_runs, services(app).repository.path)
    if name is None and len(available) == 1 and not resumable:
        await _open_new(app, show, next(iter(available.values())), backup_id, restore)
        return
    choices = [
        (f"new:{key}", f"New run: {loaded.checklist.title} ({key})")
        for key, loaded in available.items()
    ]
    choices += [
        (f"resume:{run.id}", f"Resume {run.id} {run.checklist}, {len(run.blocking())} open")
        for run in resumable
    ]
    heading = "[b]Validation checklist[/b]"
    if backup_id:
        heading += f" on backup {escape(backup_id)}"
    if name is not None:
        heading += "\n" + wrapped(f"The plan's checklist {name!r} is not configured: choose one.")

    def chosen(key: str | None) -> None:
        if key is None:
            return
        kind, _, value = key.partition(":")
        if kind == "new":
            app.run_worker(_open_new(app, show, available[value], backup_id, restore))
        else:
            app.run_worker(_resume(app, show, available, value))

    app.push_screen(ChecklistPicker(heading, choices), chosen)


def _warner(app: App[Any]) -> Warn:
    """The run's catalog warnings as notifications, from the event loop or a thread alike."""
    loop = asyncio.get_running_loop()

    def warn(text: str) -> None:
        loop.call_soon_threadsafe(partial(app.notify, text, severity="warning", markup=False))

    return warn


async def _open_new(
    app: App[Any],
    show: Show,
    loaded: Loaded,
    backup_id: str | None,
    restore: dict[str, Any] | None,
) -> None:
    repo, warn = services(app).repository, _warner(app)

    def start() -> ChecklistSession:
        manifest = repo.load(backup_id) if backup_id else None
        return ChecklistSession.start(
            services(app).config, repo, loaded, manifest, restore, warn=warn
        )

    try:
        session = await asyncio.to_thread(start)
    except (LifeboatError, OSError) as exc:
        services(app).notify_problem(
            f"no checklist run: {describe_error(exc)}", cause="checklist-open"
        )
        return
    services(app).fixed("checklist-open")
    show(session, True)


async def _resume(app: App[Any], show: Show, available: dict[str, Loaded], run_id: str) -> None:
    resume = partial(
        ChecklistSession.resume,
        services(app).config,
        services(app).repository,
        run_id,
        available,
        warn=_warner(app),
    )
    try:
        session = await asyncio.to_thread(resume)
    except (LifeboatError, OSError) as exc:
        services(app).notify_problem(describe_error(exc), cause="checklist-open")
        return
    services(app).fixed("checklist-open")
    if session.manifest_problem is not None:  # the run is still worth finishing
        app.notify(session.manifest_problem, severity="warning", markup=False)
    show(session, False)

"""The validation checklist of one run: each item's live status, the highlighted item's
evidence, and the operator's part: run again, tick with a note, waive with a reason, sign off,
export.

The run is a :class:`~engine.checklist.session.ChecklistSession`: it checks, saves and audits;
this screen asks and shows (``tui.console.widgets.checklist_view`` draws it). A new run starts
its automatic items as soon as it opens (in a worker, on the console's own event loop); a
resumed run waits for ``a`` or ``A``. Items that do not apply to the restore the run
validates are dimmed with their reason, never run, and need no waiver. Every save and export
is written in a thread, off the event loop. ``open_checklist`` starts a run or offers the runs
left open (``tui.console.screens.checklist_open``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from rich.table import Table
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from engine.checklist.model import ManualItem
from engine.checklist.report import to_json, to_markdown
from engine.checklist.run import NOT_APPLICABLE, ChecklistRun, ItemState
from engine.checklist.session import ChecklistSession
from engine.errors import LifeboatError, UsageError, describe_error
from engine.repo.atomic import atomic_write
from tui.console.screens.checklist_open import choose
from tui.console.screens.modals import ConfirmModal, TextModal, wrapped
from tui.console.services import services
from tui.console.widgets import checklist_view as view
from tui.console.widgets.footer import KeysFooter


class ChecklistScreen(Screen[None]):
    """One run: the items with their status, the highlighted one's evidence, a status line."""

    CSS_PATH = "checklist.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "run_item", "Run", tooltip="Run the highlighted automatic item"),
        Binding("A", "run_all", "Run every automatic item", show=False),
        Binding("t", "tick", "Tick", tooltip="Tick a manual item, with a note"),
        Binding("w", "waive", "Waive", tooltip="Waive an item, with a reason"),
        Binding("s", "sign_off", "Sign off", tooltip="Sign the run off (audited)"),
        Binding(
            "e",
            "export",
            "Export",
            show=False,  # 80 columns; the status line says it once the run is signed off
            tooltip="Export as Markdown or JSON",
        ),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, session: ChecklistSession, *, fresh: bool) -> None:
        super().__init__()
        self.session = session
        self.fresh = fresh  # a new run: its automatic items start at once

    @property
    def run(self) -> ChecklistRun:
        return self.session.run

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        rows = (Option(self._row(state), id=state.id) for state in self.session.run.items)
        yield Header()
        yield Static(id="about")
        yield OptionList(*rows, id="items")
        yield VerticalScroll(Static(id="evidence-text"), id="evidence")
        yield Static(id="status")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.title = self.session.run.title
        self.query_one("#about", Static).update(view.about(self.session))
        items = self.query_one("#items", OptionList)
        items.border_title = f"checklist {self.session.run.checklist}"
        self.query_one("#evidence").border_title = "evidence"
        items.highlighted = 0
        items.focus()
        self._show_status()
        if self.fresh:
            self._start(self.session.automatic_ids())

    def _row(self, state: ItemState) -> Table:
        return view.row(self.session, state, self.app.theme_variables)

    def _show_item(self, state: ItemState) -> None:
        """Repaint one item's row, and the evidence and status lines."""
        items = self.query_one("#items", OptionList)
        items.replace_option_prompt(state.id, self._row(state))
        highlighted = items.highlighted_option
        if highlighted is not None and highlighted.id == state.id:
            self._show_evidence(state)
        self._show_status()

    def _show_all(self) -> None:
        for state in self.session.run.items:
            self._show_item(state)
        if not self.session.run.blocking():  # what refused the sign-off is done now
            services(self.app).fixed("checklist-sign-off")

    def _show_evidence(self, state: ItemState) -> None:
        self.query_one("#evidence").border_title = f"evidence: {state.id}"
        self.query_one("#evidence-text", Static).update(view.evidence(self.session, state))

    def _show_status(self) -> None:
        self.query_one("#items").border_subtitle = view.done_count(self.session)
        variables = self.app.theme_variables
        self.query_one("#status", Static).update(view.status(self.session, variables))

    @on(OptionList.OptionHighlighted, "#items")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id is not None:
            self._show_evidence(self.session.run.state(event.option.id))

    def _current(self) -> ItemState | None:
        option = self.query_one("#items", OptionList).highlighted_option
        return self.session.run.state(option.id) if option is not None and option.id else None

    # -- automatic items ---------------------------------------------------------------

    def _start(self, ids: list[str]) -> None:
        if not ids:
            return
        try:
            checking = self.session.check(ids, changed=self._show_item)
        except LifeboatError as exc:
            self.notify(str(exc), severity="warning", markup=False)
            return
        self.run_worker(checking, group="checklist", exit_on_error=False)
        self._show_status()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "checklist":
            return
        if event.state == WorkerState.ERROR and worker.error is not None:
            services(self.app).notify_problem(
                f"the automatic items stopped: {describe_error(worker.error)}",
                cause="checklist-items",
                timeout=30,
            )
        elif event.state == WorkerState.SUCCESS:
            services(self.app).fixed("checklist-items")
        if worker.is_finished:
            self._show_all()
            self._to_first_open()

    def _to_first_open(self) -> None:
        """The automatic items ran: the cursor goes to the first item still open (the
        operator's part), unless it is on an open one already."""
        blocking = self.session.run.blocking()
        current = self._current()
        if blocking and (current is None or current not in blocking):
            items = self.query_one("#items", OptionList)
            items.highlighted = items.get_option_index(blocking[0].id)

    # -- changes, saved off the event loop ---------------------------------------------------

    def _apply(
        self,
        change: Callable[[], object],
        failed: str,
        done: Callable[[], None] | None = None,
        cause: str = "checklist-change",
    ) -> None:
        """Make one change to the run in a thread (the session saves it, with an fsync), then
        show it; ``failed`` starts what is said when it is refused or cannot be saved (an
        error toast of ``cause``, gone once a change of that cause is made)."""
        lifeboat = services(self.app)

        async def applying() -> None:
            try:
                await asyncio.to_thread(change)
            except LifeboatError as exc:
                lifeboat.notify_problem(f"{failed}{exc}", cause=cause)
            except OSError as exc:
                said = failed or "the run is not saved: "
                lifeboat.notify_problem(f"{said}{exc}", cause=cause)
            else:
                lifeboat.fixed(cause)
                if done is not None:
                    done()
            self._show_all()

        self.run_worker(applying(), group="checklist-change", exit_on_error=False)

    def _changeable(self) -> ItemState | None:
        """The highlighted item, unless the run is signed off (then it is said)."""
        try:
            self.session.ensure_open()
        except UsageError as exc:
            self.notify(str(exc), severity="warning", markup=False)
            return None
        return self._current()

    # -- actions -------------------------------------------------------------------------

    def action_run_item(self) -> None:
        state = self._changeable()
        if state is None:
            return
        item = view.definition(self.session, state.id)
        if state.status == NOT_APPLICABLE:
            self.notify(f"{state.id}: {state.detail}", markup=False)
        elif item is None:
            self.notify(
                f"{state.id} is no longer in the {self.session.run.checklist} checklist: "
                "w waives it",
                severity="warning",
                markup=False,
            )
        elif isinstance(item, ManualItem):
            self.notify(
                f"{state.id} is a manual item: t ticks it when done, w waives it",
                severity="warning",
                markup=False,
            )
        elif state.id in self.session.checking:
            self.notify(f"{state.id} is being checked; wait for it", markup=False)
        else:
            self._start([state.id])

    def action_run_all(self) -> None:
        if self._changeable() is None:
            return
        if self.session.checking:
            self.notify("automatic items are being checked; wait for them", severity="warning")
            return
        self._start(self.session.automatic_ids())

    def action_tick(self) -> None:
        state = self._changeable()
        if state is None:
            return
        item = view.definition(self.session, state.id)
        if not isinstance(item, ManualItem):
            self.notify(
                f"{state.id} is checked automatically: a runs it, w waives it",
                severity="warning",
                markup=False,
            )
            return
        needed = item.note == "required"
        required = "this item needs a note saying what was seen" if needed else None
        label = "[b]Note (required)[/b]:" if needed else "Note (optional):"
        question = f"{wrapped(f'{item.title}: {item.instruction}')}\n{label}"

        def ticked(note: str | None) -> None:
            if note is not None:
                self._apply(partial(self.session.tick, state.id, note), "")

        self.app.push_screen(
            TextModal(question, verb="Tick", value=state.note, required=required), ticked
        )

    def action_waive(self) -> None:
        state = self._changeable()
        if state is None:
            return
        if state.id in self.session.checking:
            self.notify(f"{state.id} is being checked; wait for it", markup=False)
            return
        if state.status in ("passed", "ticked"):
            self.notify(f"{state.id} is done: there is nothing to waive", markup=False)
            return
        if state.status == NOT_APPLICABLE:
            self.notify(f"{state.id}: {state.detail}; there is nothing to waive", markup=False)
            return
        detail = f": {state.detail}" if state.detail else ""
        question = wrapped(
            f"Waive {state.title}? It is {view.word(self.session, state)}{detail}. Why is that "
            "acceptable? The reason is kept with the run and in the sign-off's audit record."
        )

        def waived(reason: str | None) -> None:
            if reason is not None:
                self._apply(partial(self.session.waive, state.id, reason), "")

        self.app.push_screen(
            TextModal(
                question,
                verb="Waive",
                value=state.waiver,
                placeholder="e.g. known flaky probe, ticket OPS-12",
                required="a waiver needs a written reason",
            ),
            waived,
        )

    def action_sign_off(self) -> None:
        signed = self.session.run.signoff
        if signed is not None:
            self.notify(
                f"already signed off by {signed.operator} at {view.when(signed.at)}", markup=False
            )
            return
        open_items = self.session.run.blocking()
        if open_items:
            listed = "; ".join(f"{i.id} is {view.word(self.session, i)}" for i in open_items)
            services(self.app).notify_problem(
                f"Not signed off: {listed}. Each required item must pass, be ticked, or be "
                "waived with a reason.",
                cause="checklist-sign-off",
                title="required items open",
                timeout=15,
            )
            return
        run = self.session.run
        waived = [item.id for item in run.items if item.status == "waived"]
        question = (
            f"Sign off run {run.id} ({run.title}) as {self.session.config.operator}? The audit "
            "log records who, from which host, and when; the run cannot change afterwards."
        )
        if waived:
            question += f" Waived: {', '.join(waived)}."

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._apply(self.session.sign_off, "not signed off: ", self._signed)

        self.app.push_screen(ConfirmModal(wrapped(question)), confirmed)

    def _signed(self) -> None:
        signed = self.session.run.signoff
        assert signed is not None
        self.notify(f"signed off by {signed.operator} at {view.when(signed.at)}", markup=False)

    def action_export(self) -> None:
        run_id = self.session.run.id
        question = wrapped(
            f"Export run {run_id} as Markdown (as JSON when the name ends in .json). "
            f"A relative name is under {Path.cwd()}."
        )

        def chosen(name: str | None) -> None:
            if name is not None:
                self._export(Path.cwd() / Path(name.strip()).expanduser())

        self.app.push_screen(
            TextModal(
                question, verb="Export", value=f"checklist-{run_id}.md", required="type a file name"
            ),
            chosen,
        )

    def _export(self, path: Path) -> None:
        if path.is_dir():
            services(self.app).notify_problem(
                f"{path} is a directory: name a file", cause="checklist-export"
            )
            return
        run, manifest = self.session.run, self.session.manifest
        text = to_json(run) if path.suffix == ".json" else to_markdown(run, manifest)
        self._apply(
            partial(atomic_write, path, text.encode()),
            f"cannot write {path}: ",
            lambda: self.notify(f"exported to {path}", markup=False),
            cause="checklist-export",
        )

    def action_back(self) -> None:
        if self.session.checking:
            self.notify(
                f"stopped {len(self.session.checking)} automatic item(s) being checked; they are "
                "saved as not run (a or A checks them when the run is resumed)",
                severity="warning",
            )
        self.dismiss()


def open_checklist(
    app: App[Any],
    backup_id: str | None = None,
    restore: dict[str, Any] | None = None,
    name: str | None = None,
) -> None:
    """Open a checklist run on ``backup_id``: a new run of ``name`` when it is configured;
    else of the only checklist when no run is left open; else a picker of new runs and the
    unsigned runs to resume. ``restore`` is what the restore that asks for it did. The files
    are read, and a new run saved, in a worker's thread."""

    def show(session: ChecklistSession, fresh: bool) -> None:
        app.push_screen(ChecklistScreen(session, fresh=fresh))

    app.run_worker(choose(app, show, backup_id, restore, name))

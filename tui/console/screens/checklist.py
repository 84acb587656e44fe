"""The validation checklist of one run: each item's live status, the highlighted item's
evidence, and the operator's part: run again, tick with a note, waive with a reason, sign off,
export.

A new run starts its automatic items as soon as it opens (in a worker, on the console's own
event loop); a resumed run waits for ``a`` or ``A``. Every change is saved in the repository
at once (``checklists/<run id>.json``); the sign-off goes to the audit log. ``open_checklist``
starts a run or offers the runs left open.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Header, Label, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from engine.checklist.model import Item, Loaded, ManualItem, checklists_for
from engine.checklist.report import RESULT_WORDS, to_json, to_markdown
from engine.checklist.run import (
    DONE,
    ChecklistRun,
    ItemState,
    load_run,
    new_run,
    run_automatic,
    run_ids,
    save,
    sign_off,
    tick,
    waive,
)
from engine.errors import ConfigError, LifeboatError, describe_error
from engine.repo.atomic import atomic_write
from engine.repo.manifest import Manifest
from tui.console.screens.modals import MODAL_CSS, ConfirmModal, TextModal, wrapped
from tui.console.services import Services, services
from tui.console.widgets.footer import KeysFooter
from tui.format import age

if TYPE_CHECKING:
    from tui.console.app import LifeboatApp

MARKS = {
    "passed": ("✓", "success"),
    "ticked": ("✓", "success"),
    "failed": ("✗", "error"),
    "waived": ("~", "warning"),
    "running": ("…", "accent"),
    "pending": ("·", ""),
}
RESUMABLE = 10  # unsigned runs offered by the picker, newest first
RUNS_SCANNED = 200  # stored runs read to find them


def when(moment: str) -> str:
    """An item's or sign-off's ISO time as ``2026-11-21 15:00:02Z``."""
    try:
        parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return moment
    return f"{parsed:%Y-%m-%d %H:%M:%S}Z"


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

    def __init__(
        self, run: ChecklistRun, loaded: Loaded, manifest: Manifest | None, *, fresh: bool
    ) -> None:
        super().__init__()
        self.run = run
        self.loaded = loaded
        self.manifest = manifest
        self.fresh = fresh  # a new run: its automatic items start at once
        self.running: set[str] = set()  # item ids a worker of this screen is checking

    @property
    def lifeboat(self) -> Services:
        return services(self.app)

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="about")
        yield OptionList(*(Option(self._row(s), id=s.id) for s in self.run.items), id="items")
        yield VerticalScroll(Static(id="evidence-text"), id="evidence")
        yield Static(id="status")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.title = self.run.title
        self.query_one("#about", Static).update(self._about())
        items = self.query_one("#items", OptionList)
        items.border_title = f"checklist {self.run.checklist}"
        self.query_one("#evidence").border_title = "evidence"
        items.highlighted = 0
        items.focus()
        self._show_status()
        if self.fresh:
            self._start(self._automatic_ids())

    def _about(self) -> Text:
        """The run, what it validates (the backup), and the restore that started it."""
        parts = [f"run {self.run.id}"]
        if self.manifest is not None:
            label = f" ({self.manifest.label})" if self.manifest.label else ""
            parts.append(f"backup {self.manifest.id}{label}, {age(self.manifest.created_at)}")
        elif self.run.backup:
            parts.append(f"backup {self.run.backup} (no longer in the repository)")
        else:
            parts.append("no backup linked: counts are not compared with one")
        restore = self.run.restore or {}
        if restore:
            where = restore.get("target") or ", ".join(restore.get("hosts", []))
            onto = f" onto {where}" if where else ""
            parts.append(f"restored {', '.join(restore.get('sources', []))}{onto}")
        return Text(" · ".join(parts))

    def _status(self, state: ItemState) -> str:
        """The item's status as shown: running only while this screen checks it (a run left
        by a console that stopped still says running on disk)."""
        if state.status == "running" and state.id not in self.running:
            return "pending"
        return state.status

    def _word(self, state: ItemState) -> str:
        status = self._status(state)
        if status == "running":
            return "running…"
        if status == "pending" and state.kind == "manual":
            return "to tick"
        return RESULT_WORDS.get(status, status)

    def _row(self, state: ItemState) -> RenderableType:
        mark, variable = MARKS.get(self._status(state), ("?", ""))
        style = self.app.theme_variables.get(variable, "dim") if variable else "dim"
        title = Text(state.title)
        if not state.required:
            title.append(" (optional)", style="dim")
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(no_wrap=True, width=1)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(no_wrap=True, justify="right")
        grid.add_row(Text(mark, style=f"bold {style}"), title, Text(self._word(state), style))
        return grid

    def _item(self, item_id: str) -> Item | None:
        """The checklist's definition of an item (None: the file no longer has it)."""
        return next((i for i in self.loaded.checklist.items if i.id == item_id), None)

    def _evidence(self, state: ItemState) -> RenderableType:
        item = self._item(state.id)
        required = "required" if state.required else "optional"
        result = self._word(state)
        if state.at:
            result += f" at {when(state.at)}"
        if state.seconds is not None:
            result += f" in {state.seconds:g} s"
        lines: list[RenderableType] = [
            Text(state.title, style="bold"),
            Text(f"{state.kind} · {required} · {result}", style="dim"),
        ]
        if isinstance(item, ManualItem):
            lines.append(Text(item.instruction))
        if state.detail:
            lines.append(Text(state.detail))
        if state.evidence:
            lines.append(Text("evidence:", style="bold"))
            lines += [Text(f"  {line}") for line in state.evidence]
        if state.note:
            lines.append(Text(f"note: {state.note}"))
        if state.waiver:
            lines.append(Text(f"waived: {state.waiver}"))
        hint = self._hint(state, item)
        if hint:
            lines.append(Text(hint, style="italic dim"))
        return Group(*lines)

    def _hint(self, state: ItemState, item: Item | None) -> str:
        """What the operator can do with the item, in keys."""
        if self.run.signoff is not None:
            return ""
        if item is None:
            return f"not in the {self.run.checklist} checklist any more: w waives it"
        if state.id in self.running:
            return "being checked…"
        status = self._status(state)
        waiver = " · w waives it with a reason" if status in ("failed", "pending") else ""
        if isinstance(item, ManualItem):
            note = "a note is required" if item.note == "required" else "the note is optional"
            verb = "changes the note" if status == "ticked" else "ticks it when done"
            return f"t {verb} ({note}){waiver}"
        again = "a runs it" if status == "pending" else "a runs it again"
        return f"{again} (A: every automatic item){waiver}"

    def _show_item(self, state: ItemState) -> None:
        """Repaint one item's row, and the evidence and status lines."""
        items = self.query_one("#items", OptionList)
        items.replace_option_prompt(state.id, self._row(state))
        highlighted = items.highlighted_option
        if highlighted is not None and highlighted.id == state.id:
            self._show_evidence(state)
        self._show_status()

    def _show_evidence(self, state: ItemState) -> None:
        self.query_one("#evidence").border_title = f"evidence: {state.id}"
        self.query_one("#evidence-text", Static).update(self._evidence(state))

    def _show_status(self) -> None:
        done = sum(1 for state in self.run.items if state.status in DONE)
        self.query_one("#items").border_subtitle = f"{done}/{len(self.run.items)} done"
        status = self.query_one("#status", Static)
        signed = self.run.signoff
        variables = self.app.theme_variables
        if signed is not None:
            status.update(
                Text(
                    f"Signed off by {signed.operator} on {signed.host} at {when(signed.at)}. "
                    "e exports the report.",
                    style=f"bold {variables.get('success', '')}",
                )
            )
            return
        parts = []
        if self.running:
            parts.append(f"checking {len(self.running)} automatic item(s)…")
        open_items = self.run.blocking()
        if open_items:
            names = ", ".join(item.id for item in open_items)
            parts.append(f"{len(open_items)} required item(s) open: {names}")
            style = variables.get("warning", "")
        else:
            parts.append("every required item is done: s signs the run off")
            style = variables.get("success", "")
        status.update(Text("; ".join(parts), style=style))

    @on(OptionList.OptionHighlighted, "#items")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id is not None:
            self._show_evidence(self.run.state(event.option.id))

    def _current(self) -> ItemState | None:
        option = self.query_one("#items", OptionList).highlighted_option
        return self.run.state(option.id) if option is not None and option.id else None

    # -- automatic items ---------------------------------------------------------------

    def _automatic_ids(self) -> list[str]:
        """The checklist's automatic items that this run has."""
        present = {state.id for state in self.run.items}
        return [
            item.id
            for item in self.loaded.checklist.items
            if not isinstance(item, ManualItem) and item.id in present
        ]

    def _start(self, ids: list[str]) -> None:
        if not ids:
            return
        self.running.update(ids)
        self.run_worker(self._check(ids), group="checklist", exit_on_error=False)
        self._show_status()

    async def _check(self, ids: list[str]) -> None:
        config = self.lifeboat.config
        try:
            await run_automatic(
                self.run, self.loaded, config, self.manifest, only=ids, changed=self._changed
            )
        finally:  # also when the screen closed and its workers were cancelled
            for item_id in ids:
                state = self.run.state(item_id)
                if state.status == "running":
                    state.status = "pending"
            self.running.difference_update(ids)
            self._save()

    def _changed(self, state: ItemState) -> None:
        if state.status != "running":
            self._save()
        self._show_item(state)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "checklist":
            return
        if event.state == WorkerState.ERROR and worker.error is not None:
            self.notify(
                f"the automatic items stopped: {describe_error(worker.error)}",
                severity="error",
                timeout=30,
                markup=False,
            )
        if worker.is_finished:
            for state in self.run.items:
                self._show_item(state)

    def _save(self) -> None:
        try:
            save(self.lifeboat.repository.path, self.run)
        except OSError as exc:
            self.notify(f"the run is not saved: {exc}", severity="error", markup=False)
            return
        if self.lifeboat.config.catalog is not None:
            self._refresh_catalog()

    @work(thread=True, group="catalog-refresh", exclusive=True, exit_on_error=False)
    def _refresh_catalog(self) -> None:
        """Tell the catalog about the run (off the UI thread: it may wait for the server)."""
        from engine.scaleout.catalog import refresh_catalog

        if (warning := refresh_catalog(self.lifeboat.config, self.lifeboat.repository)) is not None:
            self.app.call_from_thread(self.notify, warning, severity="warning", markup=False)

    # -- actions -------------------------------------------------------------------------

    def _changeable(self) -> ItemState | None:
        """The highlighted item, unless the run is signed off (then it is said)."""
        signed = self.run.signoff
        if signed is not None:
            self.notify(
                f"the run was signed off by {signed.operator}; start a new run to check again",
                severity="warning",
                markup=False,
            )
            return None
        return self._current()

    def action_run_item(self) -> None:
        state = self._changeable()
        if state is None:
            return
        item = self._item(state.id)
        if item is None:
            self.notify(
                f"{state.id} is no longer in the {self.run.checklist} checklist: w waives it",
                severity="warning",
                markup=False,
            )
        elif isinstance(item, ManualItem):
            self.notify(
                f"{state.id} is a manual item: t ticks it when done, w waives it",
                severity="warning",
                markup=False,
            )
        elif state.id in self.running:
            self.notify(f"{state.id} is being checked; wait for it", markup=False)
        else:
            self._start([state.id])

    def action_run_all(self) -> None:
        if self._changeable() is None:
            return
        if self.running:
            self.notify("automatic items are being checked; wait for them", severity="warning")
            return
        self._start(self._automatic_ids())

    def action_tick(self) -> None:
        state = self._changeable()
        if state is None:
            return
        item = self._item(state.id)
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
                self._apply(lambda: tick(self.run, self.loaded, state.id, note))

        self.app.push_screen(
            TextModal(question, verb="Tick", value=state.note, required=required), ticked
        )

    def action_waive(self) -> None:
        state = self._changeable()
        if state is None:
            return
        if state.id in self.running:
            self.notify(f"{state.id} is being checked; wait for it", markup=False)
            return
        if state.status in ("passed", "ticked"):
            self.notify(f"{state.id} is done: there is nothing to waive", markup=False)
            return
        detail = f": {state.detail}" if state.detail else ""
        question = wrapped(
            f"Waive {state.title}? It is {self._word(state)}{detail}. Why is that acceptable? "
            "The reason is kept with the run and in the sign-off's audit record."
        )

        def waived(reason: str | None) -> None:
            if reason is not None:
                self._apply(lambda: waive(self.run, state.id, reason))

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

    def _apply(self, change: Callable[[], ItemState]) -> None:
        """Make one change to the run (an engine call), then save and show it."""
        try:
            state = change()
        except LifeboatError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self._save()
        self._show_item(state)

    def action_sign_off(self) -> None:
        signed = self.run.signoff
        if signed is not None:
            self.notify(
                f"already signed off by {signed.operator} at {when(signed.at)}", markup=False
            )
            return
        open_items = self.run.blocking()
        if open_items:
            listed = "; ".join(f"{item.id} is {self._word(item)}" for item in open_items)
            self.notify(
                f"Not signed off: {listed}. Each required item must pass, be ticked, or be "
                "waived with a reason.",
                title="required items open",
                severity="error",
                timeout=15,
                markup=False,
            )
            return
        signer = os.environ.get("LIFEBOAT_OPERATOR") or self.lifeboat.config.operator
        waived = [item.id for item in self.run.items if item.status == "waived"]
        question = (
            f"Sign off run {self.run.id} ({self.run.title}) as {signer}? The audit log records "
            "who, from which host, and when; the run cannot change afterwards."
        )
        if waived:
            question += f" Waived: {', '.join(waived)}."

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._sign_off()

        self.app.push_screen(ConfirmModal(wrapped(question)), confirmed)

    def _sign_off(self) -> None:
        repo_path = self.lifeboat.repository.path
        try:
            signed = sign_off(self.run, repo_path, self.lifeboat.config.operator)
        except (LifeboatError, OSError) as exc:
            self.notify(f"not signed off: {describe_error(exc)}", severity="error", markup=False)
            return
        self.notify(f"signed off by {signed.operator} at {when(signed.at)}", markup=False)
        for state in self.run.items:
            self._show_item(state)

    def action_export(self) -> None:
        question = wrapped(
            f"Export run {self.run.id} as Markdown (as JSON when the name ends in .json). "
            f"A relative name is under {Path.cwd()}."
        )

        def chosen(name: str | None) -> None:
            if name is not None:
                self._export(Path.cwd() / Path(name.strip()).expanduser())

        self.app.push_screen(
            TextModal(
                question,
                verb="Export",
                value=f"checklist-{self.run.id}.md",
                required="type a file name",
            ),
            chosen,
        )

    def _export(self, path: Path) -> None:
        if path.is_dir():
            self.notify(f"{path} is a directory: name a file", severity="error", markup=False)
            return
        text = to_json(self.run) if path.suffix == ".json" else to_markdown(self.run, self.manifest)
        try:
            atomic_write(path, text.encode())
        except OSError as exc:
            self.notify(f"cannot write {path}: {exc}", severity="error", markup=False)
            return
        self.notify(f"exported to {path}", markup=False)

    def action_back(self) -> None:
        if self.running:
            self.notify(
                f"stopped {len(self.running)} automatic item(s) being checked; they are saved "
                "as not run (a or A checks them when the run is resumed)",
                severity="warning",
            )
        self.dismiss()


# -- opening a run -------------------------------------------------------------------------


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

    def on_mount(self) -> None:
        self.query_one(OptionList).highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def on_button_pressed(self) -> None:
        self.dismiss(None)


def unsigned_runs(repo_path: Path) -> list[ChecklistRun]:
    """The newest runs not signed off (up to RESUMABLE); unreadable ones are skipped."""
    found: list[ChecklistRun] = []
    for run_id in run_ids(repo_path)[:RUNS_SCANNED]:
        try:
            run = load_run(repo_path, run_id)
        except LifeboatError:
            continue
        if run.signoff is None:
            found.append(run)
            if len(found) == RESUMABLE:
                break
    return found


def open_checklist(
    app: LifeboatApp,
    backup_id: str | None = None,
    restore: dict[str, Any] | None = None,
    name: str | None = None,
) -> None:
    """Open a checklist run on ``backup_id``: a new run of ``name`` when it is configured;
    else of the only checklist when no run is left open; else a picker of new runs and the
    unsigned runs to resume. ``restore`` is what the restore that asks for it did."""
    try:
        available = checklists_for(app.config)
    except ConfigError as exc:
        app.notify(f"the checklists do not load: {exc}", severity="error", timeout=30, markup=False)
        return
    if name is not None and name in available:
        _open_new(app, available[name], backup_id, restore)
        return
    resumable = unsigned_runs(app.repository.path)
    if name is None and len(available) == 1 and not resumable:
        _open_new(app, next(iter(available.values())), backup_id, restore)
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
            _open_new(app, available[value], backup_id, restore)
        else:
            _resume(app, available, value)

    app.push_screen(ChecklistPicker(heading, choices), chosen)


def _open_new(
    app: LifeboatApp, loaded: Loaded, backup_id: str | None, restore: dict[str, Any] | None
) -> None:
    try:
        manifest = app.repository.load(backup_id) if backup_id else None
        run = new_run(loaded, backup_id, restore)
        save(app.repository.path, run)
    except (LifeboatError, OSError) as exc:
        app.notify(f"no checklist run: {describe_error(exc)}", severity="error", markup=False)
        return
    app.push_screen(ChecklistScreen(run, loaded, manifest, fresh=True))


def _resume(app: LifeboatApp, available: dict[str, Loaded], run_id: str) -> None:
    repo = app.repository
    try:
        run = load_run(repo.path, run_id)
    except LifeboatError as exc:
        app.notify(str(exc), severity="error", markup=False)
        return
    if run.checklist not in available:
        app.notify(
            f"checklist {run.checklist!r} of run {run.id} is no longer configured",
            severity="error",
            markup=False,
        )
        return
    try:
        manifest = repo.load(run.backup) if run.backup and repo.is_backup(run.backup) else None
    except LifeboatError as exc:  # an unreadable manifest: the run is still worth finishing
        app.notify(str(exc), severity="warning", markup=False)
        manifest = None
    app.push_screen(ChecklistScreen(run, available[run.checklist], manifest, fresh=False))

"""The steps of a plain restore from the backups browser, each a small modal with a result.

Choose what to restore, watch the dry-run checks (nothing is changed by them) and read their
outcome, then type each target host's name (``TypedConfirmModal``). ``restore_flow`` chains
the steps in a worker; nothing is written to any host before the last one.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, SelectionList, Static
from textual.widgets.selection_list import Selection
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from engine.config import Config
from engine.errors import describe_error
from engine.manifest import Manifest
from tui.format import human_size
from tui.jobs import JobState
from tui.screens.modals import MODAL_CSS, TypedConfirmModal

if TYPE_CHECKING:
    from engine.restore.run import RestoreReport
    from tui.app import LifeboatApp

MONGO_KIND = "mongo-archive"
DIALOG_TEXT_WIDTH = 56  # inside the 64 columns of TypedConfirmModal


@dataclass(frozen=True)
class RestoreChoice:
    scope: tuple[str, ...]
    namespaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckOutcome:
    """What the dry run said: a report when every check passed, else the reasons."""

    report: RestoreReport | None
    problems: tuple[str, ...] = ()


def wrapped(text: str) -> str:
    """``text`` as markup-safe lines that fit a confirmation dialog (its label does not wrap)."""
    return escape("\n".join(textwrap.wrap(text, DIALOG_TEXT_WIDTH)))


def worker_named(app: App[object], key: str) -> Worker[Any]:
    """The running worker of the job the console started as ``key``."""
    return next(worker for worker in app.workers if worker.name == key)


async def dry_run_outcome(worker: Worker[RestoreReport]) -> CheckOutcome:
    """Wait for a dry-run worker and turn its end into an outcome to show."""
    try:
        return CheckOutcome(await worker.wait())
    except WorkerCancelled:
        return CheckOutcome(None, ("the checks were cancelled; nothing was changed",))
    except WorkerFailed as failed:
        from engine.restore.run import RestoreRefusedError  # the engine's jobs load lazily

        error = failed.error
        if isinstance(error, RestoreRefusedError):
            return CheckOutcome(None, tuple(str(error).splitlines()[1:]) or (str(error),))
        return CheckOutcome(None, (describe_error(error),))


class RestoreModal(ModalScreen[RestoreChoice | None]):
    """Which sources of the backup to restore and, for Mongo, which namespaces."""

    DEFAULT_CSS = (
        MODAL_CSS.format(name="RestoreModal")
        + """
    RestoreModal > Vertical { width: 76; }
    RestoreModal SelectionList { height: auto; max-height: 8; }
    RestoreModal .hint { color: $text-muted; }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, manifest: Manifest, config: Config) -> None:
        super().__init__()
        self.manifest = manifest
        self.config = config

    def compose(self) -> ComposeResult:
        manifest = self.manifest
        mongo = [a for a in manifest.artifacts if a.kind == MONGO_KIND]
        options = []
        for artifact in manifest.artifacts:
            configured = self.config.sources.get(artifact.source)
            name = escape(artifact.source)
            if configured is None:
                prompt = f"{name}  (not in the config: no way to restore it)"
            else:
                prompt = f"{name}  {artifact.kind} → {escape(configured.host)}"
            ready = configured is not None
            options.append(Selection(prompt, artifact.source, ready, disabled=not ready))
        with Vertical():
            yield Label(f"[b]Restore from {manifest.id}[/b]: sources (space toggles)")
            yield SelectionList[str](*options, id="sources")
            if mongo:
                held = sorted({ns for a in mongo for ns in a.meta.get("namespaces", {})})
                more = f" and {len(held) - 6} more" if len(held) > 6 else ""
                shown = ", ".join(held[:6]) + more
                yield Input(
                    placeholder="mongo namespaces: globs, e.g. app.users app.mod_* (empty: all)",
                    id="namespaces",
                )
                yield Label(escape(f"holds {shown or 'no namespaces'}"), classes="hint")
            yield Label("Next: dry-run checks; nothing changes before you confirm.", classes="hint")
            yield Label("", classes="problem", id="problem")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Run checks", variant="primary", id="check")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "check":
            self._check()
        else:
            self.dismiss(None)

    def on_input_submitted(self) -> None:
        self._check()

    def _check(self) -> None:
        chosen = tuple(self.query_one("#sources", SelectionList).selected)
        problem = self.query_one("#problem", Label)
        if not chosen:
            problem.update("choose at least one source")
            return
        globs: tuple[str, ...] = ()
        if self.query("#namespaces"):
            text = self.query_one("#namespaces", Input).value.replace(",", " ")
            globs = tuple(text.split())
        others = [
            name
            for name in chosen
            if (artifact := self.manifest.artifact(name)) and artifact.kind != MONGO_KIND
        ]
        if globs and others:
            problem.update(
                f"namespace globs apply to mongo sources only: deselect {', '.join(others)} "
                "(restore it separately) or clear the globs"
            )
            return
        self.dismiss(RestoreChoice(chosen, globs))


def describe_checks(job: JobState | None) -> RenderableType:
    """The dry run as it goes: what it checks and how far the checksums are."""
    if job is None:
        return Text("starting…", style="dim")
    sources = [name for name in job.sources if name not in ("verify", "restore")]
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(no_wrap=True)
    grid.add_column(ratio=1)
    grid.add_column(no_wrap=True)
    verify = job.sources.get("verify")
    if verify is None or not verify.total:
        grid.add_row("checksums", ProgressBar(total=None, pulse=job.running), "")
    else:
        bar = ProgressBar(total=verify.total, completed=min(verify.done, verify.total))
        grid.add_row("checksums", bar, f"{human_size(verify.done)}/{human_size(verify.total)}")
    return Group(Text(f"sources: {', '.join(sources)}"), grid)


class RestoreCheckModal(ModalScreen[bool]):
    """The dry run's live progress, then its outcome; True means go on to the confirmation."""

    DEFAULT_CSS = (
        MODAL_CSS.format(name="RestoreCheckModal")
        + """
    RestoreCheckModal > Vertical { width: 76; }
    RestoreCheckModal #outcome { height: auto; max-height: 12; }
    RestoreCheckModal .passed { color: $success; }
    RestoreCheckModal .refused { color: $error; }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, key: str, backup_id: str) -> None:
        super().__init__()
        self.key = key
        self.backup_id = backup_id
        self.outcome: CheckOutcome | None = None

    @property
    def lifeboat(self) -> LifeboatApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"[b]Checking the restore from {self.backup_id}[/b] (dry run)")
            yield Static(id="progress")
            with VerticalScroll(id="outcome"):
                yield Static("checking sizes, sha256 and options; nothing is changed", id="verdict")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Continue", variant="error", id="continue", disabled=True)

    def on_mount(self) -> None:
        self.lifeboat.jobs_changed.subscribe(self, self._job_changed)
        self._job_changed(self.key)

    def _job_changed(self, key: str) -> None:
        if key == self.key:
            job = self.lifeboat.board.jobs.get(self.key)
            self.query_one("#progress", Static).update(describe_checks(job))

    def show_outcome(self, outcome: CheckOutcome) -> None:
        self.outcome = outcome
        verdict = self.query_one("#verdict", Static)
        if outcome.report is not None:
            lines = [f"{s.source} → {s.target_host}" for s in outcome.report.steps]
            verdict.update(
                Group(
                    Text("Every check passed. The restore would write:", style="bold"),
                    *(Text(f"  {line}") for line in lines),
                    Text("Continue to confirm each target host by typing its name."),
                )
            )
            verdict.set_classes("passed")
            button = self.query_one("#continue", Button)
            button.disabled = False
            button.focus()
        else:
            verdict.update(
                Group(
                    Text("Restore refused; nothing was changed:", style="bold"),
                    *(Text(f"✗ {problem}") for problem in outcome.problems),
                )
            )
            verdict.set_classes("refused")
            self.query_one("#cancel", Button).label = "Close"
            self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "continue":
            self.dismiss(True)
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        if self.outcome is None:
            self.lifeboat.cancel_job(self.key)  # a dry run changes nothing: stopping it is safe
        self.dismiss(False)


async def restore_flow(app: LifeboatApp, manifest: Manifest) -> None:
    """Choose, check (dry run), confirm each target by name, then apply on the dashboard.

    Run it in a worker: each step waits for its dialog. Nothing is written to a host before
    the operator typed every target's name.
    """
    from engine.restore.run import RestoreRequest
    from engine.sources import RestoreOptions

    choice = await app.push_screen_wait(RestoreModal(manifest, app.config))
    if choice is None:
        return
    options = RestoreOptions(namespaces=choice.namespaces)
    request = RestoreRequest(manifest.id, scope=choice.scope, options=options)
    checks = RestoreCheckModal(app.start_restore(request), manifest.id)
    go_on = app.push_screen(checks, wait_for_dismiss=True)
    outcome = await dry_run_outcome(worker_named(app, checks.key))
    if checks.is_attached:
        checks.show_outcome(outcome)
    report = outcome.report
    if not await go_on or report is None:
        return
    for number, host in enumerate(report.targets, 1):
        sources = ", ".join(s.source for s in report.steps if s.target_host == host)
        of = f" (host {number} of {len(report.targets)})" if len(report.targets) > 1 else ""
        explanation = wrapped(
            f"Restore {sources} from {manifest.id} onto {host}{of}. What is on {host} now "
            "is overwritten; this is the last step before anything changes."
        )
        if not await app.push_screen_wait(TypedConfirmModal(explanation, host)):
            app.notify("restore not started: nothing was changed")
            return
    app.start_restore(replace(request, apply=True, confirm=report.targets))
    app.switch_mode("dashboard")
    app.notify(f"restoring {manifest.id}: progress on the dashboard")

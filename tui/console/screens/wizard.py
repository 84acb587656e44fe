"""The guided restore: what happened -> plan -> backup -> target -> checks -> confirm -> run.

One screen, one step at a time (a ``ContentSwitcher`` of the panes in
tui/console/widgets/wizard_steps.py and wizard_run.py), back and forward with the buttons or
Ctrl+B / Ctrl+N. Esc cancels anywhere before the confirmation. Nothing is written to any host
before the operator typed the target's name: the checks are the engine's dry run, and only the
confirm step starts the real restore (safety backup first, unless skipped with a reason).

The steps and transitions are :class:`~tui.console.wizard_state.WizardState`'s: this screen
shows the state's step, forwards keys to its transitions, and runs the jobs they call for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import (
    Button,
    ContentSwitcher,
    Footer,
    Header,
    Input,
    OptionList,
    SelectionList,
    Static,
)
from textual.worker import Worker, WorkerState

from engine.crypto.age import Identity
from engine.errors import describe_error
from engine.restore.scenario import Listed
from tui.console.remote_choice import offer_fetch
from tui.console.screens.identity import IdentityModal
from tui.console.screens.modals import ConfirmModal, worker_named, wrapped
from tui.console.services import Services, services
from tui.console.widgets.backup_picker import BackupPicker
from tui.console.widgets.wizard_run import ChecksPane, ConfirmPane, DonePane, ProgressPane
from tui.console.widgets.wizard_steps import (
    AdvicePane,
    BackupPane,
    PlanPane,
    QuestionPane,
    StepBar,
    TargetPane,
)
from tui.console.wizard_state import (
    NEEDS_REASON,
    RUNNING,
    Closed,
    Moved,
    Stayed,
    Step,
    WizardState,
)

if TYPE_CHECKING:
    from engine.restore.run import RestoreReport

PANES = {
    Step.PLAN: "pane-plan",
    Step.BACKUP: "pane-backup",
    Step.TARGET: "pane-target",
    Step.CHECKS: "pane-checks",
    Step.CONFIRM: "pane-confirm",
    Step.SAFETY: "pane-progress",
    Step.RESTORE: "pane-progress",
    Step.DONE: "pane-done",
}
NEXT_LABELS = {Step.CHECKS: "Continue", Step.CONFIRM: "Restore", Step.DONE: "Close"}
LEAVE_QUESTION = "Leave the restore wizard? Its answers are lost."
QUIT_QUESTION = "Quit the console? The restore wizard's answers are lost."


class RestoreWizard(Screen[None]):
    CSS_PATH = "wizard.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+b", "back", "Back"),
        Binding("ctrl+n", "next", "Next"),
        Binding("f", "fetch", "Fetch a remote copy", show=False),  # the backup step says so
    ]

    def __init__(self, state: WizardState) -> None:
        super().__init__()
        self.state = state
        self.check_job: str | None = None
        self.restore_job: str | None = None
        self.check_worker: Worker[RestoreReport] | None = None
        self.restore_worker: Worker[RestoreReport] | None = None

    @property
    def lifeboat(self) -> Services:
        return services(self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        yield StepBar(id="steps")
        with ContentSwitcher(initial="pane-question", id="panes"):
            yield QuestionPane(id="pane-question")
            yield AdvicePane(id="pane-advice")
            yield PlanPane(id="pane-plan")
            yield BackupPane(id="pane-backup")
            yield TargetPane(id="pane-target")
            yield ChecksPane(id="pane-checks")
            yield ConfirmPane(id="pane-confirm")
            yield ProgressPane(id="pane-progress")
            yield DonePane(id="pane-done")
        yield Static(id="problem")
        with Horizontal(id="buttons"):
            yield Button("Back", id="back", compact=True)
            yield Button("Next", id="next", variant="primary", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        fixed = self.state.fixed_backup
        self.title = "Restore"
        self.sub_title = f"backup {fixed.id}" if fixed else "guided"
        self.query_one(StepBar).steps = self.state.steps
        self.lifeboat.jobs_changed.subscribe(self, self._job_changed)
        if fixed is None:  # the backup step chooses among the console's index of backups
            self.lifeboat.backups_indexed.subscribe(self, self._backups_indexed)
            self.lifeboat.refresh_backups()
        self._show(self.state.start())

    # -- showing the state ---------------------------------------------------------------

    def _apply(self, result: Moved | Stayed | Closed) -> None:
        """Show where a transition left the wizard."""
        if isinstance(result, Moved):
            self._show(result)
        elif isinstance(result, Stayed):
            if result.problem:
                self._problem(result.problem)
        else:
            self._stop_checks()
            self.dismiss()

    def close_for_good(self) -> None:
        """The operator left the wizard for another screen: stop its checks and take it (and
        anything above it) off the stack, so that it never comes back half filled."""
        self._stop_checks()
        while self in self.app.screen_stack and self.app.screen_stack[-1] is not self:
            self.app.pop_screen()
        if self.app.screen_stack[-1] is self:
            self.app.pop_screen()

    def _show(self, moved: Moved) -> None:
        """Show ``moved.step`` afresh: its pane, the step bar, the buttons."""
        step = moved.step
        if step not in (Step.CHECKS, Step.CONFIRM):
            self._stop_checks()
        advice = self.state.advice if step is Step.SCENARIO else None
        pane = PANES.get(step, "pane-advice" if advice else "pane-question")
        self.query_one("#panes", ContentSwitcher).current = pane
        self.query_one(StepBar).step = step
        self._problem(moved.problem)
        self.query_one("#back", Button).display = self.state.back_offered
        next_button = self.query_one("#next", Button)
        next_button.label = "Close" if advice else NEXT_LABELS.get(step, "Next")
        next_button.variant = "error" if step is Step.CONFIRM else "primary"
        next_button.display = step not in RUNNING
        next_button.disabled = step is Step.CHECKS
        if step is Step.SCENARIO:
            self._show_scenario()
        elif step is Step.PLAN:
            self.query_one(PlanPane).show(self.state)
        elif step is Step.BACKUP:
            self.query_one(BackupPane).show(self.state)
        elif step is Step.TARGET:
            self.query_one(TargetPane).show(self.state)
        elif step is Step.CHECKS:
            self._start_checks()
        elif step is Step.CONFIRM:
            self.query_one(ConfirmPane).show(self.state)
        elif step in RUNNING:
            self.query_one(ProgressPane).show(step)
        else:
            self._show_done()

    def _show_scenario(self) -> None:
        """The question asked now, or the advice the answers end in."""
        if (advice := self.state.advice) is not None:
            self.query_one(AdvicePane).show(advice)
        elif (asking := self.state.asking) is not None:
            self.query_one(QuestionPane).show(asking, self.state.remembered.get(asking.key))

    def _problem(self, text: str) -> None:
        self.query_one("#problem", Static).update(text)

    def _backups_indexed(self, _: None) -> None:
        if (moved := self.state.backups_indexed()) is not None:
            self._show(moved)

    # -- keys ----------------------------------------------------------------------------

    @on(Button.Pressed, "#next")
    def action_next(self) -> None:
        step = self.state.step
        if self.query_one("#next", Button).disabled:
            return
        if step is Step.SCENARIO:
            answer = self.query_one(QuestionPane).answer()
            self._apply(self.state.close() if self.state.advice else self.state.answer(answer))
        elif step is Step.PLAN:
            self._apply(self.state.choose_plan(*self.query_one(PlanPane).chosen()))
        elif step is Step.BACKUP:
            self._apply(self.state.choose_backup(self.query_one(BackupPicker).highlighted_id))
        elif step is Step.TARGET:
            self._apply(self.state.choose_target(self.query_one(TargetPane).chosen()))
        elif step is Step.CHECKS:
            self._apply(self.state.to_confirm())
        elif step is Step.CONFIRM:
            self._confirm()
        elif step is Step.DONE:
            self._done()

    def action_fetch(self) -> None:
        """On the backup step: fetch a copy from a remote, listed (and highlighted) once here."""
        if self.state.step is Step.BACKUP:
            offer_fetch(self.app, lambda backup_id: setattr(self.state, "awaited", backup_id))

    @on(Button.Pressed, "#back")
    def action_back(self) -> None:
        self._apply(self.state.back())

    def action_cancel(self) -> None:
        result = self.state.close()
        if isinstance(result, Stayed):
            self.notify(result.problem)
        else:
            self._apply(result)

    @on(OptionList.OptionSelected, "#choices")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self._apply(self.state.answer(event.option.id or ""))

    @on(Input.Submitted, "#answer")
    def _typed(self, event: Input.Submitted) -> None:
        self._apply(self.state.answer(event.value))

    @on(SelectionList.SelectedChanged, "#plan-sources")
    def _sources_changed(self, event: SelectionList.SelectedChanged[str]) -> None:
        mongo = self.state.selects_by_glob(event.selection_list.selected)
        self.query_one("#plan-globs").display = mongo

    @on(BackupPicker.Highlighted)
    def _backup_highlighted(self, event: BackupPicker.Highlighted) -> None:
        self.state.highlight_backup(event.backup_id)  # kept when the operator steps back

    @on(BackupPicker.Selected)
    def _backup_chosen(self, event: BackupPicker.Selected) -> None:
        self._apply(self.state.choose_backup(event.backup_id))

    @on(OptionList.OptionSelected, "#target-list")
    def _target_chosen(self) -> None:
        self._apply(self.state.choose_target(self.query_one(TargetPane).chosen()))

    @on(Input.Submitted, "#confirm-name")
    @on(Input.Submitted, "#skip-reason")
    def _confirm_submitted(self) -> None:
        self._confirm()

    # -- the checks (the dry run) and the restore --------------------------------------------

    def _start_checks(self) -> None:
        """The dry run; first, for an encrypted backup no identity given opens, ask for one
        (the checks then say what it opens, or why nothing does)."""
        self.query_one(ChecksPane).verdict(None)
        recipients = self.state.identity_wanted
        if recipients and self.state.backup is not None:
            what = f"Backup {self.state.backup.id}"
            self.app.push_screen(IdentityModal(what, recipients), self._identity_given)
            return
        self._run_checks()

    def _identity_given(self, found: tuple[Identity, ...] | None) -> None:
        if found:
            self.state.keyring = self.lifeboat.keep_identities(found)
        if self.state.step is Step.CHECKS:
            self._run_checks()

    def _run_checks(self) -> None:
        self.check_job = self.lifeboat.start_restore(self.state.request())
        self.check_worker = worker_named(self.app, self.check_job)
        self._job_changed(self.check_job)

    def _stop_checks(self) -> None:
        if self.check_job is not None:
            self.lifeboat.cancel_job(self.check_job)  # a dry run changes nothing: safe to stop

    def _job_changed(self, key: str) -> None:
        job = self.lifeboat.board.jobs.get(key)
        if job is None:
            return
        step = self.state.step
        if key == self.check_job and step is Step.CHECKS:
            checks = self.query_one(ChecksPane)
            checks.show(job)
            if job.finished is not None:
                self._checks_finished(checks)
        elif key == self.restore_job and step in (*RUNNING, Step.DONE):
            self._show(self.state.restore_changed(job))  # DONE again once the report is in

    def _checks_finished(self, checks: ChecksPane) -> None:
        job = self.lifeboat.board.jobs[self.check_job or ""]
        worker = self.check_worker
        passed = bool(job.finished and job.finished.ok) and not checks.failed(job)
        report = worker.result if worker and worker.state == WorkerState.SUCCESS else None
        self.state.checks_finished(passed, report)  # the report comes just after the last event
        checks.verdict(job)
        if passed:
            next_button = self.query_one("#next", Button)
            next_button.disabled = False
            next_button.focus()
        elif worker is not None and worker.error is not None and not checks.failed(job):
            self._problem(describe_error(worker.error))  # why they did not finish

    def _confirm(self) -> None:
        result = self.state.confirm(*self.query_one(ConfirmPane).entered())
        if isinstance(result, Stayed) and result.problem == NEEDS_REASON:
            self.query_one("#skip-reason", Input).focus()
        if isinstance(result, Moved):
            names = self.state.confirm_names
            self.restore_job = self.lifeboat.start_restore(
                self.state.request(apply=True, confirm=names)
            )
            self.restore_worker = worker_named(self.app, self.restore_job)
            self._show(result)
            self.query_one(ProgressPane).follow(self.lifeboat.board.jobs[self.restore_job])
            self._job_changed(self.restore_job)
        else:
            self._apply(result)

    def _restore_report(self) -> RestoreReport | None:
        worker = self.restore_worker
        return worker.result if worker and worker.state == WorkerState.SUCCESS else None

    def _show_done(self) -> None:
        job = self.lifeboat.board.jobs[self.restore_job or ""]
        worker = self.restore_worker
        error = describe_error(worker.error) if worker and worker.error is not None else None
        self.query_one(DonePane).show(self.state, job, self._restore_report(), error)
        if job.finished is not None and job.finished.ok:
            self.query_one("#next", Button).label = "Checklist"
        self.query_one("#next", Button).focus()

    def _done(self) -> None:
        """Close; after a successful restore, open the plan's checklist on what it did."""
        job = self.lifeboat.board.jobs.get(self.restore_job or "")
        self.dismiss()
        if job is None or job.finished is None or not job.finished.ok:
            return
        backup = self.state.backup.id if self.state.backup else None
        restored = self.state.restored(self._restore_report())
        self.lifeboat.open_checklist(backup, restored, self.state.checklist)


def open_wizard(app: App[Any], backup: Listed | None = None) -> None:
    """Push the wizard on the built-in (or the config's) restore tree; on ``backup`` when one
    was chosen already (the backup step is skipped then)."""
    from engine.errors import ConfigError
    from engine.restore.tree import BUILT_IN, load_trees

    lifeboat = services(app)
    config = lifeboat.config
    try:
        trees = load_trees(config.runbooks.paths, config.sources)
    except ConfigError as exc:
        lifeboat.notify_problem(f"the runbooks do not load: {exc}", cause="runbooks", timeout=30)
        return
    lifeboat.fixed("runbooks")
    state = WizardState(config, lifeboat.backups, trees[BUILT_IN], backup)
    state.keyring = lifeboat.keyring
    app.push_screen(RestoreWizard(state))


def wizard_open(app: App[Any]) -> RestoreWizard | None:
    """The restore wizard on the current screen stack, if one is open."""
    return next((s for s in app.screen_stack if isinstance(s, RestoreWizard)), None)


def leave_wizard(app: App[Any], then: Callable[[], object]) -> None:
    """Do ``then`` (show another mode, open another wizard) once no wizard is open.

    With a wizard open, the operator is asked first; leaving closes it for good. While its
    restore runs, the wizard stays and says why (it is not stopped half way from here)."""
    wizard = wizard_open(app)
    if wizard is None:
        then()
        return
    refused = wizard.state.close()
    if isinstance(refused, Stayed):
        app.notify(refused.problem, severity="warning")
        return

    def answered(leave: bool | None) -> None:
        if not leave:
            return
        if wizard in app.screen_stack:
            wizard.close_for_good()
        then()

    app.push_screen(ConfirmModal(wrapped(LEAVE_QUESTION)), answered)

"""The guided restore: what happened -> plan -> backup -> target -> checks -> confirm -> run.

One screen, one step at a time (a ``ContentSwitcher``), back and forward with the buttons or
Ctrl+B / Ctrl+N. Esc cancels anywhere before the confirmation. Nothing is written to any host
before the operator typed the target's name: the checks are the engine's dry run, and only the
confirm step starts the real restore (safety backup first, unless skipped with a reason).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import (
    Button,
    Checkbox,
    ContentSwitcher,
    Footer,
    Header,
    Input,
    OptionList,
    SelectionList,
    Static,
)
from textual.widgets.option_list import Option
from textual.widgets.selection_list import Selection
from textual.worker import Worker, WorkerState

from engine.errors import UsageError, describe_error
from engine.repo.manifest import Manifest
from engine.restore.tree import AdviceNode, InputNode, QuestionNode
from tui.console.jobs import JobState
from tui.console.screens.modals import worker_named
from tui.console.widgets.job_view import JobView
from tui.console.wizard_state import WizardState
from tui.format import age, current_time, human_size

if TYPE_CHECKING:
    from engine.restore.run import RestoreReport
    from tui.console.app import LifeboatApp

MARKS = {"ok": ("✓", "success"), "warning": ("!", "warning"), "fail": ("✗", "error")}
SAFETY_SUFFIX = " (safety backup)"
NO_ALTERNATE = (
    "this plan restores to another cluster and leaves this one alone: choose a target from "
    "[targets] (add one to the config), or go back and choose another scenario"
)


class RestoreWizard(Screen[None]):
    CSS_PATH = "wizard.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+b", "back", "Back"),
        Binding("ctrl+n", "next", "Next"),
    ]

    def __init__(self, state: WizardState) -> None:
        super().__init__()
        self.state = state
        self.step = "scenario"
        self.check_job: str | None = None
        self.restore_job: str | None = None
        self.report: RestoreReport | None = None
        self.listed_backups: list[Manifest] = []
        self.check_worker: Worker[RestoreReport] | None = None
        self.restore_worker: Worker[RestoreReport] | None = None

    @property
    def lifeboat(self) -> LifeboatApp:
        return self.app  # type: ignore[return-value]

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="steps")
        with ContentSwitcher(initial="pane-question", id="panes"):
            with Vertical(id="pane-question"):
                yield Static(id="question-text", classes="title")
                yield Static(id="question-help", classes="hint")
                yield OptionList(id="choices")
                yield Input(id="answer")
            yield VerticalScroll(Static(id="advice"), id="pane-advice")
            with Vertical(id="pane-plan"):
                yield Static(id="plan-text")
                yield SelectionList[str](id="plan-sources")
                yield Input(id="plan-globs", placeholder="mongo namespaces, e.g. app.mod_x_*")
                yield Static(id="plan-notes", classes="hint")
            with Vertical(id="pane-backup"):
                yield Static(id="backup-hint")
                yield OptionList(id="backup-list")
            with Vertical(id="pane-target"):
                yield Static("Where should the data go?", classes="title")
                yield OptionList(id="target-list")
            with Vertical(id="pane-checks"):
                yield Static(id="checks-progress")
                yield VerticalScroll(Static(id="checks-table"), id="checks-scroll")
                yield Static(id="checks-verdict")
            with VerticalScroll(id="pane-confirm"):
                yield Static(id="confirm-text")
                yield Checkbox("Take a safety backup of the target first", True, id="safety")
                yield Input(id="skip-reason", placeholder="why skip it? (goes to the audit log)")
                yield Input(id="confirm-name")
            with Vertical(id="pane-progress"):
                yield Static(id="progress-title", classes="title")
                yield VerticalScroll(id="progress-job")
            yield VerticalScroll(Static(id="done-text"), id="pane-done")
        yield Static(id="problem")
        with Horizontal(id="buttons"):
            yield Button("Back", id="back", compact=True)
            yield Button("Next", id="next", variant="primary", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Restore"
        self.sub_title = (
            f"backup {self.state.fixed_backup.id}" if self.state.fixed_backup else "guided"
        )
        self.query_one("#skip-reason").display = False
        self.lifeboat.jobs_changed.subscribe(self, self._job_changed)
        self.show_question()

    # -- the step bar and buttons ------------------------------------------------------

    def _go(self, step: str, pane: str) -> None:
        self.step = step
        self.query_one("#panes", ContentSwitcher).current = pane
        self._problem("")
        keys = [key for key, _ in self.state.steps]
        position = keys.index(step)
        parts = []
        for index, (_key, label) in enumerate(self.state.steps):
            if index < position:
                parts.append(Text(label, style="dim"))
            elif index == position:
                parts.append(Text(label, style="bold reverse"))
            else:
                parts.append(Text(label))
        self.query_one("#steps", Static).update(Text(" › ").join(parts))
        running = step in ("safety", "restore")
        self.query_one("#back", Button).display = step not in ("safety", "restore", "done")
        labels = {"checks": "Continue", "confirm": "Restore", "done": "Close"}
        next_button = self.query_one("#next", Button)
        next_button.label = labels.get(step, "Next")
        next_button.variant = "error" if step == "confirm" else "primary"
        next_button.display = not running
        next_button.disabled = step == "checks"

    def _problem(self, text: str) -> None:
        self.query_one("#problem", Static).update(text)

    # -- scenario ------------------------------------------------------------------------

    def show_question(self) -> None:
        walk = self.state.walk()
        if walk.pending is not None:
            self._show_pending(walk.pending)
        elif isinstance(walk.ending, AdviceNode):
            self._show_advice(walk.ending)
        else:
            self._adopt_outcome()

    def _show_pending(self, node: QuestionNode | InputNode) -> None:
        self._go("scenario", "pane-question")
        self.query_one("#question-text", Static).update(node.text)
        self.query_one("#question-help", Static).update(node.help)
        choices = self.query_one("#choices", OptionList)
        answer = self.query_one("#answer", Input)
        choices.display = isinstance(node, QuestionNode)
        answer.display = isinstance(node, InputNode)
        before = self.state.remembered.get(node.key)
        if isinstance(node, QuestionNode):
            choices.clear_options()
            choices.add_options(Option(c.label, id=c.value) for c in node.choices)
            values = [c.value for c in node.choices]
            choices.highlighted = values.index(before) if before in values else 0
            choices.focus()
        else:
            answer.placeholder = node.placeholder
            answer.value = before or ""
            answer.focus()

    def _show_advice(self, advice: AdviceNode) -> None:
        self._go("scenario", "pane-advice")
        lines: list[RenderableType] = [
            Text(advice.title, style="bold"),
            Text(""),
            Text(advice.text),
        ]
        if advice.command:
            lines += [Text(""), Text("Run instead:", style="bold"), Text(f"  {advice.command}")]
        lines += [Text(f"• {note}") for note in advice.notes]
        self.query_one("#advice", Static).update(Group(*lines))
        self.query_one("#next", Button).label = "Close"

    def _adopt_outcome(self) -> None:
        try:
            self.state.take_recommendation(current_time())
        except UsageError as exc:
            self.state.unanswer()
            self.show_question()
            self._problem(str(exc))
            return
        self._show_plan()

    def _show_plan(self) -> None:
        plan = self.state.recommendation
        assert plan is not None
        self._go("plan", "pane-plan")
        text = Group(
            Text(plan.title, style="bold"),
            Text(plan.text),
            Text("Sources to restore (space toggles):", style="dim"),
        )
        self.query_one("#plan-text", Static).update(text)
        sources = self.query_one("#plan-sources", SelectionList)
        sources.clear_options()
        fixed = self.state.fixed_backup
        for name, source in self.state.config.sources.items():
            if fixed is not None and fixed.artifact(name) is None:
                continue
            label = f"{name}  {source.kind} on {source.host}"
            sources.add_option(Selection(label, name, name in self.state.sources))
        if sources.option_count:
            sources.highlighted = 0
        globs = self.query_one("#plan-globs", Input)
        globs.value = " ".join(self.state.namespaces)
        globs.display = self.state.has_mongo()
        notes = [f"• {note}" for note in plan.notes] + [f"Afterwards: checklist {plan.checklist}"]
        self.query_one("#plan-notes", Static).update("\n".join(notes))
        sources.focus()

    @on(SelectionList.SelectedChanged, "#plan-sources")
    def _sources_changed(self, event: SelectionList.SelectedChanged[str]) -> None:
        chosen = event.selection_list.selected
        self.query_one("#plan-globs").display = any(
            self.state.config.sources[name].kind == "mongo" for name in chosen
        )

    @on(OptionList.OptionSelected, "#choices")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        node = self.state.walk().pending
        if isinstance(node, QuestionNode) and event.option.id is not None:
            self.state.answer(node.key, event.option.id)
            self.show_question()

    @on(Input.Submitted, "#answer")
    def _typed(self) -> None:
        self._answer_input()

    def _answer_input(self) -> None:
        node = self.state.walk().pending
        value = self.query_one("#answer", Input).value.strip()
        if isinstance(node, InputNode):
            if not value:
                self._problem("type an answer first")
                return
            self.state.answer(node.key, value)
            self.show_question()

    # -- plan, backup, target --------------------------------------------------------------

    def _leave_plan(self) -> None:
        chosen = tuple(self.query_one("#plan-sources", SelectionList).selected)
        if not chosen:
            self._problem("choose at least one source")
            return
        self.state.sources = chosen
        self.state.namespaces = tuple(
            self.query_one("#plan-globs", Input).value.replace(",", " ").split()
        )
        if self.state.fixed_backup is None:
            self.state.choose_default_backup(current_time())
            self._show_backups()
        else:
            self._show_targets()

    def _show_backups(self) -> None:
        self._go("backup", "pane-backup")
        state = self.state
        found = self.listed_backups = state.backups()
        verified = state.repo.verifications()
        hint = [Text(f"Backups holding {', '.join(state.sources)}, newest first:", style="bold")]
        if state.choice is not None:
            hint += [Text(f"! {warning}", style="yellow") for warning in state.choice.warnings]
        self.query_one("#backup-hint", Static).update(Group(*hint))
        backups = self.query_one("#backup-list", OptionList)
        backups.clear_options()
        now = current_time()
        for manifest in found:
            record = verified.get(manifest.id)
            mark = "verified" if record and record.ok else "not verified"
            if manifest.trigger == "pre-restore":
                mark = "safety backup"
            label = f"{manifest.id}  {age(manifest.created_at, now):>8}  {mark}"
            if manifest.label:
                label += f"  {manifest.label}"
            backups.add_option(Option(label, id=manifest.id))
        if state.backup is not None and state.backup in found:
            backups.highlighted = found.index(state.backup)
        backups.focus()
        if not found:
            self._problem("no backup holds all of these sources: go back and choose fewer")

    def _leave_backups(self) -> None:
        backups = self.query_one("#backup-list", OptionList)
        if backups.highlighted is None:
            self._problem("choose a backup")
            return
        chosen = backups.get_option_at_index(backups.highlighted).id
        self.state.backup = next(m for m in self.listed_backups if m.id == chosen)
        self._show_targets()

    def _show_targets(self) -> None:
        self._go("target", "pane-target")
        options = self.query_one("#target-list", OptionList)
        options.clear_options()
        targets = self.state.targets()
        for name, label in targets:
            options.add_option(Option(label, id=name or ""))
        names = [name for name, _ in targets]
        if self.state.target_chosen and self.state.target in names:
            options.highlighted = names.index(self.state.target)
        else:
            options.highlighted = 1 if self._wants_alternate() and len(targets) > 1 else 0
        if self._wants_alternate() and len(targets) == 1:
            self._problem(NO_ALTERNATE)
        options.focus()

    def _wants_alternate(self) -> bool:
        return bool(self.state.recommendation and self.state.recommendation.alternate_target)

    def _leave_targets(self) -> None:
        options = self.query_one("#target-list", OptionList)
        index = options.highlighted or 0
        target = options.get_option_at_index(index).id or None
        if target is None and self._wants_alternate():
            self._problem(NO_ALTERNATE)
            return
        self.state.target, self.state.target_chosen = target, True
        self._start_checks()

    @on(OptionList.OptionSelected, "#backup-list")
    def _backup_chosen(self) -> None:
        self._leave_backups()

    @on(OptionList.OptionHighlighted, "#backup-list")
    def _backup_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        chosen = next((m for m in self.listed_backups if m.id == event.option.id), None)
        if chosen is not None:
            self.state.backup = chosen  # kept when the operator steps back and returns

    @on(OptionList.OptionSelected, "#target-list")
    def _target_chosen(self) -> None:
        self._leave_targets()

    # -- checks (the dry run) -----------------------------------------------------------

    def _start_checks(self) -> None:
        self._go("checks", "pane-checks")
        self.report = None
        self.query_one("#checks-verdict", Static).update("")
        self.check_job = self.lifeboat.start_restore(self.state.request())
        self.check_worker = worker_named(self.app, self.check_job)
        self._job_changed(self.check_job)

    def _job_changed(self, key: str) -> None:
        job = self.lifeboat.board.jobs.get(key)
        if job is None:
            return
        if key == self.check_job and self.step == "checks":
            self._render_checks(job)
        elif key == self.restore_job and self.step in ("safety", "restore", "done"):
            self._render_progress(job)

    def _render_checks(self, job: JobState) -> None:
        verify = job.sources.get("verify")
        if verify is not None and verify.total:
            bar: RenderableType = ProgressBar(total=verify.total, completed=verify.done)
            done = f"{human_size(verify.done)}/{human_size(verify.total)}"
        else:
            bar, done = ProgressBar(total=None, pulse=job.running), ""
        progress = Table.grid(padding=(0, 1), expand=True)
        progress.add_column(no_wrap=True)
        progress.add_column(ratio=1)
        progress.add_column(no_wrap=True)
        progress.add_row("checksums", bar, done)
        heading = Text("Checking; nothing is changed by these checks.", style="bold")
        self.query_one("#checks-progress", Static).update(Group(heading, progress))
        self.query_one("#checks-table", Static).update(self._checks_grid(job))
        if job.finished is not None:
            self._checks_finished(job)

    def _checks_grid(self, job: JobState) -> RenderableType:
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True, max_width=18, overflow="ellipsis")
        grid.add_column(ratio=1)
        for check in job.checks:
            mark, variable = MARKS[check.status]
            color = self.app.theme_variables.get(variable, "")
            grid.add_row(Text(mark, style=f"bold {color}"), check.name, check.detail)
        return grid

    def _checks_finished(self, job: JobState) -> None:
        worker = self.check_worker
        failed = [c for c in job.checks if c.status == "fail"]
        verdict = self.query_one("#checks-verdict", Static)
        if job.finished is not None and job.finished.ok and not failed:
            if worker is not None and worker.state == WorkerState.SUCCESS:
                self.report = worker.result  # set just after the last event: shown again then
            warnings = sum(1 for c in job.checks if c.status == "warning")
            note = f" ({warnings} warning(s): read them)" if warnings else ""
            verdict.update(Text(f"Every check passed{note}. Continue to confirm.", style="bold"))
            next_button = self.query_one("#next", Button)
            next_button.disabled = False
            next_button.focus()
        else:
            if not failed and worker is not None and worker.error is not None:
                self._problem(describe_error(worker.error))
            reason = f"{len(failed)} check(s) failed" if failed else "the checks did not finish"
            verdict.update(
                Text(
                    f"Restore refused: {reason}; nothing was changed. Go back to change the "
                    "plan, backup or target.",
                    style="bold",
                )  # fmt: skip
            )

    # -- confirm -------------------------------------------------------------------------

    def _show_confirm(self) -> None:
        if self.report is None:
            self._problem("the checks' report is not in yet; wait a moment")
            return
        self._go("confirm", "pane-confirm")
        plan = self.report.plan
        names = " ".join(plan.confirm_names)
        where = f"target {plan.target} ({', '.join(plan.hosts)})" if plan.target else names
        sources = ", ".join(step.source for step in plan.steps)
        text = Group(
            Text(f"Restore {sources} from {plan.manifest.id} onto {where}.", style="bold"),
            Text(
                "What is there now is overwritten. A safety backup of it is taken first "
                "unless you skip it (a reason is required and recorded)."
            ),
            Text(f"Type {names} to confirm:", style="bold"),
        )
        self.query_one("#confirm-text", Static).update(text)
        confirm = self.query_one("#confirm-name", Input)
        confirm.placeholder = names
        confirm.value = ""
        confirm.focus()

    @on(Checkbox.Changed, "#safety")
    def _safety_toggled(self, event: Checkbox.Changed) -> None:
        self.query_one("#skip-reason").display = not event.value

    @on(Input.Submitted, "#confirm-name")
    @on(Input.Submitted, "#skip-reason")
    def _confirm_submitted(self) -> None:
        self._confirm()

    def _confirm(self) -> None:
        assert self.report is not None
        names = self.report.plan.confirm_names
        typed = tuple(self.query_one("#confirm-name", Input).value.split())
        if sorted(typed) != sorted(names):
            self._problem(f"type {' '.join(names)} exactly to confirm")
            return
        safety = self.query_one("#safety", Checkbox).value
        reason = self.query_one("#skip-reason", Input).value.strip()
        if not safety and not reason:
            self._problem("say why the safety backup is skipped")
            self.query_one("#skip-reason", Input).focus()
            return
        self.state.safety_backup, self.state.skip_reason = safety, reason
        self.restore_job = self.lifeboat.start_restore(
            self.state.request(apply=True, confirm=names)
        )
        self.restore_worker = worker_named(self.app, self.restore_job)
        self._go("safety" if safety else "restore", "pane-progress")
        self.query_one("#progress-job", VerticalScroll).focus()
        self.query_one("#progress-job", VerticalScroll).mount(
            JobView(self.lifeboat.board.jobs[self.restore_job], {})
        )
        self._job_changed(self.restore_job)

    # -- running and done -------------------------------------------------------------------

    def _render_progress(self, job: JobState) -> None:
        restoring = any(
            not name.endswith(SAFETY_SUFFIX) and name not in ("restore", "verify")
            for name in job.sources
        )
        if self.step == "safety" and restoring:
            self._go("restore", "pane-progress")
        title = {
            "safety": "Saving the target's current state (safety backup)…",
            "restore": "Restoring…",
        }
        self.query_one("#progress-title", Static).update(title.get(self.step, ""))
        for view in self.query(JobView):
            view.refresh()
        if job.finished is not None:  # again once the worker's report is in
            self._show_done(job)

    def _show_done(self, job: JobState) -> None:
        self._go("done", "pane-done")
        assert job.finished is not None
        recommendation = self.state.recommendation
        checklist = recommendation.checklist if recommendation else "post-restore"
        lines: list[RenderableType] = []
        state = self.state
        worker = self.restore_worker
        where = f"target {state.target}" if state.target else "their own hosts"
        if job.finished.ok:
            assert state.backup is not None
            lines.append(Text(f"Restored {', '.join(state.sources)}.", style="bold"))
            lines.append(Text(f"From backup {state.backup.id} onto {where}."))
            if state.namespaces and state.has_mongo():
                lines.append(Text(f"Namespaces: {' '.join(state.namespaces)}"))
        else:
            lines.append(Text("The restore FAILED.", style="bold red"))
            lines += [Text(f"✗ {error.source}: {error.error}") for error in job.finished.errors]
            if worker is not None and worker.error is not None and not job.finished.errors:
                lines.append(Text(f"✗ {describe_error(worker.error)}"))
        report = worker.result if worker and worker.state == WorkerState.SUCCESS else None
        if report is not None and report.safety_backup:
            lines.append(Text(f"The state before is kept in backup {report.safety_backup}."))
        if recommendation:
            lines += [Text(f"• {note}") for note in recommendation.notes]
        if job.finished.ok:
            lines.append(
                Text(
                    f"Next: validate the result with the {checklist} checklist (Checklist "
                    "opens it; Esc closes)."
                )
            )
            self.query_one("#next", Button).label = "Checklist"
        else:
            lines.append(Text(f"Next: validate the result with the {checklist} checklist."))
        self.query_one("#done-text", Static).update(Group(*lines))
        self.query_one("#next", Button).focus()

    def _done(self) -> None:
        """Close; after a successful restore, open the plan's checklist on what it did."""
        job = self.lifeboat.board.jobs.get(self.restore_job or "")
        self.dismiss()
        if job is None or job.finished is None or not job.finished.ok:
            return
        from tui.console.screens.checklist import open_checklist

        state = self.state
        worker = self.restore_worker
        report = worker.result if worker and worker.state == WorkerState.SUCCESS else None
        restore = {
            "sources": list(state.sources),
            "namespaces": list(state.namespaces) if state.has_mongo() else [],
            "target": state.target,
            "hosts": list(report.plan.hosts) if report is not None else [],
            "safety_backup": report.safety_backup if report is not None else None,
        }
        recommendation = state.recommendation
        checklist = recommendation.checklist if recommendation else "post-restore"
        backup = state.backup.id if state.backup else None
        open_checklist(self.lifeboat, backup, restore, checklist)

    # -- navigation ---------------------------------------------------------------------------

    @on(Button.Pressed, "#next")
    def action_next(self) -> None:
        actions = {
            "plan": self._leave_plan,
            "backup": self._leave_backups,
            "target": self._leave_targets,
            "checks": self._show_confirm,
            "confirm": self._confirm,
            "done": self._done,
        }
        if self.step == "scenario":
            self._next_in_scenario()
        elif self.step in actions and not self.query_one("#next", Button).disabled:
            actions[self.step]()

    def _next_in_scenario(self) -> None:
        pane = self.query_one("#panes", ContentSwitcher).current
        if pane == "pane-advice":
            self.dismiss()
            return
        choices = self.query_one("#choices", OptionList)
        if choices.display and choices.highlighted is not None:
            choices.action_select()
        else:
            self._answer_input()

    @on(Button.Pressed, "#back")
    def action_back(self) -> None:
        if self.step == "scenario":
            if self.state.unanswer():
                self.show_question()
        elif self.step == "plan":
            self.state.unanswer()
            self.show_question()
        elif self.step == "backup":
            self._show_plan()
        elif self.step == "target":
            if self.state.fixed_backup is None:
                self._show_backups()
            else:
                self._show_plan()
        elif self.step == "checks":
            self._stop_checks()
            self._show_targets()
        elif self.step == "confirm":
            self._start_checks()

    def _stop_checks(self) -> None:
        if self.check_job is not None:
            self.lifeboat.cancel_job(self.check_job)  # a dry run changes nothing: safe to stop

    def action_cancel(self) -> None:
        if self.step in ("safety", "restore"):
            self.notify("the restore is running; it is not stopped half way from here")
            return
        self._stop_checks()
        self.dismiss()


def open_wizard(app: LifeboatApp, backup: Manifest | None = None) -> None:
    """Push the wizard on the built-in (or the config's) restore tree."""
    from engine.errors import ConfigError
    from engine.restore.tree import BUILT_IN, load_trees

    config = app.config
    try:
        trees = load_trees(config.runbooks.paths, config.sources)
    except ConfigError as exc:
        app.notify(f"the runbooks do not load: {exc}", severity="error", timeout=30)
        return
    app.push_screen(RestoreWizard(WizardState(config, app.repository, trees[BUILT_IN], backup)))

"""The guided restore's last panes: the checks (the engine's dry run) as they report, the
typed confirmation, the restore's progress and what it did."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Checkbox, Input, Static

from tui.console.jobs import JobState
from tui.console.widgets.job_view import JobView
from tui.console.widgets.ticks import TickBox
from tui.console.wizard_state import Step, WizardState
from tui.format import human_size

if TYPE_CHECKING:
    from engine.restore.plan import RestorePlan
    from engine.restore.run import RestoreReport

SWAP_LABEL = "Then bring etcd live on it (stop, swap the dirs, start)"
MARKS = {"ok": ("✓", "success"), "warning": ("!", "warning"), "fail": ("✗", "error")}


class ChecksPane(Vertical):
    """Each check as it reports, the checksums' progress, then the verdict."""

    def compose(self) -> ComposeResult:
        yield Static(id="checks-progress")
        yield VerticalScroll(Static(id="checks-table"), id="checks-scroll")
        yield Static(id="checks-verdict")

    def show(self, job: JobState) -> None:
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
        self.query_one("#checks-table", Static).update(self._grid(job))

    def _grid(self, job: JobState) -> RenderableType:
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True, max_width=18, overflow="ellipsis")
        grid.add_column(ratio=1)
        for check in job.checks:
            mark, variable = MARKS[check.status]
            color = self.app.theme_variables.get(variable, "")
            grid.add_row(Text(mark, style=f"bold {color}"), check.name, check.detail)
        return grid

    @staticmethod
    def failed(job: JobState) -> int:
        """How many checks failed."""
        return sum(1 for check in job.checks if check.status == "fail")

    def verdict(self, job: JobState | None) -> None:
        """The finished checks' verdict: passed (its warnings counted) or refused; nothing
        while they run (``job`` None or not finished)."""
        verdict = self.query_one("#checks-verdict", Static)
        if job is None or not job.finished:
            verdict.update("")
        elif job.finished.ok and not self.failed(job):
            warnings = sum(1 for c in job.checks if c.status == "warning")
            note = f" ({warnings} warning(s): read them)" if warnings else ""
            verdict.update(Text(f"Every check passed{note}. Continue to confirm.", style="bold"))
        else:
            failed = self.failed(job)
            reason = f"{failed} check(s) failed" if failed else "the checks did not finish"
            verdict.update(
                Text(
                    f"Restore refused: {reason}; nothing was changed. Go back to change the "
                    "plan, backup or target.",
                    style="bold",
                )  # fmt: skip
            )


class ConfirmPane(VerticalScroll):
    """What the restore does to each target, the safety backup (or why it is skipped or
    leaves a source out), bringing etcd live, and the names to type."""

    def compose(self) -> ComposeResult:
        yield Static(id="confirm-text")
        yield TickBox("Take a safety backup of the target first", True, id="safety")
        yield Input(id="skip-reason", placeholder="why skip it? (goes to the audit log)")
        yield TickBox(SWAP_LABEL, False, id="swap")
        yield Static(id="confirm-prompt")
        yield Input(id="confirm-name")

    def on_mount(self) -> None:
        self.query_one("#skip-reason").display = False

    @on(Checkbox.Changed, "#safety")
    def _safety_toggled(self, event: Checkbox.Changed) -> None:
        self.query_one("#skip-reason").display = not event.value

    def show(self, state: WizardState) -> None:
        assert state.report is not None
        plan = state.report.plan
        names = " ".join(state.confirm_names)
        where = f"target {plan.target} ({', '.join(plan.hosts)})" if plan.target else names
        sources = ", ".join(step.source for step in plan.steps)
        lines = [Text(f"Restore {sources} from {plan.manifest.id} onto {where}.", style="bold")]
        lines += [
            Text(f"• {step.source} on {step.target_host}: {plan.effect(step)}.")
            for step in plan.steps
        ]
        down = state.down
        lines += [
            Text(
                f"• {name} does not answer, so it has nothing to save: the safety backup "
                "leaves it out (recorded)."
            )  # fmt: skip
            for name in down
        ]
        saved = [step.source for step in plan.steps if step.source not in down]
        if saved:
            lines.append(
                Text(
                    f"A safety backup of {', '.join(saved)} as "
                    f"{'it is' if len(saved) == 1 else 'they are'} now is taken first "
                    "unless you skip it (a reason is required and recorded)."
                )
            )
        self.query_one("#confirm-text", Static).update(Group(*lines))
        prompt = Text(f"Type {names} to confirm:", style="bold")
        self.query_one("#confirm-prompt", Static).update(prompt)
        safety = self.query_one("#safety", Checkbox)
        safety.display = bool(saved)
        safety.value = True
        swappable = state.swappable()
        swap = self.query_one("#swap", Checkbox)
        swap.display = bool(swappable)
        swap.value = any(name in down for name in swappable)  # nothing runs: bring it back
        confirm = self.query_one("#confirm-name", Input)
        confirm.placeholder = names
        confirm.value = ""
        confirm.focus()

    def entered(self) -> tuple[str, bool, str, bool]:
        """The names typed, whether to take the safety backup, the reason to skip it, and
        whether to bring etcd live on the restored data."""
        swap = self.query_one("#swap", Checkbox)
        return (
            self.query_one("#confirm-name", Input).value,
            self.query_one("#safety", Checkbox).value,
            self.query_one("#skip-reason", Input).value,
            swap.display and swap.value,
        )


class ProgressPane(Vertical):
    """The restore job running: its safety backup first, then the restore."""

    TITLES = {
        Step.SAFETY: "Saving the target's current state (safety backup)…",
        Step.RESTORE: "Restoring…",
    }

    def compose(self) -> ComposeResult:
        yield Static(id="progress-title", classes="title")
        yield VerticalScroll(id="progress-job")

    def follow(self, job: JobState) -> None:
        """Show ``job``'s progress (once, as it starts)."""
        view = self.query_one("#progress-job", VerticalScroll)
        view.focus()
        view.mount(JobView(job, {}))

    def show(self, step: Step) -> None:
        self.query_one("#progress-title", Static).update(self.TITLES.get(step, ""))
        for view in self.query(JobView):
            view.refresh()


class DonePane(VerticalScroll):
    """What the restore did (or why it failed), where the state before is kept, what is left
    to do, and where Back leads after a failure."""

    def compose(self) -> ComposeResult:
        yield Static(id="done-text")

    def show(
        self, state: WizardState, job: JobState, report: RestoreReport | None, error: str | None
    ) -> None:
        """``report`` is the restore's once its worker returned; ``error`` its worker's."""
        assert job.finished is not None
        if job.finished.ok:
            lines = self._restored(state, report)
        else:
            lines = self._failed(state, job, error)
        if report is not None and report.safety_backup:
            lines.append(Text(f"The state before is kept in backup {report.safety_backup}."))
        if state.recommendation:
            lines += [Text(f"• {note}") for note in state.recommendation.notes]
        self.query_one("#done-text", Static).update(Group(*lines))

    @staticmethod
    def _restored(state: WizardState, report: RestoreReport | None) -> list[RenderableType]:
        assert state.backup is not None
        where = f"target {state.target}" if state.target else "their own hosts"
        lines: list[RenderableType] = [
            Text(f"Restored {', '.join(state.sources)}.", style="bold"),
            Text(f"From backup {state.backup.id} onto {where}."),
        ]
        if state.namespaces and state.selects_by_glob():
            lines.append(Text(f"Namespaces: {' '.join(state.namespaces)}"))
        if report is not None:
            lines += _left_to_do(report.plan)
        lines.append(
            Text(
                f"Next: validate the result with the {state.checklist} checklist "
                "(Checklist opens it; Esc closes)."
            )
        )
        return lines

    @staticmethod
    def _failed(state: WizardState, job: JobState, error: str | None) -> list[RenderableType]:
        assert job.finished is not None
        if job.finished.cancelled:
            lines: list[RenderableType] = [
                Text("The restore was CANCELLED part way.", style="bold red")
            ]
        elif state.failed_at is Step.SAFETY:
            lines = [Text("Nothing was restored: the safety backup failed.", style="bold red")]
        else:
            lines = [Text("The restore FAILED.", style="bold red")]
        lines += [Text(f"✗ {failure.source}: {failure.error}") for failure in job.finished.errors]
        if error is not None and not job.finished.errors:
            lines.append(Text(f"✗ {error}"))
        if state.failed_at is Step.SAFETY:
            lines.append(
                Text(
                    "Back returns to Confirm: retry once the cause is fixed, or untick the "
                    "safety backup and say why it is skipped."
                )
            )
        elif state.failed_at is Step.RESTORE:
            lines.append(
                Text(
                    "Back runs the checks again (the target may hold part old, part restored "
                    "data), then retry from Confirm."
                )
            )
        return lines


def _left_to_do(plan: RestorePlan) -> list[RenderableType]:
    """Per restored source, what is left for the operator (etcd: bring it live), if any."""
    lines: list[RenderableType] = []
    for step in plan.steps:
        left = plan.left_to_do(step)
        if left:
            lines.append(Text(f"{step.source} on {step.target_host}: {left[0]}", style="bold"))
            lines += [Text(f"  {command}") for command in left[1:]]
    return lines

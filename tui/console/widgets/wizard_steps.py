"""The guided restore's step bar and its first panes: the scenario's questions (or advice),
the plan, the backup and the target. Each pane shows the wizard's state and reads back what
the operator edited; the screen (tui/console/screens/wizard.py) forwards it to the state."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Input, OptionList, SelectionList, Static
from textual.widgets.option_list import Option
from textual.widgets.selection_list import Selection

from engine.restore.tree import AdviceNode, InputNode, QuestionNode
from tui.console.widgets.backup_picker import BackupPicker
from tui.console.widgets.ticks import TickList
from tui.console.wizard_state import Step, WizardState


class StepBar(Widget):
    """Every step, the ones done dim, the current one reversed."""

    steps: reactive[tuple[Step, ...]] = reactive(tuple(Step))
    step: reactive[Step] = reactive(Step.SCENARIO)

    def render(self) -> RenderableType:
        position = self.steps.index(self.step)
        styles = {-1: "dim", 0: "bold reverse", 1: ""}  # before, at and after the step
        return Text(" › ").join(
            Text(step.value, style=styles[(index > position) - (index < position)])
            for index, step in enumerate(self.steps)
        )


class QuestionPane(Vertical):
    """The question asked now: choices to pick, or text to type."""

    def compose(self) -> ComposeResult:
        yield Static(id="question-text", classes="title")
        yield Static(id="question-help", classes="hint")
        yield OptionList(id="choices")
        yield Input(id="answer")

    def show(self, node: QuestionNode | InputNode, before: str | None) -> None:
        """Ask ``node``, offering the answer given ``before`` (stepped back over), if any."""
        self.query_one("#question-text", Static).update(node.text)
        self.query_one("#question-help", Static).update(node.help)
        choices = self.query_one("#choices", OptionList)
        answer = self.query_one("#answer", Input)
        choices.display = isinstance(node, QuestionNode)
        answer.display = isinstance(node, InputNode)
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

    def answer(self) -> str:
        """The highlighted choice, or the typed text."""
        choices = self.query_one("#choices", OptionList)
        if choices.display and choices.highlighted_option is not None:
            return choices.highlighted_option.id or ""
        return self.query_one("#answer", Input).value


class AdvicePane(VerticalScroll):
    """Advice instead of a restore: what to do, and the command to run."""

    def compose(self) -> ComposeResult:
        yield Static(id="advice")

    def show(self, advice: AdviceNode) -> None:
        lines: list[RenderableType] = [
            Text(advice.title, style="bold"),
            Text(""),
            Text(advice.text),
        ]
        if advice.command:
            lines += [Text(""), Text("Run instead:", style="bold"), Text(f"  {advice.command}")]
        lines += [Text(f"• {note}") for note in advice.notes]
        self.query_one("#advice", Static).update(Group(*lines))


class PlanPane(Vertical):
    """The recommended plan: its sources to toggle, the globs that narrow Mongo and PostgreSQL
    sources to edit, notes."""

    def compose(self) -> ComposeResult:
        yield Static(id="plan-text")
        yield TickList(id="plan-sources")
        yield Input(id="plan-globs", placeholder="globs: app.mod_x_* (mongo), shop.public.* (pg)")
        with VerticalScroll(id="plan-notes-scroll"):  # long notes scroll, with a scrollbar
            yield Static(id="plan-notes", classes="hint")

    def show(self, state: WizardState) -> None:
        plan = state.recommendation
        assert plan is not None
        text = Group(
            Text(plan.title, style="bold"),
            Text(plan.text),
            Text("Sources to restore (space toggles):", style="dim"),
        )
        self.query_one("#plan-text", Static).update(text)
        sources = self.query_one("#plan-sources", SelectionList)
        sources.clear_options()
        for name in state.offered_sources():
            source = state.config.sources[name]
            label = f"{name}  {source.kind} on {source.host}"
            sources.add_option(Selection(label, name, name in state.sources))
        if sources.option_count:
            sources.highlighted = 0
        globs = self.query_one("#plan-globs", Input)
        globs.value = " ".join(state.namespaces)
        globs.display = state.selects_by_glob()
        notes = [f"• {note}" for note in plan.notes] + [f"Afterwards: checklist {plan.checklist}"]
        self.query_one("#plan-notes", Static).update("\n".join(notes))
        sources.focus()

    def chosen(self) -> tuple[list[str], str]:
        """The sources selected, and the globs as typed."""
        sources: SelectionList[str] = self.query_one("#plan-sources", SelectionList)
        return list(sources.selected), self.query_one("#plan-globs", Input).value


class BackupPane(Vertical):
    """The backups holding every chosen source, newest first, the default highlighted."""

    def compose(self) -> ComposeResult:
        yield Static(id="backup-hint")
        yield BackupPicker(id="backup-list")
        yield Static(id="backup-reason", classes="hint")

    def show(self, state: WizardState) -> None:
        hint = [Text(f"Backups holding {', '.join(state.sources)}, newest first:", style="bold")]
        if state.listed is None:
            hint.append(Text("reading the backups…", style="dim"))
        elif state.choice is not None:
            hint += [Text(f"! {warning}", style="yellow") for warning in state.choice.warnings]
        self.query_one("#backup-hint", Static).update(Group(*hint))
        reason = default_reason(state)
        if state.config.remotes:
            fetch = "f fetches a copy from a remote, to restore from it"
            reason = f"{reason}\n{fetch}" if reason else fetch
        self.query_one("#backup-reason", Static).update(reason)
        found = state.listed or []
        ids = [row.id for row in found]
        chosen = state.backup.id if state.backup is not None else None
        picker = self.query_one(BackupPicker)
        picker.show(found, state.backups.verifications, ids.index(chosen) if chosen in ids else 0)
        picker.focus()


def default_reason(state: WizardState) -> str:
    """Which backup the step offers first, and why (the engine's sentence)."""
    choice = state.choice
    if state.listed is None or choice is None or not choice.reason:
        return ""
    if choice.manifest is None:
        return choice.reason
    return f"Default {choice.manifest.id}: {choice.reason}."


class TargetPane(Vertical):
    """Where the data goes: the original hosts or a configured target."""

    def compose(self) -> ComposeResult:
        yield Static("Where should the data go?", classes="title")
        yield OptionList(id="target-list")

    def show(self, state: WizardState) -> None:
        options = self.query_one("#target-list", OptionList)
        options.clear_options()
        for name, label in state.targets():
            options.add_option(Option(label, id=name or ""))
        options.highlighted = state.proposed_target()
        options.focus()

    def chosen(self) -> str | None:
        """The highlighted target (None: the original hosts)."""
        option = self.query_one("#target-list", OptionList).highlighted_option
        return option.id or None if option is not None else None

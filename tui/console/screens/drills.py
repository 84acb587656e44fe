"""Drills: the tested recovery procedures (scenario, last run, result, measured RTO) and each
one's history; ``n`` runs a drill on the sources flagged ``drill = true``."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from engine.config.model import Config
from engine.crypto.age import Identity
from engine.drill import history
from engine.drill.history import DrillRecord
from engine.durations import format_duration
from engine.errors import UsageError
from tui.console.screens.identity import IdentityModal
from tui.console.screens.modals import TypedConfirmModal, wrapped
from tui.console.services import Services, services
from tui.console.widgets.footer import KeysFooter
from tui.format import age, seconds_text

RESULT_STYLE = {"passed": "bold green", "failed": "bold red"}


def procedures(records: list[DrillRecord]) -> dict[str, list[DrillRecord]]:
    """The drills by scenario, each newest first, scenarios by their newest run."""
    grouped: dict[str, list[DrillRecord]] = {}
    for record in records:  # newest first already
        grouped.setdefault(record.scenario, []).append(record)
    return grouped


class DrillsScreen(Screen[None]):
    DEFAULT_CSS = """
    DrillsScreen #procedures { height: auto; max-height: 50%; }
    DrillsScreen #history { height: 1fr; border-top: solid $foreground 30%; padding: 0 1; }
    DrillsScreen #no-drills { padding: 1 2; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "run_drill", "Run drill"),
        Binding("escape", "app.switch_mode('dashboard')", "Back"),
    ]

    @property
    def lifeboat(self) -> Services:
        return services(self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            "no drill has run yet: flag drill sources with drill = true in the config, then "
            "press n (or run lifeboat drill)",
            id="no-drills",
        )
        table: DataTable[Text | str] = DataTable(id="procedures", cursor_type="row")
        table.add_columns("Result", "RTO", "Last run", "Passed", "Tested recovery procedure")
        yield table
        yield VerticalScroll(Static(id="history-text"), id="history")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.title = "Drills"
        self.lifeboat.jobs_changed.subscribe(self, self._job_changed)
        self.refresh_drills()

    def on_screen_resume(self) -> None:
        self.refresh_drills()

    def _job_changed(self, key: str) -> None:
        job = self.lifeboat.board.jobs.get(key)
        if job is not None and job.kind == "drill" and job.finished is not None:
            self.refresh_drills()

    def refresh_drills(self) -> None:
        self.grouped = procedures(history.load(self.lifeboat.repository.path))
        table = self.query_one("#procedures", DataTable)
        table.clear()
        for scenario, runs in self.grouped.items():
            last = runs[0]
            passed = sum(run.passed for run in runs)
            rto = seconds_text(last.restore_seconds) if last.restore_seconds is not None else "-"
            table.add_row(
                Text(last.verdict.upper(), style=RESULT_STYLE.get(last.verdict, "")),
                rto,
                age(_moment(last.started)),
                f"{passed} of {len(runs)}",
                scenario,
                key=scenario,
            )
        self.query_one("#no-drills").display = not self.grouped
        table.display = self.query_one("#history").display = bool(self.grouped)
        self._show_history()

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_history()

    def _show_history(self) -> None:
        table = self.query_one("#procedures", DataTable)
        if not self.grouped or table.cursor_row < 0:
            return
        scenario = list(self.grouped)[min(table.cursor_row, len(self.grouped) - 1)]
        text = Text(f"{scenario}\n", style="bold")
        for index, run in enumerate(self.grouped[scenario]):
            text.append(f"{run.started}  ", style="dim")
            text.append(run.verdict.upper(), style=RESULT_STYLE.get(run.verdict, ""))
            text.append(f"  {run.timings()}  by {run.operator}\n")
            if index == 0:
                text.append_text(_details(run, self.lifeboat.config))
        self.query_one("#history-text", Static).update(text)

    def action_run_drill(self) -> None:
        """Plan, confirm and start a drill; first, with [encryption] set and no identity that
        opens its backup given this session, ask for one."""
        encryption = self.lifeboat.config.encryption
        recipients = tuple(str(r) for r in encryption.all_recipients()) if encryption else ()
        if recipients and not self.lifeboat.keyring.opens(recipients):
            self.app.push_screen(
                IdentityModal("The drill's backup", recipients), self._identity_given
            )
            return
        self._plan_drill()

    def _identity_given(self, found: tuple[Identity, ...] | None) -> None:
        if found:
            self.lifeboat.keep_identities(found)
            self._plan_drill()

    def _plan_drill(self) -> None:
        from engine.drill.run import DrillRequest, plan_drill

        try:
            plan = plan_drill(self.lifeboat.config, DrillRequest(keyring=self.lifeboat.keyring))
        except UsageError as exc:
            self.lifeboat.notify_problem(str(exc), cause="drill", timeout=20)
            return
        self.lifeboat.fixed("drill")
        lines = [f"Drill: {plan.scenario}. It destroys, then restores:"]
        lines += [f"• {line}" for line in plan.destroys]
        explanation = "\n".join(wrapped(line) for line in lines)
        self._confirm_each(list(plan.confirm_names), explanation, [])

    def _confirm_each(self, names: list[str], explanation: str, typed: list[str]) -> None:
        """Ask for each name in turn (a drill in place on several hosts names each)."""
        if not names:
            self._start(tuple(typed))
            return
        name = names[0]

        def answered(ok: bool | None) -> None:
            if ok:
                self._confirm_each(names[1:], explanation, [*typed, name])

        self.app.push_screen(TypedConfirmModal(explanation, name), answered)

    def _start(self, confirm: tuple[str, ...]) -> None:
        from engine.drill.run import DrillRequest

        self.lifeboat.start_drill(DrillRequest(confirm=confirm, keyring=self.lifeboat.keyring))
        self.notify("drill started: follow it on the dashboard (d)")


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _details(run: DrillRecord, config: Config) -> Text:
    text = Text()
    text.append(f"  backup {run.backup_id or '-'}")
    if run.target:
        text.append(f", onto target {run.target}")
    text.append("\n")
    for name, tier in config.tiers.items():
        if set(tier.sources) <= set(run.sources) and run.restore_seconds is not None:
            met = run.passed and run.restore_seconds <= tier.rto.total_seconds()
            verdict = "met" if met else "NOT met"
            line = f"  tier {name}: RTO {format_duration(tier.rto)}, {verdict}\n"
            text.append(line, style="" if met else "bold red")
    for marker in run.markers:
        ok = marker["found"] == marker["expected"]
        line = f"  markers {marker['source']}: {marker['found']} of {marker['expected']}\n"
        text.append(line, style="" if ok else "bold red")
    if run.checklist:
        result = "failed" if run.checklist_failed else "passed"
        text.append(f"  checklist {run.checklist}: {result} (run {run.checklist_run})\n")
    for problem in run.problems:
        text.append(f"  ✗ {problem}\n", style="red")
    return text

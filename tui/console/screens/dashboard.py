"""The dashboard: every tier's RPO state, the running jobs with live progress, and the log.

What it shows of tiers, schedules, locks and the repository's problems is one
``engine.status.gather()`` (what ``lifeboat status`` prints), gathered by a worker thread:
reading manifests never runs on the UI loop. The status's ``BackupFacts`` stay with the screen,
so a refresh reads only new backups from disk, even when a tier has no covering backup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, VerticalScroll
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import Header, Static
from textual.worker import Worker, WorkerState

from engine.errors import LifeboatError, describe_error
from engine.status import BackupFacts, LockLine, StatusReport, gather, shared_locks
from tui import format as fmt
from tui.console.screens.modals import BackupChoice, BackupModal, ConfirmModal
from tui.console.services import Services, services
from tui.console.widgets.footer import KeysFooter
from tui.console.widgets.job_view import JobView
from tui.console.widgets.log_pane import LogPane
from tui.console.widgets.schedule_strip import ScheduleStrip
from tui.console.widgets.tier_card import CARD_MIN_WIDTH, CHROME_WIDTH, TierCard

MAX_JOBS_SHOWN = 6
STATUS_REFRESH_SECONDS = 30  # ages move on even when nothing happens
NO_TIERS = "no tiers configured: add [tiers.NAME] to the config"


def tier_columns(count: int, width: int) -> int:
    """How many tier cards a row holds: as many as fit ``width`` (at least CARD_MIN_WIDTH
    each), then as few as keep the rows even: four cards sit 4 in a row or 2x2, never 3+1."""
    if count <= 1:
        return 1
    fit = max(1, min(count, width // CARD_MIN_WIDTH))
    rows = -(-count // fit)
    return -(-count // rows)


class DashboardScreen(Screen[None]):
    CSS_PATH = "dashboard.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "backup", "Back up"),
        Binding("r", "app.restore_wizard", "Restore"),
        Binding("c", "cancel_job", "Cancel job"),
        Binding("D", "app.switch_mode('drills')", "Drills"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.report: StatusReport | None = None  # the last status gathered
        self._facts = BackupFacts()  # used by one gathering thread at a time
        self._gathering = False
        self._again = False  # a refresh was asked for while one was gathering
        self._sizes: dict[str, int] = {}  # each source's last size: the ETA of a new job
        self._shared_locks: Sequence[LockLine] = ()
        self._alerts: list[str] = []

    @property
    def lifeboat(self) -> Services:
        return services(self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        with Container(id="tiers"):
            yield Static("gathering the status…", id="no-tiers")
        yield ScheduleStrip()
        with VerticalScroll(id="jobs") as jobs:
            jobs.border_title = "jobs"
            yield Static("no jobs yet: press b to back up", id="no-jobs")
        yield LogPane()
        yield KeysFooter()

    def on_mount(self) -> None:
        self.lifeboat.jobs_changed.subscribe(self, self.on_jobs_changed)
        self.lifeboat.backups_changed.subscribe(self, lambda _: self.refresh_status())
        self.refresh_status()
        self.set_interval(STATUS_REFRESH_SECONDS, self.refresh_status)
        self.on_jobs_changed("")

    # -- the status ------------------------------------------------------------------------

    def refresh_status(self) -> None:
        """Gather the status again, in a thread; asked while one gathers, once it is done."""
        if self._gathering:
            self._again = True
            return
        self._gathering = True
        self._gather()
        if self.lifeboat.config.coordination is not None:
            # textual's WorkType union makes mypy infer Never for an async method's result
            self.run_worker(self._fetch_shared_locks, group="locks", exclusive=True)  # type: ignore[arg-type]

    @work(thread=True, group="status", exit_on_error=False)
    def _gather(self) -> tuple[StatusReport, dict[str, int]]:
        app = self.lifeboat
        report = gather(app.config, app.repository, fmt.current_time(), facts=self._facts)
        return report, self._facts.sizes(app.repository, app.config.sources)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "status" or not worker.is_finished:
            return
        self._gathering = False
        if event.state == WorkerState.SUCCESS and worker.result is not None:
            self._show(*worker.result)
        elif event.state == WorkerState.ERROR and worker.error is not None:
            self._alerts = [f"the status cannot be gathered: {describe_error(worker.error)}"]
            self._show_schedules()
        if self._again and event.state != WorkerState.CANCELLED:  # cancelled: the screen went
            self._again = False
            self.refresh_status()

    def _show(self, report: StatusReport, sizes: dict[str, int]) -> None:
        self.report, self._sizes, self._alerts = report, sizes, report.alerts
        box = self.query_one("#tiers", Container)
        no_tiers = self.query_one("#no-tiers", Static)
        no_tiers.update(NO_TIERS)
        no_tiers.display = not report.tiers
        for status in report.tiers:
            cards = box.query(f"#tier-{status.name}")
            if cards:
                cards.first(TierCard).update_status(status)
            else:
                box.mount(TierCard(status))
        self._lay_out_tiers()
        for view in self.query(JobView):
            view.estimates = sizes
        self._show_schedules()

    def on_resize(self, event: Resize) -> None:
        self._lay_out_tiers(event.size.width)

    def _lay_out_tiers(self, width: int | None = None) -> None:
        """Even rows of cards for the screen's width; three lines a card when all fit."""
        box = self.query_one("#tiers", Container)
        cards = list(box.query(TierCard))
        width = width if width is not None else self.size.width
        columns = tier_columns(len(cards), width)
        box.styles.grid_size_columns = columns
        self.query_one("#no-tiers", Static).styles.column_span = columns
        inner = width // columns - CHROME_WIDTH
        three = all(card.three_line_width() <= inner for card in cards)
        for card in cards:
            if card.three_lines != three:
                card.three_lines = three
                card.refresh(layout=True)

    def _show_schedules(self) -> None:
        report = self.report
        schedules = report.schedules if report else []
        held = [*(report.locks if report else []), *self._shared_locks]
        self.query_one(ScheduleStrip).show(schedules, held, self._alerts)

    async def _fetch_shared_locks(self) -> None:
        """The etcd lock holders (the engine talks to etcd; this only shows them)."""
        app = self.lifeboat
        try:
            self._shared_locks = await shared_locks(app.config, app.repository)
        except LifeboatError as exc:
            self._shared_locks = [LockLine("etcd", "locks", f"unknown: {exc}")]
        self._show_schedules()

    # -- jobs --------------------------------------------------------------------------------

    def on_jobs_changed(self, _key: str) -> None:
        board = self.lifeboat.board
        box = self.query_one("#jobs", VerticalScroll)
        jobs = list(reversed(board.jobs.values()))[:MAX_JOBS_SHOWN]
        self.query_one("#no-jobs").display = not jobs
        shown = {view.job.key: view for view in box.query(JobView)}
        for view in shown.values():
            if view.job.key not in {job.key for job in jobs}:
                view.remove()
        for job in jobs:
            if job.key in shown:
                shown[job.key].refresh()
            else:
                box.mount(JobView(job, self._sizes), before=0)
        self.query_one(LogPane).show(board.log, board.logged)

    def action_backup(self) -> None:
        sources = tuple(self.lifeboat.config.sources)

        def start(choice: BackupChoice | None) -> None:
            if choice is not None:
                self.lifeboat.start_backup(choice.scope, choice.label)

        self.app.push_screen(BackupModal(sources), start)

    def action_cancel_job(self) -> None:
        running = self.lifeboat.board.running()
        focused = self.focused.job if isinstance(self.focused, JobView) else None
        job = focused if focused in running else (running[0] if len(running) == 1 else None)
        if job is None:
            self.notify(
                "no running job selected: focus one with Tab" if running else "nothing is running",
                severity="warning",
            )
            return
        name = job.job_id or job.key

        def cancel(confirmed: bool | None) -> None:
            if confirmed:
                self.lifeboat.cancel_job(job.key)

        self.app.push_screen(
            ConfirmModal(f"Cancel {job.kind} {name}? Nothing partial will be kept."), cancel
        )

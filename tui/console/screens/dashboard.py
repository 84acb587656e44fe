"""The dashboard: every tier's RPO state, the running jobs with live progress, and the log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Static

from engine.drill import history
from engine.errors import LifeboatError
from engine.schedule.status import ScheduleStatus, schedule_statuses
from engine.status import LockLine, local_locks, repository_alerts, shared_locks, tier_statuses
from tui import format as fmt
from tui.console.screens.modals import BackupChoice, BackupModal, ConfirmModal
from tui.console.services import Services, services
from tui.console.widgets.footer import KeysFooter
from tui.console.widgets.job_view import JobView
from tui.console.widgets.log_pane import LogPane
from tui.console.widgets.schedule_strip import ScheduleStrip
from tui.console.widgets.tier_card import TierCard

MAX_JOBS_SHOWN = 6
STATUS_REFRESH_SECONDS = 30  # ages move on even when nothing happens


class DashboardScreen(Screen[None]):
    CSS_PATH = "dashboard.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "backup", "Back up"),
        Binding("r", "app.restore_wizard", "Restore"),
        Binding("c", "cancel_job", "Cancel job"),
        Binding("D", "app.switch_mode('drills')", "Drills"),
    ]

    _schedules: Sequence[ScheduleStatus] = ()
    _shared_locks: Sequence[LockLine] = ()
    _alerts: Sequence[str] = ()

    @property
    def lifeboat(self) -> Services:
        return services(self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        with Container(id="tiers"):
            yield Static("no tiers configured: add [tiers.NAME] to the config", id="no-tiers")
        yield ScheduleStrip()
        with VerticalScroll(id="jobs") as jobs:
            jobs.border_title = "jobs"
            yield Static("no jobs yet: press b to back up", id="no-jobs")
        yield LogPane()
        yield KeysFooter()

    def on_mount(self) -> None:
        self.lifeboat.jobs_changed.subscribe(self, self.on_jobs_changed)
        self.lifeboat.backups_changed.subscribe(self, lambda _: self.refresh_tiers())
        self.refresh_tiers()
        self.set_interval(STATUS_REFRESH_SECONDS, self.refresh_tiers)
        self.on_jobs_changed("")

    def refresh_tiers(self) -> None:
        app = self.lifeboat
        statuses = tier_statuses(  # both read manifests lazily, newest first, as far as needed
            app.config,
            app.repository.iter_backups(),
            app.repository.verifications(),
            drills=history.load(app.repository.path),
        )
        repo = app.repository
        self._schedules = schedule_statuses(
            app.config, repo, repo.iter_backups(), fmt.current_time()
        )
        self._alerts = repository_alerts(repo)
        self._show_schedules()
        if app.config.coordination is not None:
            # textual's WorkType union makes mypy infer Never for an async method's result
            self.run_worker(self._fetch_shared_locks, group="locks", exclusive=True)  # type: ignore[arg-type]
        box = self.query_one("#tiers", Container)
        self.query_one("#no-tiers").display = not statuses
        for status in statuses:
            cards = box.query(f"#tier-{status.name}")
            if cards:
                cards.first(TierCard).update_status(status)
            else:
                box.mount(TierCard(status))

    def _show_schedules(self) -> None:
        held = [*local_locks(self.lifeboat.repository), *self._shared_locks]
        self.query_one(ScheduleStrip).show(self._schedules, held, self._alerts)

    async def _fetch_shared_locks(self) -> None:
        """The etcd lock holders (the engine talks to etcd; this only shows them)."""
        app = self.lifeboat
        try:
            self._shared_locks = await shared_locks(app.config, app.repository)
        except LifeboatError as exc:
            self._shared_locks = [LockLine("etcd", "locks", f"unknown: {exc}")]
        self._show_schedules()

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
                box.mount(JobView(job, self._estimates()), before=0)
        self.query_one(LogPane).show(board.log, board.logged)

    def _estimates(self) -> dict[str, int]:
        """Each source's size in its newest backup: the ETA when a total is unknown."""
        wanted = set(self.lifeboat.config.sources)
        sizes: dict[str, int] = {}
        for manifest in self.lifeboat.repository.iter_backups():
            if wanted <= sizes.keys():
                break
            for artifact in manifest.artifacts:
                sizes.setdefault(artifact.source, artifact.size)
        return sizes

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

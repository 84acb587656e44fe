"""The Lifeboat console: a small App that registers themes, modes and global bindings.

Each area is a Screen in ``tui/console/screens``. Engine jobs run in Textual workers; their
events feed a :class:`~tui.console.jobs.JobBoard` and a signal widgets subscribe to. A failed
worker becomes a visible, recorded error (never a toast that vanishes).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.signal import Signal
from textual.worker import Worker, WorkerState

from engine import paths
from engine.config.model import Config
from engine.errors import describe_error
from engine.events import Emit, Event
from engine.repo.repository import Repository
from engine.scaleout.catalog import keep_current
from themes import DEFAULT_THEME, THEMES, VARIABLE_DEFAULTS
from tui.console.jobs import JobBoard
from tui.console.palette import LifeboatCommands
from tui.console.screens.backups import BackupsScreen
from tui.console.screens.dashboard import DashboardScreen
from tui.console.screens.drills import DrillsScreen

if TYPE_CHECKING:
    from engine.drill.run import DrillRequest
    from engine.restore.run import RestoreRequest


class LifeboatApp(App[None]):
    TITLE = "Lifeboat"
    MODES: ClassVar[dict[str, Any]] = {
        "dashboard": DashboardScreen,
        "backups": BackupsScreen,
        "drills": DrillsScreen,
    }
    DEFAULT_MODE = "dashboard"
    COMMANDS = App.COMMANDS | {LifeboatCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "switch_mode('dashboard')", "Dashboard"),
        Binding("l", "switch_mode('backups')", "Backups"),
        Binding("D", "switch_mode('drills')", "Drills", show=False),  # the dashboard shows it
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        config: Config,
        repository: Repository,
        *,
        settings: Path | None = None,
        wizard: str | None = None,
    ):
        super().__init__()
        self.open_wizard_on_start = wizard  # "": the wizard; a backup id: on that backup
        self.config = config
        self.repository = keep_current(repository, config)  # each write updates the [catalog]
        self.settings_path = settings or paths.console_settings_file()
        self.board = JobBoard()
        self.jobs_changed: Signal[str] = Signal(self, "jobs-changed")
        self.backups_changed: Signal[None] = Signal(self, "backups-changed")
        self._keys = count(1)
        for theme in THEMES:
            self.register_theme(theme)
        self.theme = self._saved_theme()

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return VARIABLE_DEFAULTS

    # -- settings ------------------------------------------------------------------------

    def _saved_theme(self) -> str:
        try:
            saved = json.loads(self.settings_path.read_text()).get("theme")
        except (OSError, ValueError, AttributeError):
            saved = None
        return saved if saved in self.available_themes else DEFAULT_THEME

    def watch_theme(self, theme: str) -> None:
        try:
            self.settings_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.settings_path.write_text(json.dumps({"theme": theme}))
        except OSError as exc:  # a read-only home: the theme just is not remembered
            self.board.note("console", "warning", f"cannot remember the theme: {exc}")

    # -- jobs ----------------------------------------------------------------------------

    def _start(self, kind: str, job: Callable[[Emit], Awaitable[object]]) -> str:
        key = f"{kind}-{next(self._keys)}"
        self.board.open(key, kind)

        def emit(event: Event) -> None:
            self.board.apply(key, event)
            self.jobs_changed.publish(key)

        self.run_worker(job(emit), name=key, group="jobs", exit_on_error=False)
        self.jobs_changed.publish(key)
        return key

    # The engine's job modules load on first use: the console paints before asyncssh loads.

    def start_backup(self, scope: tuple[str, ...] = (), label: str | None = None) -> str:
        from engine.jobs import BackupRequest, run_backup

        request = BackupRequest(scope=scope, label=label or None)
        return self._start(
            "backup", lambda emit: run_backup(self.config, self.repository, request, emit)
        )

    def start_verify(self, backup_id: str) -> str:
        from engine.jobs import run_verify

        return self._start(
            "verify", lambda emit: run_verify(self.repository, backup_id, emit, config=self.config)
        )

    def start_restore(self, request: RestoreRequest) -> str:
        """Check (and with ``request.apply``, restore); the report is the worker's result."""
        from engine.restore.run import run_restore

        return self._start(
            "restore", lambda emit: run_restore(self.config, self.repository, request, emit)
        )

    def start_drill(self, request: DrillRequest) -> str:
        """Seed, back up, destroy, restore and check the drill sources; records the verdict."""
        from engine.drill.run import run_drill

        return self._start(
            "drill", lambda emit: run_drill(self.config, self.repository, request, emit)
        )

    def cancel_job(self, key: str) -> None:
        for worker in self.workers:
            if worker.name == key and worker.is_running:
                worker.cancel()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        key = event.worker.name
        if key not in self.board.jobs:
            return
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.board.fail(key, describe_error(event.worker.error))
        elif event.state == WorkerState.CANCELLED:
            self.board.fail(key, "cancelled by the operator")
        if event.state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            self.jobs_changed.publish(key)
            self.backups_changed.publish(None)

    def on_mount(self) -> None:
        if self.open_wizard_on_start is not None:
            backup = self.open_wizard_on_start
            self.action_restore_wizard(backup or None)

    # -- actions -------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide the key of the mode already shown (the 80-column footer needs the room)."""
        return not (action == "switch_mode" and parameters == (self.current_mode,))

    async def action_quit(self) -> None:
        """Quit; with jobs running, only after the operator agreed to cancel them."""
        from tui.console.screens.modals import ConfirmModal, wrapped

        running = self.board.running()
        if not running:
            self.exit()
            return
        kinds = ", ".join(sorted({job.kind for job in running}))
        question = (
            f"{len(running)} job(s) running ({kinds}). Quitting cancels them: a backup leaves "
            "nothing, a restore stops half way. Quit anyway?"
        )

        def answered(quit_anyway: bool | None) -> None:
            if quit_anyway:
                self.exit()

        self.push_screen(ConfirmModal(wrapped(question)), answered)

    def action_restore_wizard(self, backup_id: str | None = None) -> None:
        """Open the guided restore (on ``backup_id`` when given, skipping the backup step)."""
        from tui.console.screens.wizard import open_wizard

        open_wizard(self, self.repository.load(backup_id) if backup_id else None)

    def action_checklist(self, backup_id: str | None = None) -> None:
        """Run a validation checklist on ``backup_id`` (or resume one left open)."""
        from tui.console.screens.checklist import open_checklist

        open_checklist(self, backup_id)

    def action_help(self) -> None:
        from tui.console.screens.help import HelpScreen

        self.push_screen(HelpScreen())


def make_app(
    config: Config, *, settings: Path | None = None, wizard: str | None = None
) -> LifeboatApp:
    """The console on ``config``'s repository (tests and screenshot scripts use this too).

    ``wizard`` opens the guided restore at once ("" or a backup id to restore from)."""
    repository = Repository.open(config.repository.path)
    if wizard:
        repository.load(wizard)  # an unknown id is refused before the console opens
    return LifeboatApp(config, repository, settings=settings, wizard=wizard)

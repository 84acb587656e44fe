"""The Lifeboat console: a small App that registers themes, modes and global bindings.

Each area is a Screen in ``tui/console/screens``; screens use the app through the small
:class:`~tui.console.services.Services` protocol it provides. Engine jobs run in Textual
workers; their events feed a :class:`~tui.console.jobs.JobBoard` and a signal widgets subscribe
to. A failed worker becomes a visible, recorded error (never a toast that vanishes). The index
of backups (:mod:`tui.console.backup_index`) is read by a thread, for every screen. A hang-up
(SIGHUP) or SIGTERM cancels every job and waits for their cleanup before the console exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.message import Message
from textual.notifications import Notification, Notify
from textual.signal import Signal
from textual.worker import (
    Worker,
    WorkerCancelled,
    WorkerFailed,
    WorkerState,
    get_current_worker,
)

from engine import paths
from engine.config.model import Config
from engine.crypto.age import Identity
from engine.errors import describe_error
from engine.events import Emit, Event, LogLine
from engine.notify import SOURCE as NOTIFY_SOURCE
from engine.repo.content import NO_KEYS, Keyring
from engine.repo.repository import Repository
from themes import DEFAULT_THEME, THEMES, VARIABLE_DEFAULTS
from tui.console.backup_index import BackupIndex, Chunk, read_chunks
from tui.console.jobs import JobBoard
from tui.console.palette import LifeboatCommands
from tui.console.screens.dashboard import DashboardScreen

if TYPE_CHECKING:
    from textual.screen import Screen

    from engine.drill.run import DrillRequest
    from engine.restore.plan import RestoreRequest

FIRST_CHUNK = 60  # the first screenful of the index, read on the loop (a few milliseconds)
CHUNK = 1000  # then read by a thread, this many at a time
STOP_WAIT_SECONDS = 10.0  # how long a hang-up waits for the cancelled jobs' cleanup
QUIT_EFFECTS = {  # what cancelling a running job of each kind leaves, for the quit question
    "backup": "a backup leaves nothing",
    "verify": "a verify leaves its backup unchecked",
    "restore": "a restore stops half way",
    "drill": "a drill stops part way",
}


class BackupsRead(Message):
    """Rows the index's reader thread read."""

    def __init__(self, chunk: Chunk) -> None:
        super().__init__()
        self.chunk = chunk


def _backups_screen() -> Screen[Any]:
    from tui.console.screens.backups import BackupsScreen  # loads when first shown

    return BackupsScreen()


def _drills_screen() -> Screen[Any]:
    from tui.console.screens.drills import DrillsScreen  # loads when first shown

    return DrillsScreen()


class LifeboatApp(App[None]):
    TITLE = "Lifeboat"
    MODES: ClassVar[dict[str, Any]] = {
        "dashboard": DashboardScreen,
        "backups": _backups_screen,
        "drills": _drills_screen,
    }
    DEFAULT_MODE = "dashboard"
    # Over a dialog, toasts stack from the top and take at most a third of the screen: a
    # centred dialog's buttons are in its lower half, so no toast covers them. (The palette
    # sits at the top itself: its toasts stay at the bottom.)
    CSS = """
    ModalScreen > ToastRack { dock: top; align: right top; max-height: 33%; margin-bottom: 0; }
    CommandPalette > ToastRack { dock: bottom; align: right bottom; max-height: 100%; }
    """
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
        keyring: Keyring = NO_KEYS,
    ):
        super().__init__()
        self.keyring = keyring
        self.open_wizard_on_start = wizard  # "": the wizard; a backup id: on that backup
        self.config = config
        if config.catalog is not None:  # each write updates the [catalog]
            from engine.scaleout.catalog import keep_current

            keep_current(repository, config)
        self.repository = repository
        self.settings_path = settings or paths.console_settings_file()
        self.board = JobBoard()
        self.jobs_changed: Signal[str] = Signal(self, "jobs-changed")
        self.backups_changed: Signal[None] = Signal(self, "backups-changed")
        self.backups = BackupIndex(repository)
        self.backups_indexed: Signal[None] = Signal(self, "backups-indexed")
        self._indexing = False  # the index was asked for: it follows every change
        self._froze = False  # long-lived objects were frozen out of the collector's sight
        self._keys = count(1)
        self.stopped_by: int | None = None  # the signal the console is stopping for
        # each error toast up, by its cause, with what says the cause is still there
        self._problems: dict[str, tuple[Notification, Callable[[], bool] | None]] = {}
        for theme in THEMES:
            self.register_theme(theme)
        self.theme = self._saved_theme()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Textual's own commands, less its theme picker, which lists every built-in theme:
        the palette offers Lifeboat's three (README "The console")."""
        return (
            command for command in super().get_system_commands(screen) if command.title != "Theme"
        )

    def format_title(self, title: str, sub_title: str) -> Content:
        """Every screen's header: the environment label (``environment`` in the config), the
        screen's title, and which config file (or, without one, which repository) this is."""
        parts: list[str | tuple[str, str]] = []
        if self.config.environment:
            parts += [(f" {self.config.environment} ", "bold reverse"), " "]
        parts.append(title)
        if sub_title:
            parts += [(" — ", "dim"), (sub_title, "dim")]
        parts += [("  ", ""), (self.place, "dim")]
        return Content.assemble(*parts)

    @property
    def place(self) -> str:
        """The config file this console runs on, or its repository when it has no file."""
        if self.config.path is not None:
            return paths.display(self.config.path)
        return f"repository {paths.display(self.repository.path)}"

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
            if isinstance(event, LogLine) and event.source == NOTIFY_SOURCE:
                # An alert that did not go out: whoever counts on it being sent must know.
                self.notify(event.text, title="notification", severity="warning", markup=False)

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

    def keep_identities(self, identities: tuple[Identity, ...]) -> Keyring:
        """Add ``identities`` to the session's keyring (memory only); the new keyring."""
        held = self.keyring.identities
        self.keyring = Keyring((*held, *(i for i in identities if i not in held)))
        return self.keyring

    def start_verify(self, backup_id: str) -> str:
        """Verify a backup; an encrypted one deeply once an identity was given this session."""
        from engine.jobs import run_verify

        return self._start(
            "verify",
            lambda emit: run_verify(
                self.repository, backup_id, emit, config=self.config, keyring=self.keyring
            ),
        )

    def start_restore(self, request: RestoreRequest) -> str:
        """Check (and with ``request.apply``, restore); the report is the worker's result."""
        from engine.restore.run import run_restore

        return self._start(
            "restore" if request.apply else "check",
            lambda emit: run_restore(self.config, self.repository, request, emit),
        )

    def start_copy(self, backup_id: str, remote: str) -> str:
        """Copy a backup to ``[remotes.<remote>]`` (files first, the manifest last)."""
        from engine.offsite.copy import run_copy

        return self._start(
            "copy", lambda emit: run_copy(self.config, self.repository, remote, [backup_id], emit)
        )

    def start_fetch(self, backup_id: str, remote: str) -> str:
        """Bring a backup's copy back from ``[remotes.<remote>]``, checked file by file."""
        from engine.offsite.fetch import fetch_from

        return self._start(
            "fetch",
            lambda emit: fetch_from(self.config, self.repository, remote, backup_id, emit),
        )

    def start_drill(self, request: DrillRequest) -> str:
        """Seed, back up, destroy, restore and check the drill sources; records the verdict."""
        from engine.drill.run import run_drill

        return self._start(
            "drill", lambda emit: run_drill(self.config, self.repository, request, emit)
        )

    def stop_for_signal(self, signum: int) -> None:
        """A hang-up (SIGHUP) or SIGTERM: cancel every job, wait for them (bounded), exit."""
        if self.stopped_by is None:
            self.stopped_by = signum
            self.call_later(self._stop_jobs_and_exit, signum)

    async def _stop_jobs_and_exit(self, signum: int) -> None:
        jobs = [worker for worker in self.workers if worker.group == "jobs"]
        for worker in jobs:
            worker.cancel()  # each job's cleanup runs: remote command, ssh, staging, audit

        async def settled(worker: Worker[Any]) -> None:
            with contextlib.suppress(WorkerCancelled, WorkerFailed):
                await worker.wait()

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*map(settled, jobs)), STOP_WAIT_SECONDS)
        self.exit(return_code=128 + signum)

    def cancel_job(self, key: str) -> None:
        for worker in self.workers:
            if worker.name == key and worker.is_running:
                worker.cancel()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        key = event.worker.name
        if event.worker.group == "backups-index" and event.worker.error is not None:
            self.backups.failure = (
                f"reading the backups failed: {describe_error(event.worker.error)}"
            )
            self.backups.problems.append(self.backups.failure)
            self.backups_indexed.publish(None)
        elif event.worker.group == "backups-index" and event.state == WorkerState.SUCCESS:
            self._settle_long_lived()
        if key not in self.board.jobs:
            return
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.board.fail(key, describe_error(event.worker.error))
        elif event.state == WorkerState.CANCELLED:
            self.board.fail(key, "cancelled by the operator")
        if event.state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            self.jobs_changed.publish(key)
            self.backups_changed.publish(None)

    # -- the index of backups ------------------------------------------------------------

    def refresh_backups(self) -> None:
        """Read what is new on disk into the index, newest first.

        The index is read the first time a screen asks, not at start. Then the newest
        screenful is read here, so that screen's first paint has rows; a thread reads the rest
        and the index is published chunk by chunk."""
        self._indexing = True
        fresh = self.backups.begin()
        if not len(self.backups) and fresh:
            for chunk in read_chunks(self.repository, fresh[:FIRST_CHUNK], FIRST_CHUNK):
                self.backups.add(chunk)
            fresh = fresh[FIRST_CHUNK:]
        if fresh:
            self._read_backups(fresh)
        else:
            self.workers.cancel_group(self, "backups-index")  # it reads nothing new
        self.backups_indexed.publish(None)

    @work(thread=True, exclusive=True, group="backups-index", exit_on_error=False)
    def _read_backups(self, fresh: list[str]) -> None:
        worker = get_current_worker()
        for chunk in read_chunks(self.repository, fresh, CHUNK):
            if worker.is_cancelled:
                return
            self.post_message(BackupsRead(chunk))

    def _settle_long_lived(self) -> None:
        """Once the first full index is read, move what lives until the console quits (the
        app, its modes' screens, the index's rows) out of the garbage collector's sight.

        With 10,000 backups that is over 100,000 objects: every full collection walked them
        all, a stall of up to 100 ms wherever it struck. Done once: an object frozen here
        that dies in a reference cycle while the console runs (a screen open at that moment)
        stays in memory until it quits, when everything is handed back to the collector."""
        if not self._froze and gc.get_freeze_count() == 0:
            self._froze = True
            gc.freeze()

    def on_unmount(self) -> None:
        if self._froze:
            gc.unfreeze()

    def on_backups_read(self, message: BackupsRead) -> None:
        self.backups.add(message.chunk)
        self.backups_indexed.publish(None)

    def _backups_changed(self, _: None) -> None:
        if self._indexing:
            self.refresh_backups()

    # -- error toasts that go when their cause does ------------------------------------------

    def notify_problem(
        self,
        message: str,
        *,
        cause: str,
        still: Callable[[], bool] | None = None,
        timeout: float | None = None,
        title: str = "",
    ) -> None:
        """An error toast for ``cause`` (one at a time: a new one replaces the last). It goes
        when :meth:`fixed` is called for ``cause`` (the action that failed then worked), or
        when ``still()`` turns false (checked whenever a job or the backups change), or when
        its time is up."""
        self.fixed(cause)
        notification = Notification(
            message, title, "error", timeout or self.NOTIFICATION_TIMEOUT * 3, markup=False
        )
        self._problems[cause] = (notification, still)
        self.post_message(Notify(notification))

    def fixed(self, cause: str) -> None:
        """``cause``'s error toast goes: what failed is done now."""
        problem = self._problems.pop(cause, None)
        if problem is not None and problem[0] in self._notifications:
            self._unnotify(problem[0])  # Textual's own way to drop one toast

    def _recheck_problems(self, _: object = None) -> None:
        for cause, (_notification, still) in list(self._problems.items()):
            if still is not None and not still():
                self.fixed(cause)

    def on_mount(self) -> None:
        self.jobs_changed.subscribe(self, self._recheck_problems)
        self.backups_changed.subscribe(self, self._recheck_problems)
        self.backups_changed.subscribe(self, self._backups_changed)
        if self.open_wizard_on_start is not None:
            backup = self.open_wizard_on_start
            self.action_restore_wizard(backup or None)

    # -- actions -------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide the key of the mode already shown (the 80-column footer needs the room)."""
        return not (action == "switch_mode" and parameters == (self.current_mode,))

    async def action_switch_mode(self, mode: str) -> None:
        self.go_to(mode)

    def go_to(self, mode: str) -> None:
        """Show ``mode`` (d, l, D, "Go to" in the palette); from the restore wizard, only after
        the operator agreed to lose its answers (a mode keeps its own screen stack: a wizard
        left open there would come back, half filled, under that mode's key)."""
        from tui.console.screens.wizard import leave_wizard  # the wizard loads when used

        leave_wizard(self, partial(self.switch_mode, mode))

    async def action_quit(self) -> None:
        """Quit; with jobs running or the restore wizard open, only after the operator agreed
        to cancel them or lose its answers."""
        from tui.console.screens.modals import ConfirmModal, wrapped
        from tui.console.screens.wizard import QUIT_QUESTION, wizard_open

        running = [job for job in self.board.running() if job.kind != "check"]
        if running:  # a restore's checks change nothing: stopping them needs no question
            kinds = sorted({job.kind for job in running})
            effects = "; ".join(QUIT_EFFECTS.get(kind, f"a {kind} stops") for kind in kinds)
            question = (
                f"{len(running)} job(s) running ({', '.join(kinds)}). Quitting cancels them: "
                f"{effects}. Quit anyway?"
            )
        elif wizard_open(self) is not None:
            question = QUIT_QUESTION
        else:
            self.exit()
            return

        def answered(quit_anyway: bool | None) -> None:
            if quit_anyway:
                self.exit()

        self.push_screen(ConfirmModal(wrapped(question)), answered)

    def action_help_quit(self) -> None:
        """Ctrl+C with no text selected: it stops nothing here (README "What stops what")."""
        self.notify("Ctrl+C stops nothing here: q quits (asking first while jobs run)")

    def action_restore_wizard(self, backup_id: str | None = None) -> None:
        """Open the guided restore (on ``backup_id`` when given, skipping the backup step);
        one left open is closed first, after asking."""
        from tui.console.screens.wizard import leave_wizard, open_wizard

        backup = self.repository.load(backup_id) if backup_id else None
        leave_wizard(self, partial(open_wizard, self, backup))

    def action_checklist(self, backup_id: str | None = None) -> None:
        """Run a validation checklist on ``backup_id`` (or resume one left open)."""
        from tui.console.screens.wizard import leave_wizard

        leave_wizard(self, partial(self.open_checklist, backup_id))

    def open_checklist(
        self,
        backup_id: str | None = None,
        restore: dict[str, object] | None = None,
        name: str | None = None,
    ) -> None:
        """Run checklist ``name`` (or one to choose) on ``backup_id``, after ``restore``."""
        from tui.console.screens.checklist import open_checklist

        open_checklist(self, backup_id, restore, name)

    def action_help(self) -> None:
        from tui.console.screens.help import HelpScreen

        self.push_screen(HelpScreen())


def make_app(
    config: Config,
    *,
    settings: Path | None = None,
    wizard: str | None = None,
    keyring: Keyring = NO_KEYS,
) -> LifeboatApp:
    """The console on ``config``'s repository (tests and screenshot scripts use this too).

    ``wizard`` opens the guided restore at once ("" or a backup id to restore from);
    ``keyring`` holds the identities given at start (encrypted backups)."""
    repository = Repository.open(config.repository.path)
    if wizard:
        repository.load(wizard)  # an unknown id is refused before the console opens
    return LifeboatApp(config, repository, settings=settings, wizard=wizard, keyring=keyring)

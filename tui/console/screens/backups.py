"""The backups browser: every backup, newest first, filterable, with its full detail and the
actions an operator takes on one backup (verify, restore, delete).

Reading 10,000 manifests takes a second or more (JSON plus validation): the newest screenful
is read before the first paint and a thread reads the rest, the list painting each chunk as it
arrives. Only one small row per backup is kept; a manifest is read again when it is shown.
Manifests never change once committed, so later refreshes read only new backups.

With a ``[catalog]``, the filter asks the catalog which backups match (in a thread, through
engine.scaleout.catalog); without one, or once it did not answer, the list filters itself on
the same fields.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.markup import escape
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Header, Input, Static
from textual.worker import Worker, WorkerState, get_current_worker

from engine.errors import BackupNotFoundError, ManifestError, describe_error
from engine.repo.manifest import Manifest
from engine.repo.repository import Repository
from engine.repo.retention import delete_backup
from tui.console.screens.modals import TypedConfirmModal, worker_named, wrapped
from tui.console.screens.wizard import open_wizard
from tui.console.widgets.backup_detail import BackupDetail
from tui.console.widgets.backup_list import BackupList, BackupRow
from tui.console.widgets.footer import KeysFooter
from tui.format import human_size

if TYPE_CHECKING:
    from engine.scaleout.catalog import Catalog
    from tui.console.app import LifeboatApp

FIRST_CHUNK = 60  # the first screenful, read before the first paint (a few milliseconds)
CHUNK = 1000
MANIFESTS_KEPT = 32


def read_chunks(
    repo: Repository, ids: list[str], size: int
) -> Iterator[tuple[list[BackupRow], list[str]]]:
    """The rows of ``ids`` in order, ``size`` at a time, and one message per unreadable
    manifest."""
    for start in range(0, len(ids), size):
        damaged: list[ManifestError] = []
        rows = [BackupRow.of(m) for m in repo.iter_backups(ids[start : start + size], damaged)]
        yield rows, [str(damage) for damage in damaged]


def open_backup(app: App[object], backup_id: str | None) -> None:
    """Switch to the browser with ``backup_id`` under the cursor, or (None) to its filter."""
    app.switch_mode("backups")
    for screen in app.screen_stack:
        if isinstance(screen, BackupsScreen):
            if backup_id is None:
                screen.call_after_refresh(screen.action_filter)
            else:
                screen.reveal(backup_id)


class BackupsScreen(Screen[None]):
    CSS_PATH = "backups.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/", show=False),  # the box says so
        Binding("v", "verify", "Verify"),
        Binding("r", "restore", "Restore"),
        Binding("c", "checklist", "Checklist"),  # k is the list's vi-style up
        Binding("x,delete", "delete", "Delete", key_display="x"),
        Binding("enter", "detail", "Detail", show=False),
        Binding("escape", "back", "Back"),
    ]

    class Loaded(Message):
        """A chunk of rows read by the loader thread."""

        def __init__(self, read: list[BackupRow], problems: list[str], ids: list[str]) -> None:
            super().__init__()
            self.read = read
            self.problems = problems
            self.ids = ids  # every id on disk, newest first, when the load started

    class Finished(Message):
        """The loader read everything it had to."""

        def __init__(self, ids: list[str]) -> None:
            super().__init__()
            self.ids = ids

    def __init__(self) -> None:
        super().__init__()
        self._rows: dict[str, BackupRow] = {}
        self._manifests: dict[str, Manifest] = {}  # the few last shown, newest last
        self._order: list[str] = []
        self._loading = False
        self._wanted: str | None = None  # an id to put the cursor on once it is read
        self._jobs: dict[str, Worker[object]] = {}  # backup id -> its verify's worker
        self._problems: list[str] = []
        self._total = 0  # rows read, whether the filter shows them or not
        self._hits: set[str] | None = None  # the catalog's answer for the filter, if asked
        self._asking: str | None = None  # the query the catalog is answering now
        self._catalog: Catalog | None = None  # opened by the first search, in its thread
        self._catalog_lock = threading.Lock()
        self._catalog_down = False

    @property
    def lifeboat(self) -> LifeboatApp:
        return self.app  # type: ignore[return-value]

    @property
    def _searches_catalog(self) -> bool:
        """Whether the filter asks the catalog: one is configured, and it has answered."""
        return self.lifeboat.config.catalog is not None and not self._catalog_down

    def _placeholder(self) -> str:
        how = "search the catalog" if self._searches_catalog else "filter"
        return f"/ to {how} by id, label, scope, host or namespace"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder=self._placeholder(), id="filter", compact=True)
        yield Static(id="problems", classes="-none")
        yield BackupList(id="backups")
        yield BackupDetail(id="detail")
        yield KeysFooter()

    def on_mount(self) -> None:
        listing = self.query_one(BackupList)
        listing.border_title = "backups"
        self.query_one(BackupDetail).border_title = "detail"
        listing.focus()
        self.lifeboat.backups_changed.subscribe(self, lambda _: self.refresh_index())
        self.lifeboat.jobs_changed.subscribe(self, self._job_changed)
        self.refresh_index()

    def on_unmount(self) -> None:
        if self._catalog is not None:
            self._catalog.close()

    # -- the index -------------------------------------------------------------------------

    def refresh_index(self) -> None:
        """Read what is new on disk (and forget what is gone), newest first.

        The first time, the newest screenful is read here so the first paint has rows; the
        rest is read by a thread and painted chunk by chunk.
        """
        repo = self.lifeboat.repository
        self.query_one(BackupList).set_verifications(repo.verifications())
        ids = repo.backup_ids()
        fresh = [backup_id for backup_id in ids if backup_id not in self._rows]
        self._loading = True
        if not self._rows:
            read, problems = next(read_chunks(repo, fresh[:FIRST_CHUNK], FIRST_CHUNK), ([], []))
            self.on_backups_screen_loaded(self.Loaded(read, problems, ids))
            fresh = fresh[FIRST_CHUNK:]
        self._load(fresh, ids)
        if self._hits is not None:  # the catalog may know of new backups
            self._filter(self.query_one("#filter", Input).value)
        self._show_detail()

    @work(thread=True, exclusive=True, group="backups-index", exit_on_error=False)
    def _load(self, fresh: list[str], ids: list[str]) -> None:
        worker = get_current_worker()
        for read, problems in read_chunks(self.lifeboat.repository, fresh, CHUNK):
            if worker.is_cancelled:
                return
            self.post_message(self.Loaded(read, problems, ids))
        self.post_message(self.Finished(ids))

    def on_backups_screen_loaded(self, message: Loaded) -> None:
        for row in message.read:
            self._rows[row.id] = row
        self._order = message.ids
        for problem in message.problems:
            self._problem(problem)
        self._publish_rows()

    def on_backups_screen_finished(self, message: Finished) -> None:
        self._order = message.ids
        present = set(message.ids)
        for gone in [i for i in self._rows if i not in present]:
            del self._rows[gone]
            self._manifests.pop(gone, None)
        self._loading = False
        self._publish_rows()

    def _publish_rows(self) -> None:
        listing = self.query_one(BackupList)
        listing.empty_text = "loading backups…" if self._loading else "no backups yet"
        rows = [self._rows[i] for i in self._order if i in self._rows]
        self._total = len(rows)
        if self._hits is not None:
            rows = [row for row in rows if row.id in self._hits]
        listing.set_rows(rows)
        if self._wanted is not None and listing.select(self._wanted):
            self._wanted = None
        self._update_counts()

    def _problem(self, text: str, level: str = "warning") -> None:
        """Show a problem above the list (the newest, and how many) and log it, once."""
        if text in self._problems:  # a damaged backup is read again at every refresh
            return
        self._problems.append(text)
        self.lifeboat.board.note("backups", level, text)
        count = f"{len(self._problems)} problems, see the dashboard's log; the last: "
        box = self.query_one("#problems", Static)
        box.update(escape((count if len(self._problems) > 1 else "") + text))
        box.remove_class("-none")

    def _update_counts(self) -> None:
        listing = self.query_one(BackupList)
        query = self.query_one("#filter", Input).value.strip()
        counts = f"{self._total:,}"
        if query:
            counts = f"{listing.shown:,} of {self._total:,} match {query!r}"
            listing.empty_text = f"no backup matches {query!r}: Esc clears the filter"
        if self._asking is not None:
            counts += " · asking the catalog"
        if self._loading:
            counts += f" · reading {len(self._rows):,}/{len(self._order):,}"
        listing.border_subtitle = counts

    def reveal(self, backup_id: str) -> None:
        """Put the cursor on ``backup_id``, clearing a filter that hides it."""
        self._wanted = backup_id  # selected once read, if it is not yet
        if not self.is_mounted:
            return
        listing = self.query_one(BackupList)
        if not listing.select(backup_id):
            self.query_one("#filter", Input).value = ""
            self._filter("")
        if listing.select(backup_id):
            self._wanted = None
        listing.focus()

    # -- filter and detail ---------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._filter(event.value)

    def _filter(self, query: str) -> None:
        """Show the backups matching ``query``: the catalog's answer when there is a catalog,
        else the list's own."""
        if not self._searches_catalog:
            self.query_one(BackupList).set_filter(query)
        elif query.split():
            self._asking = query
            self._search(query)
        else:
            self._asking = self._hits = None
            self._publish_rows()
        self._update_counts()

    @work(thread=True, exclusive=True, group="catalog-search", exit_on_error=False)
    def _search(self, query: str) -> tuple[str, list[str]]:
        from engine.scaleout.catalog import (  # pymongo loads only with a catalog
            open_catalog,
            search,
        )

        with self._catalog_lock:
            if self._catalog is None:
                self._catalog = open_catalog(self.lifeboat.config)
            catalog = self._catalog
        return query, search(catalog, self.lifeboat.repository, query) if catalog else []

    def _searched(self, worker: Worker[tuple[str, list[str]]], state: WorkerState) -> None:
        if state == WorkerState.SUCCESS and worker.result is not None:
            asked, ids = worker.result
            if asked == self._asking:  # else a newer query's answer is still to come
                self._asking, self._hits = None, set(ids)
                self._publish_rows()
        elif state == WorkerState.ERROR and worker.error is not None and not self._catalog_down:
            self._catalog_down, self._asking, self._hits = True, None, None
            self.query_one("#filter", Input).placeholder = self._placeholder()
            self._problem(f"filtering here: {describe_error(worker.error)}", "error")
            self._filter(self.query_one("#filter", Input).value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.query_one(BackupList).focus()

    def on_backup_list_highlighted(self, _message: BackupList.Highlighted) -> None:
        self.call_after_refresh(self._show_detail)  # the list repaints first, then the detail

    def _current(self) -> Manifest | None:
        """The highlighted backup's manifest, read when needed.

        Only the rows stay in memory: 10,000 parsed manifests are millions of objects, and
        every full garbage collection would then pause the console for a few tenths of a second.
        """
        backup_id = self.query_one(BackupList).highlighted
        if backup_id is None:
            return None
        manifest = self._manifests.pop(backup_id, None)
        if manifest is None:
            try:
                manifest = self.lifeboat.repository.load(backup_id)
            except (BackupNotFoundError, ManifestError) as exc:
                self._problem(str(exc))
                return None
        self._manifests[backup_id] = manifest
        while len(self._manifests) > MANIFESTS_KEPT:
            del self._manifests[next(iter(self._manifests))]
        return manifest

    def _show_detail(self) -> None:
        manifest = self._current()
        detail = self.query_one(BackupDetail)
        if manifest is None:
            detail.show(None, None, empty=self.query_one(BackupList).empty_text)
            return
        verify = self.query_one(BackupList).verifications.get(manifest.id)
        worker = self._jobs.get(manifest.id)
        job, error = None, None
        if worker is not None and worker.name in self.lifeboat.board.jobs:
            state = self.lifeboat.board.jobs[worker.name]
            job = state if state.running else None
            if worker.state == WorkerState.ERROR and worker.error is not None:
                error = f"the verify could not run: {describe_error(worker.error)}"
        detail.show(manifest, verify, job, error)

    def _job_changed(self, key: str) -> None:
        worker = self._jobs.get(self.query_one(BackupList).highlighted or "")
        if worker is not None and worker.name == key:
            self._show_detail()  # the highlighted backup's verify moved on

    # -- actions ---------------------------------------------------------------------------

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_detail(self) -> None:
        if self.query_one(BackupList).has_focus:
            self.query_one(BackupDetail).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":  # shown only when Esc does something
            return not self.query_one(BackupList).has_focus or bool(
                self.query_one("#filter", Input).value
            )
        return True

    def action_back(self) -> None:
        listing = self.query_one(BackupList)
        box = self.query_one("#filter", Input)
        if listing.has_focus and box.value:
            box.value = ""  # Input.Changed re-filters
        listing.focus()
        self.refresh_bindings()  # Esc may have nothing left to do

    def _busy(self, backup_id: str) -> str | None:
        """A running job that uses ``backup_id``, described, if there is one."""
        for job in self.lifeboat.board.running():
            if job.job_id == backup_id:
                return f"a {job.kind} of {backup_id} is running"
        worker = self._jobs.get(backup_id)
        if worker is not None and worker.is_running:
            return f"a verify of {backup_id} is running"
        return None

    def action_verify(self) -> None:
        manifest = self._current()
        if manifest is None:
            return
        busy = self._busy(manifest.id)
        if busy:
            self.notify(f"{busy}; its progress is in the detail pane", severity="warning")
            return
        key = self.lifeboat.start_verify(manifest.id)
        self._jobs[manifest.id] = worker_named(self.app, key)
        self._show_detail()

    def action_delete(self) -> None:
        manifest = self._current()
        if manifest is None:
            return
        busy = self._busy(manifest.id)
        if busy:
            self.notify(f"{busy}: wait for it, or cancel it on the dashboard", severity="error")
            return
        label = f" ({manifest.label})" if manifest.label else ""
        files = sum(len(a.files) for a in manifest.artifacts)
        explanation = wrapped(
            f"Delete backup {manifest.id}{label}, {human_size(manifest.size)} in {files} "
            "file(s)? It is removed from the repository for good; the audit log records it."
        )

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._delete(manifest.id)

        self.app.push_screen(TypedConfirmModal(explanation, manifest.id), confirmed)

    @work(thread=True, group="backup-delete", exit_on_error=False)
    def _delete(self, backup_id: str) -> tuple[str, list[str]]:
        """Delete the backup; the repository's write hook tells the catalog (its warnings are
        returned: the delete stands)."""
        repo = self.lifeboat.repository
        warnings: list[str] = []
        with repo.write_hook.batch(warnings.append):
            delete_backup(repo, backup_id, self.lifeboat.config.operator)
        return backup_id, warnings

    def action_restore(self) -> None:
        manifest = self._current()
        if manifest is not None:
            open_wizard(self.lifeboat, manifest)

    def action_checklist(self) -> None:
        """A validation checklist run on the highlighted backup (or one to resume)."""
        manifest = self._current()
        if manifest is not None:
            self.lifeboat.action_checklist(manifest.id)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group == "catalog-search":
            self._searched(worker, event.state)
        elif worker.group == "backup-delete" and event.state == WorkerState.SUCCESS:
            assert worker.result is not None
            backup_id, warnings = worker.result
            self.lifeboat.board.note("backups", "info", f"backup {backup_id} deleted")
            self.notify(f"deleted {backup_id}")
            self.lifeboat.backups_changed.publish(None)
            for warning in warnings:
                self._problem(warning)
        elif event.state == WorkerState.ERROR and worker.error is not None:
            what = {"backup-delete": "delete", "backups-index": "reading the backups"}
            message = f"{what.get(worker.group, 'restore')} failed: {describe_error(worker.error)}"
            self._problem(message, "error")
            self.notify(message, severity="error")

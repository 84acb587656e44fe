"""The backups browser: every backup, newest first, filterable, with its full detail and the
actions an operator takes on one backup (verify, restore, delete).

The list is the console's index of backups (tui/console/backup_index.py): the newest
screenful is read before the first paint and a thread reads the rest, the list painting each
chunk as it arrives. A manifest is read again when it is shown in full.

With a ``[catalog]``, the filter asks the catalog which backups match (in a thread, through
engine.scaleout.catalog); without one, or once it did not answer, the list filters itself on
the same fields.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import Header, Input, Static
from textual.worker import Worker, WorkerState

from engine.errors import BackupNotFoundError, ManifestError, describe_error
from engine.repo.manifest import Manifest
from engine.repo.retention import delete_backup
from tui.console.remote_choice import offer_fetch, with_remote
from tui.console.screens.modals import TypedConfirmModal, worker_named, wrapped
from tui.console.services import Services, services
from tui.console.widgets.backup_detail import BackupDetail
from tui.console.widgets.backup_list import BackupList
from tui.console.widgets.footer import KeysFooter
from tui.format import human_size

if TYPE_CHECKING:
    from engine.scaleout.catalog import Catalog

MANIFESTS_KEPT = 32


def open_backup(app: App[Any], backup_id: str | None) -> None:
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
        Binding("x,delete", "delete", "Delete", key_display="x/del"),
        Binding("o", "copy", "Copy off-host", show=False),  # the detail pane says so
        Binding("f", "fetch", "Fetch a remote copy", show=False),
        Binding("enter", "detail", "Detail", show=False),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._manifests: dict[str, Manifest] = {}  # the few last shown, newest last
        self._wanted: str | None = None  # an id to put the cursor on once it is read
        self._jobs: dict[str, Worker[object]] = {}  # backup id -> its verify's worker
        self._problems: list[str] = []
        self._hits: set[str] | None = None  # the catalog's answer for the filter, if asked
        self._asking: str | None = None  # the query the catalog is answering now
        self._catalog: Catalog | None = None  # opened by the first search, in its thread
        self._catalog_lock = threading.Lock()
        self._catalog_down = False

    @property
    def lifeboat(self) -> Services:
        return services(self.app)

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
        self.lifeboat.backups_indexed.subscribe(self, lambda _: self._publish_rows())
        self.lifeboat.jobs_changed.subscribe(self, self._job_changed)
        self.refresh_index()

    def on_unmount(self) -> None:
        if self._catalog is not None:
            self._catalog.close()

    # -- the index -------------------------------------------------------------------------

    def refresh_index(self) -> None:
        """Read what is new on disk (and forget what is gone) into the console's index."""
        self.lifeboat.refresh_backups()
        self._publish_rows()
        if self._hits is not None:  # the catalog may know of new backups
            self._filter(self.query_one("#filter", Input).value)
        self._show_detail()

    def _publish_rows(self) -> None:
        index = self.lifeboat.backups
        for problem in index.problems:
            self._problem(problem)
        listing = self.query_one(BackupList)
        listing.empty_text = "no backups yet" if index.complete else "loading backups…"
        if listing.verifications is not index.verifications:  # read again: a verify ended
            listing.set_verifications(index.verifications)
            self._show_detail()
        rows = index.rows()
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
        index = self.lifeboat.backups
        total = len(index)  # rows read, whether the filter shows them or not
        counts = f"{total:,}"
        if query:
            counts = f"{listing.shown:,} of {total:,} match {query!r}"
            listing.empty_text = f"no backup matches {query!r}: Esc clears the filter"
        if self._asking is not None:
            counts += " · asking the catalog"
        if not index.complete:
            counts += f" · reading {total:,}/{len(index.order):,}"
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
        copies = self.lifeboat.backups.copies.get(manifest.id, ())
        detail.show(manifest, verify, job, error, copies=copies if self._remotes() else None)

    def _remotes(self) -> list[str]:
        return list(self.lifeboat.config.remotes)

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

    async def action_back(self) -> None:
        """Esc: clear the filter, else back to the list, else back to the dashboard."""
        listing = self.query_one(BackupList)
        box = self.query_one("#filter", Input)
        if listing.has_focus and not box.value:
            await self.app.run_action("switch_mode('dashboard')")
            return
        if listing.has_focus:
            box.value = ""  # Input.Changed re-filters
        listing.focus()

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
            self.lifeboat.notify_problem(
                f"{busy}: wait for it, or cancel it on the dashboard",
                cause="delete",
                still=lambda: self._busy(manifest.id) is not None,
            )
            return
        self.lifeboat.fixed("delete")
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

    def action_copy(self) -> None:
        """Copy the highlighted backup to a remote (asked for when there are several)."""
        manifest = self._current()
        if manifest is None:
            return

        def chosen(remote: str) -> None:
            self.lifeboat.start_copy(manifest.id, remote)
            self.notify(f"copying {manifest.id} to {remote}: follow it on the dashboard (d)")

        with_remote(self.app, f"Copy {manifest.id} to:", chosen)

    def action_fetch(self) -> None:
        """Bring a copy the repository lacks back from a remote (then ``r`` restores it)."""
        offer_fetch(self.app)

    def action_restore(self) -> None:
        manifest = self._current()
        if manifest is not None:
            from tui.console.screens.wizard import open_wizard  # loads the engine's jobs

            open_wizard(self.app, manifest)

    def action_checklist(self) -> None:
        """A validation checklist run on the highlighted backup (or one to resume)."""
        manifest = self._current()
        if manifest is not None:
            self.lifeboat.open_checklist(manifest.id)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group == "catalog-search":
            self._searched(worker, event.state)
        elif worker.group == "backup-delete" and event.state == WorkerState.SUCCESS:
            assert worker.result is not None
            backup_id, warnings = worker.result
            self.lifeboat.board.note("backups", "info", f"backup {backup_id} deleted")
            self.lifeboat.fixed("delete")
            self.notify(f"deleted {backup_id}")
            self.lifeboat.backups_changed.publish(None)
            for warning in warnings:
                self._problem(warning)
        elif event.state == WorkerState.ERROR and worker.error is not None:
            what = "delete" if worker.group == "backup-delete" else "restore"
            message = f"{what} failed: {describe_error(worker.error)}"
            self._problem(message, "error")
            self.lifeboat.notify_problem(message, cause=what)

"""A checklist session: one run from its start to its sign-off, for the CLI, the console and
drills alike.

``start`` makes a new run of a checklist and ``resume`` opens a stored one. ``check`` runs the
automatic items concurrently, each within its timeout; ``tick``, ``waive`` and ``sign_off`` are
the operator's part. Every change is saved as it is made (``checklists/<run id>.json``,
written atomically); the sign-off also goes to the audit log, under the operator the config
resolved. Each save is a write the repository's hook tells the catalog of; one ``check`` is
one such write, however many items it saves.

``check`` is async and saves in threads. The other methods write and fsync where they are
called: a UI calls them off its event loop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

from engine.checklist.items import ItemContext, check_item
from engine.checklist.model import Loaded, ManualItem, checklists_for
from engine.checklist.run import (
    NOT_APPLICABLE,
    ChecklistRun,
    ItemState,
    SignOff,
    load_run,
    new_run,
    now_text,
    save,
    sign,
    tick,
    waive,
)
from engine.config.model import Config
from engine.errors import LifeboatError, UsageError
from engine.notify import Notice, deliver_now
from engine.remote.ssh import ConnectionPool
from engine.repo import audit
from engine.repo.manifest import Manifest
from engine.repo.repository import Repository
from engine.repo.write_hook import Warn

Changed = Callable[[ItemState], None]


def _unheard(_state: ItemState) -> None:
    pass


class ChecklistSession:
    """One run, its checklist, the backup it validates, and where its writes go."""

    def __init__(
        self,
        config: Config,
        repo: Repository,
        run: ChecklistRun,
        loaded: Loaded | None = None,
        manifest: Manifest | None = None,
        *,
        warn: Warn | None = None,
    ) -> None:
        self.config = config
        self.repo = repo
        self.run = run
        self.manifest = manifest
        self.manifest_problem: str | None = None  # why the linked backup could not be read
        self.warn = warn  # the catalog's warnings (default: the repository hook's own)
        self.checking: set[str] = set()  # item ids ``check`` is running now
        self._loaded = loaded
        self._saving = threading.Lock()  # one save at a time: they share a temporary file

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        config: Config,
        repo: Repository,
        loaded: Loaded,
        manifest: Manifest | None = None,
        restore: dict[str, Any] | None = None,
        *,
        warn: Warn | None = None,
    ) -> ChecklistSession:
        """A new run of ``loaded`` on the backup of ``manifest`` (its counts compare with it)
        and the restore that asked for it; saved at once."""
        run = new_run(loaded, manifest.id if manifest else None, restore)
        session = cls(config, repo, run, loaded, manifest, warn=warn)
        session.save()
        return session

    @classmethod
    def resume(
        cls,
        config: Config,
        repo: Repository,
        run_id: str,
        available: Mapping[str, Loaded] | None = None,
        *,
        warn: Warn | None = None,
    ) -> ChecklistSession:
        """A stored run, with its backup when the repository still has it (a backup that
        cannot be read is only a ``manifest_problem``: the run is still worth finishing).
        With ``available`` (the checklists configured), a run whose checklist is no longer
        among them is refused at once; without, when the checklist is first needed."""
        session = cls(config, repo, load_run(repo.path, run_id), warn=warn)
        if available is not None:
            session._loaded = session._configured(available)
        backup = session.run.backup
        if backup and repo.is_backup(backup):
            try:
                session.manifest = repo.load(backup)
            except LifeboatError as exc:
                session.manifest_problem = str(exc)
        return session

    @property
    def loaded(self) -> Loaded:
        """The run's checklist as configured now; UsageError when it no longer is."""
        if self._loaded is None:
            self._loaded = self._configured(checklists_for(self.config))
        return self._loaded

    def _configured(self, available: Mapping[str, Loaded]) -> Loaded:
        if self.run.checklist not in available:
            raise UsageError(
                f"checklist {self.run.checklist!r} of run {self.run.id} is no longer configured"
            )
        return available[self.run.checklist]

    # -- automatic items -------------------------------------------------------------------

    def automatic_ids(self) -> list[str]:
        """The checklist's automatic items that this run has and that apply to it, in the
        checklist's order."""
        present = {state.id for state in self.run.items if state.status != NOT_APPLICABLE}
        return [
            item.id
            for item in self.loaded.checklist.items
            if not isinstance(item, ManualItem) and item.id in present
        ]

    def status_of(self, state: ItemState) -> str:
        """The item's status: running only while this session checks it (a run left by a
        process that stopped still says running on disk)."""
        if state.status == "running" and state.id not in self.checking:
            return "pending"
        return state.status

    def check(
        self, only: Iterable[str] | None = None, changed: Changed = _unheard
    ) -> Coroutine[Any, Any, None]:
        """Run the automatic items that apply (all, or ``only`` these ids; an item that is not
        applicable is never run) concurrently, each within its timeout: await what this
        returns. A signed-off run, or an item being checked already, is refused here, before
        anything runs. ``changed`` hears every state change; each
        result is saved as it comes, and items a cancellation stops are saved as not run."""
        self.ensure_open()
        wanted = set(only) if only is not None else None
        ids = [i for i in self.automatic_ids() if wanted is None or i in wanted]
        if busy := self.checking.intersection(ids):
            raise UsageError(f"{', '.join(sorted(busy))} is being checked; wait for it")
        self.checking.update(ids)
        return self._check(ids, changed)

    async def _check(self, ids: list[str], changed: Changed) -> None:
        pool = ConnectionPool(dict(self.config.hosts))
        context = ItemContext(self.config, pool, self.manifest)
        async with self.repo.write_hook.batch_async(self.warn):
            checks = [asyncio.ensure_future(self._check_one(i, context, changed)) for i in ids]
            try:
                await asyncio.gather(*checks)
            finally:  # one check failed, or all were cancelled: none may outlive the pool
                for check in checks:
                    check.cancel()
                await asyncio.gather(*checks, return_exceptions=True)
                await pool.close()
                self.checking.difference_update(ids)
                for item_id in ids:
                    state = self.run.state(item_id)
                    if state.status == "running":
                        state.status = "pending"
                await asyncio.to_thread(self.save)

    async def _check_one(self, item_id: str, context: ItemContext, changed: Changed) -> None:
        state = self.run.state(item_id)
        state.status, state.detail, state.evidence = "running", "", []
        changed(state)
        started = time.monotonic()
        missing = tuple(self.loaded.missing.get(item_id, ()))
        outcome = await check_item(self.loaded.checklist.item(item_id), context, missing)
        state.status = "passed" if outcome.passed else "failed"
        state.detail, state.evidence = outcome.detail, list(outcome.evidence)
        state.at, state.seconds = now_text(), round(time.monotonic() - started, 3)
        changed(state)
        await asyncio.to_thread(self.save)

    # -- the operator's part ---------------------------------------------------------------

    def tick(self, item_id: str, note: str) -> ItemState:
        """A manual item done, with the operator's note (required by some items); saved."""
        self.ensure_open()
        state = tick(self.run, self.loaded, item_id, note)
        self.save()
        return state

    def waive(self, item_id: str, reason: str) -> ItemState:
        """Accept an item that did not pass, with the reason why that is fine; saved."""
        self.ensure_open()
        if item_id in self.checking:
            raise UsageError(f"{item_id} is being checked; wait for it")
        state = waive(self.run, item_id, reason)
        self.save()
        return state

    def sign_off(self, client: str | None = None) -> SignOff:
        """Sign the run off as the config's operator (refused while a required item is open),
        from this host and SSH client; saved, and recorded in the audit log with each waiver's
        reason; then sent to the channels that want ``checklist.signed`` (blocking: the console
        calls it on a thread)."""
        if self.checking:  # a result saved after the signature would change a signed run
            raise UsageError(
                f"{', '.join(sorted(self.checking))} is being checked; wait for it, then sign off"
            )
        ssh_client = client or (os.environ.get("SSH_CLIENT", "").split(" ")[0] or None)
        run = self.run
        with self.repo.write_hook.batch(self.warn):  # the catalog hears once, after the audit
            signed = sign(run, self.config.operator, socket.gethostname(), ssh_client)
            try:
                self.save()
            except BaseException:
                run.signoff = None  # not signed until it is on disk
                raise
            try:
                audit.record(
                    self.repo.path,
                    signed.operator,
                    "checklist.signoff",
                    run=run.id,
                    checklist=run.checklist,
                    backup=run.backup,
                    waived=[f"{i.id}: {i.waiver}" for i in run.items if i.status == "waived"],
                    not_applicable=[i.id for i in run.items if i.status == NOT_APPLICABLE],
                    client=ssh_client,
                )
            except BaseException:
                run.signoff = None  # a sign-off the audit log does not hold is none: undone
                self.save()
                raise
        title = f"checklist run {run.id} ({run.title}) signed off by {signed.operator}"
        body = f"backup {run.backup or '(none)'}; from {signed.host}"
        for problem in deliver_now(self.config, Notice("checklist.signed", title, body, False)):
            if self.warn is not None:  # a session without one keeps them to itself
                self.warn(f"{problem}; the sign-off stands")
        return signed

    def save(self) -> None:
        """Write the run as it is now (atomically, one save at a time)."""
        with self.repo.write_hook.batch(self.warn), self._saving:  # refresh after the lock
            save(self.repo, self.run)

    def ensure_open(self) -> None:
        """Refuse (UsageError) to change a run that is signed off."""
        signed = self.run.signoff
        if signed is not None:
            raise UsageError(
                f"the run was signed off by {signed.operator}; start a new run to check again"
            )

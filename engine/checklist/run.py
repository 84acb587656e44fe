"""A checklist run: item states, automatic checks, ticks, waivers, sign-off, storage.

A run is kept in ``checklists/<run-id>.json`` in the repository, linked to the backup it
validates (and the restore, when a restore started it). Sign-off is allowed only when every
required item passed, was ticked, or was waived with a written reason; it records who (the
config's operator, ``$LIFEBOAT_OPERATOR`` first), from which host and SSH client, and when,
and goes to the audit log.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.checklist.items import ItemContext, Outcome, check_item
from engine.checklist.model import Loaded, ManualItem
from engine.config.model import Config
from engine.errors import UsageError
from engine.remote.ssh import ConnectionPool
from engine.repo import audit
from engine.repo.atomic import atomic_write, make_private_dir
from engine.repo.manifest import Manifest, iso_z, utc_now
from engine.repo.repository import Repository, new_backup_id

RUNS_DIR = "checklists"
DONE = frozenset({"passed", "ticked", "waived"})


@dataclass
class ItemState:
    id: str
    title: str
    kind: str
    required: bool
    status: str = "pending"  # pending, running, passed, failed, ticked, waived
    detail: str = ""
    evidence: list[str] = field(default_factory=list)
    note: str = ""
    waiver: str = ""
    at: str | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class SignOff:
    operator: str
    host: str
    client: str | None  # the SSH client address, when the console runs over SSH
    at: str


@dataclass
class ChecklistRun:
    id: str
    checklist: str
    title: str
    started: str
    backup: str | None = None
    restore: dict[str, Any] | None = None  # what the restore that started it did
    items: list[ItemState] = field(default_factory=list)
    signoff: SignOff | None = None

    def state(self, item_id: str) -> ItemState:
        for item in self.items:
            if item.id == item_id:
                return item
        raise UsageError(f"no item {item_id!r}; items: {', '.join(i.id for i in self.items)}")

    def blocking(self) -> list[ItemState]:
        """Required items that neither passed, nor were ticked, nor waived."""
        return [item for item in self.items if item.required and item.status not in DONE]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChecklistRun:
        items = [ItemState(**item) for item in data.pop("items", [])]
        signoff = data.pop("signoff", None)
        return cls(**data, items=items, signoff=SignOff(**signoff) if signoff else None)


def now_text() -> str:
    return iso_z(utc_now())


def new_run(
    loaded: Loaded, backup: str | None = None, restore: dict[str, Any] | None = None
) -> ChecklistRun:
    checklist = loaded.checklist
    return ChecklistRun(
        id=new_backup_id(),
        checklist=checklist.name,
        title=checklist.title,
        started=now_text(),
        backup=backup,
        restore=restore,
        items=[
            ItemState(item.id, item.title, item.kind, item.required) for item in checklist.items
        ],
    )


async def run_automatic(
    run: ChecklistRun,
    loaded: Loaded,
    config: Config,
    manifest: Manifest | None,
    only: Iterable[str] | None = None,
    changed: Callable[[ItemState], None] = lambda _item: None,
) -> None:
    """Run the automatic items (all, or ``only`` these ids) concurrently, each with its
    timeout; ``changed`` hears every state change."""
    wanted = set(only) if only is not None else None
    items = [
        item
        for item in loaded.checklist.items
        if not isinstance(item, ManualItem) and (wanted is None or item.id in wanted)
    ]
    pool = ConnectionPool(dict(config.hosts))
    ctx = ItemContext(config, pool, manifest)

    async def one(item_id: str) -> None:
        state = run.state(item_id)
        state.status, state.detail, state.evidence = "running", "", []
        changed(state)
        started = time.monotonic()
        outcome: Outcome = await check_item(
            loaded.checklist.item(item_id), ctx, tuple(loaded.missing.get(item_id, ()))
        )
        state.status = "passed" if outcome.passed else "failed"
        state.detail, state.evidence = outcome.detail, list(outcome.evidence)
        state.at, state.seconds = now_text(), round(time.monotonic() - started, 3)
        changed(state)

    try:
        await asyncio.gather(*(one(item.id) for item in items))
    finally:
        await pool.close()


def tick(run: ChecklistRun, loaded: Loaded, item_id: str, note: str) -> ItemState:
    """A manual item done, with the operator's note (required by some items)."""
    item = loaded.checklist.item(item_id) if _known(loaded, item_id) else None
    if not isinstance(item, ManualItem):
        raise UsageError(f"{item_id}: only manual items are ticked; automatic ones are run")
    if item.note == "required" and not note.strip():
        raise UsageError(f"{item_id}: this item needs a note saying what was seen")
    state = run.state(item_id)
    state.status, state.note, state.at = "ticked", note.strip(), now_text()
    return state


def waive(run: ChecklistRun, item_id: str, reason: str) -> ItemState:
    """Accept an item that did not pass, with the reason why that is fine."""
    if not reason.strip():
        raise UsageError(f"{item_id}: a waiver needs a written reason")
    state = run.state(item_id)
    state.status, state.waiver, state.at = "waived", reason.strip(), now_text()
    return state


def _known(loaded: Loaded, item_id: str) -> bool:
    return any(item.id == item_id for item in loaded.checklist.items)


def sign_off(
    run: ChecklistRun, repo_path: Path, operator: str, client: str | None = None
) -> SignOff:
    """Sign the run off (refused while a required item is open) and record it."""
    if run.signoff is not None:
        raise UsageError(f"run {run.id} was already signed off by {run.signoff.operator}")
    open_items = run.blocking()
    if open_items:
        raise UsageError(
            "cannot sign off: "
            + "; ".join(f"{item.id} is {item.status}" for item in open_items)
            + " (each required item must pass, be ticked, or be waived with a reason)"
        )
    signer = os.environ.get("LIFEBOAT_OPERATOR") or operator
    ssh_client = client or (os.environ.get("SSH_CLIENT", "").split(" ")[0] or None)
    run.signoff = SignOff(signer, socket.gethostname(), ssh_client, now_text())
    save(repo_path, run)
    audit.record(
        repo_path,
        signer,
        "checklist.signoff",
        run=run.id,
        checklist=run.checklist,
        backup=run.backup,
        waived=[f"{i.id}: {i.waiver}" for i in run.items if i.status == "waived"],
        client=ssh_client,
    )
    return run.signoff


def save(repo_path: Path, run: ChecklistRun, config: Config | None = None) -> Path:
    """Write the run atomically. With ``config``, its [catalog] learns of it too: that may wait
    up to the catalog's timeout (call it off a UI thread), and a failure there is only logged."""
    directory = repo_path / RUNS_DIR
    make_private_dir(directory)
    path = directory / f"{run.id}.json"
    atomic_write(path, (json.dumps(run.to_dict(), indent=2) + "\n").encode())
    if config is not None:
        from engine.scaleout.catalog import (
            refresh_catalog,  # the catalog reads runs: imported on use
        )

        refresh_catalog(config, Repository(repo_path))
    return path


def load_run(repo_path: Path, run_id: str) -> ChecklistRun:
    path = repo_path / RUNS_DIR / f"{run_id}.json"
    try:
        return ChecklistRun.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise UsageError(
            f"no checklist run {run_id!r} in {repo_path / RUNS_DIR}; "
            "`lifeboat checklist list` shows them"
        ) from None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path} is not a readable checklist run: {exc}") from None


def run_ids(repo_path: Path) -> list[str]:
    directory = repo_path / RUNS_DIR
    if not directory.is_dir():
        return []
    return sorted((p.stem for p in directory.glob("*.json")), reverse=True)

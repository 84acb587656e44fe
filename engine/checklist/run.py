"""A checklist run as data: item states, ticks, waivers, the sign-off, and its storage.

A run is kept in ``checklists/<run-id>.json`` in the repository, linked to the backup it
validates (and the restore, when a restore started it). An item bound to a source the restore
did not restore is not applicable from the start (``NOT_APPLICABLE``, the reason in its
detail): it is not run and needs nothing. Sign-off is allowed only when every other required
item passed, was ticked, or was waived with a written reason; it records who, from which host
and SSH client, and when. ``engine.checklist.session`` sequences a run (checks,
saves, audits); this module only changes it in memory, saves and reads it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.checklist.model import Loaded, ManualItem, not_applicable
from engine.errors import LifeboatError, UsageError
from engine.repo.atomic import atomic_write, make_private_dir
from engine.repo.manifest import iso_z, utc_now
from engine.repo.repository import Repository, new_backup_id

RUNS_DIR = "checklists"
DONE = frozenset({"passed", "ticked", "waived"})
NOT_APPLICABLE = "not_applicable"  # bound to a source the validated restore did not restore
RESUMABLE = 10  # unsigned runs offered to resume, newest first
RUNS_SCANNED = 200  # stored runs read to find them


@dataclass
class ItemState:
    id: str
    title: str
    kind: str
    required: bool
    status: str = "pending"  # pending, running, passed, failed, ticked, waived, not_applicable
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
        """Required items that neither passed, nor were ticked, nor waived (items that are
        not applicable never block)."""
        return [
            item
            for item in self.items
            if item.required and item.status not in DONE and item.status != NOT_APPLICABLE
        ]

    def restored_sources(self) -> list[str]:
        """The sources the restore this run validates restored (none: not a restore's run)."""
        sources = (self.restore or {}).get("sources") or []
        return [str(source) for source in sources]

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
    """A new run; when it validates a restore (``restore["sources"]``), each item bound to a
    source that was not restored is not applicable from the start."""
    checklist = loaded.checklist
    run = ChecklistRun(
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
    restored = run.restored_sources()
    for item, state in zip(checklist.items, run.items, strict=True):
        reason = not_applicable(item, restored)
        if reason is not None:
            state.status, state.detail = NOT_APPLICABLE, reason
    return run


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
    if state.status == NOT_APPLICABLE:
        raise UsageError(f"{item_id}: {state.detail}; there is nothing to waive")
    state.status, state.waiver, state.at = "waived", reason.strip(), now_text()
    return state


def _known(loaded: Loaded, item_id: str) -> bool:
    return any(item.id == item_id for item in loaded.checklist.items)


def sign(run: ChecklistRun, operator: str, host: str, client: str | None) -> SignOff:
    """Sign the run off (in memory); refused while a required item is open, and once done."""
    if run.signoff is not None:
        raise UsageError(f"run {run.id} was already signed off by {run.signoff.operator}")
    open_items = run.blocking()
    if open_items:
        raise UsageError(
            "cannot sign off: "
            + "; ".join(f"{item.id} is {item.status}" for item in open_items)
            + " (each required item must pass, be ticked, or be waived with a reason)"
        )
    run.signoff = SignOff(operator, host, client, now_text())
    return run.signoff


def save(repo: Repository, run: ChecklistRun) -> Path:
    """Write the run atomically: a write the repository's hook hears of (the catalog)."""
    directory = repo.path / RUNS_DIR
    make_private_dir(directory)
    path = directory / f"{run.id}.json"
    atomic_write(path, (json.dumps(run.to_dict(), indent=2) + "\n").encode())
    repo.write_hook.wrote()
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
    except (ValueError, TypeError, LookupError, AttributeError) as exc:  # not a run's shape
        raise UsageError(f"{path} is not a readable checklist run: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def run_ids(repo_path: Path) -> list[str]:
    directory = repo_path / RUNS_DIR
    if not directory.is_dir():
        return []
    return sorted((p.stem for p in directory.glob("*.json")), reverse=True)


def unsigned_runs(repo_path: Path) -> list[ChecklistRun]:
    """The newest runs not signed off (up to RESUMABLE); unreadable ones are skipped."""
    found: list[ChecklistRun] = []
    for run_id in run_ids(repo_path)[:RUNS_SCANNED]:
        try:
            run = load_run(repo_path, run_id)
        except LifeboatError:
            continue
        if run.signoff is None:
            found.append(run)
            if len(found) == RESUMABLE:
                break
    return found

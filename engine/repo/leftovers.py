"""What killed writers leave in a repository: found, reported, and removed under the lock.

A backup writes into ``.staging/<id>/`` while it holds the repository's write lock, and a
delete empties ``.trash/<id>/`` under it; a kill -9 leaves them behind, and they can hold
gigabytes. One is dead once its writer no longer holds the lock: when nobody holds it, or,
for staging, when it is older than the current holder's lock (its id is the time it was
made, after its writer took the lock). A leftover that may belong to the current holder is
never reported nor touched. Only a holder of the lock removes leftovers: the next backup or
prune does, before writing anything, and so does ``lifeboat repo clean``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from engine.errors import RepositoryError
from engine.repo import audit, locks
from engine.repo.manifest import BACKUP_ID
from engine.repo.repository import Repository
from engine.sizes import human_size

NAMES_SHOWN = 3
LEFT_BY = "left by a backup or delete that was killed"


@dataclass(frozen=True)
class Leftover:
    """A dead ``.staging/<id>`` or ``.trash/<id>`` entry and the bytes it holds."""

    path: Path
    bytes: int

    @property
    def name(self) -> str:
        """``.staging/<id>``: where it is, relative to the repository."""
        return f"{self.path.parent.name}/{self.path.name}"

    def removed(self) -> str:
        """What the writer that removed it says."""
        return f"removed {self.name} ({human_size(self.bytes)}): {LEFT_BY}"


def total(found: list[Leftover]) -> str:
    """The bytes they hold, as people read them."""
    return human_size(sum(leftover.bytes for leftover in found))


def find(repo: Repository) -> list[Leftover]:
    """The dead leftovers as a reader sees them (it does not hold the lock)."""
    holder = locks.current_holder(repo.lock_path)
    if holder is None:
        return _entries(repo, (repo.staging_dir, repo.trash_dir))
    taken = _lock_taken(holder)
    if taken is None:
        return []
    return [
        leftover
        for leftover in _entries(repo, (repo.staging_dir,))
        if (made := _made(leftover.path.name)) is not None and made < taken
    ]


def remove(repo: Repository, operator: str, problems: list[str] | None = None) -> list[Leftover]:
    """Remove every leftover and return those removed; only for a caller that holds the write
    lock (every staging dir is then dead: whoever made it held the lock). One that cannot be
    removed stays (``status`` keeps reporting it) and is described in ``problems``. Recorded
    in the audit log."""
    removed = []
    for leftover in _entries(repo, (repo.staging_dir, repo.trash_dir)):
        try:
            if leftover.path.is_dir() and not leftover.path.is_symlink():
                shutil.rmtree(leftover.path)
            else:
                leftover.path.unlink()
        except OSError as exc:
            if problems is not None:
                problems.append(f"cannot remove {leftover.name}: {exc.strerror or exc}")
            continue
        removed.append(leftover)
    if removed:
        audit.record(
            repo.path,
            operator,
            "repository.clean",
            removed=[leftover.name for leftover in removed],
            bytes=sum(leftover.bytes for leftover in removed),
        )
    return removed


def clean(repo: Repository, operator: str, *, dry_run: bool) -> list[Leftover]:
    """``lifeboat repo clean``: the dead leftovers, removed unless ``dry_run``; raises
    RepositoryError naming each one that could not be removed (after removing the rest)."""
    if dry_run:
        return find(repo)
    problems: list[str] = []
    with repo.lock("clean", operator):
        removed = remove(repo, operator, problems)
    if problems:
        raise RepositoryError(
            f"removed {len(removed)} leftover(s) ({total(removed)}), but "
            + "; ".join(problems)
            + ": check their owner and permissions, then run `lifeboat repo clean` again"
        )
    return removed


def describe(leftovers: list[Leftover]) -> str:
    """One line for ``status``, ``backup list`` and the log: what, how much, what to do."""
    names = ", ".join(leftover.name for leftover in leftovers[:NAMES_SHOWN])
    more = len(leftovers) - NAMES_SHOWN
    return (
        f"{len(leftovers)} killed backup(s) or delete(s) left {total(leftovers)} behind "
        f"({names}{f' and {more} more' if more > 0 else ''}); the next backup or prune "
        "removes them, or run `lifeboat repo clean`"
    )


def _entries(repo: Repository, directories: tuple[Path, ...]) -> list[Leftover]:
    found = []
    for directory in directories:
        if directory.is_dir() and not directory.is_symlink():
            for path in sorted(directory.iterdir()):
                found.append(Leftover(path, _size(path)))
    return found


def _size(path: Path) -> int:
    """Bytes under ``path``, never following a link (0 if it vanished meanwhile)."""
    if not path.is_dir() or path.is_symlink():
        try:
            return path.lstat().st_size
        except FileNotFoundError:
            return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total


def _made(backup_id: str) -> datetime | None:
    if not BACKUP_ID.match(backup_id):
        return None
    return datetime.strptime(backup_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _lock_taken(holder: locks.LockHolder) -> datetime | None:
    """When the holder took the lock, to the second as backup ids are (None: not readable)."""
    try:
        taken = datetime.fromisoformat(str(holder.since).replace("Z", "+00:00"))
    except ValueError:
        return None
    return taken.replace(microsecond=0) if taken.tzinfo is not None else None

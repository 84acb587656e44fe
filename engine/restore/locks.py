"""Per-target restore locks: no two restores write to the same host at once.

``TargetLocks`` is the seam: the repository's flock files (``locks/restore-<host>.lock``)
implement it today; an etcd lease-backed implementation can take its place when
coordination is configured, and the validator and apply do not change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from engine.errors import RepositoryLockedError
from engine.repo import locks
from engine.repo.atomic import make_private_dir


class TargetLocks(Protocol):
    def holder(self, target: str) -> str | None:
        """Who holds ``target`` (a description), or None when it is free."""

    def hold(self, target: str, operator: str) -> AbstractContextManager[None]:
        """Hold ``target`` for a restore, or raise ``RepositoryLockedError`` naming the holder."""


class RepositoryTargetLocks:
    """flock files under the repository's ``locks/`` (they die with their process)."""

    def __init__(self, repo_path: Path) -> None:
        self.directory = repo_path / "locks"

    def _path(self, target: str) -> Path:
        return self.directory / f"restore-{target}.lock"

    def holder(self, target: str) -> str | None:
        return locks.holder_of(self._path(target))

    @contextmanager
    def hold(self, target: str, operator: str) -> Iterator[None]:
        make_private_dir(self.directory)
        try:
            with locks.hold(self._path(target), f"restore onto {target}", operator):
                yield
        except locks.LockBusy as busy:
            raise RepositoryLockedError(
                f"another restore holds {target}: {busy.holder}; wait for it to finish"
            ) from None

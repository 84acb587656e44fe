"""What screens and widgets need from the console, as a small Protocol.

Screens reach it through ``services(self.app)``, the one typed accessor: they depend on these
services, not on ``LifeboatApp`` (which provides them), so a screen can be read, and tested,
knowing only this page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable

    from textual.app import App
    from textual.signal import Signal

    from engine.config.model import Config
    from engine.crypto.age import Identity
    from engine.drill.run import DrillRequest
    from engine.repo.content import Keyring
    from engine.repo.repository import Repository
    from engine.restore.plan import RestoreRequest
    from tui.console.backup_index import BackupIndex
    from tui.console.jobs import JobBoard


@runtime_checkable
class Services(Protocol):
    """The console's configuration, repository, jobs and the index of its backups."""

    @property
    def config(self) -> Config: ...

    @property
    def repository(self) -> Repository: ...

    @property
    def board(self) -> JobBoard:
        """Every job of this session and the log of what they said."""

    @property
    def backups(self) -> BackupIndex:
        """One row per backup, read off the UI loop; ``refresh_backups`` brings it up to date."""

    @property
    def jobs_changed(self) -> Signal[str]:
        """Published with a job's key whenever the board changed for it."""

    @property
    def backups_changed(self) -> Signal[None]:
        """Published when backups were (or may have been) written or deleted."""

    @property
    def backups_indexed(self) -> Signal[None]:
        """Published when ``backups`` changed."""

    @property
    def keyring(self) -> Keyring:
        """The age identities given this session (kept in memory only)."""

    def keep_identities(self, identities: tuple[Identity, ...]) -> Keyring:
        """Add ``identities`` to :attr:`keyring` for the rest of the session; the new keyring."""

    def refresh_backups(self) -> None:
        """Read what is new on disk into ``backups`` (the rest of the reading in a thread)."""

    def start_backup(self, scope: tuple[str, ...] = (), label: str | None = None) -> str:
        """Start a backup; returns the job's key on the board (and its worker's name)."""

    def start_verify(self, backup_id: str) -> str: ...

    def start_restore(self, request: RestoreRequest) -> str:
        """Check (and with ``request.apply``, restore); the report is the worker's result."""

    def start_drill(self, request: DrillRequest) -> str: ...

    def start_copy(self, backup_id: str, remote: str) -> str:
        """Copy a backup to ``[remotes.<remote>]``."""

    def start_fetch(self, backup_id: str, remote: str) -> str:
        """Bring a backup's copy back from ``[remotes.<remote>]`` into the repository."""

    def cancel_job(self, key: str) -> None: ...

    def notify_problem(
        self,
        message: str,
        *,
        cause: str,
        still: Callable[[], bool] | None = None,
        timeout: float | None = None,
        title: str = "",
    ) -> None:
        """An error toast that goes when ``fixed(cause)`` is called or ``still()`` is false."""

    def fixed(self, cause: str) -> None:
        """The error toast of ``cause`` goes: what failed has worked since."""

    def open_checklist(
        self,
        backup_id: str | None = None,
        restore: dict[str, object] | None = None,
        name: str | None = None,
    ) -> None:
        """Run a validation checklist on ``backup_id`` (or resume one left open)."""


def services(app: App[Any]) -> Services:
    """The console's services, from any screen or widget (``services(self.app)``)."""
    if not isinstance(app, Services):
        raise TypeError(f"{type(app).__name__} does not provide the console's services")
    return app

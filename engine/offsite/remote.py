"""What every off-host remote provides: the repository's layout, stored elsewhere.

Keys are the repository's relative paths (``backups/<id>/<file>``). A backup's copy is
complete only once its ``manifest.json`` is there, written last; a copy without it is
partial and finished by the next ``copy``. Everything listed or read back is untrusted: ids
that are not backup ids are ignored, and what a remote hands back is checked against the
manifest before anything uses it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from types import TracebackType

from engine.errors import LifeboatError
from engine.repo.manifest import BACKUP_ID, MAX_MANIFEST_BYTES
from engine.repo.repository import MANIFEST


class RemoteError(LifeboatError):
    """A remote refused or failed a request; the message says which and what to do."""


def backup_key(backup_id: str, name: str = MANIFEST) -> str:
    """Where a backup's file (its manifest by default) lives on a remote."""
    return f"backups/{backup_id}/{name}"


def is_backup_id(name: str) -> bool:
    return BACKUP_ID.match(name) is not None


@dataclass(frozen=True)
class RemoteBackup:
    """A backup as a remote holds it: ``complete`` once its manifest is there."""

    id: str
    complete: bool


class Remote(ABC):
    """One configured remote, connected for the length of an ``async with``."""

    chunk_size = 1024 * 1024  # what ``put`` takes best, per chunk

    def __init__(self, name: str) -> None:
        self.name = name
        self.notices: list[str] = []  # how this remote is used, for the operator (said once)

    @property
    @abstractmethod
    def where(self) -> str:
        """The remote as an operator names it: ``s3://bucket/prefix``, ``host:/path``."""

    async def __aenter__(self) -> Remote:
        await self.connect()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    async def connect(self) -> None:
        """Reach the remote (and say clearly when it cannot be reached)."""

    @abstractmethod
    async def close(self) -> None:
        """Let go of the connection."""

    @abstractmethod
    async def backups(self) -> list[RemoteBackup]:
        """The backups the remote holds, complete or not, oldest first."""

    @abstractmethod
    async def holds(self, key: str, size: int, sha256: str) -> bool:
        """Whether ``key`` is there whole: ``size`` bytes whose sha256 is ``sha256``."""

    @abstractmethod
    async def put(self, key: str, chunks: AsyncIterable[bytes], size: int, sha256: str) -> None:
        """Store ``chunks`` (``size`` bytes, sha256 ``sha256``) at ``key``, checked by the
        remote before it counts: nothing is left at ``key`` unless it is whole."""

    @abstractmethod
    def get(self, key: str) -> AsyncIterator[bytes]:
        """The bytes at ``key``, streamed."""

    async def read(self, key: str, limit: int = MAX_MANIFEST_BYTES) -> bytes | None:
        """A small object (a manifest) whole; None when it is not there."""
        data = bytearray()
        try:
            async for chunk in self.get(key):
                data += chunk
                if len(data) > limit:
                    raise RemoteError(f"{self.where}/{key} is larger than any manifest")
        except FileNotFoundError:
            return None
        return bytes(data)

    @abstractmethod
    async def delete_backup(self, backup_id: str) -> None:
        """Remove a backup's copy: its manifest first, so that it is never listed as whole
        while its files go."""

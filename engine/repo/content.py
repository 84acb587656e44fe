"""Reading what a backup file holds: as stored, or decrypted when the backup is encrypted.

Every reader of a backup's files for its content (restores, a deep verify, a mirror's
listing) goes through a :class:`Keyring`, so an encrypted file is decrypted in the same
single pass that consumes it, and the same words say why it cannot be opened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from engine.crypto.age import AgeError, Decryptor, Identity, NoIdentityError
from engine.errors import LifeboatError
from engine.repo.confined import open_confined
from engine.repo.manifest import ArtifactFile, Manifest

if TYPE_CHECKING:
    from engine.mongo_archive.stream import Readable

READ_CHUNK = 1024 * 1024
# Ciphertext bytes per decryption step. Buffers this size are recycled by the allocator; with
# 1 MiB steps glibc gave each one back to the system and faulted it in again, and decrypting
# fell from ~1.8 GB/s to ~0.7 GB/s (bench/encryption.py).
DECRYPT_STEP = 128 * 1024
IDENTITY_HINT = "give its identity with --identity FILE or $LIFEBOAT_AGE_IDENTITY"


class Meter(Protocol):
    """Progress as the bytes go (engine.events.ProgressMeter)."""

    def advance(self, amount: int) -> object: ...

    def finish(self) -> object: ...


class ContentError(LifeboatError):
    """An encrypted backup file cannot be opened: no identity, a wrong one, or damage."""


def recipients_text(recipients: Sequence[str]) -> str:
    return ", ".join(recipients) or "recipients the manifest does not name"


class DecryptingReader:
    """The plaintext of an age file read from ``raw``, authenticated chunk by chunk; any
    failure is a :class:`ContentError` naming ``name`` and who the file was encrypted to."""

    def __init__(
        self, raw: Readable, identities: Sequence[Identity], name: str, recipients: Sequence[str]
    ) -> None:
        self._raw = raw
        self._decryptor = Decryptor(identities)
        self._name = name
        self._recipients = recipients
        self._held = b""  # decrypted, not yet read from ``_at`` on
        self._at = 0
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            return b"".join(iter(lambda: self.read(READ_CHUNK), b""))
        while self._at == len(self._held) and not self._ended:
            self._held, self._at = self._decrypt_more(), 0
        if self._at == 0 and size >= len(self._held):  # the usual case: no copy
            taken, self._held = self._held, b""
            return taken
        taken = self._held[self._at : self._at + size]
        self._at += len(taken)
        return taken

    def _decrypt_more(self) -> bytes:
        try:
            if data := self._raw.read(DECRYPT_STEP):
                return self._decryptor.feed(data)
            self._ended = True
            return self._decryptor.finish()
        except AgeError as exc:
            raise self._explain(exc) from None

    def readable(self) -> bool:
        return True

    def _explain(self, exc: AgeError) -> ContentError:
        if isinstance(exc, NoIdentityError):
            return ContentError(
                f"{self._name}: none of the identities given opens it; it was encrypted to "
                f"{recipients_text(self._recipients)}: give one of their identities"
            )
        return ContentError(f"{self._name}: {exc}")


@dataclass(frozen=True)
class Keyring:
    """What opens one backup's files: the identities given for this run (none: only plaintext
    backups open), and who the backup says it was encrypted to (to name them in errors)."""

    identities: tuple[Identity, ...] = ()
    recipients: tuple[str, ...] = ()

    def for_backup(self, manifest: Manifest) -> Keyring:
        return replace(self, recipients=manifest.encrypted_to)

    def opens(self, recipients: Sequence[str]) -> bool:
        """Whether one of these identities is one of ``recipients`` (as a manifest names them)."""
        return any(str(identity.recipient) in recipients for identity in self.identities)

    @contextmanager
    def open(self, directory: Path, entry: ArtifactFile) -> Iterator[Readable]:
        """The content of ``entry`` (a regular file directly in ``directory``, never through a
        link): decrypted when it is encrypted."""
        if entry.encrypted and not self.identities:
            to = recipients_text(self.recipients)
            raise ContentError(f"{entry.path} is encrypted (to {to}); {IDENTITY_HINT}")
        with open_confined(directory, entry.path) as raw:
            if entry.encrypted:
                yield DecryptingReader(raw, self.identities, entry.path, self.recipients)
            else:
                yield raw

    async def chunks(
        self, directory: Path, entry: ArtifactFile, meter: Meter
    ) -> AsyncIterator[bytes]:
        """The content of ``entry`` in chunks (see :meth:`open`), advancing ``meter``."""
        with self.open(directory, entry) as content:
            while chunk := content.read(READ_CHUNK):
                meter.advance(len(chunk))
                yield chunk
        meter.finish()


NO_KEYS = Keyring()  # plaintext backups only

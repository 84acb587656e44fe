"""``lifeboat copy``: send completed backups to a remote, file by file, the manifest last.

Each file streams from the repository as stored (already encrypted when ``[encryption]`` is
set) and the remote checks it (S3 its part checksums, an SFTP host ``sha256sum``) before it
counts. A file the remote already holds whole is not sent again, so a copy cut short at any
moment (kill -9, the server gone) is finished by the next run; the manifest goes last, so an
unfinished copy is never listed as a backup there.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.config.model import Config
from engine.errors import LifeboatError, describe_error
from engine.events import Emit, JobFinished, JobStarted, LogLine, ProgressMeter, StageChanged
from engine.notify import Notice, notify
from engine.offsite.connect import connected
from engine.offsite.copies import record_copy
from engine.offsite.remote import Remote, backup_key
from engine.remote.commands import single_chunk
from engine.repo.confined import open_confined
from engine.repo.manifest import MAX_MANIFEST_BYTES, Manifest
from engine.repo.repository import MANIFEST, Repository

STAGE = "copy"  # the pseudo-source copy progress is reported on


@dataclass
class CopyOutcome:
    """What one backup's copy did."""

    backup_id: str
    sent: list[str] = field(default_factory=list)  # files sent now
    kept: list[str] = field(default_factory=list)  # files the remote held whole already
    already: bool = False  # the remote had the whole backup (its manifest) before
    bytes_sent: int = 0


async def copy_backups(
    repo: Repository, remote: Remote, backup_ids: list[str], emit: Emit
) -> list[CopyOutcome]:
    """Copy each backup to ``remote`` (connected); raises on the first failure (what was sent
    stays there and is not sent again)."""
    outcomes = []
    for backup_id in backup_ids:
        manifest = repo.load(backup_id)
        emit(JobStarted(backup_id, "copy", manifest.scope))
        try:
            outcome = await _copy_one(repo, remote, manifest, emit)
        except BaseException as exc:
            _tell(remote, emit)
            emit(LogLine(STAGE, "error", f"{backup_id} to {remote.name}: {exc}"))
            emit(JobFinished(backup_id, ok=False))
            raise
        _tell(remote, emit)
        record_copy(repo, remote.name, manifest)
        emit(JobFinished(backup_id, ok=True))
        outcomes.append(outcome)
    return outcomes


def _tell(remote: Remote, emit: Emit) -> None:
    """What the remote found out about itself on the way, each said once."""
    while remote.notices:
        emit(LogLine(STAGE, "info", remote.notices.pop(0)))


async def _copy_one(
    repo: Repository, remote: Remote, manifest: Manifest, emit: Emit
) -> CopyOutcome:
    outcome = CopyOutcome(manifest.id)
    directory = repo.backup_dir(manifest.id)
    manifest_bytes = _read_manifest(directory)
    if await remote.holds(backup_key(manifest.id), len(manifest_bytes), _sha256(manifest_bytes)):
        outcome.already = True
        return outcome
    files = [entry for artifact in manifest.artifacts for entry in artifact.files]
    meter = ProgressMeter(STAGE, emit, sum(entry.bytes for entry in files))
    for entry in files:
        key = backup_key(manifest.id, entry.path)
        emit(StageChanged(STAGE, f"checking {entry.path}"))
        if await remote.holds(key, entry.bytes, entry.sha256):
            outcome.kept.append(entry.path)
            meter.advance(entry.bytes)
            continue
        emit(StageChanged(STAGE, f"sending {entry.path}"))
        chunks = _chunks(directory, entry.path, meter, remote.chunk_size)
        await remote.put(key, chunks, entry.bytes, entry.sha256)
        outcome.sent.append(entry.path)
        outcome.bytes_sent += entry.bytes
    meter.finish()
    emit(StageChanged(STAGE, "writing the manifest"))
    await remote.put(
        backup_key(manifest.id),
        single_chunk(manifest_bytes),
        len(manifest_bytes),
        _sha256(manifest_bytes),
    )
    return outcome


def _read_manifest(directory: Path) -> bytes:
    with open_confined(directory, MANIFEST) as handle:
        return handle.read(MAX_MANIFEST_BYTES + 1)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _chunks(
    directory: Path, name: str, meter: ProgressMeter, size: int
) -> AsyncIterator[bytes]:
    """A backup file as stored (ciphertext when encrypted), read ``size`` bytes at a time
    without following links."""
    with open_confined(directory, name) as handle:
        while chunk := handle.read(size):
            meter.advance(len(chunk))
            yield chunk


async def run_copy(
    config: Config,
    repo: Repository,
    remote_name: str,
    backup_ids: list[str],
    emit: Emit,
    *,
    missing: bool = False,
) -> list[CopyOutcome]:
    """Copy ``backup_ids`` to ``[remotes.<remote_name>]``; with ``missing``, every local backup
    the remote holds no complete copy of (oldest first). A failure is sent to the channels
    that want ``copy.failed``, then raised."""
    try:
        async with connected(config, remote_name) as remote:
            if missing:
                there = {b.id for b in await remote.backups() if b.complete}
                backup_ids = [i for i in sorted(repo.backup_ids()) if i not in there]
            return await copy_backups(repo, remote, backup_ids, emit)
    except (LifeboatError, OSError) as exc:
        title = f"copy to {remote_name} failed"
        body = f"backups {', '.join(backup_ids) or '(those missing there)'}:\n{describe_error(exc)}"
        await notify(config, Notice("copy.failed", title, body), emit)
        raise

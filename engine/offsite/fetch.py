"""Bring a backup's copy back from a remote into the repository (``restore --from``).

This is the bastion-lost path: on an empty machine, a config naming the remote and
``lifeboat repo init`` are enough. The remote's manifest is read as untrusted input; each file
streams into staging, hashed as it is written, and must match the manifest's size and sha256;
the backup is committed (its manifest written last) only when every file did, so a damaged or
altered copy never becomes a local backup.
"""

from __future__ import annotations

from pathlib import Path

from engine.config.model import Config
from engine.errors import ManifestError
from engine.events import Emit, JobFinished, JobStarted, ProgressMeter, StageChanged
from engine.offsite.connect import connected
from engine.offsite.remote import Remote, RemoteError, backup_key
from engine.repo.manifest import ArtifactFile, Manifest
from engine.repo.repository import Repository
from engine.repo.sink import HashingFileSink, SinkThread

STAGE = "fetch"  # the pseudo-source fetch progress is reported on


async def _fetch(
    config: Config, repo: Repository, remote: Remote, backup_id: str, emit: Emit
) -> Manifest:
    """The backup ``backup_id``, fetched from ``remote`` (connected); RemoteError says why a
    copy cannot be used."""
    key = backup_key(backup_id)
    raw = await remote.read(key)
    if raw is None:
        raise RemoteError(
            f"remote {remote.name} holds no complete copy of {backup_id} (no manifest at "
            f"{remote.where}/{key}); `lifeboat backup list --remote {remote.name}` lists its copies"
        )
    try:
        manifest = Manifest.from_json(raw, f"{remote.where}/{key}")
    except ManifestError as exc:
        raise RemoteError(f"remote {remote.name}: the copy's manifest is damaged: {exc}") from None
    if manifest.id != backup_id:
        raise RemoteError(
            f"remote {remote.name}: the manifest at {key} is backup {manifest.id}, not "
            f"{backup_id}: the copy was tampered with; use another remote"
        )
    emit(JobStarted(backup_id, "fetch", manifest.scope))
    with repo.lock("fetch", config.operator):
        staging = repo.create_staging(backup_id)
        try:
            meter = ProgressMeter(STAGE, emit, manifest.size)
            for artifact in manifest.artifacts:
                for entry in artifact.files:
                    emit(StageChanged(STAGE, f"fetching {entry.path}"))
                    await _fetch_file(remote, backup_id, entry, staging, meter)
            meter.finish()
            repo.commit(staging, manifest)
        except BaseException:
            repo.abandon(staging, keep_for_diagnosis=False)
            emit(JobFinished(backup_id, ok=False))
            raise
    emit(JobFinished(backup_id, ok=True))
    return manifest


async def _fetch_file(
    remote: Remote, backup_id: str, entry: ArtifactFile, staging: Path, meter: ProgressMeter
) -> None:
    writer = SinkThread(HashingFileSink(staging / entry.path, entry.path))
    try:
        async for chunk in remote.get(backup_key(backup_id, entry.path)):
            meter.advance(len(chunk))
            if (room := writer.write(chunk)) is not None:
                await room
        got = await writer.finish()
    except FileNotFoundError:
        raise RemoteError(
            f"remote {remote.name}: {entry.path} of {backup_id} is missing there; the copy is "
            "damaged: copy the backup again, or use another remote"
        ) from None
    finally:
        await writer.aclose()
    if (got.bytes, got.sha256) != (entry.bytes, entry.sha256):
        raise RemoteError(
            f"remote {remote.name}: {entry.path} of {backup_id} is not what its manifest says "
            f"({got.bytes} bytes, sha256 {got.sha256[:12]}…; the manifest: {entry.bytes} bytes, "
            f"{entry.sha256[:12]}…): the copy was damaged or altered; nothing was restored"
        )


async def fetch_from(
    config: Config, repo: Repository, remote_name: str, backup_id: str, emit: Emit
) -> Manifest:
    """The backup ``backup_id``: the repository's, or fetched from ``[remotes.<remote_name>]``
    (connected for it) when the repository lacks it."""
    if repo.is_backup(backup_id):
        return repo.load(backup_id)
    async with connected(config, remote_name) as remote:
        return await _fetch(config, repo, remote, backup_id, emit)

"""``backup verify --remote``: read copies back and check them against their manifests.

A full verify reads every file of every complete copy. ``sample`` reads a share of the
bytes instead, the files read longest ago (or never) first: each run moves on, so every file
is read back within ``ceil(1 / sample)`` runs. When each file was last read whole, and how
it went, is kept in the repository (``remote-reads/<remote>.jsonl``), so that ``backup list
--remote`` can say when each copy was last read back in full.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.events import Emit, JobFinished, JobStarted, ProgressMeter, StageChanged
from engine.offsite.listing import list_remote
from engine.offsite.remote import Remote, RemoteError, backup_key
from engine.repo import jsonlines
from engine.repo.manifest import ArtifactFile, Manifest, iso_z, utc_now
from engine.repo.repository import Repository

STAGE = "verify"
READS_DIR = "remote-reads"


@dataclass(frozen=True)
class ReadRecord:
    """One file of a copy read back: when, and whether it matched its manifest."""

    key: str
    at: str
    ok: bool

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReadRecord:
        key, at, ok = data["key"], data["at"], data["ok"]
        if not (isinstance(key, str) and isinstance(at, str) and isinstance(ok, bool)):
            raise TypeError("not a read record")
        return cls(key, at, ok)


@dataclass
class RemoteVerifyResult:
    remote: str
    backups: int = 0  # complete copies looked at
    files_read: int = 0
    bytes_read: int = 0
    files_left: int = 0  # files a sample did not read this time
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def reads_path(repo: Repository, remote: str) -> Path:
    return repo.path / READS_DIR / f"{remote}.jsonl"


def last_reads(repo: Repository, remote: str) -> dict[str, ReadRecord]:
    """The latest read of each file key of ``remote``'s copies."""
    return {r.key: r for r in jsonlines.read(reads_path(repo, remote), ReadRecord.from_dict)}


def last_full_read(manifest: Manifest, reads: dict[str, ReadRecord]) -> str | None:
    """When every file of the copy of ``manifest`` had last been read back and matched
    (the oldest of those reads); None when one never was, or failed."""
    times = []
    for artifact in manifest.artifacts:
        for entry in artifact.files:
            read = reads.get(backup_key(manifest.id, entry.path))
            if read is None or not read.ok:
                return None
            times.append(read.at)
    return min(times)


async def verify_remote(
    repo: Repository,
    remote: Remote,
    emit: Emit,
    backup_ids: list[str] | None = None,
    sample: float | None = None,
) -> RemoteVerifyResult:
    """Read back the copies of ``backup_ids`` (all complete ones by default), or a ``sample``
    share of their bytes, least recently read first; record each read."""
    result = RemoteVerifyResult(remote.name)
    listing = await list_remote(remote)
    result.problems += listing.problems
    manifests = [m for m in listing.manifests if backup_ids is None or m.id in backup_ids]
    missing = set(backup_ids or ()) - {m.id for m in manifests}
    result.problems += [f"{i} on {remote.name}: no complete copy there" for i in sorted(missing)]
    result.backups = len(manifests)
    files = [(m, entry) for m in manifests for a in m.artifacts for entry in a.files]
    chosen = _chosen(files, last_reads(repo, remote.name), sample)
    result.files_left = len(files) - len(chosen)
    emit(JobStarted(f"verify-{remote.name}", "verify", tuple(m.id for m in manifests)))
    meter = ProgressMeter(STAGE, emit, sum(entry.bytes for _, entry in chosen))
    for manifest, entry in chosen:
        key = backup_key(manifest.id, entry.path)
        emit(StageChanged(STAGE, f"reading {manifest.id}/{entry.path}"))
        problem = await _read_back(remote, key, entry, meter)
        result.files_read += 1
        result.bytes_read += entry.bytes
        if problem is not None:
            result.problems.append(f"{manifest.id}/{entry.path} on {remote.name}: {problem}")
        jsonlines.append(
            reads_path(repo, remote.name),
            {"key": key, "at": iso_z(utc_now()), "ok": problem is None},
        )
    meter.finish()
    emit(JobFinished(f"verify-{remote.name}", ok=result.ok))
    return result


def _chosen(
    files: list[tuple[Manifest, ArtifactFile]],
    reads: dict[str, ReadRecord],
    sample: float | None,
) -> list[tuple[Manifest, ArtifactFile]]:
    """All ``files``, or the least recently read of them up to ``sample`` of their bytes
    (at least one file, so that every run moves on)."""
    if sample is None:
        return files

    def last_read(item: tuple[Manifest, ArtifactFile]) -> str:
        read = reads.get(backup_key(item[0].id, item[1].path))
        return read.at if read is not None and read.ok else ""  # never, or failed: first

    budget = sample * sum(entry.bytes for _, entry in files)
    chosen: list[tuple[Manifest, ArtifactFile]] = []
    taken = 0
    for item in sorted(files, key=lambda item: (last_read(item), item[0].id)):
        if chosen and taken + item[1].bytes > budget:
            break
        chosen.append(item)
        taken += item[1].bytes
    return chosen


async def _read_back(
    remote: Remote, key: str, entry: ArtifactFile, meter: ProgressMeter
) -> str | None:
    """What is wrong with the copy of ``entry`` at ``key`` (None: it matches)."""
    digest = hashlib.sha256()
    size = 0
    try:
        async for chunk in remote.get(key):
            digest.update(chunk)
            size += len(chunk)
            meter.advance(len(chunk))
    except FileNotFoundError:
        return "missing"
    except RemoteError as exc:
        return str(exc)
    if size != entry.bytes:
        return f"size is {size} bytes, the manifest says {entry.bytes}"
    if digest.hexdigest() != entry.sha256:
        return (
            f"sha256 mismatch: {digest.hexdigest()[:12]}…, the manifest says {entry.sha256[:12]}…"
        )
    return None

"""Hand-made tar archives, hostile or not, stored as files backups with a matching sha256.

What a compromised host could send: any member type, name, link target and mode. ``store``
writes one into a repository exactly as a backup would (manifest last, checksums right), so
only the archive's content can make verify or a restore refuse it.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

from helpers import StoredArtifact, commit_backup

from engine.repo.manifest import Manifest
from engine.repo.repository import Repository, new_backup_id

TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "chr": tarfile.CHRTYPE,
    "blk": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "volume": b"V",  # a GNU volume header: no file a restore should make
}


@dataclass(frozen=True)
class Entry:
    """One tar member as a host could write it."""

    name: str
    kind: str = "file"  # a key of TYPES
    target: str = ""  # symlink target or hard link name
    mode: int = 0o644
    data: bytes = b""
    device: tuple[int, int] = (0, 0)


def directories_first(files: Mapping[str, bytes]) -> list[Entry]:
    """Regular files with a directory entry before each, as GNU tar writes them (names that
    are absolute or hold ``..`` get none)."""
    entries: list[Entry] = []
    made: set[PurePosixPath] = set()
    for name, data in files.items():
        path = PurePosixPath(name)
        if not path.is_absolute():
            for parent in reversed(path.parents):
                if parent.parts and ".." not in parent.parts and parent not in made:
                    made.add(parent)
                    entries.append(Entry(str(parent), "dir", mode=0o755))
        entries.append(Entry(name, data=data))
    return entries


def tar_bytes(members: Mapping[str, bytes] | Sequence[Entry]) -> bytes:
    """An uncompressed tar of ``members`` (a mapping: regular files, directories first)."""
    entries = directories_first(members) if isinstance(members, Mapping) else members
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type = TYPES[entry.kind]
            info.mode = entry.mode
            info.linkname = entry.target
            info.devmajor, info.devminor = entry.device
            info.size = len(entry.data) if entry.kind == "file" else 0
            archive.addfile(info, io.BytesIO(entry.data) if entry.kind == "file" else None)
    return buffer.getvalue()


def store(
    repo: Repository,
    filename: str,
    data: bytes,
    compression: str,
    *,
    paths: Iterable[str] = ("/etc",),
    source: str = "cfg",
) -> Manifest:
    """``data`` committed as the only artifact of a new files backup of ``paths``."""
    return store_many(repo, {source: (filename, data, compression)}, paths)


def store_many(
    repo: Repository, archives: Mapping[str, tuple[str, bytes, str]], paths: Iterable[str]
) -> Manifest:
    """One backup with an artifact per source: ``{source: (filename, data, compression)}``,
    each a files archive of ``paths``."""
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    meta = {"paths": list(paths)}
    artifacts: dict[str, StoredArtifact] = {
        source: (filename, data, "files-tar", {"compression": compression, **meta})
        for source, (filename, data, compression) in archives.items()
    }
    return commit_backup(repo, new_backup_id(moment), moment, artifacts)


def gzipped(entries: Sequence[Entry]) -> bytes:
    return gzip.compress(tar_bytes(entries), compresslevel=1)


def store_gzip(
    repo: Repository, entries: Sequence[Entry], paths: Iterable[str] = ("/etc",)
) -> Manifest:
    """``entries`` as a gzipped files backup of ``paths`` (source ``cfg``)."""
    return store(repo, "cfg.tar.gz", gzipped(entries), "gzip", paths=paths)

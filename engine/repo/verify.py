"""Verify a backup without restoring it: sizes, sha256, and a structural check per kind.

Each file is read once: the bytes are hashed as the structural checker (decompressor, tar
lister...) pulls them, so a verify costs one sequential read of the backup.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import tarfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

import zstandard

from engine.config.sources import FilesSourceConfig, SourceConfig
from engine.mongo_archive.stream import Readable
from engine.repo.confined import UnsafeFileError, open_confined
from engine.repo.content import NO_KEYS, ContentError, DecryptingReader, Keyring
from engine.repo.direct_read import DirectReader
from engine.repo.manifest import Artifact, ArtifactFile, Manifest
from engine.repo.tar_safety import MemberRules, backed_up_roots

READ_CHUNK = 1024 * 1024
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class FileProblem:
    """One thing wrong with one file of a backup."""

    source: str
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path} ({self.source}): {self.problem}"


@dataclass
class VerifyResult:
    backup_id: str
    files_checked: int = 0
    bytes_checked: int = 0
    problems: list[FileProblem] = field(default_factory=list)
    sealed: int = 0  # encrypted files checked as stored only (no identity was given)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class VerifyPolicy:
    """What the configuration allows in artifacts beyond the safe default."""

    setid_sources: frozenset[str] = frozenset()  # files sources with allow_setid

    @classmethod
    def of(cls, sources: Mapping[str, SourceConfig]) -> VerifyPolicy:
        return cls(
            frozenset(
                name
                for name, source in sources.items()
                if isinstance(source, FilesSourceConfig) and source.allow_setid
            )
        )


class HashingReader:
    """A read-only file wrapper that hashes and counts every byte read through it."""

    def __init__(self, raw: Readable, progress: Callable[[int], None]) -> None:
        self._raw = raw
        self._progress = progress
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.sha256.update(data)
        self.bytes += len(data)
        self._progress(len(data))
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(READ_CHUNK):
            pass


class StructureError(Exception):
    """The content of a file is not what its kind promises."""


def decompressed(
    reader: Readable, compression: str
) -> zstandard.ZstdDecompressionReader | gzip.GzipFile:
    """The decompressed stream of ``reader`` (``compression``: zstd or gzip, as manifests say)."""
    # Both only ever read() their source; their stubs ask for a whole (seekable) file object.
    source = cast(BinaryIO, reader)
    if compression == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
    if compression == "gzip":
        return gzip.GzipFile(fileobj=source, mode="rb")
    raise StructureError(f"unknown compression {compression!r} in the manifest")


def check_tar(reader: HashingReader, artifact: Artifact, policy: VerifyPolicy) -> None:
    """The compressed stream decodes to its end and the tar lists, with only safe members
    (engine.repo.tar_safety), inside the paths the manifest says it holds."""
    try:
        roots = backed_up_roots(artifact.meta.get("paths"))
    except ValueError as exc:
        raise StructureError(str(exc)) from exc
    setid_key = None
    if artifact.source not in policy.setid_sources:
        setid_key = f"sources.{artifact.source}.allow_setid"
    rules = MemberRules(roots, setid_key)
    stream = decompressed(reader, str(artifact.meta.get("compression", "")))
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                _refuse(rules.check(member))
        while stream.read(READ_CHUNK):
            pass  # the compressed stream must decode to its very end
    except (tarfile.TarError, OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
        raise StructureError(f"the archive does not decode: {exc}") from exc
    _refuse(rules.finish())


def _refuse(reason: str | None) -> None:
    if reason is not None:
        raise StructureError(f"unsafe archive: {reason}; refusing it")


BOLT_MAGIC = 0xED0CDAED
BOLT_MAGIC_OFFSET = 16  # after the first page's header (id u64, flags u16, count u16, overflow u32)
SNAPSHOT_FOOTER = 32  # etcd appends the sha256 of the bolt database


def check_etcd_snapshot(reader: HashingReader, artifact: Artifact, _policy: VerifyPolicy) -> None:
    """A bolt database (magic in its first meta page) followed by its own sha256."""
    body_hash = hashlib.sha256()
    head = b""
    tail = b""
    size = 0
    while chunk := reader.read(READ_CHUNK):
        size += len(chunk)
        if len(head) < BOLT_MAGIC_OFFSET + 4:
            head += chunk[: BOLT_MAGIC_OFFSET + 4]
        window = tail + chunk
        body_hash.update(window[:-SNAPSHOT_FOOTER])
        tail = window[-SNAPSHOT_FOOTER:]
    if size < 512 + SNAPSHOT_FOOTER or size % 512 != SNAPSHOT_FOOTER:
        raise StructureError(
            f"{size} bytes is not a whole snapshot (pages of 512 bytes plus a 32-byte sha256); "
            "it is truncated or not an etcd snapshot"
        )
    magic = int.from_bytes(head[BOLT_MAGIC_OFFSET : BOLT_MAGIC_OFFSET + 4], "little")
    if magic != BOLT_MAGIC:
        raise StructureError(f"no bolt database magic (found {magic:#x}); not an etcd snapshot")
    if body_hash.digest() != tail:
        raise StructureError("the snapshot's own sha256 footer does not match its content")


def check_mongo_archive(reader: HashingReader, artifact: Artifact, _policy: VerifyPolicy) -> None:
    """The archive reads end to end (framing, BSON, CRCs) with the manifest's counts."""
    from engine.mongo_archive import ArchiveFormatError, open_archive, summarize

    try:
        summary = summarize(open_archive(reader))
    except (ArchiveFormatError, OSError, EOFError, zlib.error) as exc:
        raise StructureError(str(exc)) from exc
    recorded = artifact.meta.get("namespaces", {})
    found = {name: stats.documents for name, stats in summary.namespaces.items()}
    for name, entry in recorded.items():
        if found.get(name) != entry.get("documents"):
            raise StructureError(
                f"namespace {name}: {found.get(name, 'no')} documents in the archive, "
                f"the manifest says {entry.get('documents')}"
            )


def check_redis_rdb(reader: HashingReader, artifact: Artifact, _policy: VerifyPolicy) -> None:
    """The snapshot reads end to end (records, CRC-64) with the manifest's keys per database."""
    from engine.redis_rdb import RdbFormatError, summarize

    try:
        summary = summarize(reader)
    except RdbFormatError as exc:
        raise StructureError(str(exc)) from exc
    found = {str(db): count for db, count in summary.keys.items() if count}
    recorded = {db: count for db, count in artifact.meta.get("databases", {}).items() if count}
    if found != recorded:
        raise StructureError(
            f"keys per database {found or 'none'} in the snapshot, the manifest says "
            f"{recorded or 'none'}"
        )


def check_pg_dump(reader: HashingReader, artifact: Artifact, _policy: VerifyPolicy) -> None:
    """A database's dump reads end to end (engine.pg_archive) with the manifest's rows per
    table; the roles' script is whole (pg_dumpall ends it with a line saying so)."""
    from engine.mongo_archive.stream import Prefixed
    from engine.pg_archive import MAGIC, PgArchiveError, summarize

    head = reader.read(len(MAGIC))
    if head != MAGIC:
        _check_globals(head, reader)
        return
    try:
        summary = summarize(Prefixed(head, reader))
    except PgArchiveError as exc:
        raise StructureError(str(exc)) from exc
    recorded = artifact.meta.get("tables", {}).get(summary.database)
    if recorded is None:
        raise StructureError(f"a dump of {summary.database}, which the manifest does not list")
    if (found := summary.tables()) != recorded:
        differ = sorted(k for k in set(found) | set(recorded) if found.get(k) != recorded.get(k))
        shown = "; ".join(
            f"{k}: {found.get(k, 'none')} vs {recorded.get(k, 'none')}" for k in differ[:5]
        )
        raise StructureError(
            f"rows per table differ from the manifest's (dump vs manifest): {shown}"
        )


PG_GLOBALS_HEAD = b"--\n-- PostgreSQL database cluster dump\n"
PG_GLOBALS_END = b"-- PostgreSQL database cluster dump complete\n--\n\n"


def _check_globals(head: bytes, reader: HashingReader) -> None:
    start = head + reader.read(len(PG_GLOBALS_HEAD) - len(head))
    if start != PG_GLOBALS_HEAD:
        raise StructureError("neither a pg_dump archive nor pg_dumpall's roles script")
    tail = b""
    while chunk := reader.read(READ_CHUNK):
        tail = (tail + chunk)[-len(PG_GLOBALS_END) :]
    if tail != PG_GLOBALS_END:
        raise StructureError("the roles script does not end as pg_dumpall ends it (truncated)")


StructureCheck = Callable[[HashingReader, Artifact, VerifyPolicy], None]
STRUCTURE_CHECKS: dict[str, StructureCheck] = {
    "files-tar": check_tar,
    "etcd-snapshot": check_etcd_snapshot,
    "mongo-archive": check_mongo_archive,
    "redis-rdb": check_redis_rdb,
    "pg-dump": check_pg_dump,
}


def verify_file(
    backup_dir: Path,
    artifact: Artifact,
    entry: ArtifactFile,
    progress: Callable[[int], None],
    policy: VerifyPolicy = VerifyPolicy(),
    keyring: Keyring = NO_KEYS,
) -> list[FileProblem]:
    """Check one file: present, structurally sound, with the recorded size and sha256. It is
    read only as a regular file directly inside ``backup_dir``, never through a link. An
    encrypted file is decrypted in the same pass when ``keyring`` holds an identity (its
    plaintext's size and sha256 are checked too); without one, only what is stored is."""
    problems: list[FileProblem] = []

    def problem(text: str) -> None:
        problems.append(FileProblem(artifact.source, entry.path, text))

    try:
        raw = DirectReader(open_confined(backup_dir, entry.path))
    except FileNotFoundError:
        problem("missing")
        return problems
    except UnsafeFileError as exc:
        problem(f"refused: {exc}; it must be a regular file in the backup directory")
        return problems
    except OSError as exc:
        problem(f"unreadable: {exc.strerror}")
        return problems
    with raw:
        stored = HashingReader(raw, progress)
        content: HashingReader | None = stored
        if entry.encrypted:
            content = None
            if keyring.identities:
                plain = DecryptingReader(stored, keyring.identities, entry.path, keyring.recipients)
                content = HashingReader(plain, lambda _amount: None)
        try:
            if content is not None:
                _check_content(content, artifact, policy, problem)
        except ContentError as exc:
            problem(str(exc).removeprefix(f"{entry.path}: "))
            content = None
        stored.drain()
    problems += _mismatch(artifact, entry, stored, entry.bytes, entry.sha256, "")
    if entry.encrypted and content is not None:
        assert entry.plain_bytes is not None
        assert entry.plain_sha256 is not None
        problems += _mismatch(
            artifact, entry, content, entry.plain_bytes, entry.plain_sha256, "decrypted, its "
        )
    return problems


def _mismatch(
    artifact: Artifact, entry: ArtifactFile, read: HashingReader, size: int, sha256: str, what: str
) -> list[FileProblem]:
    """How what was read differs from the manifest's size and sha256 (nothing when alike)."""
    if read.bytes != size:
        text = f"{what}size is {read.bytes} bytes, the manifest says {size}"
    elif (found := read.sha256.hexdigest()) != sha256:
        text = f"{what}sha256 mismatch: {found[:12]}…, the manifest says {sha256[:12]}…"
    else:
        return []
    return [FileProblem(artifact.source, entry.path, text)]


def _check_content(
    content: HashingReader, artifact: Artifact, policy: VerifyPolicy, problem: Callable[[str], None]
) -> None:
    """The kind's structural check over the whole of ``content``."""
    check = STRUCTURE_CHECKS.get(artifact.kind)
    if check is not None:
        try:
            check(content, artifact, policy)
        except StructureError as exc:
            problem(str(exc))
    content.drain()


def verify_backup(
    backup_dir: Path,
    manifest: Manifest,
    sources: tuple[str, ...] | None = None,
    progress: ProgressFn | None = None,
    policy: VerifyPolicy = VerifyPolicy(),
    keyring: Keyring = NO_KEYS,
) -> VerifyResult:
    """Verify every file of ``manifest`` (or of the artifacts of ``sources`` only); encrypted
    files deeply only with an identity in ``keyring``."""
    keyring = keyring.for_backup(manifest)
    artifacts = [a for a in manifest.artifacts if sources is None or a.source in sources]
    total = sum(a.size for a in artifacts)
    result = VerifyResult(manifest.id)

    def advance(amount: int) -> None:
        result.bytes_checked += amount
        if progress is not None:
            progress(result.bytes_checked, total)

    for artifact in artifacts:
        for entry in artifact.files:
            result.problems.extend(
                verify_file(backup_dir, artifact, entry, advance, policy, keyring)
            )
            result.files_checked += 1
            result.sealed += entry.encrypted and not keyring.identities
    if not result.files_checked:  # nothing checked is never "OK"
        wanted = ", ".join(sources or ()) or "any source"
        result.problems.append(
            FileProblem("manifest", "manifest.json", f"lists no file of {wanted} to verify")
        )
    return result


async def verify_backup_async(
    backup_dir: Path,
    manifest: Manifest,
    sources: tuple[str, ...] | None = None,
    progress: ProgressFn | None = None,
    policy: VerifyPolicy = VerifyPolicy(),
    keyring: Keyring = NO_KEYS,
) -> VerifyResult:
    """:func:`verify_backup` in a thread, with progress delivered on the event loop."""
    loop = asyncio.get_running_loop()
    relay: ProgressFn | None = None
    if progress is not None:
        report = progress

        def relay(done: int, total: int) -> None:
            loop.call_soon_threadsafe(report, done, total)

    return await asyncio.to_thread(
        verify_backup, backup_dir, manifest, sources, relay, policy, keyring
    )

"""One reader and one writer for the mongodump archive format.

Why this exists: a Lifeboat Mongo backup is a single mongodump archive (gzipped), whether our
driver-based dumper wrote it or a remote ``mongodump --archive --gzip`` did. Verify and
restore therefore read both with this one reader, and our writer produces exactly what the
official tools write, so ``mongorestore --archive --gzip`` reads our backups too. The format
(see ``fixtures/mongodump-archives/FORMAT.md``)::

    magic 6d e2 99 81 | header doc | prelude docs | ff ff ff ff |
    blocks: {db, collection, EOF, CRC} doc* ff ff ff ff ...

The reader streams: it holds a read-ahead window (1 MiB by default) plus at most one
document, whatever the archive size, and checks everything the format promises (lengths,
trailing zero bytes, block framing, namespace life cycle, the CRC-64/XZ of every namespace).
Every problem becomes an :class:`ArchiveFormatError` that names the byte offset and the
namespace. The writer takes raw batches (what pymongo's ``find_raw_batches`` yields) and
passes them on without copying, one data segment per batch, so segments of collections dumped
concurrently interleave exactly as mongodump's multiplexer does.
"""

from __future__ import annotations

import gzip
import struct
import threading
import uuid as uuid_module
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anycrc
import bson
from bson import json_util
from bson.binary import Binary
from bson.errors import BSONError
from bson.int64 import Int64

from engine.errors import LifeboatError

MAGIC = b"\x6d\xe2\x99\x81"
TERMINATOR = b"\xff\xff\xff\xff"
FORMAT_VERSION = "0.1"
MIN_BSON_SIZE = 5
MAX_BSON_SIZE = 16 * 1024 * 1024
READ_CHUNK = 1024 * 1024

_INT32 = struct.Struct("<i")
_CRC64 = anycrc.Model("CRC64-XZ")  # Go's hash/crc64 with the ECMA table, as mongodump uses
_UINT64 = (1 << 64) - 1
_BLOCK_KEYS = ("db", "collection", "EOF", "CRC")
_HEADER_TYPES: dict[str, type] = {
    "concurrent_collections": int,
    "version": str,
    "server_version": str,
    "tool_version": str,
}
_BUCKETS_PREFIX = "system.buckets."

DocumentFilter = Callable[[str], bool]


class Readable(Protocol):
    """Any binary stream: a file, a pipe, a ``GzipFile``, a hashing wrapper."""

    def read(self, size: int = -1, /) -> bytes: ...


class ArchiveFormatError(LifeboatError):
    """The bytes are not a valid mongodump archive; the message says what and where."""

    def __init__(
        self,
        problem: str,
        *,
        offset: int | None = None,
        namespace: str | None = None,
        truncated: bool = False,
        decompressed: bool = False,
    ) -> None:
        self.problem = problem
        self.offset = offset
        self.namespace = namespace
        self.truncated = truncated
        parts = []
        if offset is not None:
            state = "truncated" if truncated else "damaged"
            stream = " of the decompressed stream" if decompressed else ""
            parts.append(f"archive is {state} at byte {offset}{stream}")
        if namespace is not None:
            parts.append(f"namespace {namespace}")
        parts.append(problem)
        super().__init__(": ".join(parts))


def namespace_name(db: str, collection: str) -> str:
    """``db.collection``; the oplog (``db`` empty) is just ``oplog``."""
    return f"{db}.{collection}" if db else collection


def _signed64(value: int) -> int:
    """The int64 with the same bits as an unsigned CRC (how the archive stores it)."""
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass(frozen=True)
class NamespaceMeta:
    """One prelude entry: a namespace and its metadata as Extended JSON text, kept verbatim.

    ``metadata`` is empty for special namespaces (the oplog). ``type`` is ``collection``,
    ``view``, ``timeseries``, or empty (special namespaces, and archives from tools before 5.x).
    """

    db: str
    collection: str
    metadata: str = ""
    type: str = ""

    @property
    def name(self) -> str:
        return namespace_name(self.db, self.collection)

    @property
    def data_collection(self) -> str:
        """Where the documents are: a timeseries ``X`` keeps them in ``system.buckets.X``."""
        if self.type == "timeseries":
            return _BUCKETS_PREFIX + self.collection
        return self.collection

    def parsed(self) -> dict[str, Any]:
        """The metadata as a document (``{}`` when there is none); malformed text raises."""
        if not self.metadata:
            return {}
        try:
            value = json_util.loads(self.metadata)
        except (ValueError, TypeError, BSONError) as exc:
            raise ArchiveFormatError(
                f"prelude metadata is not valid Extended JSON ({exc})", namespace=self.name
            ) from exc
        if not isinstance(value, dict):
            raise ArchiveFormatError("prelude metadata is not a JSON object", namespace=self.name)
        return value

    @property
    def indexes(self) -> list[dict[str, Any]]:
        return list(self.parsed().get("indexes") or [])

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.parsed().get("options") or {})

    @property
    def uuid(self) -> str | None:
        value = self.parsed().get("uuid")
        return str(value) if value else None

    @classmethod
    def build(
        cls,
        db: str,
        collection: str,
        *,
        indexes: Sequence[Mapping[str, Any]] = (),
        options: Mapping[str, Any] | None = None,
        uuid: str | uuid_module.UUID | Binary | None = None,
        type: str = "collection",
    ) -> NamespaceMeta:
        """Metadata as mongodump writes it: canonical Extended JSON v2, compact, in its key
        order (``options, indexes, uuid, collectionName, type``), uuid as 32 hex digits."""
        doc: dict[str, Any] = {}
        if options:
            doc["options"] = dict(options)
        doc["indexes"] = [dict(index) for index in indexes]
        if uuid is not None:
            doc["uuid"] = _uuid_hex(uuid)
        doc["collectionName"] = collection
        doc["type"] = type
        text = json_util.dumps(
            doc, json_options=json_util.CANONICAL_JSON_OPTIONS, separators=(",", ":")
        )
        return cls(db=db, collection=collection, metadata=text, type=type)


def _uuid_hex(value: str | uuid_module.UUID | Binary) -> str:
    if isinstance(value, Binary):
        value = value.as_uuid()
    if isinstance(value, uuid_module.UUID):
        return value.hex
    return uuid_module.UUID(value).hex


@dataclass(frozen=True)
class NamespaceStats:
    """What one namespace holds in an archive. ``crc`` is the unsigned CRC-64/XZ."""

    db: str
    collection: str
    documents: int
    bytes: int
    crc: int
    meta: NamespaceMeta | None

    @property
    def name(self) -> str:
        return namespace_name(self.db, self.collection)


@dataclass(frozen=True)
class ArchiveSummary:
    """A whole archive, read and checked: its header, prelude and every namespace."""

    header: dict[str, Any]
    prelude: tuple[NamespaceMeta, ...]
    namespaces: dict[str, NamespaceStats]
    archive_bytes: int
    compressed: bool

    @property
    def server_version(self) -> str:
        return str(self.header.get("server_version", ""))

    @property
    def tool_version(self) -> str:
        return str(self.header.get("tool_version", ""))

    @property
    def documents(self) -> int:
        return sum(stats.documents for stats in self.namespaces.values())

    def manifest_meta(self) -> dict[str, Any]:
        """The ``meta`` of a manifest artifact: server version and per-namespace counts."""
        return {
            "server_version": self.server_version,
            "namespaces": {
                name: {"documents": s.documents, "bytes": s.bytes, "crc": f"{s.crc:016x}"}
                for name, s in self.namespaces.items()
            },
        }


def _meta_for(
    metas: Mapping[tuple[str, str], NamespaceMeta], db: str, collection: str
) -> NamespaceMeta | None:
    """The prelude entry describing a namespace's data; ``system.buckets.X`` belongs to the
    timeseries ``X``."""
    meta = metas.get((db, collection))
    if meta is None and collection.startswith(_BUCKETS_PREFIX):
        meta = metas.get((db, collection[len(_BUCKETS_PREFIX) :]))
    return meta


def _prelude_without_data(
    prelude: Sequence[NamespaceMeta], seen: Mapping[tuple[str, str], object]
) -> list[str]:
    """Prelude namespaces with no blocks at all. mongodump ends every namespace it lists,
    even empty ones and views (mongorestore creates a view on its EOF block); a timeseries
    ``X`` is ended as ``system.buckets.X`` (or as ``X`` from servers that keep no buckets)."""
    missing = []
    for meta in prelude:
        keys = {(meta.db, meta.collection), (meta.db, meta.data_collection)}
        if not keys & seen.keys():
            missing.append(meta.name)
    return missing


class _NamespaceState:
    """Running totals for one namespace while an archive is read or written."""

    __slots__ = ("bytes", "closed", "collection", "crc", "db", "documents", "selected")

    def __init__(self, db: str, collection: str) -> None:
        self.db = db
        self.collection = collection
        self.documents = 0
        self.bytes = 0
        self.crc = 0
        self.closed = False
        self.selected: bool | None = None

    @property
    def name(self) -> str:
        return namespace_name(self.db, self.collection)

    def stats(self, meta: NamespaceMeta | None) -> NamespaceStats:
        return NamespaceStats(self.db, self.collection, self.documents, self.bytes, self.crc, meta)


# --------------------------------------------------------------------------- reading


class _Prefixed:
    """A stream with bytes already read from it put back in front (after sniffing)."""

    def __init__(self, prefix: bytes, rest: Readable) -> None:
        self._prefix = prefix
        self._rest = rest

    def read(self, size: int = -1, /) -> bytes:
        if not self._prefix:
            return self._rest.read(size)
        if size is None or size < 0:
            data, self._prefix = self._prefix + self._rest.read(), b""
            return data
        data, self._prefix = self._prefix[:size], self._prefix[size:]
        return data


def _read_prefix(fileobj: Readable, size: int) -> bytes:
    parts: list[bytes] = []
    have = 0
    while have < size:
        block = fileobj.read(size - have)
        if not block:
            break
        parts.append(bytes(block))
        have += len(block)
    return b"".join(parts)


def open_archive(fileobj: Readable) -> Readable:
    """The archive stream of ``fileobj``: gunzipped when it starts with 1f 8b (gzip members
    may be several; they read as one stream), else the bytes as they are."""
    peek = getattr(fileobj, "peek", None)
    head = bytes(peek(2)[:2]) if peek is not None else b""
    stream: Readable = fileobj
    if len(head) < 2:  # no peek, or a short one: read the bytes and put them back
        head = _read_prefix(fileobj, 2)
        stream = _Prefixed(head, fileobj)
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=stream, mode="rb")
    return stream


class _Window:
    """A read-ahead window over a stream. Documents are memoryview slices of immutable
    chunks: handing one out copies nothing, and it stays valid for as long as it is held."""

    def __init__(self, fileobj: Readable, chunk_size: int, decompressed: bool) -> None:
        self._file = fileobj
        self._chunk = chunk_size
        self.decompressed = decompressed
        self.data = b""
        self.view = memoryview(self.data)
        self.pos = 0
        self.base = 0

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def ensure(self, size: int) -> bool:
        """Make ``size`` bytes available at ``pos``; False when the stream ends first."""
        have = len(self.data) - self.pos
        if have >= size:
            return True
        parts = [self.data[self.pos :]] if have else []
        while have < size:
            block = self._read(max(self._chunk, size - have))
            if not block:
                break
            parts.append(block)
            have += len(block)
        self.base += self.pos
        self.data = b"".join(parts)
        self.view = memoryview(self.data)
        self.pos = 0
        return have >= size

    def _read(self, size: int) -> bytes:
        try:
            block = self._file.read(size)
        except EOFError as exc:  # a gzip stream cut short
            raise self.error(f"the gzip stream ends early ({exc})", truncated=True) from exc
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise self.error(f"the gzip stream is corrupt ({exc})") from exc
        return block if isinstance(block, bytes) else bytes(block or b"")

    def error(
        self, problem: str, namespace: str | None = None, *, truncated: bool = False
    ) -> ArchiveFormatError:
        return ArchiveFormatError(
            problem,
            offset=self.base + len(self.data) if truncated else self.offset,
            namespace=namespace,
            truncated=truncated,
            decompressed=self.decompressed,
        )

    def length(self, where: str, namespace: str | None = None) -> int:
        """The next 4-byte word, which must be a BSON length or the terminator (-1).
        The terminator is consumed; a length is not."""
        if not self.ensure(4):
            raise self.error(f"the stream ends inside {where}", namespace, truncated=True)
        (size,) = _INT32.unpack_from(self.data, self.pos)
        if size == -1:
            self.pos += 4
        elif not MIN_BSON_SIZE <= size <= MAX_BSON_SIZE:
            raise self.error(
                f"{size} is neither a BSON document length (5 bytes to 16 MiB) nor a "
                f"terminator, where {where} should start",
                namespace,
            )
        return size

    def document(self, size: int, what: str, namespace: str | None = None) -> memoryview:
        """The ``size``-byte document at ``pos`` (its length already checked), consumed."""
        if not self.ensure(size):
            raise self.error(f"the stream ends inside {what}", namespace, truncated=True)
        end = self.pos + size
        if self.data[end - 1] != 0:
            raise self.error(f"{what} ({size} bytes) does not end with a 0x00 byte", namespace)
        doc = self.view[self.pos : end]
        self.pos = end
        return doc


def _decode(window: _Window, raw: memoryview, what: str, namespace: str | None = None) -> Any:
    try:
        return bson.decode(raw)
    except (BSONError, ValueError, TypeError) as exc:
        window.pos -= len(raw)  # report the offset where the document starts
        raise window.error(f"{what} is not a valid BSON document ({exc})", namespace) from exc


class ArchiveReader:
    """Reads one archive stream once, checking it as it goes.

    Construction reads the magic, header and prelude (``.header``, ``.prelude``), so a
    restore can create collections before any document flows; :meth:`documents` then yields
    the documents, and :meth:`summary` reads (the rest of) the stream and reports.
    """

    def __init__(self, fileobj: Readable, *, chunk_size: int = READ_CHUNK) -> None:
        stream = open_archive(fileobj)
        self.compressed = isinstance(stream, gzip.GzipFile)
        self._in = _Window(stream, chunk_size, self.compressed)
        self._states: dict[tuple[str, str], _NamespaceState] = {}
        self._started = False
        self._finished = False
        self.header = self._read_header()
        self.prelude = self._read_prelude()
        self._metas = {(meta.db, meta.collection): meta for meta in self.prelude}

    @property
    def offset(self) -> int:
        """Bytes of the (decompressed) archive consumed so far, for progress."""
        return self._in.offset

    @property
    def namespaces(self) -> dict[str, NamespaceStats]:
        """Per-namespace totals so far (all of them, checked, once the stream was read)."""
        return {
            state.name: state.stats(self._meta_for(state.db, state.collection))
            for state in self._states.values()
        }

    def _meta_for(self, db: str, collection: str) -> NamespaceMeta | None:
        return _meta_for(self._metas, db, collection)

    def _read_header(self) -> dict[str, Any]:
        window = self._in
        if not window.ensure(4):
            seen = window.data[window.pos :]
            if not seen:
                raise ArchiveFormatError("not a mongodump archive: the stream is empty")
            raise ArchiveFormatError(f"not a mongodump archive: only {len(seen)} bytes")
        magic = bytes(window.view[window.pos : window.pos + 4])
        if magic != MAGIC:
            raise ArchiveFormatError(
                f"not a mongodump archive: it starts with {magic.hex(' ')}, "
                f"not the magic number {MAGIC.hex(' ')}"
            )
        window.pos += 4
        size = window.length("the archive header")
        if size == -1:
            raise window.error("the archive header is missing (a terminator is there)")
        header = _decode(window, window.document(size, "the archive header"), "archive header")
        self._check_header(header)
        return header

    def _check_header(self, header: dict[str, Any]) -> None:
        for key, kind in _HEADER_TYPES.items():
            if not isinstance(header.get(key), kind) or isinstance(header.get(key), bool):
                raise ArchiveFormatError(
                    f"not a mongodump archive header: {key!r} is missing or not a "
                    f"{kind.__name__} (header: {header!r})"
                )
        if header["version"] != FORMAT_VERSION:
            raise ArchiveFormatError(
                f"archive format version {header['version']!r} is not supported "
                f"(this Lifeboat reads version {FORMAT_VERSION}); upgrade Lifeboat"
            )

    def _read_prelude(self) -> tuple[NamespaceMeta, ...]:
        window = self._in
        metas: list[NamespaceMeta] = []
        seen: set[tuple[str, str]] = set()
        while (size := window.length("a prelude entry or its terminator")) != -1:
            start = window.offset
            raw = window.document(size, "a prelude entry")
            meta = self._prelude_entry(_decode(window, raw, "a prelude entry"), start)
            if (meta.db, meta.collection) in seen:
                raise ArchiveFormatError(
                    "is listed twice in the prelude", offset=start, namespace=meta.name
                )
            seen.add((meta.db, meta.collection))
            metas.append(meta)
        return tuple(metas)

    def _prelude_entry(self, doc: dict[str, Any], start: int) -> NamespaceMeta:
        window = self._in
        for key in ("db", "collection", "metadata"):
            if not isinstance(doc.get(key), str):
                raise ArchiveFormatError(
                    f"prelude entry has no string {key!r}: {doc!r}",
                    offset=start,
                    decompressed=window.decompressed,
                )
        name = namespace_name(doc["db"], doc["collection"])
        size, kind = doc.get("size", 0), doc.get("type", "")
        if not isinstance(size, int) or isinstance(size, bool) or not isinstance(kind, str):
            raise ArchiveFormatError(
                f"prelude entry has a bad 'size' ({size!r}) or 'type' ({kind!r})",
                offset=start,
                namespace=name,
                decompressed=window.decompressed,
            )
        meta = NamespaceMeta(doc["db"], doc["collection"], doc["metadata"], kind)
        try:
            meta.parsed()
        except ArchiveFormatError as exc:
            raise ArchiveFormatError(
                exc.problem, offset=start, namespace=name, decompressed=window.decompressed
            ) from exc
        return meta

    def documents(
        self,
        select: DocumentFilter | None = None,
        *,
        on_namespace_end: Callable[[NamespaceStats], None] | None = None,
    ) -> Iterator[tuple[str, memoryview]]:
        """Yield ``(namespace, raw BSON document)`` for the selected namespaces, in stream
        order. Every namespace's CRC is still checked, at its EOF block: a restore must treat
        an error raised there as a failure of what it already inserted. ``on_namespace_end``
        is called once a namespace is complete and its CRC matched."""
        if self._started:
            raise RuntimeError("an ArchiveReader reads its stream once")
        self._started = True
        window = self._in
        while window.ensure(1):
            start = window.offset
            db, collection, eof, crc = self._read_block_header()
            state = self._open(db, collection, start)
            if eof:
                self._close(state, crc, start)
                if on_namespace_end is not None:
                    on_namespace_end(state.stats(self._meta_for(db, collection)))
                continue
            if state.selected is None:
                state.selected = select is None or bool(select(state.name))
            yield from self._segment(state)
        self._finish()

    def summary(self) -> ArchiveSummary:
        """Read the rest of the stream, checking it all, and describe the archive."""
        if not self._started:
            for _ in self.documents(select=lambda _name: False):
                pass
        if not self._finished:
            raise RuntimeError("the archive was not read to its end")
        return ArchiveSummary(
            header=self.header,
            prelude=self.prelude,
            namespaces=self.namespaces,
            archive_bytes=self._in.offset,
            compressed=self.compressed,
        )

    def _read_block_header(self) -> tuple[str, str, bool, int]:
        window = self._in
        size = window.length("a namespace header")
        if size == -1:
            window.pos -= 4
            raise window.error("two terminators in a row (a block without a namespace header)")
        raw = window.document(size, "a namespace header")
        doc = _decode(window, raw, "a namespace header")
        if tuple(doc) != _BLOCK_KEYS:
            window.pos -= size
            raise window.error(
                f"a namespace header has the keys {list(doc)}, not db, collection, EOF, CRC "
                "in that order"
            )
        db, collection, eof, crc = doc["db"], doc["collection"], doc["EOF"], doc["CRC"]
        kinds_ok = isinstance(db, str) and isinstance(collection, str)
        if not (kinds_ok and type(eof) is bool and type(crc) is Int64 and collection):
            window.pos -= size
            raise window.error(
                "a namespace header needs string db and (non-empty) collection, boolean EOF "
                f"and int64 CRC: {doc!r}"
            )
        return db, collection, eof, int(crc)

    def _open(self, db: str, collection: str, start: int) -> _NamespaceState:
        state = self._states.get((db, collection))
        if state is None:
            state = self._states[(db, collection)] = _NamespaceState(db, collection)
        elif state.closed:
            raise ArchiveFormatError(
                "a block after the namespace's EOF block",
                offset=start,
                namespace=state.name,
                decompressed=self._in.decompressed,
            )
        return state

    def _close(self, state: _NamespaceState, stored: int, start: int) -> None:
        window = self._in
        stored &= _UINT64
        if stored != state.crc:
            raise ArchiveFormatError(
                f"CRC mismatch (stored 0x{stored:016x}, computed 0x{state.crc:016x})",
                offset=start,
                namespace=state.name,
                decompressed=window.decompressed,
            )
        state.closed = True
        if window.length("the terminator after an EOF block", state.name) != -1:
            raise window.error("a document inside the namespace's EOF block", state.name)

    def _segment(self, state: _NamespaceState) -> Iterator[tuple[str, memoryview]]:
        """Documents up to the block's terminator; the CRC runs over whole spans of the
        window at once rather than per document."""
        window, name, emit = self._in, state.name, state.selected
        crc, span = state.crc, window.pos
        while True:
            if len(window.data) - window.pos < 4:
                crc = _CRC64.calc(window.view[span : window.pos], crc)
                window.ensure(4)
                span = window.pos
            size = window.length("a document or terminator", name)
            if size == -1:
                break
            if len(window.data) - window.pos < size:
                crc = _CRC64.calc(window.view[span : window.pos], crc)
                window.ensure(size)
                span = window.pos
            doc = window.document(size, "a document", name)
            state.documents += 1
            state.bytes += size
            if emit:
                yield name, doc
        state.crc = _CRC64.calc(window.view[span : window.pos - 4], crc)

    def _finish(self) -> None:
        window = self._in
        unfinished = [s.name for s in self._states.values() if not s.closed]
        if unfinished:
            raise window.error(
                f"the stream ends before the EOF block of {', '.join(unfinished)}",
                truncated=True,
            )
        missing = _prelude_without_data(self.prelude, self._states)
        if missing:
            raise window.error(
                f"the prelude lists {', '.join(missing)}, but the stream ends without their "
                "EOF blocks",
                truncated=True,
            )
        self._finished = True


def summarize(fileobj: Readable) -> ArchiveSummary:
    """Read a whole archive (plain or gzipped), check everything, and describe it: the
    structural verify of a mongo artifact."""
    return ArchiveReader(fileobj).summary()


def iter_documents(
    fileobj: Readable, select: DocumentFilter | None = None
) -> Iterator[tuple[str, memoryview]]:
    """``(namespace, raw BSON document)`` for the selected namespaces, CRCs checked."""
    yield from ArchiveReader(fileobj).documents(select)


# --------------------------------------------------------------------------- writing


def _encode_start(
    server_version: str,
    tool_version: str,
    prelude: Sequence[NamespaceMeta],
    concurrent_collections: int,
) -> list[bytes]:
    """Magic, header, prelude and terminator, with the official field names and types."""
    header = {
        "concurrent_collections": concurrent_collections,  # int32, as mongodump writes it
        "version": FORMAT_VERSION,
        "server_version": server_version,
        "tool_version": tool_version,
    }
    parts = [MAGIC, bson.encode(header)]
    for meta in prelude:
        entry = {
            "db": meta.db,
            "collection": meta.collection,
            "metadata": meta.metadata,
            "size": 0,
            "type": meta.type,
        }
        parts.append(bson.encode(entry))
    parts.append(TERMINATOR)
    return parts


def _block_header(db: str, collection: str, eof: bool, crc: int) -> bytes:
    return bson.encode({"db": db, "collection": collection, "EOF": eof, "CRC": Int64(crc)})


def count_documents(raw: bytes | memoryview, namespace: str = "") -> int:
    """How many BSON documents ``raw`` concatenates; anything else is an error."""
    total, pos, count = len(raw), 0, 0
    while pos < total:
        size = _INT32.unpack_from(raw, pos)[0] if total - pos >= 4 else 0
        if not MIN_BSON_SIZE <= size <= MAX_BSON_SIZE or pos + size > total:
            raise ArchiveFormatError(
                f"a batch is not a sequence of BSON documents: at byte {pos} of "
                f"{total}, length {size} does not fit",
                namespace=namespace or None,
            )
        if raw[pos + size - 1] != 0:
            raise ArchiveFormatError(
                f"a batch holds a document at byte {pos} that does not end with 0x00",
                namespace=namespace or None,
            )
        pos += size
        count += 1
    return count


class ArchiveWriter:
    """Writes a mongodump archive to ``out`` (e.g. a :class:`ParallelGzipWriter`'s write).

    The magic, header and prelude are written on construction. Then, in any interleaving
    of namespaces, :meth:`write_batch` writes one data segment per raw batch and
    :meth:`end_namespace` a namespace's EOF block with its CRC; :meth:`close` checks that
    every namespace was ended. Calls are serialised by a lock, so dump threads may share one
    writer (``out`` is then called by one thread at a time).
    """

    def __init__(
        self,
        out: Callable[[bytes], object],
        *,
        server_version: str,
        tool_version: str,
        prelude: Sequence[NamespaceMeta] = (),
        concurrent_collections: int = 4,
    ) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._metas = {(meta.db, meta.collection): meta for meta in prelude}
        if len(self._metas) != len(prelude):
            raise ValueError("the prelude lists a namespace twice")
        self.prelude = tuple(prelude)
        self._states: dict[tuple[str, str], _NamespaceState] = {}
        self._headers: dict[tuple[str, str], bytes] = {}
        self.bytes_written = 0
        self.closed = False
        for part in _encode_start(server_version, tool_version, prelude, concurrent_collections):
            self._emit(part)

    def _emit(self, data: bytes | memoryview) -> None:
        self._out(data)
        self.bytes_written += len(data)

    def _state(self, db: str, collection: str) -> _NamespaceState:
        if self.closed:
            raise ValueError("the archive writer is closed")
        state = self._states.get((db, collection))
        if state is None:
            state = self._states[(db, collection)] = _NamespaceState(db, collection)
            self._headers[(db, collection)] = _block_header(db, collection, False, 0)
        if state.closed:
            raise ValueError(f"namespace {state.name} was already ended")
        return state

    def write_batch(self, db: str, collection: str, raw: bytes | memoryview) -> int:
        """Write one data segment holding the documents of ``raw`` (concatenated BSON, as
        ``find_raw_batches`` yields it); returns how many documents it held."""
        documents = count_documents(raw, namespace_name(db, collection))
        with self._lock:
            state = self._state(db, collection)
            if not documents:
                return 0
            state.crc = _CRC64.calc(raw, state.crc)
            state.documents += documents
            state.bytes += len(raw)
            self._emit(self._headers[(db, collection)])
            self._emit(raw)
            self._emit(TERMINATOR)
        return documents

    def end_namespace(self, db: str, collection: str) -> NamespaceStats:
        """Write the namespace's EOF block (CRC 0 when it had no documents)."""
        with self._lock:
            state = self._state(db, collection)
            state.closed = True
            self._emit(_block_header(db, collection, True, _signed64(state.crc)))
            self._emit(TERMINATOR)
            return state.stats(_meta_for(self._metas, db, collection))

    def close(self) -> dict[str, NamespaceStats]:
        """Check every namespace was ended; returns the per-namespace totals."""
        with self._lock:
            unfinished = [s.name for s in self._states.values() if not s.closed]
            missing = _prelude_without_data(self.prelude, self._states)
            if unfinished or missing:
                raise ValueError(
                    "namespaces were not ended (mongorestore would refuse the archive): "
                    + ", ".join(unfinished + missing)
                )
            self.closed = True
        return self.namespaces

    @property
    def namespaces(self) -> dict[str, NamespaceStats]:
        return {
            state.name: state.stats(_meta_for(self._metas, *key))
            for key, state in self._states.items()
        }

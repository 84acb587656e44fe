"""The one reader of mongodump archives, plain or gzipped, whoever wrote them.

Why this exists: a Lifeboat Mongo backup is a single mongodump archive (gzipped), whether our
driver-based dumper wrote it or a remote ``mongodump --archive --gzip`` did, so verify and
restore read both with this one reader. It streams: it holds a read-ahead window (1 MiB by
default) plus at most one document, whatever the archive size, and checks everything the
format promises (lengths, trailing zero bytes, block framing, namespace life cycle, the
CRC-64/XZ of every namespace). Every problem becomes an :class:`ArchiveFormatError` that
names the byte offset and the namespace.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from typing import Any

import bson
from bson.errors import BSONError
from bson.int64 import Int64

from engine.mongo_archive.format import (
    CRC64,
    FORMAT_VERSION,
    MAGIC,
    ArchiveFormatError,
    ArchiveSummary,
    NamespaceMeta,
    NamespaceState,
    NamespaceStats,
    meta_for,
    namespace_name,
    prelude_without_data,
)
from engine.mongo_archive.stream import Readable, Window, open_archive

READ_CHUNK = 1024 * 1024

_UINT64 = (1 << 64) - 1
_BLOCK_KEYS = ("db", "collection", "EOF", "CRC")
_HEADER_TYPES: dict[str, type] = {
    "concurrent_collections": int,
    "version": str,
    "server_version": str,
    "tool_version": str,
}

DocumentFilter = Callable[[str], bool]


def _decode(
    window: Window, raw: memoryview, what: str, namespace: str | None = None
) -> dict[str, Any]:
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
        self._in = Window(stream, chunk_size, self.compressed)
        self._states: dict[tuple[str, str], NamespaceState] = {}
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
        return meta_for(self._metas, db, collection)

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

    def _open(self, db: str, collection: str, start: int) -> NamespaceState:
        state = self._states.get((db, collection))
        if state is None:
            state = self._states[(db, collection)] = NamespaceState(db, collection)
        elif state.closed:
            raise ArchiveFormatError(
                "a block after the namespace's EOF block",
                offset=start,
                namespace=state.name,
                decompressed=self._in.decompressed,
            )
        return state

    def _close(self, state: NamespaceState, stored: int, start: int) -> None:
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

    def _segment(self, state: NamespaceState) -> Iterator[tuple[str, memoryview]]:
        """Documents up to the block's terminator; the CRC runs over whole spans of the
        window at once rather than per document."""
        window, name, emit = self._in, state.name, state.selected
        crc, span = state.crc, window.pos
        while True:
            if len(window.data) - window.pos < 4:
                crc = CRC64.calc(window.view[span : window.pos], crc)
                window.ensure(4)
                span = window.pos
            size = window.length("a document or terminator", name)
            if size == -1:
                break
            if len(window.data) - window.pos < size:
                crc = CRC64.calc(window.view[span : window.pos], crc)
                window.ensure(size)
                span = window.pos
            doc = window.document(size, "a document", name)
            state.documents += 1
            state.bytes += size
            if emit:
                yield name, doc
        state.crc = CRC64.calc(window.view[span : window.pos - 4], crc)

    def _finish(self) -> None:
        window = self._in
        unfinished = [s.name for s in self._states.values() if not s.closed]
        if unfinished:
            raise window.error(
                f"the stream ends before the EOF block of {', '.join(unfinished)}",
                truncated=True,
            )
        missing = prelude_without_data(self.prelude, self._states)
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

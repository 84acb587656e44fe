"""The one writer of mongodump archives: what ``mongorestore --archive`` reads.

Why this exists: our driver-based dumper must produce exactly what the official tools write,
so ``mongorestore --archive --gzip`` reads our backups and our reader reads theirs. The
writer takes raw batches (what pymongo's ``find_raw_batches`` yields) and passes them on
without copying, one data segment per batch, so segments of collections dumped concurrently
interleave exactly as mongodump's multiplexer does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import bson
from bson.int64 import Int64

from engine.mongo_archive.format import (
    CRC64,
    FORMAT_VERSION,
    INT32,
    MAGIC,
    MAX_BSON_SIZE,
    MIN_BSON_SIZE,
    TERMINATOR,
    ArchiveFormatError,
    NamespaceMeta,
    NamespaceState,
    NamespaceStats,
    meta_for,
    namespace_name,
    prelude_without_data,
)


def _signed64(value: int) -> int:
    """The int64 with the same bits as an unsigned CRC (how the archive stores it)."""
    return value - (1 << 64) if value >= 1 << 63 else value


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
        size = INT32.unpack_from(raw, pos)[0] if total - pos >= 4 else 0
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
        out: Callable[[bytes | memoryview], object],
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
        self._states: dict[tuple[str, str], NamespaceState] = {}
        self._headers: dict[tuple[str, str], bytes] = {}
        self.bytes_written = 0
        self.closed = False
        for part in _encode_start(server_version, tool_version, prelude, concurrent_collections):
            self._emit(part)

    def _emit(self, data: bytes | memoryview) -> None:
        self._out(data)
        self.bytes_written += len(data)

    def _state(self, db: str, collection: str) -> NamespaceState:
        if self.closed:
            raise ValueError("the archive writer is closed")
        state = self._states.get((db, collection))
        if state is None:
            state = self._states[(db, collection)] = NamespaceState(db, collection)
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
            state.crc = CRC64.calc(raw, state.crc)
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
            return state.stats(meta_for(self._metas, db, collection))

    def close(self) -> dict[str, NamespaceStats]:
        """Check every namespace was ended; returns the per-namespace totals."""
        with self._lock:
            unfinished = [s.name for s in self._states.values() if not s.closed]
            missing = prelude_without_data(self.prelude, self._states)
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
            state.name: state.stats(meta_for(self._metas, *key))
            for key, state in self._states.items()
        }

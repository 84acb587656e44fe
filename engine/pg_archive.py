"""PostgreSQL's custom dump format (``pg_dump -Fc``), read as a stream: checked whole, and
described.

An archive is ``PGDMP``, a version, the sizes of its integers and offsets, the compression,
the database's name and the server's and pg_dump's versions; then the table of contents (one
entry per object: its id, kind, schema, name, owner, dependencies, whether data follows);
then one data block per entry that has data, in dump order. A block is a type byte, the
entry's id, and length-prefixed chunks ending with an empty one; a table's chunks are its
``COPY`` text (one row a line, ended by ``\\.``), compressed as one zlib stream when the
archive is compressed with gzip.

:func:`summarize` reads one end to end in one pass: every field and length is checked, every
block must belong to an entry that has data and every such entry must have its block, and a
gzip stream must end whole (its Adler-32 checked). Rows are counted per table from the data
itself, so the manifest records exact counts, not the planner's estimates. Nothing is kept
but the table of contents' names, so memory stays flat whatever the dump holds. lz4 and
zstd data (PostgreSQL 16 and later) are framed and checked, but not counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, cast

from isal import isal_zlib as zlib  # zlib's API, inflating in half the time

from engine.errors import LifeboatError

MAGIC = b"PGDMP"
FORMAT_CUSTOM = 1
OLDEST, NEWEST = (1, 12, 0), (1, 16, 0)  # PostgreSQL 9.0 to 17's pg_dump
READ_BLOCK = 1024 * 1024
MAX_STRING = 256 * 1024 * 1024  # a definition longer than this is not one pg_dump wrote
MAX_ENTRIES = 10_000_000
INFLATE_STEP = 4 * 1024 * 1024  # decompressed bytes looked at a time: a zlib bomb stays flat
BLOCK_DATA, BLOCK_BLOBS = 1, 3
OFFSET_NO_DATA = 3
COMPRESSION = {0: "none", 1: "gzip", 2: "lz4", 3: "zstd"}
COPY_END = b"\\.\n"
INFLATE_ERROR = cast(type[Exception], zlib.error)  # isal's stub calls it an instance


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class PgArchiveError(LifeboatError):
    """The stream is not a whole, sound custom-format dump; the message names the offset."""


@dataclass(frozen=True)
class TocEntry:
    """One object of the dump, as its table of contents names it."""

    dump_id: int
    desc: str  # TABLE, TABLE DATA, INDEX, FK CONSTRAINT, SEQUENCE SET, BLOBS...
    namespace: str  # the schema ("" for objects outside one)
    tag: str  # the object's name
    owner: str
    deps: tuple[int, ...]
    has_data: bool  # a data block follows for it

    @property
    def qualified(self) -> str:
        return f"{self.namespace}.{self.tag}" if self.namespace else self.tag


@dataclass
class PgArchiveSummary:
    version: tuple[int, int, int]
    database: str
    server_version: str  # what the dumped server said it was: "15.18 (Debian 15.18-0+deb12u1)"
    dump_version: str  # pg_dump's own
    compression: str
    entries: list[TocEntry] = field(default_factory=list)
    rows: dict[int, int] = field(default_factory=dict)  # TABLE DATA dump id -> rows read

    def tables(self) -> dict[str, int | None]:
        """``schema.table`` -> rows in the dump (None where the data could not be counted),
        for every table whose data was dumped."""
        return {
            e.qualified: self.rows.get(e.dump_id) for e in self.entries if e.desc == "TABLE DATA"
        }


class _Reader:
    """Exact reads from a stream, in blocks, with the offset of the next byte."""

    def __init__(self, raw: Readable) -> None:
        self._raw = raw
        self._buffer = b""
        self._at = 0
        self._base = 0
        self.int_size = 4
        self.offset_size = 8

    @property
    def offset(self) -> int:
        return self._base + self._at

    def error(self, what: str) -> PgArchiveError:
        return PgArchiveError(f"{what} at byte {self.offset}")

    def _fill(self, wanted: int) -> bool:
        """At least ``wanted`` unread bytes buffered, or False at the end of the stream."""
        while len(self._buffer) - self._at < wanted:
            block = self._raw.read(max(READ_BLOCK, wanted))
            if not block:
                return False
            self._base += self._at
            self._buffer = self._buffer[self._at :] + block
            self._at = 0
        return True

    def at_end(self) -> bool:
        return not self._fill(1)

    def take(self, size: int, what: str) -> bytes:
        if not self._fill(size):
            raise self.error(f"the dump ends inside {what} (truncated)")
        data = self._buffer[self._at : self._at + size]
        self._at += size
        return data

    def chunks(self, size: int, what: str) -> Iterator[bytes]:
        """``size`` bytes in pieces of at most a block: a long value is never held whole."""
        while size > 0:
            piece = self.take(min(size, READ_BLOCK), what)
            size -= len(piece)
            yield piece

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def int(self, what: str) -> int:
        """pg_dump's integer: a sign byte, then ``int_size`` bytes, least significant first."""
        raw = self.take(1 + self.int_size, what)
        value = int.from_bytes(raw[1:], "little")
        return -value if raw[0] else value

    def string(self, what: str) -> str | None:
        """A length-prefixed string (None for length -1)."""
        size = self.int(f"the length of {what}")
        if size < 0:
            return None
        if size > MAX_STRING:
            raise self.error(f"{what} claims {size} bytes")
        return self.take(size, what).decode("utf-8", errors="replace")

    def skip_string(self, what: str) -> None:
        size = self.int(f"the length of {what}")
        if size > MAX_STRING:
            raise self.error(f"{what} claims {size} bytes")
        for _ in self.chunks(max(size, 0), what):
            pass


def summarize(raw: Readable) -> PgArchiveSummary:
    """Read a whole custom-format dump from ``raw``, checking it, and describe it; raises
    PgArchiveError naming the first problem and its byte offset."""
    reader = _Reader(raw)
    summary = _read_header(reader)
    _read_toc(reader, summary)
    _read_blocks(reader, summary)
    return summary


def table_of_contents(raw: Readable) -> PgArchiveSummary:
    """The header and table of contents only (they come first): what a selective restore
    chooses from, without reading the data."""
    reader = _Reader(raw)
    summary = _read_header(reader)
    _read_toc(reader, summary)
    return summary


def _read_header(reader: _Reader) -> PgArchiveSummary:
    if reader.take(len(MAGIC), "the header") != MAGIC:
        raise PgArchiveError("not a pg_dump custom-format archive (no PGDMP header)")
    version = (reader.byte("the version"), reader.byte("the version"), reader.byte("the version"))
    if not OLDEST <= version <= NEWEST:
        raise PgArchiveError(
            f"archive version {version[0]}.{version[1]}: this Lifeboat reads "
            f"{OLDEST[0]}.{OLDEST[1]} to {NEWEST[0]}.{NEWEST[1]} (pg_dump 9.0 to 17)"
        )
    reader.int_size = reader.byte("the integer size")
    offset_size = reader.byte("the offset size")
    if reader.int_size not in (4, 8) or offset_size not in (4, 8):
        raise reader.error(f"integer size {reader.int_size}, offset size {offset_size}")
    reader.offset_size = offset_size
    if (form := reader.byte("the format")) != FORMAT_CUSTOM:
        raise PgArchiveError(f"archive format {form}: only the custom format (-Fc) is read")
    if version >= (1, 15, 0):
        algorithm = reader.byte("the compression")
        if algorithm not in COMPRESSION:
            raise reader.error(f"unknown compression {algorithm}")
        compression = COMPRESSION[algorithm]
    else:
        compression = "gzip" if reader.int("the compression level") != 0 else "none"
    for _ in range(7):  # when it was made: seconds, minutes ... year, daylight saving
        reader.int("the creation date")
    database = reader.string("the database name") or ""
    server = reader.string("the server version") or ""
    dumper = reader.string("pg_dump's version") or ""
    return PgArchiveSummary(version, database, server, dumper, compression)


def _read_toc(reader: _Reader, summary: PgArchiveSummary) -> None:
    count = reader.int("the number of entries")
    if not 0 <= count <= MAX_ENTRIES:
        raise reader.error(f"{count} entries in the table of contents")
    seen: set[int] = set()
    for _ in range(count):
        dump_id = reader.int("an entry's id")
        if dump_id <= 0 or dump_id in seen:
            raise reader.error(f"entry id {dump_id} is out of range or repeated")
        seen.add(dump_id)
        reader.int("an entry's dumper flag")
        reader.string("an entry's table oid")
        reader.string("an entry's oid")
        tag = reader.string("an entry's name") or ""
        desc = reader.string("an entry's kind") or ""
        reader.int("an entry's section")
        for what in ("definition", "drop statement", "copy statement"):
            reader.skip_string(f"an entry's {what}")
        namespace = reader.string("an entry's schema") or ""
        reader.skip_string("an entry's tablespace")
        if summary.version >= (1, 14, 0):
            reader.skip_string("an entry's table access method")
        if summary.version >= (1, 16, 0):
            reader.int("an entry's relation kind")
        owner = reader.string("an entry's owner") or ""
        reader.skip_string("an entry's WITH OIDS flag")
        deps = []
        while (dep := reader.string("a dependency")) is not None:
            if not dep.isdigit():
                raise reader.error(f"dependency {dep!r} of entry {dump_id} is not an id")
            deps.append(int(dep))
        flag = reader.byte("an entry's data offset")
        reader.take(reader.offset_size, "an entry's data offset")
        summary.entries.append(
            TocEntry(dump_id, desc, namespace, tag, owner, tuple(deps), flag != OFFSET_NO_DATA)
        )


def _read_blocks(reader: _Reader, summary: PgArchiveSummary) -> None:
    wanted = {e.dump_id: e for e in summary.entries if e.has_data}
    while not reader.at_end():
        kind = reader.byte("a data block")
        dump_id = reader.int("a data block's entry id")
        entry = wanted.pop(dump_id, None)
        if entry is None:
            raise reader.error(f"a data block for entry {dump_id}, which has no data or had one")
        if kind == BLOCK_DATA:
            rows = _read_data(reader, summary.compression, entry)
            if entry.desc == "TABLE DATA" and rows is not None:
                summary.rows[dump_id] = rows
        elif kind == BLOCK_BLOBS:
            while reader.int("a large object's oid") != 0:
                _read_data(reader, summary.compression, entry)
        else:
            raise reader.error(f"data block type {kind}")
    if wanted:
        missing = ", ".join(e.qualified or e.desc for e in list(wanted.values())[:5])
        raise PgArchiveError(
            f"the dump ends without the data of {len(wanted)} entries ({missing}): truncated"
        )


def _read_data(reader: _Reader, compression: str, entry: TocEntry) -> int | None:
    """Step over one block's chunks, checking them; the rows of ``COPY`` text they hold
    (None when its compression is not one read here)."""
    what = f"the data of {entry.qualified or entry.desc}"
    counter = _RowCounter(compression)
    while (size := reader.int(f"a chunk's length in {what}")) != 0:
        if size < 0:
            raise reader.error(f"a chunk of {size} bytes in {what}")
        for piece in reader.chunks(size, what):
            counter.feed(piece, reader, what)
    return counter.finish(reader, what)


class _RowCounter:
    """Counts the lines of a table's ``COPY`` text as its chunks stream by, inflating them
    when they are gzip's, a bounded step at a time."""

    def __init__(self, compression: str) -> None:
        self._inflate = zlib.decompressobj() if compression == "gzip" else None
        self._counted = compression in ("gzip", "none")
        self._lines = 0
        self._tail = b""
        self._fed = False

    def feed(self, piece: bytes, reader: _Reader, what: str) -> None:
        self._fed = True
        if not self._counted:
            return
        if self._inflate is None:
            self._count(piece)
            return
        try:
            data = self._inflate.decompress(piece, INFLATE_STEP)
            self._count(data)
            while self._inflate.unconsumed_tail:
                self._count(self._inflate.decompress(self._inflate.unconsumed_tail, INFLATE_STEP))
        except INFLATE_ERROR as exc:
            raise reader.error(f"{what} does not inflate ({exc})") from None
        if self._inflate.eof and self._inflate.unused_data:
            raise reader.error(f"{what} has bytes after its compressed stream")

    def _count(self, data: bytes) -> None:
        self._lines += data.count(b"\n")
        self._tail = (self._tail + data)[-8:]

    def finish(self, reader: _Reader, what: str) -> int | None:
        if not self._counted:
            return None
        if self._inflate is not None and self._fed and not self._inflate.eof:
            raise reader.error(f"{what} ends inside its compressed stream (truncated)")
        end = self._tail.rfind(COPY_END)
        if end < 0:
            return self._lines
        return self._lines - self._tail[end:].count(b"\n")

"""The Redis/Valkey RDB snapshot format, read as a stream: checked whole, and described.

A snapshot is ``REDIS`` and a four-digit version, then opcodes (auxiliary fields, database
selectors with their sizes, expiry and eviction hints, function libraries) and keys with
their values, then ``0xFF`` and the CRC-64 (Jones, as Redis computes it) of everything
before it. :func:`summarize` reads one end to end in one pass: every length and encoding is
checked, every key counted per database, the checksum compared, and nothing may follow it.
Values are skipped, never kept, so memory stays flat whatever the snapshot holds; the only
thing it cannot step over is a module type, whose encoding only its module knows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import anycrc

from engine.errors import LifeboatError

MAGIC = b"REDIS"
MAX_VERSION = 12  # Valkey 8 writes 11; 12 is Redis 7.4's
READ_BLOCK = 1024 * 1024

# Opcodes
OP_FUNCTION2, OP_MODULE_AUX, OP_IDLE, OP_FREQ = 0xF5, 0xF7, 0xF8, 0xF9
OP_AUX, OP_RESIZEDB, OP_EXPIRETIME_MS, OP_EXPIRETIME = 0xFA, 0xFB, 0xFC, 0xFD
OP_SELECTDB, OP_EOF, OP_SLOT_INFO = 0xFE, 0xFF, 0xF4

# Value types: those stored as one string (ziplists, listpacks, intsets, zipmaps)
BLOB_TYPES = {9, 10, 11, 12, 13, 16, 17, 20}
STRING, LIST, SET, ZSET, HASH, ZSET_2 = 0, 1, 2, 3, 4, 5
MODULE, MODULE_2, QUICKLIST, QUICKLIST_2 = 6, 7, 14, 18
STREAMS = {15: 1, 19: 2, 21: 3}  # the stream encodings and their versions


class _Crc(Protocol):
    def calc(self, data: bytes | memoryview, init: int | None = None, /) -> int: ...


CRC64: _Crc = anycrc.Model("CRC64-REDIS")


class RdbFormatError(LifeboatError):
    """The stream is not a whole, sound RDB snapshot; the message names the byte offset."""


@dataclass
class RdbSummary:
    version: int
    keys: dict[int, int] = field(default_factory=dict)  # database number -> keys read
    expiring: dict[int, int] = field(default_factory=dict)  # of those, keys with a TTL
    aux: dict[str, str] = field(default_factory=dict)  # redis-ver, redis-bits, ctime...

    @property
    def total_keys(self) -> int:
        return sum(self.keys.values())


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class RdbStream:
    """Exact reads from a stream, in blocks. The CRC is computed over each block's consumed
    bytes once, when the block is left behind: one call per block, never one per field."""

    def __init__(self, raw: Readable) -> None:
        self._raw = raw
        self._buffer = b""
        self._at = 0  # the next byte in _buffer
        self._base = 0  # the offset of _buffer[0] from the start
        self._crc = 0  # of every byte before _buffer
        self._crc_from = 0
        self._kept: int | None = None  # where the bytes :meth:`keeping` returns start

    @property
    def offset(self) -> int:
        return self._base + self._at

    @property
    def crc(self) -> int:
        """The CRC-64 of every byte consumed so far."""
        return CRC64.calc(memoryview(self._buffer)[self._crc_from : self._at], self._crc)

    def _fill(self, size: int) -> None:
        """Make ``size`` bytes available at the read position."""
        while len(self._buffer) - self._at < size:
            more = self._raw.read(max(READ_BLOCK, size))
            if not more:
                raise RdbFormatError(
                    f"the snapshot ends at byte {self._base + len(self._buffer)} inside a "
                    "record: it is truncated"
                )
            self._crc = self.crc
            drop = self._at if self._kept is None else self._kept
            self._base += drop
            self._buffer = self._buffer[drop:] + more
            self._at -= drop
            self._crc_from = self._at
            if self._kept is not None:
                self._kept = 0

    def take(self, size: int) -> bytes:
        if len(self._buffer) - self._at < size:
            self._fill(size)
        at = self._at
        self._at = at + size
        return self._buffer[at : at + size]

    def skip(self, size: int) -> None:
        while size:
            step = min(size, READ_BLOCK)
            if len(self._buffer) - self._at < step:
                self._fill(step)
            self._at += step
            size -= step

    def skip_string(self) -> bool:
        """Skip a plain or LZF string whose lengths fit in two bytes, all of it in the block
        (the common case, without a call per field); False (nothing consumed) otherwise."""
        buffer, at = self._buffer, self._at
        end = len(buffer)
        if end - at < 5:
            return False
        first = buffer[at]
        if first < 0x40:
            size, at = first, at + 1
        elif first < 0x80:
            size, at = ((first & 0x3F) << 8) | buffer[at + 1], at + 2
        elif first == 0xC3:  # LZF: the compressed length, then the uncompressed one
            at += 1
            lengths = []
            for _ in range(2):
                byte = buffer[at]
                if byte < 0x40:
                    lengths.append(byte)
                    at += 1
                elif byte < 0x80:
                    lengths.append(((byte & 0x3F) << 8) | buffer[at + 1])
                    at += 2
                else:
                    return False
            size = lengths[0]
        else:
            return False
        if end - at < size:
            return False
        self._at = at + size
        return True

    def keep(self) -> None:
        """Keep every byte from here on, for :meth:`kept` (a value, whole, however long)."""
        self._kept = self._at

    def kept(self) -> bytes:
        """The bytes read since :meth:`keep`."""
        assert self._kept is not None
        data, self._kept = self._buffer[self._kept : self._at], None
        return data

    def skip_string_records(self) -> tuple[int, int]:
        """Skip the run of records ahead that are a string key holding a string (plain or
        LZF, lengths under 16 KiB), each maybe after a millisecond expiry, all within the
        block: the bulk of most snapshots, in one call rather than several per record. How
        many it skipped, and how many of them had an expiry; it stops, consuming nothing of
        it, at the first record it does not take this way."""
        buffer, at = self._buffer, self._at
        last = len(buffer) - 5  # the furthest a string's header may start
        records = expiring = 0
        while at < last:
            expires = buffer[at] == OP_EXPIRETIME_MS
            after = at + 9 if expires else at
            if after >= last or buffer[after] != STRING:
                break
            after = _past_string(buffer, after + 1)
            if after < 0 or after >= last:
                break
            after = _past_string(buffer, after)
            if after < 0 or after > last + 5:
                break
            at = after
            records += 1
            expiring += expires
        self._at = at
        return records, expiring

    def byte(self) -> int:
        if self._at >= len(self._buffer):
            self._fill(1)
        value = self._buffer[self._at]
        self._at += 1
        return value

    def rest(self) -> bytes:
        """Whatever follows (after the checksum: nothing, in a sound snapshot)."""
        extra = self._buffer[self._at :] + self._raw.read(1)
        self._at = len(self._buffer)
        return extra

    def error(self, problem: str) -> RdbFormatError:
        return RdbFormatError(f"byte {self.offset}: {problem}")


def _past_string(buffer: bytes, at: int) -> int:
    """Where the plain or LZF string at ``at`` ends, when its lengths fit in two bytes (-1
    otherwise); its header is in ``buffer``, its bytes may not be."""
    first = buffer[at]
    if first < 0x40:
        return at + 1 + first
    if first < 0x80:
        return at + 2 + (((first & 0x3F) << 8) | buffer[at + 1])
    if first == 0xC3 and buffer[at + 1] < 0x40:
        size = buffer[at + 2]
        if size < 0x40:
            return at + 3 + buffer[at + 1]
        if size < 0x80:
            return at + 4 + buffer[at + 1]
    return -1


def read_length(stream: RdbStream) -> tuple[int, bool]:
    """A length, or (True) the kind of a specially encoded string."""
    first = stream.byte()
    kind = first >> 6
    if kind == 0:
        return first & 0x3F, False
    if kind == 1:
        return ((first & 0x3F) << 8) | stream.byte(), False
    if kind == 3:
        return first & 0x3F, True
    if first == 0x80:
        return int.from_bytes(stream.take(4), "big"), False
    if first == 0x81:
        return int.from_bytes(stream.take(8), "big"), False
    raise stream.error(f"unknown length encoding {first:#04x}")


def plain_length(stream: RdbStream) -> int:
    size, special = read_length(stream)
    if special:
        raise stream.error("an encoded string where a length was expected")
    return size


def _skip_string(stream: RdbStream) -> None:
    if not stream.skip_string():
        skip_string_body(stream, *read_length(stream))


def skip_string_body(stream: RdbStream, size: int, special: bool) -> None:
    if not special:
        stream.skip(size)
    elif size in (0, 1, 2):  # an integer of 1, 2 or 4 bytes
        stream.skip(1 << size)
    elif size == 3:  # LZF: compressed length, uncompressed length, the compressed bytes
        compressed = plain_length(stream)
        plain_length(stream)
        stream.skip(compressed)
    else:
        raise stream.error(f"unknown string encoding {size}")


def _string(stream: RdbStream, limit: int = 64 * 1024) -> str:
    """A short string (an aux field), as text; a long or compressed one is skipped."""
    size, special = read_length(stream)
    if special and size in (0, 1, 2):
        return str(int.from_bytes(stream.take(1 << size), "little", signed=True))
    if special or size > limit:
        skip_string_body(stream, size, special)
        return ""
    return stream.take(size).decode("utf-8", "replace")


def _skip_strings(stream: RdbStream, count: int) -> None:
    for _ in range(count):
        _skip_string(stream)


def _skip_double(stream: RdbStream) -> None:
    """An old-style zset score: a length byte (253-255: nan, +inf, -inf) and ASCII."""
    size = stream.byte()
    if size < 253:
        stream.skip(size)


def _skip_stream(stream: RdbStream, version: int) -> None:
    _skip_strings(stream, 2 * plain_length(stream))  # listpacks: node key, listpack
    for _ in range(3):  # items, last id (ms, seq)
        plain_length(stream)
    if version >= 2:
        for _ in range(5):  # first id, max deleted id, entries added
            plain_length(stream)
    for _ in range(plain_length(stream)):  # consumer groups
        _skip_string(stream)
        plain_length(stream)
        plain_length(stream)  # the group's last id
        if version >= 2:
            plain_length(stream)  # entries read
        for _ in range(plain_length(stream)):  # pending entries: id, delivery time, count
            stream.skip(16 + 8)
            plain_length(stream)
        for _ in range(plain_length(stream)):  # consumers
            _skip_string(stream)
            stream.skip(8 if version < 3 else 16)  # seen time (and active time)
            stream.skip(16 * plain_length(stream))  # its pending ids


def skip_value(stream: RdbStream, kind: int) -> None:
    if kind == STRING or kind in BLOB_TYPES:
        _skip_string(stream)
    elif kind in (LIST, SET, QUICKLIST):
        _skip_strings(stream, plain_length(stream))
    elif kind == HASH:
        _skip_strings(stream, 2 * plain_length(stream))
    elif kind == ZSET:
        for _ in range(plain_length(stream)):
            _skip_string(stream)
            _skip_double(stream)
    elif kind == ZSET_2:
        for _ in range(plain_length(stream)):
            _skip_string(stream)
            stream.skip(8)
    elif kind == QUICKLIST_2:
        for _ in range(plain_length(stream)):
            plain_length(stream)  # the node's container kind
            _skip_string(stream)
    elif kind in STREAMS:
        _skip_stream(stream, STREAMS[kind])
    elif kind in (MODULE, MODULE_2):
        raise stream.error("a module's value type: only its module can read it")
    else:
        raise stream.error(f"unknown value type {kind}")


def summarize(raw: Readable, progress: Callable[[int], None] | None = None) -> RdbSummary:
    """Read a whole RDB snapshot from ``raw`` (RdbFormatError when it is not one) and count
    its keys per database."""
    stream = RdbStream(raw)
    head = stream.take(9)
    if not head.startswith(MAGIC) or not head[5:].isdigit():
        raise RdbFormatError("not an RDB snapshot (it does not start with REDIS and a version)")
    summary = RdbSummary(int(head[5:]))
    if not 1 <= summary.version <= MAX_VERSION:
        raise RdbFormatError(
            f"RDB version {summary.version} is newer than this Lifeboat reads ({MAX_VERSION})"
        )
    database = 0
    expires = False  # the next key has a TTL
    while True:
        if progress is not None:
            progress(stream.offset)
        records, with_ttl = stream.skip_string_records()
        if records:
            summary.keys[database] = summary.keys.get(database, 0) + records
            if with_ttl:
                summary.expiring[database] = summary.expiring.get(database, 0) + with_ttl
            if expires:  # an expiry read alone before the run applies to its first key
                summary.expiring[database] = summary.expiring.get(database, 0) + 1
                expires = False
        opcode = stream.byte()
        if opcode == OP_EOF:
            break
        if opcode == OP_AUX:
            key = _string(stream)
            summary.aux[key] = _string(stream)
        elif opcode == OP_SELECTDB:
            database = plain_length(stream)
            summary.keys.setdefault(database, 0)
        elif opcode == OP_RESIZEDB:
            plain_length(stream)
            plain_length(stream)
        elif opcode in (OP_EXPIRETIME_MS, OP_EXPIRETIME):
            stream.skip(8 if opcode == OP_EXPIRETIME_MS else 4)
            expires = True
        elif opcode == OP_FREQ:
            stream.skip(1)
        elif opcode == OP_IDLE:
            plain_length(stream)
        elif opcode == OP_FUNCTION2:
            _skip_string(stream)
        elif opcode == OP_SLOT_INFO:
            for _ in range(3):
                plain_length(stream)
        elif opcode == OP_MODULE_AUX:
            raise stream.error("module data: only its module can read it")
        else:
            _skip_string(stream)  # the key
            skip_value(stream, opcode)
            summary.keys[database] = summary.keys.get(database, 0) + 1
            if expires:
                summary.expiring[database] = summary.expiring.get(database, 0) + 1
                expires = False
    computed = stream.crc
    if summary.version >= 5:
        stored = int.from_bytes(stream.take(8), "little")
        if stored not in (0, computed):  # 0: written with checksums off (rdbchecksum no)
            raise RdbFormatError(
                f"the snapshot's CRC-64 ({stored:016x}) does not match its content "
                f"({computed:016x}): it is damaged"
            )
    if stream.rest():
        raise RdbFormatError(f"bytes follow the end of the snapshot at byte {stream.offset}")
    return summary

"""A selective Redis restore's keys: those of a snapshot whose names match patterns, each
as the payload ``DUMP`` would give (for ``RESTORE ... REPLACE``), read as a stream.

A ``DUMP`` payload is the value exactly as an RDB file holds it (its type byte, then its
encoding), the RDB version as two bytes and a CRC-64 of both, little-endian: so a value is
copied out of the snapshot byte for byte, never decoded, and the server checks its version
and checksum when it takes it. Key names are decoded (plain, integer-encoded or LZF) to be
matched with the patterns, Redis's glob syntax (``*``, ``?``, ``[...]``), compared byte for
byte. A key's expiry comes along as an absolute time; one already past is left out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from engine.redis_rdb import (
    CRC64,
    MAGIC,
    MAX_VERSION,
    OP_AUX,
    OP_EOF,
    OP_EXPIRETIME,
    OP_EXPIRETIME_MS,
    OP_FREQ,
    OP_FUNCTION2,
    OP_IDLE,
    OP_MODULE_AUX,
    OP_RESIZEDB,
    OP_SELECTDB,
    OP_SLOT_INFO,
    RdbFormatError,
    RdbStream,
    Readable,
    plain_length,
    read_length,
    skip_string_body,
    skip_value,
)


@dataclass(frozen=True)
class DumpedKey:
    db: int
    key: bytes
    payload: bytes  # as DUMP gives it
    expires_ms: int | None  # absolute, in milliseconds since the epoch


def matching_keys(raw: Readable, patterns: Sequence[str]) -> Iterator[DumpedKey]:
    """The keys of the snapshot in ``raw`` that one of ``patterns`` matches, as they come."""
    wanted = [pattern.encode().decode("latin-1") for pattern in patterns]
    stream = RdbStream(raw)
    head = stream.take(9)
    if not head.startswith(MAGIC) or not head[5:].isdigit():
        raise RdbFormatError("not an RDB snapshot (it does not start with REDIS and a version)")
    version = int(head[5:])
    if not 1 <= version <= MAX_VERSION:
        raise RdbFormatError(f"RDB version {version} is newer than this Lifeboat reads")
    trailer = version.to_bytes(2, "little")
    database, expires = 0, None
    while (opcode := stream.byte()) != OP_EOF:
        if opcode in (OP_AUX, OP_FUNCTION2):
            for _ in range(2 if opcode == OP_AUX else 1):
                skip_string_body(stream, *read_length(stream))
        elif opcode == OP_SELECTDB:
            database = plain_length(stream)
        elif opcode in (OP_RESIZEDB, OP_IDLE, OP_SLOT_INFO):
            for _ in range({OP_RESIZEDB: 2, OP_IDLE: 1, OP_SLOT_INFO: 3}[opcode]):
                plain_length(stream)
        elif opcode == OP_EXPIRETIME_MS:
            expires = int.from_bytes(stream.take(8), "little")
        elif opcode == OP_EXPIRETIME:
            expires = int.from_bytes(stream.take(4), "little") * 1000
        elif opcode == OP_FREQ:
            stream.skip(1)
        elif opcode == OP_MODULE_AUX:
            raise stream.error("module data: only its module can read it")
        else:
            key = key_name(stream)
            chosen = any(fnmatchcase(key.decode("latin-1"), p) for p in wanted)
            if chosen:
                stream.keep()
            skip_value(stream, opcode)
            if chosen:
                body = bytes([opcode]) + stream.kept() + trailer
                payload = body + CRC64.calc(body).to_bytes(8, "little")
                yield DumpedKey(database, key, payload, expires)
            expires = None


def key_name(stream: RdbStream) -> bytes:
    """A key's name, decoded: plain, an integer, or LZF-compressed."""
    size, special = read_length(stream)
    if not special:
        return stream.take(size)
    if size in (0, 1, 2):
        return str(int.from_bytes(stream.take(1 << size), "little", signed=True)).encode()
    if size != 3:
        raise stream.error(f"unknown string encoding {size}")
    compressed, length = plain_length(stream), plain_length(stream)
    return lzf_decompress(stream.take(compressed), length, stream)


def lzf_decompress(data: bytes, length: int, stream: RdbStream) -> bytes:
    """LZF (as Redis compresses strings), checked to make exactly ``length`` bytes."""
    out = bytearray()
    at = 0
    while at < len(data):
        control = data[at]
        at += 1
        if control < 32:  # a literal run
            out += data[at : at + control + 1]
            at += control + 1
            continue
        run = control >> 5
        if run == 7:
            run += data[at] if at < len(data) else 0
            at += 1
        back = ((control & 0x1F) << 8) + (data[at] if at < len(data) else 0) + 1
        at += 1
        if back > len(out):
            raise stream.error("an LZF back-reference before the start of the key")
        start = len(out) - back
        for i in range(run + 2):  # may overlap what it copies: byte by byte
            out.append(out[start + i])
    if len(out) != length or at != len(data):
        raise stream.error(f"an LZF key of {len(out)} bytes where {length} were recorded")
    return bytes(out)


def resp(*parts: bytes) -> bytes:
    """One command in Redis's protocol (what ``redis-cli --pipe`` reads)."""
    encoded = [b"*%d\r\n" % len(parts)]
    for part in parts:
        encoded += [b"$%d\r\n" % len(part), part, b"\r\n"]
    return b"".join(encoded)

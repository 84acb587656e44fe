"""The byte stream under an archive reader: gzip sniffing and a read-ahead window.

Why this exists: the reader checks the archive's structure, and this module keeps it apart
from how the bytes arrive. :func:`open_archive` takes a plain or gzipped stream alike (it
sniffs the gzip magic and puts the bytes it read back); :class:`Window` holds a read-ahead
window over the stream and hands out documents as zero-copy slices of it, turning every
short read, corrupt gzip member or impossible length into an :class:`ArchiveFormatError`
that names the byte offset.
"""

from __future__ import annotations

import gzip
import zlib
from typing import BinaryIO, Protocol, cast

from engine.mongo_archive.format import INT32, MAX_BSON_SIZE, MIN_BSON_SIZE, ArchiveFormatError


class Readable(Protocol):
    """Any binary stream: a file, a pipe, a ``GzipFile``, a hashing wrapper."""

    def read(self, size: int = -1, /) -> bytes: ...


class Prefixed:
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
        stream = Prefixed(head, fileobj)
    if head == b"\x1f\x8b":
        # typeshed wants a seekable fileobj; GzipFile seeks only to rewind, which reading never does
        return gzip.GzipFile(fileobj=cast(BinaryIO, stream), mode="rb")
    return stream


class Window:
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
        size: int = INT32.unpack_from(self.data, self.pos)[0]
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

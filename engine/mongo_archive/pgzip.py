"""Gzip on every core: the input is cut into members that are compressed in parallel.

Why: a Mongo dump streams hundreds of megabytes through gzip, and single-threaded deflate
becomes the bottleneck of the whole backup. Concatenated gzip members are one valid gzip
stream (RFC 1952; ``gzip -d``, Python's ``gzip`` and ``mongorestore --gzip`` all read them),
so each member can be deflated independently on a worker thread (zlib releases the GIL) and
the results written in order. Memory stays flat: at most ``2 x workers`` members are in
flight, and a ``bytes`` input is referenced, not copied, until its member is compressed.
"""

from __future__ import annotations

import os
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

MEMBER_SIZE = 4 * 1024 * 1024
_GZIP_WBITS = 31  # zlib's gzip wrapper: header, deflate stream, CRC-32 and size trailer


def compress_member(pieces: list[memoryview], level: int) -> bytes:
    """One complete gzip member holding ``pieces`` in order (runs on a worker thread)."""
    deflater = zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)
    out = [deflater.compress(piece) for piece in pieces]
    out.append(deflater.flush())
    return b"".join(out)


class ParallelGzipWriter:
    """A gzip writer whose deflate work runs on a thread pool.

    ``write`` buffers input into ``member_size`` members and hands each full one to a worker;
    compressed members reach ``out`` strictly in input order, and only from the thread that
    calls ``write``/``close`` (so ``out`` may be a sink that is not thread-safe). Worker
    errors are raised in that thread too. ``close`` flushes the last member and waits; the
    output is a valid gzip stream even for empty input (one empty member).
    """

    def __init__(
        self,
        out: Callable[[bytes], object],
        *,
        level: int = 1,
        member_size: int = MEMBER_SIZE,
        workers: int | None = None,
        max_pending: int | None = None,
    ) -> None:
        if member_size <= 0:
            raise ValueError("member_size must be positive")
        if not -1 <= level <= 9:
            raise ValueError(f"gzip level {level} is not between 0 and 9")
        self._out = out
        self._level = level
        self._member_size = member_size
        workers = workers or os.cpu_count() or 1
        self._max_pending = max_pending or 2 * workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lifeboat-gzip")
        self._pending: deque[Future[bytes]] = deque()
        self._pieces: list[memoryview] = []
        self._filled = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.members = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Take ``data``; a ``bytes`` object is kept by reference, anything else is copied
        (the caller may reuse its buffer)."""
        if self.closed:
            raise ValueError("write to a closed ParallelGzipWriter")
        if not isinstance(data, bytes):
            data = bytes(data)
        if not data:
            return
        try:
            self._take(memoryview(data))
            self._emit_ready()
        except BaseException:
            self.abort()
            raise

    def _take(self, view: memoryview) -> None:
        pos, total = 0, len(view)
        self.bytes_in += total
        while pos < total:
            room = self._member_size - self._filled
            piece = view[pos : pos + room]
            self._pieces.append(piece)
            self._filled += len(piece)
            pos += len(piece)
            if self._filled >= self._member_size:
                self._submit()

    def _submit(self) -> None:
        pieces, self._pieces, self._filled = self._pieces, [], 0
        self._pending.append(self._pool.submit(compress_member, pieces, self._level))
        self.members += 1
        while len(self._pending) > self._max_pending:
            self._emit(self._pending.popleft())

    def _emit_ready(self) -> None:
        while self._pending and self._pending[0].done():
            self._emit(self._pending.popleft())

    def _emit(self, future: Future[bytes]) -> None:
        member = future.result()  # re-raises a worker's error here, in the caller's thread
        self._out(member)
        self.bytes_out += len(member)

    def close(self) -> None:
        """Compress what is buffered, write every member in order, stop the workers."""
        if self.closed:
            return
        try:
            if self._pieces or self.members == 0:
                self._submit()
            while self._pending:
                self._emit(self._pending.popleft())
        except BaseException:
            self.abort()
            raise
        self.closed = True
        self._pool.shutdown(wait=True)

    def abort(self) -> None:
        """Drop everything not yet written and stop the workers (after a failure)."""
        self.closed = True
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pieces = []
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ParallelGzipWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

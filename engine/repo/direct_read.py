"""A backup file read ahead on a thread of its own with direct I/O: for the pass that hashes
and checks it (verify), and to feed it to a restore's ``ssh`` (through a pipe: ``ssh`` reading
the file itself would read it through the page cache).

On the 2-core VM this was built on, a 1 GiB file not in the page cache (a backup just written
with direct I/O, see engine.repo.piped) read through the page cache and hashed took 3.6-3.8 s;
read with ``O_DIRECT`` into page-aligned buffers by a thread while another hashes, 0.8-0.9 s.
A filesystem that refuses direct I/O is read as usual, on the same thread.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import BinaryIO

BUFFER_SIZE = 4 * 1024 * 1024  # one direct read; a multiple of the page size
BUFFERS = 3  # read ahead: 12 MiB of memory

Filled = tuple[mmap.mmap, int] | BaseException  # a buffer and how much it holds, or the error


class DirectReader:
    """``handle`` (a regular file open for reading, at its start) as a readable that reads
    ahead; ``read(size)`` gives ``size`` bytes unless the file ends first. Close it (or use it
    as a context manager) to stop the thread and close ``handle``."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._fd = handle.fileno()
        self._current: memoryview | None = None
        self._buffer: mmap.mmap | None = None
        self._position = 0
        self._ended = False
        self._direct = try_direct(self._fd)
        if not self._direct:
            return
        self._free: queue.SimpleQueue[mmap.mmap | None] = queue.SimpleQueue()
        self._filled: queue.SimpleQueue[Filled] = queue.SimpleQueue()
        for _ in range(BUFFERS):
            self._free.put(mmap.mmap(-1, BUFFER_SIZE))
        self._thread = threading.Thread(target=self._read_ahead, name="lifeboat-read-ahead")
        self._thread.start()

    def _read_ahead(self) -> None:
        try:
            while (buffer := self._free.get()) is not None:
                got = self._read_into(buffer)  # at the end: what is left, then 0
                self._filled.put((buffer, got))
                if got == 0:
                    return
        except OSError as exc:
            self._filled.put(exc)

    def _read_into(self, buffer: mmap.mmap) -> int:
        try:
            return os.readv(self._fd, [buffer])
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
        # An alignment this filesystem refuses: read the rest through the page cache.
        flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        fcntl.fcntl(self._fd, fcntl.F_SETFL, flags & ~os.O_DIRECT)
        return os.readv(self._fd, [buffer])

    def read(self, size: int = -1) -> bytes:
        if not self._direct:
            return self._handle.read(size)
        parts = []
        wanted = size if size >= 0 else float("inf")
        while wanted > 0 and self._next():
            assert self._current is not None
            take = int(min(wanted, len(self._current) - self._position))
            parts.append(bytes(self._current[self._position : self._position + take]))
            self._position += take
            wanted -= take
        return b"".join(parts)

    def _next(self) -> bool:
        """Whether bytes are left in the current buffer, after moving to the next if needed."""
        if self._current is not None and self._position < len(self._current):
            return True
        if self._ended:
            return False
        self._give_back()
        filled = self._filled.get()
        if isinstance(filled, BaseException):
            self._ended = True
            raise filled
        buffer, got = filled
        if got == 0:
            self._ended = True
            self._free.put(buffer)
            return False
        self._buffer, self._current, self._position = buffer, memoryview(buffer)[:got], 0
        return True

    def _give_back(self) -> None:
        if self._current is not None:
            self._current.release()
            self._current = None
        if self._buffer is not None:
            self._free.put(self._buffer)
            self._buffer = None

    def close(self) -> None:
        if self._direct:
            self._give_back()
            self._free.put(None)  # the thread stops at its next buffer (or has ended)
            self._thread.join()
        self._handle.close()

    def __enter__(self) -> DirectReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def try_direct(fd: int) -> bool:
    """Switch ``fd`` to direct I/O if its filesystem allows it."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT)
    except OSError:
        return False
    return True


def feed_pipe(reader: DirectReader, writer_fd: int, advance: Callable[[int], None]) -> None:
    """Write all that ``reader`` holds into ``writer_fd`` (a pipe to a child's stdin), then
    close both, telling ``advance`` each amount written (it must be safe to call from this
    thread). A child that stopped reading (EPIPE) ends it quietly: its exit status says why."""
    try:
        with reader:
            while chunk := reader.read(BUFFER_SIZE):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(writer_fd, view) :]
                advance(len(chunk))
    except BrokenPipeError:
        pass
    finally:
        os.close(writer_fd)

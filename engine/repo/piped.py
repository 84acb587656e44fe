"""A staging file filled from another process's output: the ``ssh`` child writes into a pipe,
one thread reads the pipe into page-aligned buffers, a second hashes them (hashlib releases
the GIL on large buffers), and a third writes them to the file with ``O_DIRECT``, so the three
overlap and no Python object ever holds the bytes.

Measured on the 2-core machine this was built on (1 GiB from ``cat`` through a pipe, with
sha256 and fsync): these three threads 1.2-1.36 GB/s; reading and hashing on one thread
770-790 MB/s (the child waits while a buffer is hashed); ``splice`` into the page cache then
hashing it back 240-550 MB/s; plain buffered writes 360-530 MB/s: the page cache was the
bottleneck. A filesystem that refuses direct I/O gets buffered writes instead.

Not the child's stdout as the file itself: OpenSSH's client, failing to write its stdout (a
full disk), closes the channel and still exits with the remote command's status, so a
truncated file would pass for a whole one. Here every write is ours, and a full disk raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import mmap
import os
import queue
import select
import time
from collections.abc import Callable
from pathlib import Path

from engine.errors import RepositoryError
from engine.repo.atomic import FILE_MODE
from engine.repo.direct_read import try_direct
from engine.repo.manifest import ArtifactFile
from engine.repo.sink import ChunkPipe, on_own_thread, write_error

BUFFER_SIZE = 4 * 1024 * 1024  # one direct write; a multiple of ALIGN
BUFFERS = 4  # in flight between the two threads: 16 MiB of memory
ALIGN = 4096  # what direct I/O needs of a write's length and offset
PROGRESS_EVERY = 0.1  # seconds between two progress reports while a buffer fills
PIPE_SIZE = 1024 * 1024  # the default maximum (/proc/sys/fs/pipe-max-size) for a user
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

Filled = tuple[mmap.mmap, int] | None  # a buffer and how much of it holds bytes; None: stop


class PipedFile:
    """A new file (0600, never over another) filled from :attr:`writer_fd`, the write end of
    a pipe for the child's stdout. The caller closes it once the child is done (the threads
    see the end of the bytes only then), and awaits :meth:`finish` or :meth:`failure`.
    ``tee`` also gets every byte, for a reader on another thread (closed at the end).

    Three threads, each handing buffers to the next: one reads the pipe (so the child never
    waits while a buffer is hashed), one hashes, one writes. A buffer goes back to the reader
    once written; a buffer that is not full is the last one."""

    def __init__(
        self,
        path: Path,
        relative_name: str,
        progress: Callable[[int], None],
        tee: ChunkPipe | None = None,
    ) -> None:
        self.path = path
        self.relative_name = relative_name
        self.bytes = 0
        self._progress = progress  # called on the loop's thread with each amount read
        self._tee = tee
        self._loop = asyncio.get_running_loop()
        self._hash = hashlib.sha256()
        self._file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        self._direct = try_direct(self._file)
        self._free: queue.SimpleQueue[mmap.mmap | None] = queue.SimpleQueue()
        self._to_hash: queue.SimpleQueue[Filled] = queue.SimpleQueue()
        self._to_write: queue.SimpleQueue[Filled] = queue.SimpleQueue()
        for _ in range(BUFFERS):
            self._free.put(mmap.mmap(-1, BUFFER_SIZE))
        self._reader_fd, self.writer_fd = os.pipe()
        with contextlib.suppress(OSError):  # a bigger pipe: fewer, larger reads
            fcntl.fcntl(self._reader_fd, F_SETPIPE_SZ, PIPE_SIZE)
        # Threads of their own: each blocks as long as the transfer lasts.
        self._written = on_own_thread("lifeboat-pipe-write", self._write_file)
        self._read = on_own_thread("lifeboat-pipe-read", self._read_pipe)
        self._hashed = on_own_thread("lifeboat-pipe-hash", self._hash_buffers)

    def _read_pipe(self) -> None:
        """Fill buffers from the pipe until its end, or until the writer stops."""
        try:
            while (buffer := self._free.get()) is not None:
                with memoryview(buffer) as view:
                    filled = self._fill(view)
                self._to_hash.put((buffer, filled))
                if filled < BUFFER_SIZE:
                    return
            self._to_hash.put(None)  # the writer failed: it says why
        except BaseException:
            self._to_hash.put(None)
            raise
        finally:
            os.close(self._reader_fd)  # the child's next write fails: it stops

    def _fill(self, view: memoryview) -> int:
        """Read until ``view`` is full or the bytes end; how much was read. Progress is said
        as the bytes come (every PROGRESS_EVERY seconds, or when the pipe goes quiet), not a
        buffer at a time: a slow dump shows that it moves."""
        quiet = select.poll()
        quiet.register(self._reader_fd, select.POLLIN)
        filled = said = 0
        next_report = time.monotonic() + PROGRESS_EVERY
        while filled < len(view):
            if filled > said and (
                time.monotonic() >= next_report or not quiet.poll(PROGRESS_EVERY * 1000)
            ):
                self._loop.call_soon_threadsafe(self._progress, filled - said)
                said, next_report = filled, time.monotonic() + PROGRESS_EVERY
            got = os.readv(self._reader_fd, [view[filled:]])
            if not got:
                break
            filled += got
        if filled > said:
            self._loop.call_soon_threadsafe(self._progress, filled - said)
        return filled

    def _hash_buffers(self) -> None:
        """Hash each buffer (and hand it to the tee), then pass it on to be written."""
        try:
            while (item := self._to_hash.get()) is not None:
                buffer, filled = item
                if filled:
                    with memoryview(buffer) as view:
                        self._hash.update(view[:filled])
                        if self._tee is not None:
                            self._tee.put(view[:filled])
                    self.bytes += filled
                self._to_write.put(item)
                if filled < BUFFER_SIZE:
                    self._close_tee(None)
                    return
            self._to_write.put(None)
            self._close_tee(RepositoryError(f"{self.path} could not be written"))
        except BaseException as exc:
            self._to_write.put(None)
            self._close_tee(exc)
            raise

    def _close_tee(self, error: BaseException | None) -> None:
        if self._tee is not None:
            self._tee.close(error)

    def _write_file(self) -> None:
        """Write each buffer in turn, then make the file durable; the file is closed here,
        once nothing else can use it."""
        written = 0
        try:
            while (item := self._to_write.get()) is not None:
                buffer, filled = item
                with memoryview(buffer) as view:
                    self._write_all(view[:filled])
                written += filled
                self._free.put(buffer)
                if filled < BUFFER_SIZE:
                    os.fsync(self._file)
                    return
        except OSError as exc:
            self._free.put(None)  # the reader stops, and with it the child
            raise write_error(self.path, written, exc) from exc
        finally:
            os.close(self._file)

    def _write_all(self, view: memoryview) -> None:
        while view:
            if self._direct and len(view) % ALIGN:
                self._buffered()  # the tail, past the last whole block
            try:
                done = os.write(self._file, view)
            except OSError as exc:
                if not (self._direct and exc.errno == errno.EINVAL):
                    raise
                self._buffered()  # an alignment this filesystem refuses: write as usual
                continue
            view = view[done:]

    def _buffered(self) -> None:
        flags = fcntl.fcntl(self._file, fcntl.F_GETFL)
        fcntl.fcntl(self._file, fcntl.F_SETFL, flags & ~os.O_DIRECT)
        self._direct = False

    async def _threads_done(self) -> None:
        """Wait for the three threads (none is left running), then raise what failed: the
        writer's error first (a full disk stops the others too)."""
        outcomes = await asyncio.gather(
            self._written, self._read, self._hashed, return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def finish(self) -> ArtifactFile:
        """The child exited well: wait until every byte is in the file and durable."""
        await self._threads_done()
        return ArtifactFile(
            path=self.relative_name, bytes=self.bytes, sha256=self._hash.hexdigest()
        )

    async def failure(self) -> BaseException | None:
        """After the child failed: what went wrong on this side (a full disk), if anything."""
        try:
            await self._threads_done()
        except BaseException as exc:  # handed to the caller, who raises it
            return exc
        return None

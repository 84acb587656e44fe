"""A staging file filled from another process's output without Python in the data path: the
``ssh`` child writes into a pipe, and a thread moves the bytes from the pipe into the file in
the kernel (``splice``), then hashes what it just wrote from the page cache (``pread``;
hashlib releases the GIL on large buffers).

Not the child's stdout as the file itself: OpenSSH's client, failing to write its stdout (a
full disk), closes the channel and still exits with the remote command's status, so a
truncated file would pass for a whole one. Here every write is ours, and a full disk raises.
Behind each window the thread starts writeback and drops the clean pages, so the final fsync
is short and a large backup does not flood the page cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from engine.repo.atomic import FILE_MODE
from engine.repo.manifest import ArtifactFile
from engine.repo.sink import WRITEBACK_EVERY, on_own_thread, write_error

SPLICE_CHUNK = 4 * 1024 * 1024
HASH_BATCH = 4 * 1024 * 1024  # hashed (and reported) a batch at a time, not a move at a time
PIPE_SIZE = 1024 * 1024  # the default maximum (/proc/sys/fs/pipe-max-size) for a user
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class SplicedFile:
    """A new file (0600, never over another) filled from :attr:`writer_fd`, the write end of
    a pipe for the child's stdout. The caller closes it once the child is done (the thread
    sees the end of the bytes only then), and awaits :meth:`finish` or :meth:`failure`."""

    def __init__(self, path: Path, relative_name: str, progress: Callable[[int], None]) -> None:
        self.path = path
        self.relative_name = relative_name
        self.bytes = 0
        self._progress = progress  # called on the loop's thread with each amount written
        self._loop = asyncio.get_running_loop()
        self._hash = hashlib.sha256()
        self._reader_fd, self.writer_fd = os.pipe()
        self._file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        self._done = on_own_thread("lifeboat-splice", self._move)  # blocks in splice

    def _move(self) -> None:
        with contextlib.suppress(OSError):  # a bigger pipe: fewer, larger moves
            fcntl.fcntl(self._reader_fd, F_SETPIPE_SZ, PIPE_SIZE)
        with open(self.path, "rb", buffering=0) as written:
            spliced = written_back = 0
            try:
                while moved := os.splice(self._reader_fd, self._file, SPLICE_CHUNK):
                    spliced += moved
                    if spliced - self.bytes >= HASH_BATCH:
                        self._hash_up_to(written.fileno(), spliced)
                    if self.bytes - written_back >= WRITEBACK_EVERY:
                        os.posix_fadvise(
                            written.fileno(), written_back, self.bytes - written_back,
                            os.POSIX_FADV_DONTNEED,
                        )  # fmt: skip
                        written_back = self.bytes
                self._hash_up_to(written.fileno(), spliced)
                os.fsync(self._file)
            except OSError as exc:
                raise write_error(self.path, self.bytes, exc) from exc
            finally:
                os.close(self._reader_fd)  # the child's next write fails: it stops

    def _hash_up_to(self, fd: int, end: int) -> None:
        """Hash what was moved since the last time, read back from the page cache."""
        amount = end - self.bytes
        if amount:
            self._hash.update(os.pread(fd, amount, self.bytes))
            self.bytes = end
            self._loop.call_soon_threadsafe(self._progress, amount)

    async def finish(self) -> ArtifactFile:
        """The child exited well: wait until every byte is in the file and durable."""
        try:
            await self._done
        finally:
            os.close(self._file)
        return ArtifactFile(
            path=self.relative_name, bytes=self.bytes, sha256=self._hash.hexdigest()
        )

    async def failure(self) -> BaseException | None:
        """After the child failed: what went wrong on this side (a full disk), if anything."""
        try:
            await self._done
        except BaseException as exc:  # handed to the caller, who raises it
            return exc
        finally:
            os.close(self._file)
        return None

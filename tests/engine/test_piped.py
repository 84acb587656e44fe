"""The staging file a child process fills through a pipe, read and hashed on one thread and
written with direct I/O on another: every byte, its sha256 and progress; a full disk raised by
the writer itself, which stops the child."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest
from timing import until

from engine.errors import DiskFullError
from engine.repo.piped import PipedFile
from engine.repo.sink import ChunkPipe


async def fill(target: PipedFile, source: Path) -> int:
    """``cat source`` into the target's pipe, as the ssh child would; its exit status."""
    child = await asyncio.create_subprocess_exec("cat", str(source), stdout=target.writer_fd)
    os.close(target.writer_fd)
    return await child.wait()


async def test_every_byte_lands_hashed_with_its_progress(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    data = os.urandom(9 * 1024 * 1024 + 123)  # more than a pipe holds, not a round size
    source.write_bytes(data)
    seen: list[int] = []
    target = PipedFile(tmp_path / "staged", "staged", seen.append)
    assert await fill(target, source) == 0
    entry = await target.finish()
    assert (entry.path, entry.bytes) == ("staged", len(data))
    assert entry.sha256 == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "staged").read_bytes() == data
    assert (tmp_path / "staged").stat().st_mode & 0o777 == 0o600
    await asyncio.sleep(0)  # the last progress call was scheduled from the thread
    assert sum(seen) == len(data)


async def test_an_existing_file_is_never_written_over(tmp_path: Path) -> None:
    (tmp_path / "staged").write_bytes(b"kept")
    with pytest.raises(FileExistsError):
        PipedFile(tmp_path / "staged", "staged", lambda _amount: None)
    assert (tmp_path / "staged").read_bytes() == b"kept"


async def test_a_full_disk_is_said_by_the_writer(tmp_path: Path, tiny_disk: Path) -> None:
    target = PipedFile(tiny_disk / "staged", "staged", lambda _amount: None)
    status = await fill(target, Path("/dev/zero"))  # endless: only a closed pipe stops it
    assert status != 0  # cat was cut off when the reading thread stopped
    failure = await target.failure()
    assert isinstance(failure, DiskFullError)
    assert "disk is full while writing" in str(failure)


async def test_a_tee_reads_every_byte_and_sees_the_end(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    data = os.urandom(17 * 1024 * 1024 + 5)
    source.write_bytes(data)
    pipe = ChunkPipe()
    read_back = asyncio.get_running_loop().run_in_executor(None, read_all, pipe)
    target = PipedFile(tmp_path / "staged", "staged", lambda _amount: None, tee=pipe)
    assert await fill(target, source) == 0
    entry = await target.finish()
    assert await read_back == data  # it ended: the tee was closed
    assert entry.sha256 == hashlib.sha256(data).hexdigest()


def read_all(pipe: ChunkPipe) -> bytes:
    chunks = []
    while chunk := pipe.read():
        chunks.append(chunk)
    return b"".join(chunks)


async def test_a_slow_stream_shows_progress_before_a_buffer_fills(tmp_path: Path) -> None:
    seen: list[int] = []
    target = PipedFile(tmp_path / "staged", "staged", seen.append)
    # 100 kB now, then whatever comes on its stdin: it waits there until the test closes it.
    child = await asyncio.create_subprocess_exec(
        "sh", "-c", "head -c 100000 /dev/zero; exec cat",
        stdin=asyncio.subprocess.PIPE, stdout=target.writer_fd,
    )  # fmt: skip
    os.close(target.writer_fd)
    await until(lambda: sum(seen) == 100_000, "progress while the buffer is far from full")
    assert child.stdin is not None
    child.stdin.close()
    assert await child.wait() == 0
    entry = await target.finish()
    assert entry.bytes == 100_000

"""engine.repo.sink: a sink runs on a thread of its own, fed from the loop with back-pressure,
and a full one stops a real SSH stream from reading (both transports) instead of blocking."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path

import pytest
from sshd import SSHTestServer
from timing import DEADLINE

from engine.config.model import HostConfig
from engine.errors import RepositoryError
from engine.remote.ssh import connect
from engine.repo.manifest import ArtifactFile
from engine.repo.sink import HashingFileSink, SinkThread


class GatedSink:
    """A blocking sink that takes chunks only while its gate is open, and says on which thread."""

    def __init__(self, fail_on: bytes | None = None) -> None:
        self.gate = threading.Event()
        self.chunks: list[bytes] = []
        self.threads: set[int] = set()
        self.fail_on = fail_on
        self.closed = False

    def write(self, data: bytes) -> None:
        self.threads.add(threading.get_ident())
        assert self.gate.wait(DEADLINE), "the test never opened the gate"
        if data == self.fail_on:
            raise RepositoryError("the disk went away")
        self.chunks.append(data)

    def finish(self) -> int:
        self.threads.add(threading.get_ident())
        return sum(len(chunk) for chunk in self.chunks)

    def close(self) -> None:
        self.closed = True


async def test_a_full_queue_makes_the_producer_wait_and_nothing_runs_on_the_loop() -> None:
    sink = GatedSink()
    writer = SinkThread(sink, high_water=4000, low_water=1000)
    chunks = [bytes([n]) * 1000 for n in range(10)]
    answers = [writer.write(chunk) for chunk in chunks[:4]]
    assert answers[:3] == [None, None, None]
    room = answers[3]
    assert room is not None  # 4000 bytes wait: the producer should stop reading
    assert writer.write(chunks[4]) is room  # one future while it stays full
    assert not room.done()
    sink.gate.set()
    await asyncio.wait_for(room, DEADLINE)
    for chunk in chunks[5:]:
        if (ready := writer.write(chunk)) is not None:
            await ready
    assert await writer.finish() == 10_000
    assert sink.chunks == chunks  # in order, each once
    assert sink.closed
    assert threading.get_ident() not in sink.threads  # hashing, writing, finishing: elsewhere
    with pytest.raises(ValueError, match="finished"):
        writer.write(b"late")


async def test_a_failing_sink_is_heard_by_the_producer_and_closed() -> None:
    sink = GatedSink(fail_on=b"bad")
    writer = SinkThread(sink, high_water=10, low_water=5)
    assert writer.write(b"bad") is None
    room = writer.write(b"x" * 10)  # over the high water: the producer waits...
    assert room is not None
    sink.gate.set()
    await asyncio.wait_for(room, DEADLINE)  # ...and is let go when the sink fails
    with pytest.raises(RepositoryError, match="went away"):
        await writer.drain()
    with pytest.raises(RepositoryError, match="went away"):
        writer.write(b"more")
    with pytest.raises(RepositoryError, match="went away"):
        await writer.finish()
    await writer.aclose()
    assert sink.closed


async def test_an_abandoned_sink_drops_what_waits_and_leaves_an_unfinished_file(
    tmp_path: Path,
) -> None:
    gated = GatedSink()
    writer = SinkThread(gated)
    writer.write(b"first")
    writer.write(b"second")
    closing = asyncio.ensure_future(writer.aclose())
    asyncio.get_running_loop().call_soon(gated.gate.set)  # runs after aclose asked to abandon
    await asyncio.wait_for(closing, DEADLINE)
    assert gated.closed
    assert gated.chunks in ([], [b"first"])  # at most the chunk it was writing

    path = tmp_path / "partial.out"
    file_writer = SinkThread(HashingFileSink(path, path.name))
    file_writer.write(b"x" * 1000)
    await file_writer.aclose()
    assert path.exists()  # the job removes (or keeps for diagnosis) its staging dir


class Held:
    """A real file sink that writes nothing until the test lets it (so its queue fills)."""

    def __init__(self, inner: HashingFileSink) -> None:
        self.inner = inner
        self.gate = threading.Event()

    def write(self, data: bytes | memoryview) -> None:
        assert self.gate.wait(DEADLINE), "the stream never filled the queue"
        self.inner.write(data)

    def finish(self) -> ArtifactFile:
        return self.inner.finish()

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("bulk", ["asyncssh", "openssh"])
async def test_a_full_sink_pauses_a_real_stream_and_loses_nothing(
    ssh_server: SSHTestServer, bulk: str, tmp_path: Path
) -> None:
    size = 24 * 1024 * 1024
    config = HostConfig(
        address=ssh_server.address,
        port=ssh_server.port,
        user=ssh_server.user,
        identity=ssh_server.identity,
        known_hosts=ssh_server.known_hosts,
        bulk_transport=bulk,
    )
    host = await connect("h1", config)
    path = tmp_path / "zeros.out"
    held = Held(HashingFileSink(path, path.name))
    writer = SinkThread(held, high_water=256 * 1024, low_water=0)
    waits = 0

    def on_stdout(chunk: bytes) -> asyncio.Future[None] | None:
        nonlocal waits
        room = writer.write(chunk)
        if room is not None:  # the stream must stop reading now; the sink may go on
            waits += 1
            held.gate.set()
        return room

    try:
        await host.stream(["head", "-c", str(size), "/dev/zero"], on_stdout=on_stdout, bulk=True)
        entry = await writer.finish()
    finally:
        await writer.aclose()
        await host.close()
    zeros = hashlib.sha256(bytes(size)).hexdigest()
    assert entry == ArtifactFile(path="zeros.out", bytes=size, sha256=zeros)
    assert waits > 0  # the stream stopped for the sink, and came back


async def test_a_cancelled_finish_lets_the_thread_end_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cancelling the waiter (the job was cancelled) must not make the sink's thread fail
    when it sets the result it computed: that would print a traceback over the console."""
    failures: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    sink = GatedSink()
    writer = SinkThread(sink)
    writer.write(b"last chunk")
    finishing = asyncio.ensure_future(writer.finish())
    await asyncio.sleep(0)  # the waiter is parked on the thread's result
    finishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await finishing
    sink.gate.set()
    await asyncio.wait_for(writer.aclose(), DEADLINE)  # returns once the thread stopped
    assert sink.closed
    assert failures == []


async def test_finish_after_an_abandon_says_so_instead_of_waiting() -> None:
    sink = GatedSink()
    sink.gate.set()
    writer = SinkThread(sink)
    await asyncio.wait_for(writer.aclose(), DEADLINE)
    with pytest.raises(RepositoryError, match="closed unfinished"):
        await asyncio.wait_for(writer.finish(), DEADLINE)

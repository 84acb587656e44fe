"""What every source kind provides, and the context a job hands it.

A source backs up by streaming artifacts into the job's staging directory and restores by
streaming them back; it reports through the context and never knows who is listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from engine.checks import Check
from engine.crypto.age import Recipient
from engine.errors import LifeboatError, RepositoryError
from engine.events import Emit, LogLine, ProgressMeter, StageChanged
from engine.mongo_archive.pgzip import ParallelGzipWriter
from engine.mongo_archive.stream import Readable
from engine.remote.commands import CommandOutput
from engine.repo.confined import open_confined
from engine.repo.content import NO_KEYS, Keyring
from engine.repo.direct_read import DirectReader, feed_pipe
from engine.repo.manifest import Artifact, ArtifactFile
from engine.repo.piped import PipedFile
from engine.repo.sink import (
    BlockingSink,
    ChunkPipe,
    EncryptingSink,
    HashingFileSink,
    SinkThread,
    TeeSink,
    on_own_thread,
)
from engine.sizes import human_size

if TYPE_CHECKING:
    from engine.remote.ssh import SSHHost

ENCRYPTED_SUFFIX = ".age"
OK = frozenset({0})  # the exit statuses a command succeeds with, unless it says otherwise
DESCRIBE_NICENESS = 10  # the niceness of a thread that describes a stream (the default is 0)
T = TypeVar("T")
AuditFn = Callable[..., object]  # (action, **details): one record in the audit log


@dataclass
class SourceContext:
    """What a source may use while it runs: its host connection, a directory, reporting."""

    source: str
    host: SSHHost
    directory: Path  # staging dir (backup) or backup dir (restore)
    emit: Emit
    audit: AuditFn = lambda action, **details: None  # a restore records destructive steps
    recipients: tuple[Recipient, ...] = ()  # a backup: encrypt every file to these
    keyring: Keyring = NO_KEYS  # a restore: what opens the backup's files

    def stage(self, stage: str) -> None:
        self.emit(StageChanged(self.source, stage))

    def log(self, text: str, level: str = "info") -> None:
        self.emit(LogLine(self.source, level, text))

    def meter(
        self, total: int | None = None, *, unit: str = "bytes", item: str | None = None
    ) -> ProgressMeter:
        return ProgressMeter(self.source, self.emit, total, unit=unit, item=item)

    def sink(self, filename: str) -> BlockingSink[ArtifactFile]:
        """A file in the staging dir that hashes and writes, blocking: for a thread. With
        recipients it is encrypted as written (``<filename>.age``): no plaintext is stored."""
        if not self.recipients:
            return HashingFileSink(self.directory / filename, filename)
        stored = f"{filename}{ENCRYPTED_SUFFIX}"
        return EncryptingSink(HashingFileSink(self.directory / stored, stored), self.recipients)

    @asynccontextmanager
    async def writing(
        self, filename: str, *, gzip: bool = False, tee: ChunkPipe | None = None
    ) -> AsyncIterator[SinkThread[ArtifactFile]]:
        """A file in the staging dir, hashed and written (``gzip``: compressed first, on every
        core) on a thread of its own as the loop hands it bytes; ``await finish()`` once the
        bytes ended well. On any error the file is closed unfinished. ``tee`` also gets
        every byte as stored (before any encryption), for a reader on another thread."""
        file = self.sink(filename)
        chained: BlockingSink[ArtifactFile] = file if tee is None else TeeSink(file, tee)
        writer = SinkThread(GzipSink(chained) if gzip else chained)
        try:
            yield writer
        finally:
            await writer.aclose()

    @asynccontextmanager
    async def recording(
        self, filename: str, *, tee: ChunkPipe | None = None
    ) -> AsyncIterator[Recording]:
        """:meth:`writing` that reports progress as bytes come.

        Use ``recording.write`` as a stream's ``on_stdout`` and ``await recording.finish()``
        once the stream ended well.
        """
        async with self.writing(filename, tee=tee) as writer:
            yield Recording(writer, self.meter())

    async def record_output(
        self,
        filename: str,
        command: Sequence[str] | str,
        ok_statuses: frozenset[int] = OK,
        *,
        stdin: AsyncIterable[bytes] | None = None,
        tee: ChunkPipe | None = None,
    ) -> tuple[ArtifactFile, CommandOutput]:
        """The stdout of a bulk ``command`` on the host, stored as ``filename``, with
        ``stdin`` fed to it: written without Python in the data path when it can be
        (plaintext, the system ``ssh``; see engine.repo.piped), else through
        :meth:`recording`. ``tee`` also gets every byte, and is closed at their end."""
        if self.recipients or not self.host.writes_files():
            async with self.recording(filename, tee=tee) as recording:
                outcome = await self.host.stream(
                    command,
                    on_stdout=recording.write,
                    stdin=stdin,
                    ok_statuses=ok_statuses,
                    bulk=True,
                )
                return await recording.finish(), outcome
        meter = self.meter()
        target = PipedFile(self.directory / filename, filename, meter.advance, tee=tee)
        try:
            outcome = await self.host.stream(
                command, stdout_fd=target.writer_fd, stdin=stdin, ok_statuses=ok_statuses, bulk=True
            )
        except BaseException as exc:
            os.close(target.writer_fd)
            ours = await target.failure()  # a full disk here explains the child's failure
            raise (ours or exc) from None
        os.close(target.writer_fd)
        entry = await target.finish()
        meter.finish()
        return entry, outcome

    async def describe_output(
        self,
        filename: str,
        command: Sequence[str] | str,
        describe: Callable[[Readable], T],
        *,
        stdin: AsyncIterable[bytes] | None = None,
    ) -> tuple[ArtifactFile, CommandOutput, T]:
        """:meth:`record_output` whose bytes ``describe`` also reads as they stream, on a
        thread of its own: the stored file, the command's outcome and what ``describe``
        returned. On any failure the reader is stopped too."""
        async with _describing(describe) as (pipe, described):
            entry, outcome = await self.record_output(filename, command, stdin=stdin, tee=pipe)
        return entry, outcome, await described

    async def send(
        self, entry: ArtifactFile, command: Sequence[str] | str, ok_statuses: frozenset[int] = OK
    ) -> CommandOutput:
        """Run a bulk ``command`` on the host with a backup file (already verified) as its
        input: through a pipe the file is written into from a thread (direct I/O, see
        engine.repo.direct_read) when it can be (plaintext, the system client), else through
        :meth:`chunks`."""
        meter = self.meter(entry.content_bytes)
        if entry.encrypted or not self.host.writes_files():
            chunks = self.chunks(entry, meter)
            return await self.host.stream(command, stdin=chunks, ok_statuses=ok_statuses, bulk=True)
        reader = DirectReader(open_confined(self.directory, entry.path))
        read_end, write_end = os.pipe()
        loop = asyncio.get_running_loop()

        def advance(amount: int) -> None:
            loop.call_soon_threadsafe(meter.advance, amount)

        fed = on_own_thread("lifeboat-send", feed_pipe, reader, write_end, advance)
        try:
            outcome = await self.host.stream(
                command, stdin_fd=read_end, ok_statuses=ok_statuses, bulk=True
            )
        except BaseException:
            os.close(read_end)  # a feeder still writing gets EPIPE and ends
            await asyncio.gather(fed, return_exceptions=True)
            raise
        os.close(read_end)
        try:
            await fed
        except OSError as exc:  # the command saw the end of its input early: say why
            raise RepositoryError(f"cannot read {entry.path}: {exc.strerror}") from exc
        meter.finish()
        return outcome

    @asynccontextmanager
    async def described(
        self, filename: str, describe: Callable[[Readable], T]
    ) -> AsyncIterator[tuple[Recording, asyncio.Future[T]]]:
        """:meth:`recording` whose bytes ``describe`` also reads as they stream, on a thread
        of its own (the stored file may be encrypted: it cannot be read back): the recording,
        and the future of what ``describe`` returns, to await once the recording finished. A
        reader that fails lets the writer go on without it; on any failure of the block, the
        reader is stopped too."""
        async with (
            _describing(describe) as (pipe, outcome),
            self.recording(filename, tee=pipe) as recording,
        ):
            yield recording, outcome

    def chunks(self, entry: ArtifactFile, meter: ProgressMeter) -> AsyncIterator[bytes]:
        """What a backup file holds (decrypted), in chunks, advancing ``meter``: it is read
        only as a regular file directly in the backup directory, never through a link."""
        return self.keyring.chunks(self.directory, entry, meter)


@asynccontextmanager
async def _describing(
    describe: Callable[[Readable], T],
) -> AsyncIterator[tuple[ChunkPipe, asyncio.Future[T]]]:
    """A pipe for a stream's bytes, and the future of what ``describe`` returns reading them
    on a thread of its own; on any failure of the block the reader is stopped too."""
    pipe = ChunkPipe()
    # Its own thread: it lowers its priority, which an unprivileged thread cannot undo.
    outcome = on_own_thread("lifeboat-describe", _read_through, describe, pipe)
    try:
        yield pipe, outcome
    except BaseException:
        pipe.close(RepositoryError("the stream ended early"))
        await asyncio.gather(outcome, return_exceptions=True)
        raise


def password_line(source: str, path: Path | None) -> bytes:
    """The password in a source's local ``password_file``, as a line for a tool's stdin (empty
    without one): a secret goes to the host on stdin and into the environment, never argv."""
    if path is None:
        return b""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise SourceConfigError(
            f"sources.{source}.password_file: cannot read {path} ({exc.strerror}); fix the "
            "path or the file's permissions"
        ) from None
    return f"{text}\n".encode()


class SourceConfigError(LifeboatError):
    """A file the source's config names cannot be used; the message says which and why."""


def _read_through(describe: Callable[[Readable], T], pipe: ChunkPipe) -> T:
    _yield_cpu()
    try:
        return describe(pipe)
    finally:
        pipe.stop_reading()  # a reader that stopped early never holds the writer up


def _yield_cpu() -> None:
    """Lower this thread's priority: describing a stream is bookkeeping, and where the dump
    tool, the server and sshd share the cores with it (a database on the bastion itself, the
    benchmarks), they come first. It keeps up once they idle; the pipe bounds how far it may
    fall behind (bench/pg_dump.py: ratio 0.85 without this, 0.94 with it)."""
    with contextlib.suppress(OSError, AttributeError):  # per-thread niceness is Linux's
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DESCRIBE_NICENESS)


class GzipSink(Generic[T]):
    """A blocking sink that gzips what it is given, on every core, into another: for a
    :class:`SinkThread`, which runs both on its thread."""

    def __init__(self, inner: BlockingSink[T]) -> None:
        self._inner = inner
        self._gzip = ParallelGzipWriter(inner.write)

    def write(self, data: bytes | memoryview) -> None:
        self._gzip.write(data)

    def finish(self) -> T:
        self._gzip.close()
        return self._inner.finish()

    def close(self) -> None:
        self._gzip.abort()  # nothing left to drop once closed
        self._inner.close()


@dataclass
class Recording:
    writer: SinkThread[ArtifactFile]
    meter: ProgressMeter

    def write(self, chunk: bytes) -> asyncio.Future[None] | None:
        """Queue ``chunk``; a future when the stream should wait for room (see SinkThread)."""
        ready = self.writer.write(chunk)
        self.meter.advance(len(chunk))
        return ready

    async def finish(self) -> ArtifactFile:
        entry = await self.writer.finish()
        self.meter.finish()
        return entry


@dataclass(frozen=True)
class RestoreOptions:
    """Per-restore choices; each source kind reads the ones that concern it."""

    target_dir: Path | None = None  # files: extract under this directory
    mirror: bool = False  # files: then remove what the target holds that the backup does not
    swap: bool = False  # etcd: move the restored data dir into place (stop/start configured)
    # mongo: globs of the namespaces to restore (all if empty); postgres: of db.schema.table;
    # redis: key patterns
    namespaces: tuple[str, ...] = ()
    # mongo: rename pattern, with ns_to (mongorestore's semantics); postgres: DB -> other DB
    ns_from: str | None = None
    ns_to: str | None = None
    drop: bool = True  # mongo: drop each target collection before restoring it

    # Each kind-specific flag group and the source kinds it applies to.
    FLAGS: ClassVar[dict[str, tuple[str, ...]]] = {
        "--target-dir/--mirror": ("files",),
        "--swap": ("etcd",),
        "--ns/--ns-from/--ns-to": ("mongo", "postgres", "redis"),
    }

    def flags_used(self) -> dict[str, bool]:
        """Which kind-specific flag groups are set."""
        return {
            "--target-dir/--mirror": self.target_dir is not None or self.mirror,
            "--swap": self.swap,
            "--ns/--ns-from/--ns-to": bool(self.namespaces or self.ns_from or self.ns_to),
        }

    def only_for(self, kind: str) -> RestoreOptions:
        """These options as one source of ``kind`` sees them (others' settings cleared)."""
        keep = RestoreOptions(drop=self.drop)
        if kind == "files":
            return replace(keep, target_dir=self.target_dir, mirror=self.mirror)
        if kind == "etcd":
            return replace(keep, swap=self.swap)
        if kind in ("mongo", "postgres", "redis"):
            return replace(keep, namespaces=self.namespaces, ns_from=self.ns_from, ns_to=self.ns_to)
        return keep


@dataclass(frozen=True)
class Preflight:
    """What a source's read-only target checks get: the target host and what will go there."""

    host: SSHHost
    artifact: Artifact
    options: RestoreOptions
    backup_id: str
    free_space_margin: float  # the target needs this many times the restored size free
    backup_dir: Path  # the backup's files, to read (never to change)
    keyring: Keyring = NO_KEYS  # what opens them

    async def tool(self, program: str, fix: str) -> Check:
        """Whether ``program`` is on the host's PATH."""
        name = f"tools {self.host.name}"
        if await self.host.has_command(program):
            return Check.ok(name, f"{program} is installed")
        return Check.fail(name, f"{program} is not installed or not on the PATH; {fix}")

    def space(self, where: str, free: int | None, needed: int, *, estimated: bool = False) -> Check:
        """Whether ``free`` bytes at ``where`` hold ``needed`` bytes with the margin."""
        name = f"disk {self.host.name}"
        wanted = int(needed * self.free_space_margin)
        about = "about " if estimated else ""
        if free is None:
            return Check.warning(name, f"could not tell the free space at {where}; check by hand")
        if free < wanted:
            return Check.fail(
                name,
                f"{where} has {human_size(free)} free; the restore needs {about}"
                f"{human_size(needed)} x {self.free_space_margin:g} margin = "
                f"{human_size(wanted)}: free space there, or restore to another target",
            )
        return Check.ok(
            name, f"{where}: {human_size(free)} free, needs {about}{human_size(wanted)}"
        )


class Source(ABC):
    """One configured source of one kind."""

    kind: ClassVar[str]
    artifact_kind: ClassVar[str]
    single_file: ClassVar[bool] = True  # its artifact is one file (postgres: one a database)

    def __init__(self, name: str, config: object) -> None:
        self.name = name
        self.config = config

    @abstractmethod
    async def backup(self, ctx: SourceContext) -> Artifact:
        """Stream this source's artifact into ``ctx.directory`` and describe it."""

    @abstractmethod
    async def restore(
        self, artifact: Artifact, ctx: SourceContext, options: RestoreOptions
    ) -> None:
        """Stream ``artifact`` (already verified) from ``ctx.directory`` back to ``ctx.host``."""

    async def preflight(self, check: Preflight) -> list[Check]:
        """Read-only checks of the target before a restore (datastore, versions, space)."""
        return []

    def restore_problems(self, artifact: Artifact, options: RestoreOptions) -> list[str]:
        """Reasons ``artifact`` cannot be restored with ``options`` (checked before anything)."""
        return []

    def restore_effect(self, options: RestoreOptions, backup_id: str) -> str:
        """What a restore with ``options`` does to what the target holds now, in a sentence
        (the operator reads it before typing the target's name)."""
        return "what the target holds now is overwritten"

    def after_restore(self, options: RestoreOptions, backup_id: str) -> tuple[str, ...]:
        """What is left for the operator once the restore is done, if anything."""
        return ()

"""The ``redis`` source (Redis and Valkey): an RDB snapshot by replication, restored while the
server is stopped.

The backup is the host's ``redis-cli --rdb -``, which asks the server for a replica's sync:
the server writes a fresh snapshot for it, so nothing races its own saves. The stream is
checked and described as it arrives (engine.redis_rdb: every record, the CRC-64, the keys per
database). A restore stops the server, puts the snapshot where it loads it from (the one
that was there is kept beside it), starts it and waits until it holds the backup's keys. A
selective restore (``--ns PATTERN``) leaves the server running: the keys matching the
patterns are copied out of the snapshot as ``DUMP`` payloads (engine.redis_keys) and sent
as ``RESTORE ... REPLACE`` through ``redis-cli --pipe``. A password reaches redis-cli
through its standard input and the environment, never argv.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from engine.checks import Check
from engine.config.sources import RedisSourceConfig
from engine.errors import LifeboatError, RemoteCommandError
from engine.redis_keys import matching_keys, resp
from engine.redis_rdb import summarize
from engine.remote.commands import prefixed, quote_command, single_chunk
from engine.remote.hostfacts import probe_path
from engine.repo.content import Keyring
from engine.repo.manifest import Artifact, ArtifactFile
from engine.sources.base import Preflight, RestoreOptions, Source, SourceContext, password_line

if TYPE_CHECKING:
    from engine.remote.ssh import SSHHost

# Reads the password (a line on stdin) into the environment redis-cli takes it from.
WITH_PASSWORD = 'IFS= read -r REDISCLI_AUTH; export REDISCLI_AUTH; exec "$@"'
READY_SECONDS = 60.0  # how long a restarted server may take to load the snapshot
POLL_SECONDS = 0.2
_KEYSPACE = re.compile(r"^db(\d+):keys=(\d+)", re.MULTILINE)
_ANY = frozenset(range(256))
EOF_MARKER = 40
# The newest RDB version each redis_version (major, minor) loads (Valkey reports 7.2).
LOADS_RDB = {(3, 2): 7, (4, 0): 8, (5, 0): 9, (6, 0): 9, (6, 2): 9, (7, 0): 10, (7, 2): 11,
             (7, 4): 12, (8, 0): 12}  # fmt: skip
_MARKER = re.compile(rb"[0-9a-f]{40}")
_PIPE_SUMMARY = re.compile(r"errors: (\d+), replies: (\d+)")
PIPE_BATCH = 1024 * 1024  # bytes of commands handed to redis-cli --pipe at a time


class RedisError(LifeboatError):
    """redis-cli or the server refused or failed; the message says which source and why."""


class RedisSource(Source):
    kind: ClassVar[str] = "redis"
    artifact_kind: ClassVar[str] = "redis-rdb"
    config: RedisSourceConfig

    def filename(self) -> str:
        return f"{self.name}.rdb"

    # -- talking to the server ----------------------------------------------------------------

    def _password(self) -> bytes:
        """The password line for stdin (empty without a password file)."""
        return password_line(self.name, self.config.password_file)

    def cli_argv(self, *args: str) -> list[str]:
        """redis-cli against the server, with ``args``; wrapped to read the password."""
        argv = [*self.config.redis_cli, "-h", self.config.address, "-p", str(self.config.port)]
        argv += ["--no-auth-warning", *args]
        if self.config.password_file is None:
            return argv
        return ["sh", "-c", WITH_PASSWORD, "sh", *argv]

    async def run_commands(self, host: SSHHost, lines: list[str]) -> str:
        """Commands (one per line, in redis-cli's syntax) in one redis-cli run; its output."""
        return await self._ask(host, commands=lines)

    async def _ask(self, host: SSHHost, *args: str, commands: list[str] | None = None) -> str:
        """One redis-cli command's output, or (``commands``) a batch's fed on its input;
        RedisError when it fails."""
        stdin = self._password() + "".join(f"{line}\n" for line in commands or ()).encode()
        output = await host.capture(
            quote_command(self.cli_argv(*args)), stdin=stdin or None, ok_statuses=_ANY
        )
        text = output.stdout.decode(errors="replace")
        if output.exit_status != 0 or text.startswith(("ERR", "NOAUTH", "WRONGPASS")):
            said = (output.stderr.strip() or text.strip()).splitlines()[-1:] or ["no answer"]
            raise RedisError(
                f"{self.name}: redis at {self.config.address}:{self.config.port} on "
                f"{host.name}: {said[0]}; check that it runs and sources.{self.name}.password_file"
            )
        return text

    async def count_keys(self, host: SSHHost, db: int, pattern: str) -> int:
        """How many keys of database ``db`` match ``pattern`` (``*``: all, by DBSIZE)."""
        if pattern == "*":
            return int((await self._ask(host, "-n", str(db), "DBSIZE")).strip() or 0)
        found = await self._ask(host, "-n", str(db), "--scan", "--pattern", pattern)
        return len(found.splitlines())

    async def key_counts(self, host: SSHHost) -> dict[str, int]:
        """Keys per database, as the server says now (``INFO keyspace``)."""
        text = await self._ask(host, "INFO", "keyspace")
        return {db: int(count) for db, count in _KEYSPACE.findall(text)}

    # -- backup -------------------------------------------------------------------------------

    async def backup(self, ctx: SourceContext) -> Artifact:
        ctx.stage("snapshot by replication")
        password = self._password()
        try:
            async with ctx.described(self.filename(), summarize) as (recording, described):
                command = quote_command(self.cli_argv("--rdb", "-"))
                stdin = single_chunk(password) if password else None
                output = EndMarkerFilter(recording.write)
                await ctx.host.stream(command, on_stdout=output.write, stdin=stdin, bulk=True)
                output.finish()
                entry = await recording.finish()
        except LifeboatError as exc:
            raise self._snapshot_failed(ctx.host, str(exc)) from None
        summary = await described
        return Artifact(
            source=self.name,
            kind=self.artifact_kind,
            host=ctx.host.name,
            files=(entry,),
            meta={
                "databases": {str(db): count for db, count in sorted(summary.keys.items())},
                "expiring": {str(db): n for db, n in sorted(summary.expiring.items())},
                "rdb_version": summary.version,
                "server_version": summary.aux.get("redis-ver", ""),
            },
        )

    def _snapshot_failed(self, host: SSHHost, error: str) -> RedisError:
        where = f"redis at {self.config.address}:{self.config.port} on {host.name}"
        said = error.rsplit("stderr: ", 1)[-1].strip()
        if any(word in said for word in ("AUTH failed", "NOAUTH", "WRONGPASS")):
            return RedisError(
                f"{self.name}: the snapshot failed: {where} refused the password ({said}); "
                f"fix sources.{self.name}.password_file"
            )
        return RedisError(f"{self.name}: the snapshot failed: {where}: {said}")

    # -- restore ------------------------------------------------------------------------------

    def restore_problems(self, artifact: Artifact, options: RestoreOptions) -> list[str]:
        problems = super().restore_problems(artifact, options)
        if options.ns_from or options.ns_to:
            problems.append(
                f"sources.{self.name}: --ns-from/--ns-to rename nothing in redis; choose keys "
                "with --ns PATTERN"
            )
        missing = [k for k in ("rdb_path", "stop", "start") if getattr(self.config, k) is None]
        if missing and not options.namespaces:
            problems.append(
                f"sources.{self.name}: a restore replaces the server's snapshot while it is "
                f"stopped, which needs {', '.join(missing)}; e.g. rdb_path = "
                '"/var/lib/redis/dump.rdb", stop = ["systemctl", "stop", "redis-server"]'
            )
        return problems

    def restore_effect(self, options: RestoreOptions, backup_id: str) -> str:
        if options.namespaces:
            return (
                f"the keys matching {' '.join(options.namespaces)} (in every database) are "
                "replaced by the backup's (RESTORE ... REPLACE, with their expiry); the server "
                "keeps running, and every other key, and a matching key the backup does not "
                "hold, stays as it is"
            )
        return (
            f"the server is stopped, its snapshot {self.config.rdb_path} is replaced by the "
            "backup's (the old one is kept beside it) and it is started again: every key it "
            "holds now is replaced"
        )

    async def preflight(self, check: Preflight) -> list[Check]:
        checks = [await check.tool(self.config.redis_cli[0], "install redis-tools there")]
        name = f"redis {check.host.name}"
        if check.options.namespaces:
            return [*checks, *await self._selective_checks(check, name)]
        try:
            appendonly = await self._ask(check.host, "CONFIG", "GET", "appendonly")
        except RedisError as exc:
            return [*checks, Check.warning(name, f"{exc}; the restore starts it from the backup")]
        if appendonly.split()[-1:] == ["yes"]:
            checks.append(
                Check.fail(
                    name,
                    "appendonly is on: started again, the server would load its AOF, not the "
                    "restored snapshot; turn it off (CONFIG SET appendonly no, CONFIG REWRITE), "
                    "restore, then turn it on (it rewrites the AOF from the restored data)",
                )
            )
        else:
            checks.append(Check.ok(name, "answers; appendonly is off: it loads the snapshot"))
        info = await self._ask(check.host, "INFO", "server")
        checks.append(_version_check(check.host.name, info, check.artifact.meta))
        if self.config.rdb_path is not None:
            facts = await probe_path(check.host, str(self.config.rdb_path.parent))
            checks.append(check.space(facts.existing, facts.free_bytes, check.artifact.size))
        return checks

    async def _selective_checks(self, check: Preflight, name: str) -> list[Check]:
        """The server answers and loads the backup's RDB version; some key matches."""
        try:
            info = await self._ask(check.host, "INFO", "server")
        except RedisError as exc:
            return [Check.fail(name, f"{exc}: a selective restore needs it running")]
        (entry,) = check.artifact.files
        patterns = check.options.namespaces

        def count() -> tuple[int, int]:
            now, live, expired = time.time() * 1000, 0, 0
            with check.keyring.open(check.backup_dir, entry) as content:
                for key in matching_keys(content, patterns):
                    if key.expires_ms is not None and key.expires_ms <= now:
                        expired += 1
                    else:
                        live += 1
            return live, expired

        live, expired = await asyncio.to_thread(count)
        said = f"{live} key(s) of the backup match {' '.join(patterns)}"
        if expired:
            said += f" ({expired} more expired since: left out)"
        found = Check.ok(name, said) if live else Check.fail(name, f"{said}: nothing to restore")
        return [found, _version_check(check.host.name, info, check.artifact.meta)]

    async def restore(
        self, artifact: Artifact, ctx: SourceContext, options: RestoreOptions
    ) -> None:
        if options.namespaces:
            await self._restore_keys(artifact, ctx, options.namespaces)
            return
        rdb_path, stop, start = self.config.rdb_path, self.config.stop, self.config.start
        if rdb_path is None or stop is None or start is None:  # restore_problems() refused it
            raise RedisError(f"{self.name}: rdb_path, stop and start are needed to restore")
        (entry,) = artifact.files
        host, backup_id = ctx.host, ctx.directory.name
        target = str(rdb_path)
        incoming, kept = f"{target}.lifeboat-{backup_id}", f"{target}.before-{backup_id}"
        ctx.stage("uploading the snapshot")
        meter = ctx.meter(entry.content_bytes)
        try:
            await host.put_stream(ctx.chunks(entry, meter), incoming)
            ctx.stage("stopping the server")
            await host.stream(stop)
        except BaseException:  # nothing was replaced: the upload goes
            await host.capture(["rm", "-f", "--", incoming], ok_statuses=_ANY)
            raise
        ctx.audit("restore.redis-stop", host=host.name, command=list(stop))
        swap = (
            f"if [ -e {shlex.quote(target)} ]; then mv -f -- {shlex.quote(target)} "
            f"{shlex.quote(kept)}; fi && mv -f -- {shlex.quote(incoming)} {shlex.quote(target)}"
        )
        try:
            await host.stream(["sh", "-c", swap])
        finally:
            ctx.stage("starting the server")
            await host.stream(start)
        ctx.audit("restore.redis-swap", host=host.name, rdb=target, kept=kept)
        await self._until_loaded(ctx, artifact.meta)

    async def _restore_keys(
        self, artifact: Artifact, ctx: SourceContext, patterns: tuple[str, ...]
    ) -> None:
        """RESTORE ... REPLACE each key of the backup that ``patterns`` match."""
        (entry,) = artifact.files
        ctx.stage("restoring the matching keys")
        sent = _KeysSent()
        commands = _from_thread(
            lambda put: sent.produce(put, ctx.keyring, ctx.directory, entry, patterns)
        )
        output: list[bytes] = []
        password = self._password()
        await ctx.host.stream(
            quote_command(self.cli_argv("--pipe")),
            on_stdout=output.append,
            stdin=prefixed(password, commands),
        )
        text = b"".join(output).decode(errors="replace")
        summary = _PIPE_SUMMARY.search(text)
        errors = int(summary[1]) if summary else -1
        ctx.audit(
            "restore.redis-keys",
            host=ctx.host.name,
            patterns=list(patterns),
            restored=sent.restored,
            expired=sent.expired,
            errors=errors,
        )
        if errors != 0:
            said = [line for line in text.splitlines() if line.startswith(("ERR", "-"))][:3]
            raise RemoteCommandError(
                f"{self.name}: {errors if errors > 0 else 'unknown'} of {sent.restored} "
                f"RESTORE(s) failed: {'; '.join(said) or text.strip()[-200:]}"
            )
        ctx.log(
            f"restored {sent.restored} key(s) matching {' '.join(patterns)}"
            + (f"; {sent.expired} expired since the backup, left out" if sent.expired else "")
        )

    async def _until_loaded(self, ctx: SourceContext, meta: dict[str, Any]) -> None:
        """Wait until the started server holds the backup's keys in every database (keys
        with a TTL may have expired meanwhile: only those may be missing)."""
        ctx.stage("waiting for the server to load it")
        wanted = {db: int(n) for db, n in meta.get("databases", {}).items() if int(n)}
        expiring = {db: int(n) for db, n in meta.get("expiring", {}).items()}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_SECONDS
        found: dict[str, int] | str = "no answer yet"
        while loop.time() < deadline:
            try:
                found = await self.key_counts(ctx.host)
            except RedisError as exc:
                found = str(exc)
            if isinstance(found, dict) and _holds(found, wanted, expiring):
                ctx.log(f"the server holds the backup's keys: {found or 'none'}")
                return
            await asyncio.sleep(POLL_SECONDS)
        raise RemoteCommandError(
            f"{self.name}: started again, the server does not hold the backup's keys "
            f"(it has {found}, the backup {wanted}); look at its log"
        )


def _version_check(host: str, info: str, meta: dict[str, Any]) -> Check:
    """Whether the target server loads the backup's RDB version (an older one cannot)."""
    name = f"version {host}"
    found = re.search(r"^redis_version:(\d+)\.(\d+)", info, re.MULTILINE)
    wanted = meta.get("rdb_version")
    if found is None or not isinstance(wanted, int):
        return Check.warning(name, "cannot tell which RDB versions the target loads; check by hand")
    version = (int(found[1]), int(found[2]))
    known = [v for v in sorted(LOADS_RDB) if v <= version]
    loads = LOADS_RDB[known[-1]] if known else 0
    text = f"redis {version[0]}.{version[1]} on {host}"
    if version > max(LOADS_RDB):
        return Check.ok(name, f"{text}; the backup is RDB {wanted} (a newer server loads it)")
    if wanted > loads:
        return Check.fail(
            name,
            f"{text} loads RDB versions up to {loads}; the backup is RDB {wanted} (from "
            f"{meta.get('server_version') or 'a newer server'}): restore onto that version or "
            "newer",
        )
    return Check.ok(name, f"{text} loads RDB {wanted}")


def _holds(found: dict[str, int], wanted: dict[str, int], expiring: dict[str, int]) -> bool:
    """Whether ``found`` keys per database are the backup's, less at most its expiring ones."""
    databases = set(found) | set(wanted)
    return all(
        wanted.get(db, 0) - expiring.get(db, 0) <= found.get(db, 0) <= wanted.get(db, 0)
        for db in databases
    )


class _KeysSent:
    """The commands of a selective restore, made on a thread, and what they hold."""

    def __init__(self) -> None:
        self.restored = 0
        self.expired = 0

    def produce(
        self,
        put: Callable[[bytes], None],
        keyring: Keyring,
        directory: Path,
        entry: ArtifactFile,
        patterns: tuple[str, ...],
    ) -> None:
        now = time.time() * 1000
        batch: list[bytes] = []
        held, database = 0, None
        with keyring.open(directory, entry) as content:
            for key in matching_keys(content, patterns):
                if key.expires_ms is not None and key.expires_ms <= now:
                    self.expired += 1
                    continue
                if key.db != database:
                    database = key.db
                    batch.append(resp(b"SELECT", str(key.db).encode()))
                args = [b"RESTORE", key.key, b"%d" % (key.expires_ms or 0), key.payload, b"REPLACE"]
                batch.append(resp(*args, *([b"ABSTTL"] if key.expires_ms is not None else [])))
                self.restored += 1
                held += len(batch[-1])
                if held >= PIPE_BATCH:
                    put(b"".join(batch))
                    batch, held = [], 0
        put(b"".join(batch))


async def _from_thread(produce: Callable[[Callable[[bytes], None]], None]) -> AsyncIterator[bytes]:
    """What ``produce`` hands its ``put`` on a thread, as chunks; it waits while a few are
    queued, and its error is raised here."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=4)
    stop = threading.Event()

    def put(chunk: bytes) -> None:
        if stop.is_set():
            raise RemoteCommandError("the restore stopped reading")
        asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()

    def run() -> None:
        outcome: BaseException | None = None
        try:
            produce(put)
        except BaseException as exc:  # handed to the reader, which raises it
            outcome = exc
        asyncio.run_coroutine_threadsafe(queue.put(outcome), loop).result()

    worker = asyncio.ensure_future(asyncio.to_thread(run))
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            if item:
                yield item
    finally:
        stop.set()
        while not worker.done():  # room for a blocked put(), until the thread has ended
            while not queue.empty():
                queue.get_nowait()
            await asyncio.wait({worker}, timeout=0.05)


class EndMarkerFilter:
    """redis-cli's output with the end marker of a diskless sync dropped: after the snapshot,
    ``redis-cli --rdb -`` (7.0) also writes the 40 hex digits the server ends the transfer with.
    The last 40 bytes are held back until the end; a snapshot itself ends with its checksum
    after ``0xFF``, never with hex digits, so only the marker is ever dropped."""

    def __init__(self, write: Callable[[bytes], asyncio.Future[None] | None]) -> None:
        self._write = write
        self._held = b""

    def write(self, chunk: bytes) -> asyncio.Future[None] | None:
        data = self._held + chunk
        self._held = data[-EOF_MARKER:]
        return self._write(data[:-EOF_MARKER]) if len(data) > EOF_MARKER else None

    def finish(self) -> None:
        if not _MARKER.fullmatch(self._held):
            self._write(self._held)

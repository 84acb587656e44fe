"""The ``postgres`` source: each database by the host's ``pg_dump -Fc``, plus the cluster's
roles (``pg_dumpall --globals-only``); restored by the host's ``pg_restore`` in one
transaction.

A dump streams into the repository and is read as it comes (engine.pg_archive): its table
of contents, every data block, exact rows per table. A restore streams the dump into
``pg_restore --clean --if-exists --single-transaction --exit-on-error``: each object in the
dump is dropped and recreated, objects it does not hold are left alone, and any error rolls
the whole database back untouched. A selective restore takes the tables that globs over
``database.schema.table`` name, with what depends on them (engine.sources.pg_selection);
``--ns-from DB --ns-to OTHER`` restores into another database, created when missing. The
restored tables' rows are counted against the backup's. A password reaches the host's tools
through their standard input and the environment, never argv.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from engine.checks import Check
from engine.config.sources import PG_DATABASE, PostgresSourceConfig
from engine.errors import LifeboatError, RemoteCommandError
from engine.pg_archive import PgArchiveSummary, TocEntry, summarize, table_of_contents
from engine.remote.commands import prefixed, quote_command, single_chunk
from engine.remote.hostfacts import probe_path
from engine.repo.content import Keyring
from engine.repo.manifest import Artifact, ArtifactFile
from engine.sources.base import (
    ENCRYPTED_SUFFIX,
    Preflight,
    RestoreOptions,
    Source,
    SourceContext,
    password_line,
)
from engine.sources.pg_selection import (
    databases_named,
    restore_list,
    select_entries,
)

if TYPE_CHECKING:
    from engine.remote.ssh import SSHHost

# Reads the password (a line on stdin) into the environment libpq takes it from; whatever
# follows on stdin (a dump, a script) is the tool's.
WITH_PASSWORD = 'IFS= read -r PGPASSWORD; export PGPASSWORD; exec "$@"'
RESTORE_FLAGS = ("--clean", "--if-exists", "--single-transaction", "--exit-on-error")
_ANY = frozenset(range(256))
_MAJOR = re.compile(r"^(\d+)")
UNPACKED_RATIO = 4  # a compressed dump's tables and indexes take about this many times its size


class PostgresError(LifeboatError):
    """A PostgreSQL tool or the server refused or failed; the message says which and why."""


def quote_ident(name: str) -> str:
    """An SQL identifier, quoted (names come from dumps: untrusted)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def major(version: str) -> int | None:
    """The major version in ``15.18 (Debian ...)`` or ``160002``-style text."""
    found = _MAJOR.match(version.strip())
    if found is None:
        return None
    number = int(found[1])
    return number // 10000 if number >= 1000 else number


class PostgresSource(Source):
    kind: ClassVar[str] = "postgres"
    artifact_kind: ClassVar[str] = "pg-dump"
    single_file: ClassVar[bool] = False
    config: PostgresSourceConfig

    def dump_name(self, database: str) -> str:
        return f"{self.name}.{database}.dump"

    def globals_name(self) -> str:
        return f"{self.name}.globals.sql"

    # -- talking to the server ----------------------------------------------------------------

    def _password(self) -> bytes:
        """The password line for stdin (empty without a password file)."""
        return password_line(self.name, self.config.password_file)

    def program(self, name: str) -> str:
        """One of the host's PostgreSQL programs: from ``bin_dir`` if set, else its PATH."""
        return f"{self.config.bin_dir}/{name}" if self.config.bin_dir else name

    def tool_argv(self, program: str, *args: str) -> list[str]:
        """``program`` (from ``bin_dir`` if set) against the server, wrapped to read the
        password; ``-w``: never a prompt, which would hang with no terminal."""
        argv = [self.program(program), "-h", self.config.address, "-p", str(self.config.port)]
        argv += ["-U", self.config.user, "-w", *args]
        if self.config.password_file is None:
            return argv
        return ["sh", "-c", WITH_PASSWORD, "sh", *argv]

    def _where(self, host: SSHHost) -> str:
        return f"postgres at {self.config.address}:{self.config.port} on {host.name}"

    def failed(self, host: SSHHost, what: str, said: str) -> PostgresError:
        """One message for a tool that failed: what it was doing, and the fix when known."""
        said = said.rsplit("stderr: ", 1)[-1].strip()
        lines = [line for line in said.splitlines() if line.strip()]
        reason = lines[-1] if lines else "no answer"
        where = self._where(host)
        if "password authentication failed" in said:
            fix = f"refused the password; fix sources.{self.name}.password_file"
        elif "no password supplied" in said:
            fix = (
                f"asks for a password; set sources.{self.name}.password_file (or a ~/.pgpass "
                "on the host)"
            )
        elif "Connection refused" in said or "No such file or directory" in said:
            fix = "does not answer; is the server running there?"
        else:
            return PostgresError(f"{self.name}: {what}: {where}: {reason}")
        return PostgresError(f"{self.name}: {what}: {where} {fix} ({reason})")

    async def query(self, host: SSHHost, database: str, sql: str) -> list[list[str]]:
        """Rows of ``sql`` (statements, run with ON_ERROR_STOP) in ``database``, each a list of
        text fields (NULL as "")."""
        argv = self.tool_argv("psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1")
        argv += ["-d", database, "-f", "-"]
        stdin = self._password() + sql.encode() + b"\n"
        output = await host.capture(quote_command(argv), stdin=stdin, ok_statuses=_ANY)
        if output.exit_status != 0:
            raise self.failed(host, f"psql in {database}", output.stderr)
        text = output.stdout.decode(errors="replace")
        return [line.split("\t") for line in text.splitlines()]

    async def server_version(self, host: SSHHost) -> str:
        rows = await self.query(host, "postgres", "SHOW server_version;")
        return rows[0][0] if rows and rows[0] else ""

    async def count_rows(
        self, host: SSHHost, database: str, tables: list[tuple[str, str]]
    ) -> list[int]:
        """Exact rows of each ``(schema, table)`` in ``database``."""
        if not tables:
            return []
        sql = "\n".join(
            f"SELECT count(*) FROM {quote_ident(schema)}.{quote_ident(table)};"
            for schema, table in tables
        )
        return [int(row[0]) for row in await self.query(host, database, sql) if row and row[0]]

    # -- backup -------------------------------------------------------------------------------

    async def backup(self, ctx: SourceContext) -> Artifact:
        files: list[ArtifactFile] = []
        tables: dict[str, dict[str, int | None]] = {}
        owners: dict[str, list[str]] = {}
        summary: PgArchiveSummary | None = None
        for database in self.config.databases:
            ctx.stage(f"dumping {database}")
            entry, summary = await self._dump(ctx, database)
            files.append(entry)
            tables[database] = summary.tables()
            owners[database] = sorted({e.owner for e in summary.entries if e.owner})
            ctx.log(f"{database}: {_described(summary)}")
        if self.config.globals:
            ctx.stage("dumping roles")
            files.append(await self._dump_globals(ctx))
        assert summary is not None  # databases has at least one
        return Artifact(
            source=self.name,
            kind=self.artifact_kind,
            host=ctx.host.name,
            files=tuple(files),
            meta={
                "tables": tables,
                "owners": owners,
                "server_version": summary.server_version,
                "dump_version": summary.dump_version,
                "archive_version": ".".join(str(n) for n in summary.version),
            },
        )

    async def _dump(
        self, ctx: SourceContext, database: str
    ) -> tuple[ArtifactFile, PgArchiveSummary]:
        command = quote_command(self.tool_argv("pg_dump", "-Fc", "-d", database))
        password = self._password()
        try:
            entry, _outcome, summary = await ctx.describe_output(
                self.dump_name(database), command, summarize, stdin=prefixed(password)
            )
        except RemoteCommandError as exc:
            raise self.failed(ctx.host, f"pg_dump of {database}", str(exc)) from None
        return entry, summary

    async def _dump_globals(self, ctx: SourceContext) -> ArtifactFile:
        command = quote_command(self.tool_argv("pg_dumpall", "--globals-only", "-l", "postgres"))
        try:
            async with ctx.recording(self.globals_name()) as recording:
                await ctx.host.stream(
                    command, on_stdout=recording.write, stdin=prefixed(self._password())
                )
                return await recording.finish()
        except RemoteCommandError as exc:
            raise self.failed(
                ctx.host,
                f"pg_dumpall --globals-only (roles; it needs a superuser, or set "
                f"sources.{self.name}.globals = false)",
                str(exc),
            ) from None

    # -- restore ------------------------------------------------------------------------------

    def entry_for(self, artifact: Artifact, database: str) -> ArtifactFile | None:
        wanted = self.dump_name(database)
        return next(
            (f for f in artifact.files if f.path in (wanted, f"{wanted}{ENCRYPTED_SUFFIX}")), None
        )

    def restore_targets(self, artifact: Artifact, options: RestoreOptions) -> list[tuple[str, str]]:
        """``(database in the backup, database restored into)``, for each one restored."""
        recorded = list(artifact.meta.get("tables", {}))
        chosen = databases_named(options.namespaces, recorded) if options.namespaces else recorded
        into = _rename(options)
        return [(db, into.get(db, db)) for db in chosen]

    def restore_problems(self, artifact: Artifact, options: RestoreOptions) -> list[str]:
        problems = super().restore_problems(artifact, options)
        recorded = list(artifact.meta.get("tables", {}))
        targets = self.restore_targets(artifact, options)
        if (options.ns_from is None) != (options.ns_to is None):
            problems.append(
                "--ns-from and --ns-to come together (DB and the database to restore into)"
            )
        problems += [f"sources.{self.name}: {p}" for p in _rename_problems(options, recorded)]
        if options.namespaces and not targets:
            problems.append(
                f"sources.{self.name}: no database of the backup matches "
                f"{' '.join(options.namespaces)}; it holds {', '.join(recorded)} (globs are "
                "database.schema.table)"
            )
        problems += [
            f"the backup's {self.name} has no dump of {db}: choose another backup"
            for db, _ in targets
            if self.entry_for(artifact, db) is None
        ]
        if (renamed := _rename(options)) and len(targets) > 1:
            problems.append(
                f"sources.{self.name}: a rename restores one database; select it with "
                f"--ns '{next(iter(renamed))}.*'"
            )
        return problems

    def restore_effect(self, options: RestoreOptions, backup_id: str) -> str:
        what = (
            f"the tables {' '.join(options.namespaces)}, with their indexes, constraints and "
            "what depends on them, are"
            if options.namespaces
            else "every object in the dump is"
        )
        into = _rename(options)
        where = f" in {', '.join(into.values())}" if into else ""
        return (
            f"{what} dropped and recreated{where} (pg_restore --clean --if-exists), in one "
            "transaction per database: their current rows are replaced; objects the backup "
            "does not hold are left alone, and an error leaves the database as it was"
        )

    async def _chosen(
        self,
        directory: Path,
        keyring: Keyring,
        artifact: Artifact,
        db: str,
        options: RestoreOptions,
    ) -> tuple[ArtifactFile, list[TocEntry] | None, list[TocEntry]]:
        """A database's dump file, the entries a selective restore takes (None: all), and the
        tables restored; from the dump's table of contents (its first bytes)."""
        entry = self.entry_for(artifact, db)
        assert entry is not None  # restore_problems() refused it otherwise

        def read() -> PgArchiveSummary:
            with keyring.open(directory, entry) as content:
                return table_of_contents(content)

        toc = await asyncio.to_thread(read)
        if not options.namespaces:
            return entry, None, [e for e in toc.entries if e.desc == "TABLE DATA"]
        chosen = select_entries(db, toc.entries, options.namespaces)
        return entry, chosen, [e for e in chosen if e.desc == "TABLE DATA"]

    async def preflight(self, check: Preflight) -> list[Check]:
        host = check.host
        checks = [
            await check.tool(self.program("pg_restore"), "install postgresql-client there"),
            await check.tool(self.program("psql"), "install postgresql-client there"),
        ]
        name = f"postgres {host.name}"
        try:
            version = await self.server_version(host)
            existing = {row[0] for row in await self.query(host, "postgres", _LIST_DATABASES)}
            roles = {
                row[0]
                for row in await self.query(host, "postgres", "SELECT rolname FROM pg_roles;")
            }
        except PostgresError as exc:
            return [*checks, Check.fail(name, str(exc))]
        checks.append(_version_check(host.name, version, check.artifact.meta))
        owners = check.artifact.meta.get("owners", {})
        for db, into in self.restore_targets(check.artifact, check.options):
            entry, chosen, tables = await self._chosen(
                check.backup_dir, check.keyring, check.artifact, db, check.options
            )
            label = f"database {into}"
            if chosen is not None and not chosen:
                checks.append(
                    Check.fail(
                        label, f"no table of {db} matches {' '.join(check.options.namespaces)}"
                    )
                )
                continue
            missing = sorted(set(owners.get(db, ())) - roles)
            if missing:
                checks.append(
                    Check.fail(
                        label,
                        f"the dump's objects belong to role(s) {', '.join(missing)}, which "
                        f"{host.name} lacks: create them first (the backup's "
                        f"{self.globals_name()} holds every role)",
                    )
                )
            checks.append(
                Check.ok(label, _plan_text(db, into, into in existing, tables, host.name))
            )
            checks.append(await self._space(check, entry))
        return checks

    async def _space(self, check: Preflight, entry: ArtifactFile) -> Check:
        """Free space where the server keeps its data, for about the dump's size unpacked
        (its data directory is shown to superusers only; otherwise there is no telling)."""
        try:
            rows = await self.query(check.host, "postgres", "SHOW data_directory;")
        except PostgresError:
            rows = []
        if not rows or not rows[0] or not rows[0][0]:
            return check.space(f"the server's data directory on {check.host.name}", None, 0)
        facts = await probe_path(check.host, rows[0][0])
        needed = entry.content_bytes * UNPACKED_RATIO
        return check.space(facts.existing, facts.free_bytes, needed, estimated=True)

    async def restore(
        self, artifact: Artifact, ctx: SourceContext, options: RestoreOptions
    ) -> None:
        for db, into in self.restore_targets(artifact, options):
            entry, chosen, tables = await self._chosen(
                ctx.directory, ctx.keyring, artifact, db, options
            )
            await self._ensure_database(ctx, into)
            listed = None
            if chosen is not None:  # a name of mktemp's: a predictable one in /tmp could be
                made = await ctx.host.capture(["mktemp", "-t", "lifeboat-list.XXXXXXXX"])
                listed = made.stdout.decode().strip()  # someone's link to a file of root's
                await ctx.host.put_stream(single_chunk(restore_list(chosen)), listed)
            try:
                await self._pg_restore(ctx, entry, into, options, listed)
            finally:
                if listed is not None:
                    await ctx.host.capture(["rm", "-f", "--", listed], ok_statuses=_ANY)
            ctx.audit(
                "restore.postgres",
                host=ctx.host.name,
                database=into,
                dumped_from=db,
                tables=[e.qualified for e in tables],
            )
            await self._check_rows(ctx, artifact, db, into, tables)

    async def _ensure_database(self, ctx: SourceContext, database: str) -> None:
        rows = await self.query(ctx.host, "postgres", _LIST_DATABASES)
        if database in {row[0] for row in rows}:
            return
        ctx.stage(f"creating database {database}")
        await self.query(ctx.host, "postgres", f"CREATE DATABASE {quote_ident(database)};")
        ctx.audit("restore.postgres-createdb", host=ctx.host.name, database=database)

    async def _pg_restore(
        self,
        ctx: SourceContext,
        entry: ArtifactFile,
        database: str,
        options: RestoreOptions,
        listed: str | None,
    ) -> None:
        ctx.stage(f"restoring {database}")
        args = [*RESTORE_FLAGS, "-d", database]
        if listed is not None:
            args += ["-L", listed]
        meter = ctx.meter(entry.content_bytes)
        command = quote_command(self.tool_argv("pg_restore", *args))
        try:
            await ctx.host.stream(
                command, stdin=prefixed(self._password(), ctx.chunks(entry, meter)), bulk=True
            )
        except RemoteCommandError as exc:
            raise self.failed(
                ctx.host, f"pg_restore into {database} (rolled back: nothing changed)", str(exc)
            ) from None

    async def _check_rows(
        self, ctx: SourceContext, artifact: Artifact, db: str, into: str, tables: list[TocEntry]
    ) -> None:
        """The restored tables hold the backup's rows, exactly."""
        ctx.stage(f"counting rows in {into}")
        recorded = artifact.meta.get("tables", {}).get(db, {})
        names = [(e.namespace, e.tag) for e in tables]
        found = await self.count_rows(ctx.host, into, names)
        wrong = [
            f"{e.qualified}: {n} rows, the backup {recorded.get(e.qualified)}"
            for e, n in zip(tables, found, strict=True)
            if recorded.get(e.qualified) is not None and recorded.get(e.qualified) != n
        ]
        if wrong:
            raise RemoteCommandError(
                f"{self.name}: restored into {into}, some tables do not hold the backup's rows: "
                f"{'; '.join(wrong[:5])}"
            )
        ctx.log(f"{into}: {len(tables)} table(s) hold the backup's rows ({sum(found)} in all)")


_LIST_DATABASES = "SELECT datname FROM pg_database;"


def _described(summary: PgArchiveSummary) -> str:
    tables = summary.tables()
    rows = sum(n for n in tables.values() if n is not None)
    return f"{len(tables)} table(s), {rows} row(s), {len(summary.entries)} object(s)"


def _plan_text(db: str, into: str, exists: bool, tables: list[TocEntry], host: str) -> str:
    shown = ", ".join(e.qualified for e in tables[:6]) + (" ..." if len(tables) > 6 else "")
    made = "exists" if exists else "does not exist: it is created"
    source = f" from {db}" if into != db else ""
    return f"on {host}: {made}; {len(tables)} table(s) restored{source}: {shown or 'none'}"


def _version_check(host: str, version: str, meta: dict[str, Any]) -> Check:
    """The target's major version is at least the dumped server's (pg_restore's own
    version is checked by what it says when it cannot read the archive)."""
    name = f"version {host}"
    target, dumped = major(version), major(str(meta.get("server_version", "")))
    if target is None or dumped is None:
        return Check.warning(name, "cannot tell the versions apart; check by hand")
    text = f"postgres {target} on {host}; the dump is from {dumped}"
    if target < dumped:
        return Check.fail(
            name,
            f"{text}: an older server may not load it; restore onto PostgreSQL {dumped} or newer",
        )
    return Check.ok(name, text)


def _rename(options: RestoreOptions) -> dict[str, str]:
    """``{database in the backup: database to restore into}`` from --ns-from/--ns-to."""
    if not options.ns_from or not options.ns_to:
        return {}
    return {options.ns_from.removesuffix(".*"): options.ns_to.removesuffix(".*")}


def _rename_problems(options: RestoreOptions, recorded: list[str]) -> list[str]:
    problems = []
    for flag, value in (("--ns-from", options.ns_from), ("--ns-to", options.ns_to)):
        if value is not None and not re.fullmatch(PG_DATABASE, value.removesuffix(".*")):
            problems.append(f"{flag} {value!r}: a postgres rename names databases (DB or DB.*)")
    source = (options.ns_from or "").removesuffix(".*")
    if options.ns_from and source not in recorded:
        problems.append(f"--ns-from {options.ns_from}: the backup holds {', '.join(recorded)}")
    return problems

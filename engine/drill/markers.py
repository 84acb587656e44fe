"""Drill markers: nonce-marked records seeded into a source, destroyed, and looked for after
the restore.

Per kind: Mongo documents in a ``lifeboat_drill`` collection of each database the source
backs up; etcd keys under ``/lifeboat-drill/<drill id>/``; Redis keys
``lifeboat-drill:<drill id>:<n>``; rows of a ``lifeboat_drill`` table in each PostgreSQL
database; files in each directory the source backs up. Every marker carries the drill's
random nonce, so a marker from an older drill (or an older backup) never counts. ``destroy``
removes everything the backup covers on the drill target (drop the namespaces or databases,
delete the keyspace, remove the trees), so the restore has to bring it all back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config.sources import (
    EtcdSourceConfig,
    FilesSourceConfig,
    MongoSourceConfig,
    PostgresSourceConfig,
    RedisSourceConfig,
    SourceConfig,
)
from engine.errors import LifeboatError, UsageError
from engine.mongo_archive.names import SYSTEM_DATABASES, selected
from engine.repo.manifest import Artifact
from engine.sources import source_from
from engine.sources.etcd import EtcdSource
from engine.sources.mongo.source import MongoSource
from engine.sources.postgres import PostgresSource, quote_ident, quote_literal
from engine.sources.redis import RedisSource

if TYPE_CHECKING:
    from engine.remote.ssh import SSHHost

MONGO_COLLECTION = "lifeboat_drill"
PG_TABLE = "lifeboat_drill"
ETCD_PREFIX = "/lifeboat-drill/"
REDIS_PREFIX = "lifeboat-drill:"
FILE_PREFIX = ".lifeboat-drill-"
FILES_PER_DIRECTORY = 10
ETCD_TXN_OPS = 100  # etcd refuses transactions of more than 128 operations by default
ETCD_RPC_SECONDS = 30.0
SHOWN_MISSING = 5


@dataclass(frozen=True)
class Drill:
    """Who the markers belong to: the drill's id and its random nonce."""

    id: str
    nonce: str
    markers: int  # per Mongo database / etcd source


@dataclass(frozen=True)
class MarkerCheck:
    source: str
    expected: int
    found: int
    missing: tuple[str, ...]  # the first few markers not found (or found with another nonce)

    @property
    def ok(self) -> bool:
        return self.found == self.expected and not self.missing

    def describe(self) -> str:
        text = f"{self.source}: {self.found} of {self.expected} markers came back"
        if self.missing:
            more = self.expected - self.found - len(self.missing)
            text += f"; missing {', '.join(self.missing)}" + (
                f" and {more} more" if more > 0 else ""
            )
        return text


class Markers(ABC):
    """One source's markers, at one place (the source itself, or where a target puts it)."""

    def __init__(self, name: str, config: SourceConfig, drill: Drill) -> None:
        self.name = name
        self.config = config
        self.drill = drill

    @abstractmethod
    async def places(self, host: SSHHost) -> list[str]:
        """Where markers go (databases, a prefix, directories); UsageError when nowhere."""

    @abstractmethod
    async def seed(self, host: SSHHost, places: list[str]) -> int:
        """Write the markers; how many."""

    @abstractmethod
    async def destroy(self, host: SSHHost, artifact: Artifact) -> list[str]:
        """Remove everything ``artifact`` covers here; what was removed, described."""

    @abstractmethod
    async def check(self, host: SSHHost, places: list[str]) -> MarkerCheck:
        """Look for every marker and its nonce."""

    @abstractmethod
    async def clean(self, host: SSHHost, places: list[str]) -> None:
        """Remove this drill's markers (after the drill, so nothing of it stays behind)."""

    def _check(self, expected: list[str], found: dict[str, str]) -> MarkerCheck:
        missing = [key for key in expected if found.get(key) != self.drill.nonce]
        return MarkerCheck(
            self.name, len(expected), len(expected) - len(missing), tuple(missing[:SHOWN_MISSING])
        )


class MongoMarkers(Markers):
    config: MongoSourceConfig

    def _source(self) -> MongoSource:
        source = source_from(self.name, self.config)
        assert isinstance(source, MongoSource)
        return source

    async def places(self, host: SSHHost) -> list[str]:
        from engine.sources.mongo.driver import connected

        async with connected(self._source(), host) as client:
            names = await client.list_database_names()
        include, exclude = self.config.include, self.config.exclude
        databases = [
            db
            for db in sorted(names)
            if db not in SYSTEM_DATABASES and selected(f"{db}.{MONGO_COLLECTION}", include, exclude)
        ]
        if not databases:
            raise UsageError(
                f"sources.{self.name}: no database whose {MONGO_COLLECTION} collection this "
                f'source backs up; add e.g. "app.{MONGO_COLLECTION}" to include (and not to '
                "exclude), or create the database first"
            )
        return databases

    def _ids(self, db: str) -> list[str]:
        return [f"{self.drill.id}-{db}-{i:05d}" for i in range(self.drill.markers)]

    async def seed(self, host: SSHHost, places: list[str]) -> int:
        from engine.sources.mongo.driver import connected

        async with connected(self._source(), host) as client:
            for db in places:
                documents = [
                    {"_id": key, "drill": self.drill.id, "nonce": self.drill.nonce, "seq": i}
                    for i, key in enumerate(self._ids(db))
                ]
                await client[db][MONGO_COLLECTION].insert_many(documents)
        return len(places) * self.drill.markers

    async def destroy(self, host: SSHHost, artifact: Artifact) -> list[str]:
        from engine.sources.mongo.driver import connected

        namespaces = sorted(artifact.meta.get("namespaces", {}))
        async with connected(self._source(), host) as client:
            for namespace in namespaces:
                db, _, collection = namespace.partition(".")
                await client[db].drop_collection(collection)
        return [f"dropped {len(namespaces)} collection(s): {', '.join(namespaces)}"]

    async def check(self, host: SSHHost, places: list[str]) -> MarkerCheck:
        from engine.sources.mongo.driver import connected

        keys: list[str] = []
        found: dict[str, str] = {}
        async with connected(self._source(), host) as client:
            for db in places:
                keys += self._ids(db)
                cursor = client[db][MONGO_COLLECTION].find({"drill": self.drill.id})
                async for document in cursor:
                    found[str(document["_id"])] = str(document.get("nonce"))
        return self._check(keys, found)

    async def clean(self, host: SSHHost, places: list[str]) -> None:
        from engine.sources.mongo.driver import connected

        async with connected(self._source(), host) as client:
            for db in places:
                collection = client[db][MONGO_COLLECTION]
                await collection.delete_many({"drill": self.drill.id})
                if await collection.count_documents({}) == 0:
                    await client[db].drop_collection(MONGO_COLLECTION)


class EtcdMarkers(Markers):
    config: EtcdSourceConfig

    def _source(self) -> EtcdSource:
        source = source_from(self.name, self.config)
        assert isinstance(source, EtcdSource)
        return source

    def _keys(self) -> list[str]:
        return [f"{ETCD_PREFIX}{self.drill.id}/{i:05d}" for i in range(self.drill.markers)]

    async def places(self, host: SSHHost) -> list[str]:
        return [f"{ETCD_PREFIX}{self.drill.id}/"]

    async def seed(self, host: SSHHost, places: list[str]) -> int:
        keys = self._keys()

        def put(client: Any) -> None:
            for start in range(0, len(keys), ETCD_TXN_OPS):
                batch = keys[start : start + ETCD_TXN_OPS]
                puts = [client.transactions.put(key, self.drill.nonce) for key in batch]
                client.transaction(compare=[], success=puts, failure=[])

        await self._source().with_client(host, put, ETCD_RPC_SECONDS)
        return len(keys)

    async def destroy(self, host: SSHHost, artifact: Artifact) -> list[str]:
        def delete_all(client: Any) -> int:
            from etcd3 import etcdrpc

            request = etcdrpc.DeleteRangeRequest(key=b"\0", range_end=b"\0")
            call = {"credentials": client.call_credentials, "metadata": client.metadata}
            return int(client.kvstub.DeleteRange(request, client.timeout, **call).deleted)

        deleted = await self._source().with_client(host, delete_all, ETCD_RPC_SECONDS)
        return [f"deleted all {deleted} key(s)"]

    async def check(self, host: SSHHost, places: list[str]) -> MarkerCheck:
        def read(client: Any) -> dict[str, str]:
            return {
                meta.key.decode(): value.decode() for value, meta in client.get_prefix(places[0])
            }

        return self._check(self._keys(), await self._source().with_client(host, read, 30.0))

    async def clean(self, host: SSHHost, places: list[str]) -> None:
        await self._source().with_client(
            host, lambda client: client.delete_prefix(places[0]), ETCD_RPC_SECONDS
        )


class RedisMarkers(Markers):
    """Keys ``lifeboat-drill:<drill id>:<n>`` in database 0, each holding the nonce."""

    config: RedisSourceConfig

    def _source(self) -> RedisSource:
        source = source_from(self.name, self.config)
        assert isinstance(source, RedisSource)
        return source

    def _keys(self) -> list[str]:
        return [f"{REDIS_PREFIX}{self.drill.id}:{i:05d}" for i in range(self.drill.markers)]

    async def places(self, host: SSHHost) -> list[str]:
        return [f"{REDIS_PREFIX}{self.drill.id}:"]

    async def seed(self, host: SSHHost, places: list[str]) -> int:
        keys = self._keys()
        await self._source().run_commands(host, [f"SET {k} {self.drill.nonce}" for k in keys])
        return len(keys)

    async def destroy(self, host: SSHHost, artifact: Artifact) -> list[str]:
        source = self._source()
        held = sum((await source.key_counts(host)).values())
        await source.run_commands(host, ["FLUSHALL"])
        return [f"deleted all {held} key(s) in every database (FLUSHALL)"]

    async def check(self, host: SSHHost, places: list[str]) -> MarkerCheck:
        keys = self._keys()
        output = await self._source().run_commands(host, ["MGET " + " ".join(keys)])
        values = output.splitlines()
        return self._check(keys, dict(zip(keys, values, strict=False)))

    async def clean(self, host: SSHHost, places: list[str]) -> None:
        await self._source().run_commands(host, ["DEL " + " ".join(self._keys())])


class PostgresMarkers(Markers):
    """Rows of a ``lifeboat_drill`` table in each database the source backs up, each holding
    the nonce; destroying drops the databases."""

    config: PostgresSourceConfig

    def _source(self) -> PostgresSource:
        source = source_from(self.name, self.config)
        assert isinstance(source, PostgresSource)
        return source

    def _ids(self, db: str) -> list[str]:
        return [f"{self.drill.id}-{db}-{i:05d}" for i in range(self.drill.markers)]

    async def places(self, host: SSHHost) -> list[str]:
        return list(self.config.databases)

    async def seed(self, host: SSHHost, places: list[str]) -> int:
        drill, nonce = quote_literal(self.drill.id), quote_literal(self.drill.nonce)
        for db in places:
            await self._source().query(
                host,
                db,
                f"CREATE TABLE IF NOT EXISTS {PG_TABLE} (id text PRIMARY KEY, drill text NOT "
                f"NULL, nonce text NOT NULL, seq int NOT NULL);\n"
                f"INSERT INTO {PG_TABLE} SELECT {drill} || '-' || {quote_literal(db)} || '-' || "
                f"lpad(g::text, 5, '0'), {drill}, {nonce}, g "
                f"FROM generate_series(0, {self.drill.markers - 1}) g;",
            )
        return len(places) * self.drill.markers

    async def destroy(self, host: SSHHost, artifact: Artifact) -> list[str]:
        databases = sorted(artifact.meta.get("tables", {}))
        for db in databases:
            sql = f"DROP DATABASE IF EXISTS {quote_ident(db)} WITH (FORCE);"
            await self._source().query(host, "postgres", sql)
        return [f"dropped {len(databases)} database(s): {', '.join(databases)}"]

    async def check(self, host: SSHHost, places: list[str]) -> MarkerCheck:
        keys: list[str] = []
        found: dict[str, str] = {}
        for db in places:
            keys += self._ids(db)
            sql = f"SELECT id, nonce FROM {PG_TABLE} WHERE drill = {quote_literal(self.drill.id)};"
            try:
                rows = await self._source().query(host, db, sql)
            except LifeboatError:
                continue  # the database or the table did not come back: every marker is missing
            found |= {row[0]: row[1] for row in rows if len(row) == 2}
        return self._check(keys, found)

    async def clean(self, host: SSHHost, places: list[str]) -> None:
        for db in places:
            await self._source().query(
                host,
                db,
                f"DELETE FROM {PG_TABLE} WHERE drill = {quote_literal(self.drill.id)};\n"
                f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM {PG_TABLE}) THEN DROP TABLE "
                f"{PG_TABLE}; END IF; END $$;",
            )


class FilesMarkers(Markers):
    """Markers in the directories the source backs up; ``root`` re-roots them (a target's
    ``directory``, under which the restore extracts the original paths)."""

    config: FilesSourceConfig

    def __init__(
        self, name: str, config: SourceConfig, drill: Drill, root: Path | None = None
    ) -> None:
        super().__init__(name, config, drill)
        self.root = root

    def _at(self, path: Path) -> str:
        return str(self.root / path.relative_to("/") if self.root else path)

    def _names(self) -> list[str]:
        count = min(self.drill.markers, FILES_PER_DIRECTORY)
        return [f"{FILE_PREFIX}{self.drill.id}-{i:02d}" for i in range(count)]

    async def places(self, host: SSHHost) -> list[str]:
        directories = []
        for path in self.config.paths:
            probe = await host.capture(["test", "-d", str(path)], ok_statuses=frozenset({0, 1}))
            if probe.exit_status == 0:
                directories.append(str(path))
        if not directories:
            raise UsageError(
                f"sources.{self.name}: none of its paths is a directory on "
                f"{self.config.host}, so there is nowhere to put drill markers"
            )
        return directories

    def _files(self, places: list[str]) -> list[str]:
        return [f"{self._at(Path(d))}/{name}" for d in places for name in self._names()]

    async def seed(self, host: SSHHost, places: list[str]) -> int:
        files = self._files(places)
        script = 'n="$1"; shift; for f in "$@"; do printf %s "$n" > "$f"; done'
        await host.capture(["sh", "-c", script, "sh", self.drill.nonce, *files])
        return len(files)

    async def destroy(self, host: SSHHost, artifact: Artifact) -> list[str]:
        trees = [self._at(path) for path in self.config.paths]
        await host.capture(["rm", "-rf", "--", *trees])
        return [f"removed {', '.join(trees)}"]

    async def check(self, host: SSHHost, places: list[str]) -> MarkerCheck:
        keys = self._files(places)
        script = 'for f in "$@"; do [ -f "$f" ] && printf "%s\\t%s\\n" "$f" "$(cat "$f")"; done'
        output = await host.capture(["sh", "-c", script + "; true", "sh", *keys])
        found = dict(
            line.split("\t", 1)
            for line in output.stdout.decode(errors="replace").splitlines()
            if "\t" in line
        )
        return self._check(keys, found)

    async def clean(self, host: SSHHost, places: list[str]) -> None:
        await host.capture(["rm", "-f", "--", *self._files(places)])


def markers_for(name: str, config: SourceConfig, drill: Drill, root: Path | None = None) -> Markers:
    """The markers of one source; UsageError for a kind a drill cannot mark."""
    if isinstance(config, MongoSourceConfig):
        return MongoMarkers(name, config, drill)
    if isinstance(config, EtcdSourceConfig):
        return EtcdMarkers(name, config, drill)
    if isinstance(config, FilesSourceConfig):
        return FilesMarkers(name, config, drill, root)
    if isinstance(config, RedisSourceConfig):
        return RedisMarkers(name, config, drill)
    if isinstance(config, PostgresSourceConfig):
        return PostgresMarkers(name, config, drill)
    raise UsageError(unmarkable(name, config.kind))


def unmarkable(name: str, kind: str) -> str:
    return (
        f"sources.{name}: a drill cannot seed markers in a {kind} source (its data is opaque "
        "to Lifeboat); leave it out of the drill, or set drill = false on it"
    )

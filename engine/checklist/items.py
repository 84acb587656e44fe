"""Running one automatic checklist item against the real systems, with its timeout.

Each runner returns an ``Outcome``: passed or not, a one-line detail, and evidence (the status
code, the counts, the rows, the command's output) to show the operator and keep in the run.
Hosts are reached over SSH; HTTP, Mongo and etcd through SSH tunnels from their hosts.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from engine.checklist.model import (
    CommandItem,
    EtcdHealthItem,
    EtcdKeysItem,
    HttpItem,
    Item,
    MongoCountItem,
    MongoQueryItem,
    PgCountItem,
    PgQueryItem,
    RedisKeysItem,
)
from engine.config.model import Config
from engine.errors import describe_error
from engine.mongo_archive.names import matches_any
from engine.remote.ssh import ConnectionPool
from engine.repo.manifest import Artifact, Manifest
from engine.sizes import human_size
from engine.sources import make_source
from engine.sources.etcd import EtcdSource
from engine.sources.mongo.source import MongoSource
from engine.sources.postgres import PostgresSource
from engine.sources.redis import RedisSource

BODY_EVIDENCE = 300  # characters of an HTTP body kept as evidence
OUTPUT_EVIDENCE_LINES = 20
_ANY = frozenset(range(256))


@dataclass(frozen=True)
class Outcome:
    passed: bool
    detail: str
    evidence: tuple[str, ...] = ()


@dataclass
class ItemContext:
    config: Config
    pool: ConnectionPool
    manifest: Manifest | None  # the backup the run validates (counts compare against it)


async def check_item(item: Item, ctx: ItemContext, missing: tuple[str, ...] = ()) -> Outcome:
    """Run one automatic item within its timeout; never raises."""
    if missing:
        names = ", ".join(f"checklists.values.{name}" for name in missing)
        return Outcome(False, f"not configured: set {names} in the config, or waive this item")
    runner = RUNNERS[item.kind]
    try:
        return await asyncio.wait_for(runner(item, ctx), item.timeout)
    except TimeoutError:
        return Outcome(False, f"no result within {item.timeout:g} s")
    except Exception as exc:  # any failure is this item's result
        return Outcome(False, describe_error(exc))


# -- http ----------------------------------------------------------------------------------


async def _http(item: Any, ctx: ItemContext) -> Outcome:
    assert isinstance(item, HttpItem)
    url = urlsplit(item.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        return Outcome(False, f"{item.url!r} is not an http(s) URL")
    port = url.port or (443 if url.scheme == "https" else 80)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    if item.via is None:
        status, body = await asyncio.to_thread(
            _get, url.scheme, url.hostname, port, url.netloc, path, item.timeout
        )
    else:
        host = await ctx.pool.get(item.via)
        async with host.forward_local(url.hostname, port) as local_port:
            status, body = await asyncio.to_thread(
                _get, url.scheme, "127.0.0.1", local_port, url.netloc, path, item.timeout
            )
    shown = body[:BODY_EVIDENCE].decode(errors="replace")
    evidence = (f"HTTP {status}", shown) if shown else (f"HTTP {status}",)
    if status != item.status:
        return Outcome(False, f"HTTP {status}, expected {item.status}", evidence)
    if item.body is not None and item.body.encode() not in body:
        return Outcome(False, f"HTTP {status} but the body lacks {item.body!r}", evidence)
    via = f" (via {item.via})" if item.via else ""
    return Outcome(True, f"HTTP {status}{via}", evidence)


def _get(
    scheme: str, address: str, port: int, netloc: str, path: str, timeout: float
) -> tuple[int, bytes]:
    """GET ``path`` from ``address:port`` as ``netloc`` (TLS verified against its name)."""
    server_name = urlsplit(f"//{netloc}").hostname or address
    connection: http.client.HTTPConnection
    if scheme == "https":
        connection = _TunnelledHTTPS(address, port, server_name, timeout)
    else:
        connection = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": netloc, "User-Agent": "lifeboat"})
        response = connection.getresponse()
        return response.status, response.read(64 * 1024)
    finally:
        connection.close()


class _TunnelledHTTPS(http.client.HTTPSConnection):
    """HTTPS to a tunnel's local end, verifying the certificate of the real server name."""

    def __init__(self, address: str, port: int, server_name: str, timeout: float) -> None:
        super().__init__(address, port, timeout=timeout, context=ssl.create_default_context())
        self.server_name = server_name

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.server_name)  # type: ignore[attr-defined]


# -- mongo ---------------------------------------------------------------------------------


async def _mongo_count(item: Any, ctx: ItemContext) -> Outcome:
    assert isinstance(item, MongoCountItem)
    from engine.sources.mongo.driver import connected

    source = make_source(ctx.config, item.source)
    assert isinstance(source, MongoSource)
    recorded = _recorded_namespaces(ctx.manifest, item.source)
    if item.min is None and recorded is None:
        return Outcome(
            False, "counts are compared with a backup: run the checklist with --backup ID"
        )
    host = await ctx.pool.get(source.config.host)
    async with connected(source, host) as client:
        if item.min is not None:
            db, _, name = item.namespace.partition(".")
            count = await client[db][name].count_documents({})
            line = f"{item.namespace}: {count} documents"
            return Outcome(count >= item.min, f"{line} (at least {item.min})", (line,))
        assert recorded is not None
        wanted = {ns: e for ns, e in recorded.items() if matches_any(ns, (item.namespace,))}
        if not wanted:
            return Outcome(False, f"the backup holds no namespace matching {item.namespace!r}")
        evidence, wrong = [], []
        for namespace, entry in sorted(wanted.items()):
            db, _, name = namespace.partition(".")
            count = await client[db][name].count_documents({})
            expected = int(entry.get("documents", 0))
            evidence.append(f"{namespace}: {count} documents (backup: {expected})")
            if count != expected:
                wrong.append(namespace)
    if wrong:
        return Outcome(
            False, f"counts differ from the backup in {', '.join(wrong)}", tuple(evidence)
        )
    return Outcome(True, f"{len(wanted)} namespace(s) match the backup's counts", tuple(evidence))


def _recorded_namespaces(manifest: Manifest | None, source: str) -> Mapping[str, Any] | None:
    artifact = manifest.artifact(source) if manifest else None
    return artifact.meta.get("namespaces", {}) if artifact else None


async def _mongo_query(item: Any, ctx: ItemContext) -> Outcome:
    assert isinstance(item, MongoQueryItem)
    from bson import json_util

    from engine.sources.mongo.driver import connected

    source = make_source(ctx.config, item.source)
    assert isinstance(source, MongoSource)
    host = await ctx.pool.get(source.config.host)
    db, _, name = item.namespace.partition(".")
    async with connected(source, host) as client:
        cursor = client[db][name].find(item.filter).limit(item.limit)
        if item.sort:
            cursor = cursor.sort(list(item.sort.items()))
        rows = [json_util.dumps(row) async for row in cursor]
    detail = f"{len(rows)} row(s) from {item.namespace} (at least {item.min})"
    return Outcome(len(rows) >= item.min, detail, tuple(rows))


# -- etcd ----------------------------------------------------------------------------------


async def _key_count(
    ctx: ItemContext,
    source: str,
    minimum: int | None,
    what: str,
    count: Callable[[], Awaitable[int]],
    expected: Callable[[Artifact], tuple[range, str]],
    unit: str = "keys",
) -> Outcome:
    """A count of ``unit`` now, at least ``minimum``, or (without one) in the range
    ``expected`` says the backup allows, with the words that say why."""
    artifact = ctx.manifest.artifact(source) if ctx.manifest else None
    if minimum is None and artifact is None:
        return Outcome(
            False, f"the count of {unit} is compared with a backup: run with --backup ID"
        )
    found = await count()
    if minimum is not None:
        line = f"{what}: {found} {unit}"
        return Outcome(found >= minimum, f"{line} (at least {minimum})", (line,))
    assert artifact is not None
    allowed, said = expected(artifact)
    line = f"{what}: {found} {unit} ({said})"
    return Outcome(found in allowed, line, (line,))


async def _etcd_keys(item: Any, ctx: ItemContext) -> Outcome:
    assert isinstance(item, EtcdKeysItem)
    source = make_source(ctx.config, item.source)
    assert isinstance(source, EtcdSource)

    async def count() -> int:
        host = await ctx.pool.get(source.config.host)
        return await source.key_count(host, item.prefix, item.timeout)

    def expected(artifact: Artifact) -> tuple[range, str]:
        held = int(artifact.meta.get("key_count", -1))
        return range(held, held + 1), f"backup: {held}"

    what = f"prefix {item.prefix!r}" if item.prefix else "the whole keyspace"
    return await _key_count(ctx, item.source, item.min, what, count, expected)


@dataclass(frozen=True)
class _MemberStatus:
    member: int
    leader: int
    version: str
    db_size: int
    raft_index: int
    raft_term: int


def _member_status(client: Any) -> _MemberStatus:
    from etcd3 import etcdrpc

    call = {"credentials": client.call_credentials, "metadata": client.metadata}
    status = client.maintenancestub.Status(etcdrpc.StatusRequest(), client.timeout, **call)
    return _MemberStatus(
        member=int(status.header.member_id),
        leader=int(status.leader),
        version=str(status.version),
        db_size=int(status.dbSize),
        raft_index=int(status.raftIndex),
        raft_term=int(status.raftTerm),
    )


async def _etcd_health(item: Any, ctx: ItemContext) -> Outcome:
    assert isinstance(item, EtcdHealthItem)
    source = make_source(ctx.config, item.source)
    assert isinstance(source, EtcdSource)
    host = await ctx.pool.get(source.config.host)
    status = await source.with_client(host, _member_status, item.timeout)
    evidence = (
        f"version {status.version}",
        f"member {status.member:x}, leader {status.leader:x}"
        if status.leader
        else f"member {status.member:x}, no leader",
        f"db size {human_size(status.db_size)} ({status.db_size} bytes)",
        f"raft index {status.raft_index}, term {status.raft_term}",
    )
    where = f"etcd {status.version} at {source.config.endpoint}"
    if not status.leader:
        return Outcome(False, f"{where} answers but has no leader", evidence)
    role = "the leader" if status.leader == status.member else f"leader {status.leader:x}"
    return Outcome(True, f"{where} is healthy ({role})", evidence)


# -- command -------------------------------------------------------------------------------


async def _command(item: Any, ctx: ItemContext) -> Outcome:
    assert isinstance(item, CommandItem)
    host = await ctx.pool.get(item.host)
    output = await host.capture(item.argv, ok_statuses=_ANY)
    text = output.stdout.decode(errors="replace")
    lines = text.splitlines()[-OUTPUT_EVIDENCE_LINES:]
    evidence = tuple(lines) + (
        (f"stderr: {output.stderr.strip()}",) if output.stderr.strip() else ()
    )
    command = " ".join(item.argv)
    if output.exit_status != 0:
        return Outcome(False, f"`{command}` exited {output.exit_status}", evidence)
    if item.stdout is not None and not re.search(item.stdout, text, re.MULTILINE):
        return Outcome(False, f"`{command}` output does not match {item.stdout!r}", evidence)
    return Outcome(True, f"`{command}` exited 0", evidence)


async def _redis_keys(item: Any, ctx: ItemContext) -> Outcome:
    assert isinstance(item, RedisKeysItem)
    source = make_source(ctx.config, item.source)
    assert isinstance(source, RedisSource)

    async def count() -> int:
        host = await ctx.pool.get(source.config.host)
        return await source.count_keys(host, item.db, item.pattern)

    def expected(artifact: Artifact) -> tuple[range, str]:
        """The backup's keys in that database, less at most its keys with a TTL."""
        held = int(artifact.meta.get("databases", {}).get(str(item.db), 0))
        expiring = int(artifact.meta.get("expiring", {}).get(str(item.db), 0))
        return range(held - expiring, held + 1), f"backup: {held}, {expiring} of them with a TTL"

    what = f"db {item.db}, {item.pattern!r}"
    return await _key_count(ctx, item.source, item.min, what, count, expected)


def _postgres(ctx: ItemContext, name: str) -> PostgresSource:
    source = make_source(ctx.config, name)
    assert isinstance(source, PostgresSource)
    return source


async def _pg_count(item: Any, ctx: ItemContext) -> Outcome:
    assert isinstance(item, PgCountItem)
    source = _postgres(ctx, item.source)
    schema, _, table = item.qualified.partition(".")

    async def count() -> int:
        host = await ctx.pool.get(source.config.host)
        (found,) = await source.count_rows(host, item.database, [(schema, table)])
        return found

    def expected(artifact: Artifact) -> tuple[range, str]:
        held = artifact.meta.get("tables", {}).get(item.database, {}).get(item.qualified)
        if not isinstance(held, int):
            return range(0), f"the backup holds no rows of {item.qualified} in {item.database}"
        return range(held, held + 1), f"backup: {held}"

    what = f"{item.database}.{item.qualified}"
    return await _key_count(ctx, item.source, item.min, what, count, expected, unit="rows")


async def _pg_query(item: Any, ctx: ItemContext) -> Outcome:
    assert isinstance(item, PgQueryItem)
    source = _postgres(ctx, item.source)
    host = await ctx.pool.get(source.config.host)
    sql = f"SET default_transaction_read_only = on;\n{item.sql.rstrip().rstrip(';')};"
    rows = await source.query(host, item.database, sql)
    evidence = tuple("\t".join(row) for row in rows[:OUTPUT_EVIDENCE_LINES])
    if item.expect is not None:
        first = rows[0][0] if rows and rows[0] else None
        detail = f"{item.database}: the query returned {first!r} (expected {item.expect!r})"
        return Outcome(first == item.expect, detail, evidence)
    detail = f"{item.database}: {len(rows)} row(s) (at least {item.min})"
    return Outcome(len(rows) >= item.min, detail, evidence)


Runner = Callable[[Any, ItemContext], Awaitable[Outcome]]
RUNNERS: dict[str, Runner] = {
    "http": _http,
    "mongo_count": _mongo_count,
    "mongo_query": _mongo_query,
    "etcd_keys": _etcd_keys,
    "etcd_health": _etcd_health,
    "redis_keys": _redis_keys,
    "pg_count": _pg_count,
    "pg_query": _pg_query,
    "command": _command,
}

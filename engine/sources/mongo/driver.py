"""Mongo backup and restore with pymongo's async client through an SSH local port forward.

Dump: collections are read concurrently (bounded) as raw BSON batches and written as
interleaved segments into one archive, gzip-compressed on every core, hashed and written in
one pass. Restore: the archive is read in stream order; each selected namespace is dropped
(unless told not to), created with its options, filled with raw BSON in unordered batches,
and given its indexes back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

from engine.checks import Check, compare_versions
from engine.mongo_archive import ArchiveReader, ArchiveWriter, NamespaceMeta, open_archive
from engine.mongo_archive.names import Rename, matches_any, selected, split_namespace
from engine.repo.manifest import Artifact, ArtifactFile
from engine.sources.base import Preflight, RestoreOptions, SourceContext

if TYPE_CHECKING:
    from pymongo import AsyncMongoClient

    from engine.remote.ssh import SSHHost
    from engine.repo.sink import SinkThread
    from engine.sources.mongo.source import MongoSource

    Client = AsyncMongoClient[dict[str, Any]]

INSERT_BATCH_DOCUMENTS = 1000
INSERT_BATCH_BYTES = 8 * 1024 * 1024


async def _client(source: MongoSource, local_port: int) -> Client:
    from pymongo import AsyncMongoClient
    from pymongo.errors import PyMongoError

    options = source.target().client_options()
    client: Client = AsyncMongoClient("127.0.0.1", local_port, **options)
    try:
        await client.admin.command("ping")
    except (PyMongoError, KeyError) as exc:  # KeyError: a server answering auth oddly
        await client.close()
        raise _error(source, "cannot reach MongoDB through the SSH tunnel", exc) from None
    return client


@asynccontextmanager
async def connected(source: MongoSource, host: SSHHost) -> AsyncIterator[Client]:
    """A client of the source's server through an SSH tunnel from ``host`` (pinged)."""
    target = source.target()
    async with host.forward_local(target.address, target.port) as local_port:
        client = await _client(source, local_port)
        try:
            yield client
        finally:
            await client.close()


def _error(source: MongoSource, what: str, exc: BaseException) -> Exception:
    from engine.sources.mongo.common import MongoError

    return MongoError(
        f"{source.name}: {what}: {source.redact(str(exc))}; check sources.{source.name}.uri "
        "(as seen from the host) and the credentials"
    )


# -- restore preflight -----------------------------------------------------------------


async def preflight_with_driver(source: MongoSource, check: Preflight) -> list[Check]:
    """The server answers, runs the backup's major.minor, and has room for what is restored."""
    from pymongo.errors import PyMongoError

    from engine.errors import LifeboatError

    name = f"mongo {source.name}"
    try:
        async with connected(source, check.host) as client:
            build = await client.admin.command("buildInfo")
            stats = await client.admin.command("dbStats")
    except PyMongoError as exc:
        return [Check.fail(name, str(_error(source, "the server did not answer", exc)))]
    except (LifeboatError, OSError) as exc:
        return [Check.fail(name, source.redact(str(exc)))]
    version = str(build.get("version", ""))
    checks = [
        Check.ok(name, f"answers on {check.host.name} (MongoDB {version})"),
        compare_versions(source.name, check.artifact.meta.get("server_version", ""), version),
    ]
    held = check.artifact.meta.get("namespaces", {})
    wanted = check.options.namespaces
    needed = sum(
        int(entry.get("bytes", 0))
        for ns, entry in held.items()
        if not wanted or matches_any(ns, wanted)
    )
    total, used = stats.get("fsTotalSize"), stats.get("fsUsedSize")
    free = (
        int(total - used)
        if isinstance(total, int | float) and isinstance(used, int | float)
        else None
    )
    checks.append(check.space(f"MongoDB's disk on {check.host.name}", free, needed))
    return checks


# -- dump ------------------------------------------------------------------------------


async def _plan(source: MongoSource, client: Client) -> list[tuple[NamespaceMeta, dict[str, int]]]:
    """Every namespace to dump, with its metadata and the server's counts and sizes.

    Collections are described concurrently (bounded): two round trips each, which would
    dominate over a slow link with many collections if made one after another.
    """
    include, exclude = source.config.include, source.config.exclude
    found = []
    for db_name in await client.list_database_names():
        async for info in await client[db_name].list_collections():
            if selected(f"{db_name}.{info['name']}", include, exclude):
                found.append((db_name, info))
    limit = asyncio.Semaphore(source.config.parallel)

    async def describe(
        db_name: str, info: Mapping[str, Any]
    ) -> tuple[NamespaceMeta, dict[str, int]]:
        async with limit:
            db, kind = client[db_name], info.get("type", "collection")
            is_view = kind == "view"
            indexes = [] if is_view else [ix async for ix in await db[info["name"]].list_indexes()]
            meta = NamespaceMeta.build(
                db_name,
                info["name"],
                indexes=indexes,
                options=info.get("options") or {},
                uuid=(info.get("info") or {}).get("uuid"),
                type=kind,
            )
            return meta, {} if is_view else await _sizes(db, info["name"])

    return list(await asyncio.gather(*(describe(db_name, info) for db_name, info in found)))


async def _sizes(db: Any, collection: str) -> dict[str, int]:
    from pymongo.errors import PyMongoError

    try:
        stats = await db.command("collStats", collection)
        return {"documents": int(stats.get("count", 0)), "bytes": int(stats.get("size", 0))}
    except PyMongoError:  # a server without collStats: counts only, totals unknown
        return {"documents": await db[collection].estimated_document_count()}


async def dump_with_driver(source: MongoSource, ctx: SourceContext) -> dict[str, Any]:
    from pymongo.errors import PyMongoError

    from engine import __version__

    target = source.target()
    async with ctx.host.forward_local(target.address, target.port) as local_port:
        client = await _client(source, local_port)
        try:
            ctx.stage("listing")
            plan = await _plan(source, client)
            build = await client.admin.command("buildInfo")
            async with ctx.writing(source.filename(), gzip=True) as out:
                writer = ArchiveWriter(
                    out.write,
                    server_version=str(build.get("version", "")),
                    tool_version=f"lifeboat {__version__}",
                    prelude=[meta for meta, _ in plan],
                    concurrent_collections=source.config.parallel,
                )
                ctx.stage(f"dumping {len(plan)} namespace(s)")
                await _dump_all(source, ctx, client, writer, plan, out)
                namespaces = writer.close()
                entry = await out.finish()
        except PyMongoError as exc:
            raise _error(source, "the dump failed", exc) from None
        finally:
            await client.close()
    return {
        "file": entry,
        "method": "driver",
        "server_version": str(build.get("version", "")),
        "namespaces": {
            name: {"documents": s.documents, "bytes": s.bytes, "crc": f"{s.crc:016x}"}
            for name, s in namespaces.items()
        },
    }


async def _dump_all(
    source: MongoSource,
    ctx: SourceContext,
    client: Client,
    writer: ArchiveWriter,
    plan: list[tuple[NamespaceMeta, dict[str, int]]],
    out: SinkThread[ArtifactFile],
) -> None:
    """Every namespace of ``plan`` through ``writer``, which hands ``out`` the archive: a batch
    waits for room there before the next is fetched (memory stays flat)."""
    total_bytes = sum(sizes.get("bytes", 0) for _, sizes in plan)
    overall = ctx.meter(total_bytes or None)
    limit = asyncio.Semaphore(source.config.parallel)

    async def one(meta: NamespaceMeta, sizes: dict[str, int]) -> None:
        async with limit:
            if meta.type != "view":
                counter = ctx.meter(sizes.get("documents"), unit="documents", item=meta.name)
                collection = client[meta.db][meta.data_collection]
                async for documents in collection.find_raw_batches(batch_size=1000):
                    batch = cast(bytes, documents)  # pymongo types raw batches as documents
                    counter.advance(writer.write_batch(meta.db, meta.data_collection, batch))
                    overall.advance(len(batch))
                    await out.drain()
                counter.finish()
            writer.end_namespace(meta.db, meta.data_collection)

    await asyncio.gather(*(one(meta, sizes) for meta, sizes in plan))
    overall.finish()


# -- restore ---------------------------------------------------------------------------


async def restore_with_driver(
    source: MongoSource, artifact: Artifact, ctx: SourceContext, options: RestoreOptions
) -> None:
    from pymongo.errors import PyMongoError

    rename = Rename(options.ns_from, options.ns_to) if options.ns_from and options.ns_to else None
    target = source.target()
    (entry,) = artifact.files
    async with ctx.host.forward_local(target.address, target.port) as local_port:
        client = await _client(source, local_port)
        try:
            with ctx.keyring.open(ctx.directory, entry) as raw:
                reader = ArchiveReader(open_archive(raw))
                await _restore_stream(source, ctx, client, reader, artifact, options, rename)
        except PyMongoError as exc:
            raise _error(source, "the restore failed", exc) from None
        finally:
            await client.close()


def _wanted(meta: NamespaceMeta, options: RestoreOptions) -> bool:
    if meta.type in ("", "timeseries") or not meta.db:
        return False  # the oplog and special namespaces: mongorestore's business
    return not options.namespaces or matches_any(meta.name, options.namespaces)


async def _restore_stream(
    source: MongoSource,
    ctx: SourceContext,
    client: Client,
    reader: ArchiveReader,
    artifact: Artifact,
    options: RestoreOptions,
    rename: Rename | None,
) -> None:
    from bson.raw_bson import RawBSONDocument

    metas = {meta.name: meta for meta in reader.prelude if _wanted(meta, options)}
    skipped = [
        m.name for m in reader.prelude if m.type == "timeseries" and _wanted_name(m, options)
    ]
    if skipped:
        ctx.log(
            f"timeseries collections are not restored by the driver: {', '.join(skipped)}; "
            'use method = "mongodump" for them',
            "warning",
        )
    counts = artifact.meta.get("namespaces", {})
    total = sum(counts.get(name, {}).get("documents", 0) for name in metas)
    meter = ctx.meter(total, unit="documents")
    targets = {name: split_namespace(rename.apply(name) if rename else name) for name in metas}
    for name, meta in metas.items():
        await _prepare(client, targets[name], meta, options.drop)
        ctx.log(
            f"{name} -> {'.'.join(targets[name])}"
            if targets[name] != split_namespace(name)
            else name
        )
    pending: dict[str, list[RawBSONDocument]] = {}
    sizes: dict[str, int] = {}

    async def flush(name: str) -> None:
        batch = pending.pop(name, [])
        sizes.pop(name, None)
        if batch:
            db, coll = targets[name]
            await client[db][coll].insert_many(batch, ordered=False)
            meter.advance(len(batch))

    for name, document in reader.documents(select=lambda ns: ns in metas):
        pending.setdefault(name, []).append(RawBSONDocument(bytes(document)))
        sizes[name] = sizes.get(name, 0) + len(document)
        if len(pending[name]) >= INSERT_BATCH_DOCUMENTS or sizes[name] >= INSERT_BATCH_BYTES:
            await flush(name)
    for name in list(pending):
        await flush(name)
    meter.finish()
    ctx.stage("indexes")
    for name, meta in metas.items():
        await _create_indexes(client, targets[name], meta)


def _wanted_name(meta: NamespaceMeta, options: RestoreOptions) -> bool:
    return not options.namespaces or matches_any(meta.name, options.namespaces)


async def _prepare(
    client: Client, target: tuple[str, str], meta: NamespaceMeta, drop: bool
) -> None:
    db, coll = target
    if drop:
        await client[db].drop_collection(coll)
    existing = await client[db].list_collection_names(filter={"name": coll})
    if not existing:
        await client[db].command({"create": coll, **meta.options})


async def _create_indexes(client: Client, target: tuple[str, str], meta: NamespaceMeta) -> None:
    if meta.type == "view":
        return
    db, coll = target
    specs = [
        {k: v for k, v in index.items() if k not in ("v", "ns")}
        for index in meta.indexes
        if index.get("name") != "_id_"
    ]
    if specs:
        await client[db].command({"createIndexes": coll, "indexes": specs})

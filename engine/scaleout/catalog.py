"""The optional shared catalog: backups, checklist runs and drills indexed in MongoDB, so that
several consoles share one view (DESIGN.md, Scale-out).

The repository on disk stays the source of truth. :func:`sync` rebuilds this repository's part
of the catalog from it; :func:`update` brings it up to date cheaply (directory listings, file
stamps and verify results decide what to read); :func:`keep_current` makes :func:`refresh_catalog`
the repository's write hook, so every write brings it up to date: a warning, never an
exception, when the catalog does not answer. Every document
carries its repository's id (``_id`` is ``<repo id>/<id>``), so one catalog holds several
repositories. The URI's credentials never appear in a message.

pymongo is imported on first use, so a console or command without a catalog never loads it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from engine.checklist.run import RUNS_DIR, load_run, run_ids
from engine.config.model import Config
from engine.config.schedules import CatalogConfig
from engine.drill import history
from engine.drill.history import DrillRecord
from engine.errors import (
    BackupNotFoundError,
    ConfigError,
    LifeboatError,
    ManifestError,
    UsageError,
    describe_error,
)
from engine.repo.manifest import Manifest
from engine.repo.repository import Repository, VerifyRecord
from engine.repo.write_hook import Warn

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.collection import Collection
    from pymongo.database import Database

Document = dict[str, Any]
SEARCHED = ("id", "label", "scope", "hosts", "namespaces")  # what the browser's filter reads
BATCH = 500  # documents per write request
SOCKET_TIMEOUTS = 10  # a server that accepts but stops answering: this many [catalog] timeouts
FIX = "check [catalog] mongo_uri, or remove [catalog]"
_log = logging.getLogger(__name__)


class CatalogError(LifeboatError):
    """The catalog did not answer or refused a request (the message names no secret)."""


@dataclass
class Catalog:
    """An open catalog: its client, its database, and its server named without credentials."""

    client: MongoClient[Document]
    db: Database[Document]
    where: str  # host:port[,host:port]
    secrets: tuple[str, ...]  # the URI's credentials, kept out of every message
    timeout: float

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Counts:
    indexed: int  # this repository's documents in the collection afterwards
    written: int
    removed: int


@dataclass(frozen=True)
class SyncReport:
    """Per collection (``backups``, ``checklist_runs``, ``drills``) what a sync or update did,
    and what on disk could not be read (left out of the catalog)."""

    collections: dict[str, Counts]
    problems: tuple[str, ...]


# -- opening ---------------------------------------------------------------------------------


def open_catalog(config: Config) -> Catalog | None:
    """The configured catalog (None without ``[catalog]``); nothing is sent to it yet."""
    return None if config.catalog is None else _open(config.catalog)


def _open(settings: CatalogConfig) -> Catalog:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    uri = settings.mongo_uri.get_secret_value()
    where, secrets = _server_of(uri)
    millis = int(settings.timeout * 1000)
    try:
        client: MongoClient[Document] = MongoClient(
            uri,
            serverSelectionTimeoutMS=millis,
            connectTimeoutMS=millis,
            socketTimeoutMS=millis * SOCKET_TIMEOUTS,
            tz_aware=True,
            appname="lifeboat",
        )
    except (PyMongoError, ValueError) as exc:
        reason = _scrub(str(exc), secrets)
        raise ConfigError([f"catalog.mongo_uri: {reason}; fix [catalog] mongo_uri"]) from None
    return Catalog(client, client[settings.database], where, secrets, settings.timeout)


def _server_of(uri: str) -> tuple[str, tuple[str, ...]]:
    """The URI's ``host:port`` list without credentials, and the credential strings."""
    scheme, _, rest = uri.rpartition("://")
    netloc = re.split(r"[/?]", rest, maxsplit=1)[0]
    userinfo, _, hosts = netloc.rpartition("@")
    password = userinfo.partition(":")[2]
    secrets = tuple(s for s in {userinfo, password, unquote(password)} if s)
    if scheme == "mongodb":
        hosts = ",".join(h if re.search(r":\d+$", h) else f"{h}:27017" for h in hosts.split(","))
    return hosts or "?", secrets


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


@contextmanager
def _answering(catalog: Catalog) -> Iterator[None]:
    """Turn the driver's errors into one CatalogError naming the server, never the secrets."""
    from pymongo.errors import ConnectionFailure, PyMongoError

    try:
        yield
    except ConnectionFailure as exc:
        text = re.sub(r" \(configured timeouts:[^)]*\)", "", str(exc).split(", Timeout:")[0])
        text = re.sub(r"(^|,)\s*[^\s,]+:\d+: (\[Errno -?\d+\] )?", r"\1", text)  # named below
        reason = _scrub(f"{text}, waited {catalog.timeout:g}s", catalog.secrets)
        raise CatalogError(f"catalog: {catalog.where} does not answer ({reason}); {FIX}") from None
    except PyMongoError as exc:
        reason = _scrub(str(exc).split(", full error:")[0], catalog.secrets)
        raise CatalogError(
            f"catalog: {catalog.where} refused a request ({reason}); {FIX}"
        ) from None


# -- documents -------------------------------------------------------------------------------


def backup_document(rid: str, manifest: Manifest, verify: VerifyRecord | None) -> Document:
    """A backup's summary (what a search reads) and its manifest as written on disk."""
    namespaces = [name for artifact in manifest.artifacts for name in artifact.namespaces]
    return {
        "_id": f"{rid}/{manifest.id}",
        "repo": rid,
        "id": manifest.id,
        "label": manifest.label,
        "created_at": manifest.created_at,
        "finished_at": manifest.finished_at,
        "trigger": manifest.trigger,
        "operator": manifest.operator,
        "scope": list(manifest.scope),
        "hosts": list(dict.fromkeys(artifact.host for artifact in manifest.artifacts)),
        "namespaces": list(dict.fromkeys(namespaces)),
        "size": manifest.size,
        "verify": _verify_document(verify),
        "manifest": json.loads(manifest.to_json()),
    }


def _verify_document(record: VerifyRecord | None) -> Document | None:
    if record is None:
        return None
    return {"ok": record.ok, "at": record.at, "problems": list(record.problems)}


# -- sync and update -------------------------------------------------------------------------

# One document's key, what tells whether the catalog's copy is current, and how to build it
# (None: unreadable, its problem recorded).
Entry = tuple[str, Any, Callable[[], Document | None]]


def sync(catalog: Catalog, repo: Repository) -> SyncReport:
    """Rebuild this repository's documents from disk: every one rewritten, the rest removed."""
    report = _refresh(catalog, repo, full=True)
    with _answering(catalog):
        catalog.db.backups.create_index([("repo", 1), ("id", -1)])
    return report


def update(catalog: Catalog, repo: Repository) -> SyncReport:
    """Write what is new or changed on disk and remove what is gone; the rest is not read."""
    return _refresh(catalog, repo, full=False)


def _refresh(catalog: Catalog, repo: Repository, *, full: bool) -> SyncReport:
    rid = repo.repo_id()
    problems: list[str] = []
    plans = {
        "backups": ("verify", _backup_entries(repo, rid, problems)),
        "checklist_runs": ("stamp", _run_entries(repo, rid, problems)),
        "drills": (None, _drill_entries(repo, rid)),
    }
    counts = {}
    with _answering(catalog):
        for name, (signature, entries) in plans.items():
            counts[name] = _refresh_collection(catalog.db[name], rid, signature, entries, full)
    return SyncReport(counts, tuple(problems))


def _refresh_collection(
    collection: Collection[Document],
    rid: str,
    signature: str | None,
    entries: Iterable[Entry],
    full: bool,
) -> Counts:
    from pymongo import ReplaceOne

    projection = {signature: 1} if signature else {"_id": 1}
    indexed = {
        doc["_id"]: doc.get(signature) if signature else None
        for doc in collection.find({"repo": rid}, projection)
    }
    documents: list[Document] = []
    keep: set[str] = set()
    for key, current, build in entries:
        if not full and key in indexed and indexed[key] == current:
            keep.add(key)
            continue
        document = build()
        if document is not None:
            documents.append(document)
            keep.add(key)
    for start in range(0, len(documents), BATCH):
        # The replacement carries its _id: nx-27017 does not take it from the filter on upsert.
        batch = documents[start : start + BATCH]
        collection.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in batch])
    gone = [key for key in indexed if key not in keep]
    removed = 0
    for start in range(0, len(gone), BATCH):  # $in by _id: exact on every server
        removed += collection.delete_many(
            {"_id": {"$in": gone[start : start + BATCH]}}
        ).deleted_count
    return Counts(len(keep), len(documents), removed)


def _backup_entries(repo: Repository, rid: str, problems: list[str]) -> Iterator[Entry]:
    verifications = repo.verifications()

    def build(backup_id: str) -> Document | None:
        try:
            manifest = repo.load(backup_id)
        except BackupNotFoundError:  # deleted since it was listed
            return None
        except ManifestError as exc:
            problems.append(str(exc))
            return None
        return backup_document(rid, manifest, verifications.get(backup_id))

    for backup_id in repo.backup_ids():
        verify = _verify_document(verifications.get(backup_id))
        yield f"{rid}/{backup_id}", verify, partial(build, backup_id)


def _run_entries(repo: Repository, rid: str, problems: list[str]) -> Iterator[Entry]:
    def build(run_id: str, stamp: list[int]) -> Document | None:
        try:
            run = load_run(repo.path, run_id)
        except UsageError as exc:
            problems.append(str(exc))
            return None
        return {**run.to_dict(), "_id": f"{rid}/{run_id}", "repo": rid, "stamp": stamp}

    for run_id in run_ids(repo.path):
        try:
            status = (repo.path / RUNS_DIR / f"{run_id}.json").stat()
        except FileNotFoundError:  # removed since the listing
            continue
        stamp = [status.st_mtime_ns, status.st_size]
        yield f"{rid}/{run_id}", stamp, partial(build, run_id, stamp)


def _drill_entries(repo: Repository, rid: str) -> Iterator[Entry]:
    def build(record: DrillRecord) -> Document:
        return {**record.to_dict(), "_id": f"{rid}/{record.id}", "repo": rid}

    for record in history.load(repo.path):  # a drill's record never changes once appended
        yield f"{rid}/{record.id}", None, partial(build, record)


# -- search ----------------------------------------------------------------------------------


def search(catalog: Catalog, repo: Repository, text: str) -> list[str]:
    """Ids of this repository's backups, newest first, in which every word of ``text`` is
    part of the id, label, scope, a host or a Mongo namespace (any case)."""
    query: Document = {"repo": repo.repo_id()}
    words = text.split()
    if words:
        # $regex as a string: nx-27017 cannot bind a compiled pattern (a BSON regex).
        query["$and"] = [
            {"$or": [{field: {"$regex": re.escape(w), "$options": "i"}} for field in SEARCHED]}
            for w in words
        ]
    with _answering(catalog):
        return [doc["id"] for doc in catalog.db.backups.find(query, {"id": 1}).sort("id", -1)]


# -- the audit head's anchor -----------------------------------------------------------------


def audit_head(catalog: Catalog, rid: str) -> Document | None:
    """The audit head anchored for repository ``rid`` (``engine.scaleout.anchors``), if any."""
    with _answering(catalog):
        return catalog.db.audit_heads.find_one({"_id": rid}, {"_id": 0})


def swap_audit_head(
    catalog: Catalog, rid: str, decide: Callable[[Document | None], Document | None]
) -> bool:
    """Replace the anchored audit head with ``decide(the current one)`` unless that is None
    (the audit log's writers take turns under its lock); whether it was replaced."""
    new = decide(audit_head(catalog, rid))
    if new is None:
        return False
    with _answering(catalog):
        catalog.db.audit_heads.replace_one({"_id": rid}, {**new, "_id": rid}, upsert=True)
    return True


# -- keeping it current ----------------------------------------------------------------------


def refresh_catalog(config: Config, repo: Repository) -> str | None:
    """After a write: bring the catalog up to date (nothing without ``[catalog]``). Returns
    (and logs) a warning when that fails, never raises: the write itself stands."""
    if config.catalog is None:
        return None
    try:
        with _open(config.catalog) as catalog:
            update(catalog, repo)
    except Exception as exc:  # the write is on disk already: nothing here may undo it
        fix = "run `lifeboat catalog sync` once it answers"
        warning = f"the catalog missed this change ({fix}): {describe_error(exc)}"
        _log.warning(warning)
        return warning
    return None


def keep_current(repo: Repository, config: Config, warn: Warn | None = None) -> Repository:
    """Make :func:`refresh_catalog` ``repo``'s write hook (nothing without ``[catalog]``): its
    warnings go to ``warn`` unless the write's batch names its own. Returns ``repo``."""
    if config.catalog is not None:
        repo.write_hook.attach(partial(refresh_catalog, config, repo), warn)
    return repo

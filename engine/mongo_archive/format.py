"""The mongodump archive format itself: its constants, errors and the records both sides share.

Why this exists: the reader (:mod:`engine.mongo_archive.reader`) and the writer
(:mod:`engine.mongo_archive.writer`) must agree byte for byte with each other and with the official
tools, so what the format *is* lives here once. The format (see
``fixtures/mongodump-archives/FORMAT.md``)::

    magic 6d e2 99 81 | header doc | prelude docs | ff ff ff ff |
    blocks: {db, collection, EOF, CRC} doc* ff ff ff ff ...

Besides the constants, this holds :class:`ArchiveFormatError` (every problem with an archive's
bytes), the prelude entry :class:`NamespaceMeta`, the per-namespace totals
:class:`NamespaceStats` and :class:`ArchiveSummary`, and the running bookkeeping
(:class:`NamespaceState`) that reading and writing keep alike.
"""

from __future__ import annotations

import struct
import uuid as uuid_module
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anycrc
from bson import json_util
from bson.binary import Binary
from bson.errors import BSONError

from engine.errors import LifeboatError


class _Crc(Protocol):
    """The part of an ``anycrc`` model used here (anycrc ships no type information)."""

    def calc(self, data: bytes | memoryview, init: int | None = None, /) -> int: ...


MAGIC = b"\x6d\xe2\x99\x81"
TERMINATOR = b"\xff\xff\xff\xff"
FORMAT_VERSION = "0.1"
MIN_BSON_SIZE = 5
MAX_BSON_SIZE = 16 * 1024 * 1024

INT32 = struct.Struct("<i")
CRC64: _Crc = anycrc.Model("CRC64-XZ")  # Go's hash/crc64 with the ECMA table, as mongodump uses
_BUCKETS_PREFIX = "system.buckets."


class ArchiveFormatError(LifeboatError):
    """The bytes are not a valid mongodump archive; the message says what and where."""

    def __init__(
        self,
        problem: str,
        *,
        offset: int | None = None,
        namespace: str | None = None,
        truncated: bool = False,
        decompressed: bool = False,
    ) -> None:
        self.problem = problem
        self.offset = offset
        self.namespace = namespace
        self.truncated = truncated
        parts = []
        if offset is not None:
            state = "truncated" if truncated else "damaged"
            stream = " of the decompressed stream" if decompressed else ""
            parts.append(f"archive is {state} at byte {offset}{stream}")
        if namespace is not None:
            parts.append(f"namespace {namespace}")
        parts.append(problem)
        super().__init__(": ".join(parts))


def namespace_name(db: str, collection: str) -> str:
    """``db.collection``; the oplog (``db`` empty) is just ``oplog``."""
    return f"{db}.{collection}" if db else collection


@dataclass(frozen=True)
class NamespaceMeta:
    """One prelude entry: a namespace and its metadata as Extended JSON text, kept verbatim.

    ``metadata`` is empty for special namespaces (the oplog). ``type`` is ``collection``,
    ``view``, ``timeseries``, or empty (special namespaces, and archives from tools before 5.x).
    """

    db: str
    collection: str
    metadata: str = ""
    type: str = ""

    @property
    def name(self) -> str:
        return namespace_name(self.db, self.collection)

    @property
    def data_collection(self) -> str:
        """Where the documents are: a timeseries ``X`` keeps them in ``system.buckets.X``."""
        if self.type == "timeseries":
            return _BUCKETS_PREFIX + self.collection
        return self.collection

    def parsed(self) -> dict[str, Any]:
        """The metadata as a document (``{}`` when there is none); malformed text raises."""
        if not self.metadata:
            return {}
        try:
            value = json_util.loads(self.metadata)
        except RecursionError:
            raise ArchiveFormatError(
                "prelude metadata is nested too deeply to be collection metadata",
                namespace=self.name,
            ) from None
        except (ValueError, TypeError, ArithmeticError, BSONError) as exc:
            # ArithmeticError: decimal.InvalidOperation from a $numberDecimal that is no number
            raise ArchiveFormatError(
                f"prelude metadata is not valid Extended JSON ({type(exc).__name__}: {exc})",
                namespace=self.name,
            ) from None
        if not isinstance(value, dict):
            raise ArchiveFormatError("prelude metadata is not a JSON object", namespace=self.name)
        indexes, options = value.get("indexes") or [], value.get("options") or {}
        if not isinstance(indexes, list) or not all(isinstance(i, dict) for i in indexes):
            raise ArchiveFormatError(
                "prelude metadata's indexes are not a list of documents", namespace=self.name
            )
        if not isinstance(options, dict):
            raise ArchiveFormatError(
                "prelude metadata's options are not a document", namespace=self.name
            )
        return value

    @property
    def indexes(self) -> list[dict[str, Any]]:
        return list(self.parsed().get("indexes") or [])

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.parsed().get("options") or {})

    @property
    def uuid(self) -> str | None:
        value = self.parsed().get("uuid")
        return str(value) if value else None

    @classmethod
    def build(
        cls,
        db: str,
        collection: str,
        *,
        indexes: Sequence[Mapping[str, Any]] = (),
        options: Mapping[str, Any] | None = None,
        uuid: str | uuid_module.UUID | Binary | None = None,
        type: str = "collection",
    ) -> NamespaceMeta:
        """Metadata as mongodump writes it: canonical Extended JSON v2, compact, in its key
        order (``options, indexes, uuid, collectionName, type``), uuid as 32 hex digits."""
        doc: dict[str, Any] = {}
        if options:
            doc["options"] = dict(options)
        doc["indexes"] = [dict(index) for index in indexes]
        if uuid is not None:
            doc["uuid"] = _uuid_hex(uuid)
        doc["collectionName"] = collection
        doc["type"] = type
        text = json_util.dumps(
            doc, json_options=json_util.CANONICAL_JSON_OPTIONS, separators=(",", ":")
        )
        return cls(db=db, collection=collection, metadata=text, type=type)


def _uuid_hex(value: str | uuid_module.UUID | Binary) -> str:
    if isinstance(value, Binary):
        value = value.as_uuid()
    if isinstance(value, uuid_module.UUID):
        return value.hex
    return uuid_module.UUID(value).hex


@dataclass(frozen=True)
class NamespaceStats:
    """What one namespace holds in an archive. ``crc`` is the unsigned CRC-64/XZ."""

    db: str
    collection: str
    documents: int
    bytes: int
    crc: int
    meta: NamespaceMeta | None

    @property
    def name(self) -> str:
        return namespace_name(self.db, self.collection)


@dataclass(frozen=True)
class ArchiveSummary:
    """A whole archive, read and checked: its header, prelude and every namespace."""

    header: dict[str, Any]
    prelude: tuple[NamespaceMeta, ...]
    namespaces: dict[str, NamespaceStats]
    archive_bytes: int
    compressed: bool

    @property
    def server_version(self) -> str:
        return str(self.header.get("server_version", ""))

    @property
    def tool_version(self) -> str:
        return str(self.header.get("tool_version", ""))

    @property
    def documents(self) -> int:
        return sum(stats.documents for stats in self.namespaces.values())

    def manifest_meta(self) -> dict[str, Any]:
        """The ``meta`` of a manifest artifact: server version and per-namespace counts."""
        return {
            "server_version": self.server_version,
            "namespaces": {
                name: {"documents": s.documents, "bytes": s.bytes, "crc": f"{s.crc:016x}"}
                for name, s in self.namespaces.items()
            },
        }


def meta_for(
    metas: Mapping[tuple[str, str], NamespaceMeta], db: str, collection: str
) -> NamespaceMeta | None:
    """The prelude entry describing a namespace's data; ``system.buckets.X`` belongs to the
    timeseries ``X``."""
    meta = metas.get((db, collection))
    if meta is None and collection.startswith(_BUCKETS_PREFIX):
        meta = metas.get((db, collection[len(_BUCKETS_PREFIX) :]))
    return meta


def prelude_without_data(
    prelude: Sequence[NamespaceMeta], seen: Mapping[tuple[str, str], object]
) -> list[str]:
    """Prelude namespaces with no blocks at all. mongodump ends every namespace it lists,
    even empty ones and views (mongorestore creates a view on its EOF block); a timeseries
    ``X`` is ended as ``system.buckets.X`` (or as ``X`` from servers that keep no buckets)."""
    missing = []
    for meta in prelude:
        keys = {(meta.db, meta.collection), (meta.db, meta.data_collection)}
        if not keys & seen.keys():
            missing.append(meta.name)
    return missing


class NamespaceState:
    """Running totals for one namespace while an archive is read or written."""

    __slots__ = ("bytes", "closed", "collection", "crc", "db", "documents", "selected")

    def __init__(self, db: str, collection: str) -> None:
        self.db = db
        self.collection = collection
        self.documents = 0
        self.bytes = 0
        self.crc = 0
        self.closed = False
        self.selected: bool | None = None

    @property
    def name(self) -> str:
        return namespace_name(self.db, self.collection)

    def stats(self, meta: NamespaceMeta | None) -> NamespaceStats:
        return NamespaceStats(self.db, self.collection, self.documents, self.bytes, self.crc, meta)

"""The manifest: what one backup contains, with a checksum for every file.

A manifest is schema-versioned JSON written last into a backup directory; its presence is what
makes a backup complete. Versions this code does not know are refused, never half-read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from engine.errors import ManifestError
from engine.repo.confined import name_problem

SCHEMA_VERSION = 1  # a backup in plaintext (what DESIGN.md shows)
SCHEMA_ENCRYPTED = 2  # encrypted files (older Lifeboats refuse it by its number, clearly)
READABLE_SCHEMAS = (SCHEMA_VERSION, SCHEMA_ENCRYPTED)
AGE_FORMAT: Literal["age-v1"] = "age-v1"
MAX_SOURCE_SECONDS = 10 * 365 * 86400  # meta.seconds above this is damage
_ID = r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}"
BACKUP_ID = re.compile(rf"^{_ID}\Z")
MAX_MANIFEST_BYTES = 64 * 1024 * 1024  # far beyond any real manifest (100k namespaces: ~10 MB)
MAX_DEPTH = 16  # a real manifest nests 6 deep (manifest, artifacts, meta, namespaces, ...)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # would drive the terminal
# Field patterns run on pydantic's regex engine, where ``$`` is the very end of the text.
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # source and host names, as the config allows them
_TRIGGER = r"^(manual|drill|pre-restore|schedule:[A-Za-z0-9][A-Za-z0-9_.-]*)$"


def _plain_name(name: str) -> str:
    if (problem := name_problem(name)) is not None:
        raise ValueError(f"{problem}; a manifest names only files inside its backup directory")
    return name


def _sane_time(moment: datetime) -> datetime:
    """An aware time in UTC (a naive one could not be compared with now)."""
    if moment.tzinfo is None or not 1970 <= moment.year <= 9998:  # 9998: room for any zone
        raise ValueError(f"{moment.isoformat()} is not a time Lifeboat could have written")
    return moment.astimezone(UTC)


Name = Annotated[str, Field(pattern=_NAME, max_length=255)]
Time = Annotated[datetime, AfterValidator(_sane_time)]


class NamespaceCount(BaseModel):
    """What a Mongo artifact's ``meta.namespaces`` records per namespace."""

    model_config = ConfigDict(extra="allow", strict=True)

    documents: NonNegativeInt


# The known ``meta`` keys and their types (unknown keys are kept, unchecked): a consumer of a
# known key can trust its type, whatever the manifest's author intended. The values are type
# expressions, which mypy cannot type as values: Any.
_META_KINDS: dict[str, Any] = {
    "compression": Literal["zstd", "gzip"],
    "paths": list[str],
    "unpacked_bytes": NonNegativeInt | None,
    "method": str,
    "server_version": str,
    "namespaces": dict[str, NamespaceCount],
    "revision": NonNegativeInt,
    "key_count": NonNegativeInt,
    "member_id": str,
    "db_size": NonNegativeInt,
    "ca_sha256": str,
    "command": list[str],
    "databases": dict[str, NonNegativeInt],
    "expiring": dict[str, NonNegativeInt],
    "rdb_version": NonNegativeInt,
    "tables": dict[str, dict[str, NonNegativeInt | None]],
    "owners": dict[str, list[str]],
    "dump_version": str,
    "archive_version": str,
    # any kind: how long the source took, connect to last byte (finite, under ten years)
    "seconds": Annotated[float, Field(ge=0, le=MAX_SOURCE_SECONDS, allow_inf_nan=False)],
}
_META: dict[str, TypeAdapter[Any]] = {
    key: TypeAdapter(kind, config=ConfigDict(strict=True)) for key, kind in _META_KINDS.items()
}


# Every artifact kind a source writes, with the meta keys its checks rely on: without
# ``namespaces`` a Mongo archive's counts would go unchecked.
ARTIFACT_KINDS: dict[str, tuple[str, ...]] = {
    "files-tar": ("compression",),
    "mongo-archive": ("namespaces",),
    "etcd-snapshot": (),
    "command-output": (),
    "redis-rdb": ("databases",),
    "pg-dump": ("tables",),
}


SHA256 = r"^[0-9a-f]{64}$"


class ArtifactFile(BaseModel):
    """One file of an artifact: a plain name inside the backup directory. ``bytes`` and
    ``sha256`` describe what is stored; an encrypted file adds its plaintext's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Annotated[str, AfterValidator(_plain_name)]
    bytes: NonNegativeInt = Field(strict=True)
    sha256: str = Field(pattern=SHA256)
    plain_bytes: NonNegativeInt | None = Field(None, strict=True)
    plain_sha256: str | None = Field(None, pattern=SHA256)

    @model_validator(mode="after")
    def _plain_both_or_neither(self) -> ArtifactFile:
        if (self.plain_bytes is None) != (self.plain_sha256 is None):
            raise ValueError("plain_bytes and plain_sha256 come together")
        return self

    @property
    def encrypted(self) -> bool:
        return self.plain_sha256 is not None

    @property
    def content_bytes(self) -> int:
        """The size of what the file holds once read (decrypted when encrypted)."""
        return self.bytes if self.plain_bytes is None else self.plain_bytes


class Artifact(BaseModel):
    """What one source produced: its kind, the host it came from and its files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Name
    kind: str
    host: Name
    files: tuple[ArtifactFile, ...] = Field(min_length=1)
    meta: dict[str, Any] = {}

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in ARTIFACT_KINDS:
            raise ValueError(
                f"{kind!r} is not an artifact kind this Lifeboat knows "
                f"({', '.join(ARTIFACT_KINDS)}); damaged, or written by a newer Lifeboat"
            )
        return kind

    @model_validator(mode="after")
    def _meta_the_kind_needs(self) -> Artifact:
        missing = [key for key in ARTIFACT_KINDS[self.kind] if key not in self.meta]
        if missing:
            raise ValueError(f"a {self.kind} artifact needs meta.{', meta.'.join(missing)}")
        return self

    @field_validator("meta")
    @classmethod
    def _known_meta_types(cls, meta: dict[str, Any]) -> dict[str, Any]:
        for key, adapter in _META.items():
            if key in meta:
                try:
                    adapter.validate_python(meta[key])
                except ValidationError as exc:
                    first = exc.errors()[0]
                    where = ".".join(str(p) for p in (key, *first["loc"]))
                    raise ValueError(f"{where}: {first['msg']}") from None
        return meta

    @property
    def size(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def namespaces(self) -> list[str]:
        """What it holds by name: Mongo ``db.collection``, PostgreSQL ``db.schema.table``."""
        if isinstance(named := self.meta.get("namespaces"), dict):
            return list(named)
        if isinstance(tables := self.meta.get("tables"), dict):
            return [f"{db}.{name}" for db, names in tables.items() for name in names]
        return []


class Encryption(BaseModel):
    """How a backup's files are encrypted: to whom (public keys only, never a secret)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["age-v1"] = AGE_FORMAT
    recipients: tuple[Annotated[str, Field(pattern=r"^age1[02-9ac-hj-np-z]{58}$")], ...] = Field(
        min_length=1
    )


class Manifest(BaseModel):
    """A complete backup (schema 1, see DESIGN.md; schema 2 adds ``encryption``, and per file
    the plaintext's size and sha256)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION
    id: str = Field(pattern=rf"^{_ID}$")
    label: str | None = None
    created_at: Time
    finished_at: Time
    trigger: str = Field(pattern=_TRIGGER)  # retention groups backups by it
    operator: str
    tool_version: str
    scope: tuple[Name, ...] = Field(min_length=1)
    artifacts: tuple[Artifact, ...] = Field(min_length=1)
    encryption: Encryption | None = None

    @model_validator(mode="after")
    def _encrypted_as_the_schema_says(self) -> Manifest:
        encrypted = self.encryption is not None
        if self.schema_version != (SCHEMA_ENCRYPTED if encrypted else SCHEMA_VERSION):
            raise ValueError(
                f"schema {self.schema_version} "
                + ("names no encryption" if not encrypted else "cannot hold encryption")
            )
        files = [f for a in self.artifacts for f in a.files]
        if any(f.encrypted != encrypted for f in files):
            raise ValueError(
                "every file of an encrypted backup records plain_bytes and plain_sha256, and "
                "no file of a plaintext one does"
            )
        return self

    @property
    def encrypted(self) -> bool:
        return self.encryption is not None

    @property
    def encrypted_to(self) -> tuple[str, ...]:
        """The recipients whose identities open this backup (none: it is in plaintext)."""
        return self.encryption.recipients if self.encryption else ()

    @model_validator(mode="after")
    def _one_artifact_per_source(self) -> Manifest:
        sources = [a.source for a in self.artifacts]
        if len(set(sources)) != len(sources) or len(set(self.scope)) != len(self.scope):
            raise ValueError("a source appears twice in scope or artifacts")
        if set(sources) != set(self.scope):
            raise ValueError(
                f"scope {', '.join(self.scope)} does not match the artifacts ({', '.join(sources)})"
            )
        return self

    @property
    def size(self) -> int:
        return sum(a.size for a in self.artifacts)

    def artifact(self, source: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.source == source), None)

    def to_data(self) -> dict[str, Any]:
        """What ``manifest.json`` holds, as JSON types (also what ``--json`` prints)."""
        data = self.model_dump(mode="json")
        if data["encryption"] is None:  # schema 1 stays exactly what DESIGN.md shows
            del data["encryption"]
            for artifact in data["artifacts"]:
                for entry in artifact["files"]:
                    del entry["plain_bytes"], entry["plain_sha256"]
        return {"schema": data.pop("schema_version"), **data}

    def to_json(self) -> str:
        return json.dumps(self.to_data(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, raw: bytes | str, where: str) -> Manifest:
        """Parse a manifest read from disk; ``where`` names the file in error messages.

        Anything may be in that file: every way it can be wrong becomes a ManifestError
        saying what is wrong and where, never another exception.
        """
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            raise ManifestError(
                f"{where}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})"
            ) from None
        try:
            data = json.loads(text)
        except RecursionError:
            raise ManifestError(f"{where}: nested deeper than any manifest") from None
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{where}: not valid JSON ({exc})") from None
        except ValueError:  # an integer of more digits than Python converts
            raise ManifestError(f"{where}: holds a number too long to read") from None
        _check_shape(data, where)
        schema = data.pop("schema")
        if "schema_version" in data:
            raise ManifestError(f"{where}: invalid manifest: unknown key schema_version")
        if type(schema) is not int or schema not in READABLE_SCHEMAS:
            raise ManifestError(
                f"{where}: manifest schema {schema!r} is not one this Lifeboat reads "
                f"(schemas {', '.join(map(str, READABLE_SCHEMAS))}); use a Lifeboat version "
                "that supports it"
            )
        try:
            return cls.model_validate({"schema_version": schema, **data})
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "the top level"
            msg = first["msg"].removeprefix("Value error, ")
            raise ManifestError(f"{where}: invalid manifest at {loc}: {msg}") from None


def _check_shape(data: object, where: str) -> None:
    """A JSON object with a schema, nested no deeper than a manifest, free of control
    characters (a label must not be able to drive the operator's terminal) and of numbers
    beyond 64 bits (the catalog stores manifests as BSON)."""
    if not isinstance(data, dict) or "schema" not in data:
        raise ManifestError(f"{where}: no schema version; this is not a Lifeboat manifest")
    for path, value in _walk(data):
        if len(path) > MAX_DEPTH:
            raise ManifestError(f"{where}: nested deeper than any manifest at {_dotted(path)}")
        if isinstance(value, str) and (found := _CONTROL.search(value)):
            raise ManifestError(
                f"{where}: control character {found.group()!r} in a string at {_dotted(path)}"
            )
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            raise ManifestError(f"{where}: the number at {_dotted(path)} is out of range")


def _walk(data: object) -> Iterator[tuple[tuple[str | int, ...], object]]:
    """Every value and key in ``data`` with its path, iteratively (no recursion limit)."""
    stack: list[tuple[tuple[str | int, ...], object]] = [((), data)]
    while stack:
        path, value = stack.pop()
        yield path, value
        if isinstance(value, dict):
            for key, item in value.items():
                yield (*path, key), key
                stack.append(((*path, key), item))
        elif isinstance(value, list):
            stack.extend(((*path, index), item) for index, item in enumerate(value))


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in path) or "the top level"


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso_z(moment: datetime) -> str:
    """An aware UTC time as ISO 8601 with ``Z``: ``2026-11-21T15:00:00Z``."""
    return moment.isoformat().replace("+00:00", "Z")

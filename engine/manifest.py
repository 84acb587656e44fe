"""The manifest: what one backup contains, with a checksum for every file.

A manifest is schema-versioned JSON written last into a backup directory; its presence is what
makes a backup complete. Versions this code does not know are refused, never half-read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.errors import ManifestError

SCHEMA_VERSION = 1


class ArtifactFile(BaseModel):
    """One file of an artifact, relative to the backup directory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    bytes: int
    sha256: str


class Artifact(BaseModel):
    """What one source produced: its kind, the host it came from and its files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    kind: str
    host: str
    files: tuple[ArtifactFile, ...]
    meta: dict[str, Any] = {}

    @property
    def size(self) -> int:
        return sum(f.bytes for f in self.files)


class Manifest(BaseModel):
    """A complete backup (schema 1, see DESIGN.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION
    id: str
    label: str | None = None
    created_at: datetime
    finished_at: datetime
    trigger: str
    operator: str
    tool_version: str
    scope: tuple[str, ...]
    artifacts: tuple[Artifact, ...]

    @property
    def size(self) -> int:
        return sum(a.size for a in self.artifacts)

    def artifact(self, source: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.source == source), None)

    def to_json(self) -> str:
        data = self.model_dump(mode="json")
        data = {"schema": data.pop("schema_version"), **data}
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        """Parse manifest text; ``where`` names the file in error messages."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{where}: not valid JSON ({exc}); the backup is damaged") from exc
        if not isinstance(data, dict) or "schema" not in data:
            raise ManifestError(f"{where}: no schema version; this is not a Lifeboat manifest")
        schema = data.pop("schema")
        if schema != SCHEMA_VERSION:
            raise ManifestError(
                f"{where}: manifest schema {schema!r} is not one this Lifeboat reads "
                f"(schema {SCHEMA_VERSION}); use a Lifeboat version that supports it"
            )
        try:
            return cls.model_validate({"schema_version": schema, **data})
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ManifestError(
                f"{where}: invalid manifest at {loc}: {first['msg']}; the backup is damaged"
            ) from exc


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso_z(moment: datetime) -> str:
    """An aware UTC time as ISO 8601 with ``Z``: ``2026-11-21T15:00:00Z``."""
    return moment.isoformat().replace("+00:00", "Z")

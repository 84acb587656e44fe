"""Which backups have an off-host copy where: a log kept in the repository as copies are made
(``remote-copies.jsonl``), so that ``status`` judges each tier's off-host RPO without reaching
a remote. A copy made is a line; a copy pruned from a remote is a line too."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.repo import jsonlines
from engine.repo.manifest import Manifest, iso_z, utc_now
from engine.repo.repository import Repository

COPIES_LOG = "remote-copies.jsonl"


@dataclass(frozen=True)
class CopyRecord:
    remote: str
    backup: str
    finished_at: datetime  # when the backup itself finished (its RPO age counts from there)
    scope: tuple[str, ...]
    removed: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CopyRecord:
        scope = data["scope"]
        if not isinstance(scope, list) or not all(isinstance(s, str) for s in scope):
            raise TypeError("scope is not a list of names")
        return cls(
            str(data["remote"]),
            str(data["backup"]),
            datetime.fromisoformat(str(data["finished_at"]).replace("Z", "+00:00")),
            tuple(scope),
            bool(data.get("removed", False)),
        )


def record_copy(
    repo: Repository, remote: str, manifest: Manifest, *, removed: bool = False
) -> None:
    """Note that ``remote`` now holds (or, ``removed``, no longer holds) ``manifest``'s copy."""
    jsonlines.append(
        repo.path / COPIES_LOG,
        {
            "remote": remote,
            "backup": manifest.id,
            "finished_at": iso_z(manifest.finished_at),
            "scope": list(manifest.scope),
            "at": iso_z(utc_now()),
            "removed": removed,
        },
    )


def off_host(repo: Repository) -> list[CopyRecord]:
    """The copies the remotes hold, as Lifeboat made and pruned them, newest backup first."""
    held: dict[tuple[str, str], CopyRecord] = {}
    for record in jsonlines.read(repo.path / COPIES_LOG, CopyRecord.from_dict):
        key = (record.remote, record.backup)
        if record.removed:
            held.pop(key, None)
        else:
            held[key] = record
    return sorted(held.values(), key=lambda r: (r.finished_at, r.backup), reverse=True)


def copies_by_backup(repo: Repository) -> dict[str, tuple[str, ...]]:
    """Backup id -> the remotes holding its copy, as Lifeboat made them."""
    found: dict[str, list[str]] = {}
    for record in off_host(repo):
        found.setdefault(record.backup, []).append(record.remote)
    return {backup: tuple(sorted(remotes)) for backup, remotes in found.items()}

"""The console's index of backups: one small row per readable backup, newest first.

Reading 10,000 manifests takes a second or more (JSON plus validation). The console reads them
once, off the UI loop (``LifeboatApp.refresh_backups`` drives the reading), and keeps one small
row per backup: 10,000 parsed manifests are millions of objects, and every full garbage
collection would then pause the console. Manifests never change once committed, so a refresh
reads only new backups. The backups browser lists these rows and the guided restore chooses
among them; a manifest is read again only when one backup is shown in full.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from engine.errors import ManifestError
from engine.offsite.copies import copies_by_backup
from engine.repo.manifest import Manifest
from engine.repo.repository import Repository, VerifyRecord
from engine.restore.scenario import covers
from tui.format import human_size


@dataclass(frozen=True, slots=True)
class BackupRow:
    """What the console lists of one backup, and the text the browser's filter searches."""

    id: str
    created_at: datetime
    label: str
    trigger: str
    scope: tuple[str, ...]
    size: str
    haystack: str  # lowercase id, label, scope, hosts, Mongo namespaces, PostgreSQL tables
    encrypted_to: tuple[str, ...] = ()  # the recipients (none: stored in plaintext)

    @classmethod
    def of(cls, manifest: Manifest) -> BackupRow:
        hosts = dict.fromkeys(a.host for a in manifest.artifacts)
        namespaces = [name for artifact in manifest.artifacts for name in artifact.namespaces]
        words = [manifest.id, manifest.label or "", *manifest.scope, *hosts, *namespaces]
        return cls(
            id=manifest.id,
            created_at=manifest.created_at,
            label=manifest.label or "",
            trigger=manifest.trigger,
            scope=tuple(manifest.scope),
            size=human_size(manifest.size),
            haystack=" ".join(words).lower(),
            encrypted_to=manifest.encrypted_to,
        )


@dataclass(frozen=True)
class Chunk:
    """Some ids, read: the rows of the readable ones, the damaged ones (id -> why) and the ids
    that are gone (deleted since they were listed)."""

    rows: list[BackupRow]
    damaged: dict[str, str]
    gone: list[str]


def read_chunks(repo: Repository, ids: list[str], size: int) -> Iterator[Chunk]:
    """``ids`` read in order, ``size`` at a time."""
    for start in range(0, len(ids), size):
        wanted = ids[start : start + size]
        problems: list[ManifestError] = []
        rows = [BackupRow.of(m) for m in repo.iter_backups(wanted, problems)]
        damaged = {p.backup_id: str(p) for p in problems if p.backup_id}
        found = {row.id for row in rows} | damaged.keys()
        yield Chunk(rows, damaged, [i for i in wanted if i not in found])


class BackupIndex:
    """The rows of the backups on disk at the last refresh, and their verify results.

    Updated on the UI loop only (``begin`` lists, ``add`` takes what a reader read), so readers
    on the loop never see it half-changed."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.order: list[str] = []  # every id on disk at the last refresh, newest first
        self.verifications: dict[str, VerifyRecord] = {}
        self.copies: dict[str, tuple[str, ...]] = {}  # backup id -> remotes holding a copy
        self.problems: list[str] = []  # one per damaged backup ever seen, oldest first
        self._rows: dict[str, BackupRow] = {}
        self.failure: str | None = None  # why the last refresh stopped before reading all
        self._damaged: set[str] = set()

    def begin(self) -> list[str]:
        """Start a refresh: list the ids and verify results on disk now (one directory
        listing, one small log) and forget what is gone. Returns the ids still to read, newest
        first (damaged ones are read again: they may have been repaired)."""
        self.failure = None
        self.verifications = self.repo.verifications()
        self.copies = copies_by_backup(self.repo)
        self.order = self.repo.backup_ids()
        present = set(self.order)
        for gone in [i for i in self._rows if i not in present]:
            del self._rows[gone]
        self._damaged &= present
        return [i for i in self.order if i not in self._rows]

    def add(self, chunk: Chunk) -> None:
        for row in chunk.rows:
            self._rows[row.id] = row
            self._damaged.discard(row.id)
        for backup_id, problem in chunk.damaged.items():
            self._damaged.add(backup_id)
            if problem not in self.problems:
                self.problems.append(problem)
        if chunk.gone:
            gone = set(chunk.gone)
            self.order = [i for i in self.order if i not in gone]

    @property
    def complete(self) -> bool:
        """Whether every backup listed at the last refresh is read (or known to be damaged)."""
        return all(i in self._rows or i in self._damaged for i in self.order)

    @property
    def settled(self) -> bool:
        """Whether the last refresh is over: every backup read, or the reading failed."""
        return self.failure is not None or self.complete

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self) -> list[BackupRow]:
        """The rows read so far, newest first."""
        return [self._rows[i] for i in self.order if i in self._rows]

    def covering(self, sources: tuple[str, ...]) -> list[BackupRow]:
        """The rows of backups holding every one of ``sources``, newest first."""
        return [row for row in self.rows() if covers(row, sources)]

"""The on-disk repository: the source of truth for every backup.

Layout (DESIGN.md): ``backups/<id>/`` holds complete backups only, each with its
``manifest.json``; in-flight work lives in ``.staging/<id>/`` and is renamed into place in one
step when complete, so a crash leaves either a whole backup or nothing under ``backups/``.
Entries under ``backups/`` that are not backups are never touched. Each write the catalog
indexes goes through ``write_hook`` (``engine.repo.write_hook``).
"""

from __future__ import annotations

import difflib
import json
import os
import secrets
import shutil
import stat
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine import __version__
from engine.errors import BackupNotFoundError, ManifestError, RepositoryError, RepositoryLockedError
from engine.repo import jsonlines, locks
from engine.repo.atomic import atomic_create, atomic_write, fsync_dir, make_private_dir
from engine.repo.confined import describe_mode, open_confined
from engine.repo.manifest import BACKUP_ID, MAX_MANIFEST_BYTES, Manifest, iso_z, utc_now
from engine.repo.write_hook import WriteHook

MARKER = "lifeboat-repo.json"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VERIFY_LOG = "verify.jsonl"
KEEP_FAILED = 5
SHOW_CANDIDATES = 5  # ids named when a prefix is ambiguous
SHOW_SUGGESTIONS = 3  # near ids suggested for an unknown one


def new_backup_id(now: datetime | None = None) -> str:
    """A sortable UTC timestamp plus a short random suffix: ``20261121T150000Z-7f3a``."""
    moment = now or utc_now()
    return f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class VerifyRecord:
    """The outcome of one verify of one backup, kept in ``verify.jsonl``."""

    backup_id: str
    at: str
    ok: bool
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "problems": list(self.problems)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VerifyRecord:
        """The record of a ``verify.jsonl`` line; raises ``KeyError`` or ``TypeError`` when
        it is not one."""
        return cls(data["backup_id"], data["at"], bool(data["ok"]), tuple(data["problems"]))


def location_problem(path: Path) -> str | None:
    """Why ``path`` cannot hold a repository (a file, or a non-empty directory that is not a
    Lifeboat repository), with the fix; None when it can (also when it cannot be read yet:
    opening it reports that)."""
    fix = "point repository.path at a new or empty directory, or at a Lifeboat repository"
    try:
        if path.exists() and not path.is_dir():
            return f"{path} exists and is not a directory; {fix}"
        being_created = f".{MARKER}."  # another process's marker, not yet in place
        others = (p for p in path.iterdir() if not p.name.startswith(being_created))
        if path.is_dir() and not (path / MARKER).exists() and any(others):
            return f"{path} is not empty and is not a Lifeboat repository (no {MARKER}); {fix}"
    except OSError:
        return None
    return None


class Repository:
    """A repository directory; see the module docstring for the layout."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.backups_dir = path / "backups"
        self.staging_dir = path / ".staging"
        self.failed_dir = path / ".failed"
        self.trash_dir = path / ".trash"
        self.lock_path = path / "lock"
        self.write_hook = WriteHook()

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Repository:
        """Open the repository at ``path``, creating it on first use when ``create``."""
        repo = cls(path)
        if not (path / MARKER).is_file():
            if not create:
                raise RepositoryError(
                    f"no Lifeboat repository at {path}; create it with `lifeboat repo init`"
                )
            repo.init()
        repo._check_format()
        for directory in (repo.backups_dir, repo.staging_dir):  # its creator may still be on it
            make_private_dir(directory)
        return repo

    def init(self) -> None:
        """Create the layout (idempotent, and safe when several processes create it at once:
        the marker appears whole, first, and only the first one's counts): the marker, then
        backups/ and .staging/, all private."""
        if problem := location_problem(self.path):
            raise RepositoryError(problem)
        make_private_dir(self.path)
        if not (self.path / MARKER).exists():
            marker = {
                "format": FORMAT_VERSION,
                "created": iso_z(utc_now()),
                "repo_id": str(uuid.uuid4()),
                "tool_version": __version__,
            }
            atomic_create(self.path / MARKER, (json.dumps(marker, indent=2) + "\n").encode())
        for directory in (self.backups_dir, self.staging_dir):
            make_private_dir(directory)

    def _check_format(self) -> None:
        try:
            marker = json.loads((self.path / MARKER).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RepositoryError(f"{self.path / MARKER} is unreadable: {exc}") from exc
        if marker.get("format") != FORMAT_VERSION:
            raise RepositoryError(
                f"{self.path} has repository format {marker.get('format')!r}; this Lifeboat "
                f"reads format {FORMAT_VERSION}: use a matching Lifeboat version"
            )

    def repo_id(self) -> str:
        """The ``repo_id`` in the marker file: what instances sharing this repository share
        (etcd locks, catalog documents)."""
        marker = self.path / MARKER
        try:
            value = json.loads(marker.read_text()).get("repo_id")
        except (OSError, ValueError, AttributeError) as exc:
            raise RepositoryError(f"cannot read {marker}: {exc}") from None
        if not isinstance(value, str) or not value:
            raise RepositoryError(
                f"{marker} has no repo_id; re-create the repository with a current Lifeboat"
            )
        return value

    # -- locking ---------------------------------------------------------------------------

    @contextmanager
    def lock(self, operation: str, operator: str) -> Iterator[None]:
        """Hold the exclusive write lock; refuse at once, naming the holder, if it is taken.
        The writes under it are one batch of the write hook: it runs after the release."""
        try:
            with self.write_hook.batch(), locks.hold(self.lock_path, operation, operator):
                yield
        except locks.LockBusy as busy:
            raise RepositoryLockedError(
                f"the repository {self.path} is locked by {busy.holder}; wait for it to "
                "finish and try again"
            ) from None

    # -- writing backups -------------------------------------------------------------------

    def create_staging(self, backup_id: str) -> Path:
        staging = self.staging_dir / backup_id
        make_private_dir(self.staging_dir)
        staging.mkdir(mode=0o700)
        return staging

    def commit(self, staging: Path, manifest: Manifest) -> Path:
        """Write the manifest into ``staging`` and move it into ``backups/`` in one rename."""
        atomic_write(staging / MANIFEST, manifest.to_json().encode())
        final = self.backups_dir / manifest.id
        make_private_dir(self.backups_dir)
        os.rename(staging, final)
        fsync_dir(self.backups_dir)
        fsync_dir(self.staging_dir)
        self.write_hook.wrote()
        return final

    def abandon(self, staging: Path, *, keep_for_diagnosis: bool) -> Path | None:
        """Remove a failed or cancelled staging dir, or keep it under ``.failed/``.

        Only the newest few failures are kept, so diagnosis never fills the disk, and an empty
        one (nothing was written) is not kept at all.
        """
        if not staging.exists():
            return None
        if not keep_for_diagnosis or not any(staging.iterdir()):
            shutil.rmtree(staging)
            return None
        make_private_dir(self.failed_dir)
        kept = self.failed_dir / staging.name
        os.rename(staging, kept)
        for old in sorted(self.failed_dir.iterdir())[:-KEEP_FAILED]:
            shutil.rmtree(old, ignore_errors=True)
        return kept

    # -- reading ---------------------------------------------------------------------------

    def backup_dir(self, backup_id: str) -> Path:
        return self.backups_dir / backup_id

    def has_entry(self, backup_id: str) -> bool:
        """Whether ``backups/<id>`` is an id-shaped entry of any kind (a link is not followed)."""
        return bool(BACKUP_ID.match(backup_id)) and os.path.lexists(self.backups_dir / backup_id)

    def is_backup(self, backup_id: str) -> bool:
        """Whether ``backups/<id>`` is a Lifeboat backup (an id-shaped dir with a manifest)."""
        try:
            return self._unsound(backup_id) is None
        except BackupNotFoundError:
            return False

    def _unsound(self, backup_id: str) -> str | None:
        """Why the entry ``backups/<id>`` cannot be a backup, seen from two ``lstat`` calls
        (None: it may be one); BackupNotFoundError when there is no such entry."""
        directory = self.backups_dir / backup_id
        try:
            mode = os.lstat(directory).st_mode if BACKUP_ID.match(backup_id) else None
        except FileNotFoundError:
            mode = None
        if mode is None:
            raise BackupNotFoundError(
                f"no backup {backup_id!r} in {self.path}; `lifeboat backup list` shows the ids"
            )
        if not stat.S_ISDIR(mode):
            return f"it is {describe_mode(mode)}, not a directory"
        try:
            mode = os.lstat(directory / MANIFEST).st_mode
        except FileNotFoundError:
            return f"it has no {MANIFEST} (incomplete)"
        return None if stat.S_ISREG(mode) else f"its {MANIFEST} is {describe_mode(mode)}"

    def load(self, backup_id: str) -> Manifest:
        """The manifest of ``backup_id``, read without following any link.

        ``BackupNotFoundError`` when ``backups/`` holds no such entry; ``ManifestError``
        (with ``backup_id``) when it holds one that is not a sound backup: no manifest, not a
        directory, a manifest that cannot be read or is invalid.
        """
        if (reason := self._unsound(backup_id)) is not None:
            raise self._damaged(backup_id, reason)
        directory = self.backups_dir / backup_id
        try:
            with open_confined(directory, MANIFEST) as handle:
                size = os.fstat(handle.fileno()).st_size
                raw = handle.read(MAX_MANIFEST_BYTES) if size <= MAX_MANIFEST_BYTES else None
        except FileNotFoundError:
            if not os.path.lexists(directory):  # deleted (or pruned) while we looked
                raise BackupNotFoundError(f"backup {backup_id} was just deleted") from None
            raise self._damaged(backup_id, f"it has no {MANIFEST} (incomplete)") from None
        except OSError as exc:  # UnsafeFileError too: swapped for a link since we looked
            raise self._damaged(backup_id, f"{MANIFEST}: {exc.strerror or exc}") from None
        if raw is None:
            raise self._damaged(backup_id, f"{MANIFEST} is {size} bytes, more than any manifest")
        try:
            manifest = Manifest.from_json(raw, MANIFEST)
        except ManifestError as exc:
            raise self._damaged(backup_id, str(exc)) from None
        if manifest.id != backup_id:
            raise self._damaged(backup_id, f"{MANIFEST} says it is backup {manifest.id}")
        return manifest

    def unsound(self) -> list[ManifestError]:
        """Every id-shaped entry that cannot be a backup (not a directory, no manifest), found
        without reading any manifest: cheap enough for ``status`` over 10,000 backups."""
        found = []
        for backup_id in self.backup_ids():
            try:
                reason = self._unsound(backup_id)
            except BackupNotFoundError:
                continue  # deleted meanwhile
            if reason is not None:
                found.append(self._damaged(backup_id, reason))
        return found

    def _damaged(self, backup_id: str, reason: str) -> ManifestError:
        return ManifestError(
            f"backup {backup_id} is damaged: {reason}; inspect {self.backups_dir / backup_id} "
            f"or remove it with `lifeboat backup delete {backup_id} --confirm {backup_id}`",
            backup_id,
        )

    def resolve(self, text: str) -> str:
        """The id of the one backup entry ``text`` names: the id itself, or (as git does) a
        unique prefix of it, in any case; a trailing ``…`` copied from a cut table is ignored.

        ``BackupNotFoundError`` (a usage error) when nothing matches, suggesting the nearest
        ids, or when several do, naming some of them. Damaged entries count: deleting one
        goes through here too."""
        wanted = text.strip().removesuffix("…").strip()
        if BACKUP_ID.match(wanted) and os.path.lexists(self.backups_dir / wanted):
            return wanted  # an exact id wins, without listing backups/
        ids = self.backup_ids()
        if not wanted:
            raise BackupNotFoundError(
                "give a backup id (or a unique prefix of one); `lifeboat backup list` shows them"
            )
        folded = wanted.lower()
        matches = [i for i in ids if i.lower().startswith(folded)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            shown = ", ".join(matches[:SHOW_CANDIDATES])
            more = len(matches) - SHOW_CANDIDATES
            raise BackupNotFoundError(
                f"backup id {wanted!r} is ambiguous: it starts {len(matches)} ids ({shown}"
                + (f" and {more} more" if more > 0 else "")
                + "); type more characters"
            )
        if not ids:
            raise BackupNotFoundError(
                f"no backup {wanted!r}: {self.path} holds no backups yet; make one with "
                "`lifeboat backup create`"
            )
        near = nearest_ids(wanted, ids)
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        raise BackupNotFoundError(
            f"no backup {wanted!r} in {self.path}; {hint}`lifeboat backup list` shows the ids"
        )

    def backup_ids(self) -> list[str]:
        """The id-shaped names under ``backups/``, newest first (manifests not read yet)."""
        if not self.backups_dir.is_dir():
            return []
        names = os.listdir(self.backups_dir)  # 10,000 names in a few milliseconds
        return sorted((name for name in names if BACKUP_ID.match(name)), reverse=True)

    def iter_backups(
        self, ids: Iterable[str] | None = None, problems: list[ManifestError] | None = None
    ) -> Iterator[Manifest]:
        """Readable backups of ``ids`` (default: all, newest first), read one at a time so a
        caller that needs only the newest few stops early. Damaged ones (an id-shaped entry
        that is not a sound backup) are skipped and added to ``problems``; ids that are gone
        are skipped."""
        for backup_id in self.backup_ids() if ids is None else ids:
            try:
                yield self.load(backup_id)
            except BackupNotFoundError:
                continue
            except ManifestError as exc:
                if problems is not None:
                    problems.append(exc)

    def list_backups(self) -> tuple[list[Manifest], list[ManifestError]]:
        """Every readable backup, newest first, and one error per damaged one."""
        problems: list[ManifestError] = []
        return list(self.iter_backups(problems=problems)), problems

    # -- verify results --------------------------------------------------------------------

    def record_verify(self, record: VerifyRecord) -> None:
        """Append a verify outcome (an append of one short line: no lock needed)."""
        jsonlines.append(self.path / VERIFY_LOG, record.to_dict())
        self.write_hook.wrote()

    def verifications(self) -> dict[str, VerifyRecord]:
        """The latest verify outcome of each backup id; a line that does not read (a torn
        last line after a crash) is skipped and logged: the older records still count."""
        records = jsonlines.read(self.path / VERIFY_LOG, VerifyRecord.from_dict)
        return {record.backup_id: record for record in records}

    # -- deleting --------------------------------------------------------------------------

    def delete(self, backup_id: str) -> None:
        """Delete one backup, damaged or not: renamed out of ``backups/`` first, so it vanishes
        atomically. Only id-shaped entries are ever deleted; a link goes, never its target."""
        if not self.has_entry(backup_id):
            raise BackupNotFoundError(
                f"no backup {backup_id!r} in {self.path}; nothing was deleted"
            )
        make_private_dir(self.trash_dir)
        doomed = self.trash_dir / backup_id
        _remove(doomed)  # left by a delete that was killed half-way
        os.rename(self.backups_dir / backup_id, doomed)
        fsync_dir(self.backups_dir)
        _remove(doomed)
        self.write_hook.wrote()


def nearest_ids(text: str, ids: list[str], count: int = SHOW_SUGGESTIONS) -> list[str]:
    """The ids closest to ``text``, which names none: the closest by ``difflib``, else those
    sharing its longest prefix (at least the date), newest first."""
    folded = {i.lower(): i for i in ids}
    close = difflib.get_close_matches(text.lower(), list(folded), n=count, cutoff=0.75)
    if close:
        return [folded[c] for c in close]
    shared = {i: len(os.path.commonprefix([text.lower(), i.lower()])) for i in ids}
    longest = max(shared.values(), default=0)
    if longest < 8:  # not even the same day: no id is near
        return []
    return [i for i in ids if shared[i] == longest][:count]


def _remove(path: Path) -> None:
    """Remove ``path`` if it is there: a directory tree, or a file or link (never followed)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()

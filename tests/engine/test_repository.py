"""The repository on disk: ids, layout, permissions, atomic commit, locking, listing, prune."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import stored_backup
from timing import DEADLINE

from engine.config.load import parse_config
from engine.errors import BackupNotFoundError, ManifestError, RepositoryError, RepositoryLockedError
from engine.events import Event, JobStarted
from engine.jobs import run_verify
from engine.repo.manifest import Manifest
from engine.repo.repository import (
    BACKUP_ID,
    MANIFEST,
    Repository,
    location_problem,
    new_backup_id,
)
from engine.repo.retention import delete_backup, prune


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def fake_backup(repo: Repository, moment: datetime, label: str | None = None) -> Manifest:
    """A small but real backup committed through the repository API."""
    return stored_backup(repo, moment, {"a": b"hello"}, label)


def test_ids_sort_chronologically_and_have_the_documented_shape() -> None:
    early = new_backup_id(datetime(2026, 11, 21, 15, 0, 0, tzinfo=UTC))
    late = new_backup_id(datetime(2026, 11, 21, 15, 0, 1, tzinfo=UTC))
    assert BACKUP_ID.match(early)
    assert early.startswith("20261121T150000Z-")
    assert sorted([late, early]) == [early, late]


def test_layout_is_private_and_created_on_first_use(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    for directory in (repo.path, repo.backups_dir, repo.staging_dir):
        assert mode(directory) == 0o700
    assert mode(repo.path / "lifeboat-repo.json") == 0o600


def test_open_without_create_explains_how_to_init(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="lifeboat repo init"):
        Repository.open(tmp_path / "none", create=False)


def test_non_empty_foreign_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("x")
    with pytest.raises(RepositoryError, match="not empty"):
        Repository.open(tmp_path)


def test_commit_writes_the_manifest_and_lists_newest_first(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    first = fake_backup(repo, datetime(2026, 1, 1, tzinfo=UTC))
    second = fake_backup(repo, datetime(2026, 1, 2, tzinfo=UTC), label="pre-upgrade")
    manifests, problems = repo.list_backups()
    assert [m.id for m in manifests] == [second.id, first.id]
    assert problems == []
    assert repo.load(second.id) == second
    assert mode(repo.backup_dir(second.id) / MANIFEST) == 0o600
    data = json.loads((repo.backup_dir(second.id) / MANIFEST).read_text())
    assert data["schema"] == 1
    assert list(repo.staging_dir.iterdir()) == []


def test_unknown_schema_is_refused_and_reported_in_listing(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    manifest = fake_backup(repo, datetime(2026, 1, 1, tzinfo=UTC))
    path = repo.backup_dir(manifest.id) / MANIFEST
    data = json.loads(path.read_text())
    data["schema"] = 7
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="schema 7 is not one this Lifeboat reads"):
        repo.load(manifest.id)
    manifests, problems = repo.list_backups()
    assert manifests == []
    assert len(problems) == 1


def _flip_to_latin1(repo: Repository, backup_id: str, _outside: Path) -> None:
    path = repo.backup_dir(backup_id) / MANIFEST
    path.write_bytes(path.read_bytes().replace(b'"tester"', b'"t\xe9ster"'))


def _truncate(repo: Repository, backup_id: str, _outside: Path) -> None:
    path = repo.backup_dir(backup_id) / MANIFEST
    path.write_bytes(path.read_bytes()[:-40])


def _nest_deeply(repo: Repository, backup_id: str, _outside: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    (repo.backup_dir(backup_id) / MANIFEST).write_text(f'{{"schema": 1, "label": {deep}}}')


def _remove_manifest(repo: Repository, backup_id: str, _outside: Path) -> None:
    (repo.backup_dir(backup_id) / MANIFEST).unlink()


def _link_manifest_out(repo: Repository, backup_id: str, outside: Path) -> None:
    """The manifest becomes a link to a sound copy outside: it must not be read through."""
    path = repo.backup_dir(backup_id) / MANIFEST
    copy = outside / MANIFEST
    path.rename(copy)
    path.symlink_to(copy)


def _link_directory_out(repo: Repository, backup_id: str, outside: Path) -> None:
    moved = outside / backup_id
    repo.backup_dir(backup_id).rename(moved)
    repo.backup_dir(backup_id).symlink_to(moved)


DAMAGE = {
    "non-UTF-8 byte": (_flip_to_latin1, "manifest.json: not UTF-8 text (byte 0xe9 at offset"),
    "invalid JSON": (_truncate, "manifest.json: not valid JSON"),
    "deep nesting": (_nest_deeply, "manifest.json: nested deeper than any manifest"),
    "no manifest": (_remove_manifest, "it has no manifest.json (incomplete)"),
    "manifest is a link": (_link_manifest_out, "its manifest.json is a symbolic link"),
    "directory is a link": (_link_directory_out, "it is a symbolic link (never followed), not"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_one_damaged_backup_is_named_and_the_others_stay_usable(
    tmp_path: Path, damage: str
) -> None:
    repo = Repository.open(tmp_path / "repo")
    outside = tmp_path / "outside"
    outside.mkdir()
    healthy = [
        fake_backup(repo, datetime(2026, 1, day, tzinfo=UTC), f"l{day}") for day in (1, 2, 3)
    ]
    bad = fake_backup(repo, datetime(2026, 1, 4, tzinfo=UTC), "bad")
    spoil, reason = DAMAGE[damage]
    spoil(repo, bad.id, outside)
    before = sorted(p.name for p in outside.rglob("*"))

    manifests, problems = repo.list_backups()
    assert [m.id for m in manifests] == [m.id for m in reversed(healthy)]
    assert [p.backup_id for p in problems] == [bad.id]
    assert f"backup {bad.id} is damaged: {reason}" in str(problems[0])
    assert f"lifeboat backup delete {bad.id} --confirm {bad.id}" in str(problems[0])
    with pytest.raises(ManifestError, match=re.escape(reason)):
        repo.load(bad.id)

    config = parse_config(f'[repository]\npath = "{repo.path}"\n')
    plan = prune(config, repo, "tester", dry_run=False, keep_last=1)
    assert [m.id for m in plan.remove] == [healthy[1].id, healthy[0].id]
    assert os.path.lexists(repo.backup_dir(bad.id))  # prune never touches what is not a backup

    delete_backup(repo, bad.id, "tester")  # an explicit delete of the damaged one works
    assert not os.path.lexists(repo.backup_dir(bad.id))
    assert repo.list_backups() == ([healthy[2]], [])
    assert sorted(p.name for p in outside.rglob("*")) == before  # a link goes, not its target


def test_an_id_shaped_file_under_backups_is_damage_and_can_be_deleted(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    stray = repo.backups_dir / "20260101T000000Z-abcd"
    stray.write_text("not a backup")
    (problem,) = repo.list_backups()[1]
    assert "is damaged: it is a regular file, not a directory" in str(problem)
    assert problem.backup_id == stray.name
    repo.delete(stray.name)
    assert not stray.exists()


async def test_a_backup_deleted_while_it_is_verified_is_not_recorded_as_failed(
    tmp_path: Path,
) -> None:
    repo = Repository.open(tmp_path / "repo")
    backup = fake_backup(repo, datetime(2026, 1, 1, tzinfo=UTC))

    def delete_once_started(event: Event) -> None:
        if isinstance(event, JobStarted):  # the manifest is read, no file is yet
            delete_backup(repo, backup.id, "pruner")

    with pytest.raises(BackupNotFoundError, match="deleted while it was being verified"):
        await run_verify(repo, backup.id, delete_once_started)
    assert backup.id not in repo.verifications()


def test_staging_without_manifest_is_not_a_backup(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    staging = repo.create_staging(new_backup_id())
    (staging / "half.out").write_bytes(b"half")
    assert repo.list_backups() == ([], [])
    kept = repo.abandon(staging, keep_for_diagnosis=True)
    assert kept is not None
    assert kept.parent == repo.failed_dir
    assert repo.list_backups() == ([], [])


def test_lock_refusal_names_the_holder_and_frees_after(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    holder = r"pid \d+ on .* \(backup by alice\)"
    with (
        repo.lock("backup", "alice"),
        pytest.raises(RepositoryLockedError, match=holder),
        repo.lock("prune", "bob"),
    ):
        pass
    with repo.lock("prune", "bob"):
        pass


def test_delete_refuses_what_is_not_a_backup(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    foreign = repo.backups_dir / "notes"
    foreign.mkdir()
    with pytest.raises(BackupNotFoundError):
        repo.delete("notes")
    assert foreign.exists()


def test_prune_keeps_the_newest_and_leaves_foreign_directories(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    config = parse_config(f'[repository]\npath = "{repo.path}"\n')
    made = [fake_backup(repo, datetime(2026, 1, day, tzinfo=UTC)) for day in range(1, 6)]
    foreign = repo.backups_dir / "20200101T000000Z-keep-me"
    foreign.mkdir()
    (foreign / "manifest.json").write_text("{}")
    lookalike = repo.backups_dir / "20200101T000000Z-abcd"
    lookalike.mkdir()  # id-shaped, but no manifest: not a backup

    plan = prune(config, repo, "tester", dry_run=True, keep_last=2)
    assert [m.id for m in plan.remove] == [m.id for m in reversed(made[:3])]
    assert len(repo.list_backups()[0]) == 5

    prune(config, repo, "tester", dry_run=False, keep_last=2)
    assert [m.id for m in repo.list_backups()[0]] == [made[4].id, made[3].id]
    assert foreign.exists()
    assert lookalike.exists()
    audit_lines = (repo.path / "audit.jsonl").read_text().splitlines()
    assert [json.loads(line)["backup"] for line in audit_lines] == [
        m.id for m in reversed(made[:3])
    ]


OPEN_AND_SAY_ID = (
    "import sys; from engine.repo.repository import Repository; "
    "print(Repository.open(__import__('pathlib').Path(sys.argv[1])).repo_id())"
)


def test_processes_creating_one_repository_at_once_all_open_the_same_one(tmp_path: Path) -> None:
    """Three schedulers started together on a new repository path: none may find it "not
    empty and not a repository" half way, and all must share one repo_id (etcd keys)."""
    path = tmp_path / "repo"
    procs = [
        subprocess.Popen(
            [sys.executable, "-W", "ignore", "-c", OPEN_AND_SAY_ID, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(12)
    ]
    results = [proc.communicate(timeout=DEADLINE) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 12, [err for _, err in results]
    assert len({out.strip() for out, _ in results}) == 1
    assert sorted(p.name for p in path.iterdir()) == [".staging", "backups", "lifeboat-repo.json"]


def test_a_marker_being_written_is_not_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / ".lifeboat-repo.json.4242.tmp").write_text("{")
    assert location_problem(tmp_path) is None
    (tmp_path / "notes.txt").write_text("mine")
    assert "is not empty and is not a Lifeboat repository" in (location_problem(tmp_path) or "")

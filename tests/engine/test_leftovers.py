"""What killed writers leave (``.staging/<id>``, ``.trash/<id>``): dead only once the lock is
not theirs, reported, removed under the lock, never through a link."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from cli_run import lifeboat, write_config
from helpers import stored_backup

from engine.config.load import parse_config
from engine.errors import RepositoryLockedError
from engine.repo import leftovers, locks
from engine.repo.manifest import utc_now
from engine.repo.repository import Repository, new_backup_id
from engine.repo.retention import prune


def killed_backup(repo: Repository, age: timedelta, size: int = 1000) -> Path:
    """A staging dir as kill -9 leaves it: an id ``age`` old and a partial artifact."""
    staging = repo.create_staging(new_backup_id(utc_now() - age))
    (staging / "db.out").write_bytes(b"x" * size)
    return staging


def test_with_the_lock_free_every_leftover_is_dead_and_clean_frees_it(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    staging = killed_backup(repo, timedelta(hours=1), 3000)
    trash = repo.trash_dir / "20260101T000000Z-abcd"
    (trash / "sub").mkdir(parents=True)
    (trash / "sub" / "a").write_bytes(b"y" * 500)

    found = leftovers.find(repo)
    assert [(f.name, f.bytes) for f in found] == [
        (f".staging/{staging.name}", 3000),
        (".trash/20260101T000000Z-abcd", 500),
    ]
    assert leftovers.clean(repo, "tester", dry_run=True) == found
    assert staging.exists()
    assert leftovers.clean(repo, "tester", dry_run=False) == found
    assert not staging.exists()
    assert not trash.exists()
    assert leftovers.find(repo) == []
    (entry,) = [json.loads(line) for line in (repo.path / "audit.jsonl").read_text().splitlines()]
    assert entry["action"] == "repository.clean"
    assert entry["bytes"] == 3500


def test_a_running_writers_staging_is_never_reported_nor_removed(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    dead = killed_backup(repo, timedelta(minutes=5))
    (repo.trash_dir / "20260101T000000Z-abcd").mkdir(parents=True)
    with locks.hold(repo.lock_path, "backup", "someone"):  # another writer, running now
        live = killed_backup(repo, timedelta(0))
        assert [f.path for f in leftovers.find(repo)] == [dead]  # the trash may be its delete
        with pytest.raises(RepositoryLockedError, match="locked by pid"):
            leftovers.clean(repo, "tester", dry_run=False)
    assert live.exists()
    assert dead.exists()


def test_an_unreadable_lock_holder_makes_nothing_dead(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    killed_backup(repo, timedelta(days=1))
    with locks.hold(repo.lock_path, "backup", "someone"):
        repo.lock_path.write_text("[" * 5000)  # its details: deep JSON, not a holder
        assert locks.holder_of(repo.lock_path) == locks.UNREADABLE
        assert leftovers.find(repo) == []


def test_removal_never_follows_a_link_out_of_the_repository(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep").write_text("mine")
    (repo.staging_dir / "20260101T000000Z-abcd").symlink_to(outside)
    killed = killed_backup(repo, timedelta(hours=2))
    (killed / "link").symlink_to(outside)

    assert len(leftovers.clean(repo, "tester", dry_run=False)) == 2
    assert (outside / "keep").read_text() == "mine"
    assert list(repo.staging_dir.iterdir()) == []


def test_prune_removes_leftovers_before_anything_else(tmp_path: Path) -> None:
    config = parse_config(f'[repository]\npath = "{tmp_path / "repo"}"\n')
    repo = Repository.open(config.repository.path)
    stored_backup(repo, utc_now() - timedelta(days=2), {"db": b"old"}, "a")
    stored_backup(repo, utc_now() - timedelta(days=1), {"db": b"new"}, "b")
    staging = killed_backup(repo, timedelta(hours=1))

    assert prune(config, repo, "tester", dry_run=True, keep_last=1).leftovers == ()
    assert staging.exists()
    plan = prune(config, repo, "tester", dry_run=False, keep_last=1)
    assert [f.path for f in plan.leftovers] == [staging]
    assert not staging.exists()


async def test_repo_clean_previews_then_frees_the_bytes(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", f'[repository]\npath = "{tmp_path / "repo"}"\n')
    repo = Repository.open(tmp_path / "repo")
    staging = killed_backup(repo, timedelta(hours=1), 2048)

    preview = await lifeboat("repo", "clean", "--dry-run", config=config)
    assert preview.rc == 0, preview
    assert preview.stdout.splitlines() == [
        f"would remove .staging/{staging.name} (2.0 KiB)",
        "would free 2.0 KiB",
    ]
    assert staging.exists()
    done = await lifeboat("repo", "clean", "--json", config=config)
    assert json.loads(done.stdout) == {
        "dry_run": False,
        "leftovers": [{"path": f".staging/{staging.name}", "bytes": 2048}],
    }
    assert not staging.exists()
    again = await lifeboat("repo", "clean", config=config)
    assert "nothing to clean" in again.stdout

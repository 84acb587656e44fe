"""Naming a backup: its whole id, or (as git does) a unique prefix; otherwise a usage error
that names the candidates or suggests the nearest ids."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import commit_backup

from engine.errors import BackupNotFoundError, UsageError
from engine.repo.repository import Repository

IDS = (
    "20261207T020908Z-7f3a",
    "20261207T020908Z-7f4b",
    "20261207T030000Z-0001",
    "20261201T000000Z-abcd",
    "20261201T000001Z-abcd",
    "20261201T000002Z-abcd",
    "20261201T000003Z-abcd",
    "20261201T000004Z-abcd",
    "20261201T000005Z-abcd",
)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    repo = Repository.open(tmp_path / "repo")
    moment = datetime(2026, 12, 7, tzinfo=UTC)
    for backup_id in IDS:
        commit_backup(repo, backup_id, moment, {"a": ("a.out", b"x", "command-output", {})})
    return repo


def test_a_whole_id_names_its_backup(repo: Repository) -> None:
    assert repo.resolve("20261207T020908Z-7f3a") == "20261207T020908Z-7f3a"


def test_a_damaged_entry_is_named_too(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    (repo.backups_dir / "20261207T020908Z-7f3a").mkdir()  # damaged entries count too
    assert repo.resolve("20261207T020908Z-7f3a") == "20261207T020908Z-7f3a"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20261207T020908Z-7f3", "20261207T020908Z-7f3a"),
        ("20261207T020908Z-7f4", "20261207T020908Z-7f4b"),
        ("20261207T03", "20261207T030000Z-0001"),
        ("20261207t03", "20261207T030000Z-0001"),  # any case
        ("  20261207T020908Z-7f3…", "20261207T020908Z-7f3a"),  # as copied from a cut table
    ],
)
def test_a_unique_prefix_names_its_backup(repo: Repository, text: str, expected: str) -> None:
    assert repo.resolve(text) == expected


def test_an_ambiguous_prefix_names_five_candidates_and_asks_for_more(repo: Repository) -> None:
    with pytest.raises(BackupNotFoundError) as two:
        repo.resolve("20261207T020908Z")
    assert str(two.value) == (
        "backup id '20261207T020908Z' is ambiguous: it starts 2 ids (20261207T020908Z-7f4b, "
        "20261207T020908Z-7f3a); type more characters"
    )
    with pytest.raises(BackupNotFoundError) as many:
        repo.resolve("20261201")
    message = str(many.value)
    assert "it starts 6 ids (20261201T000005Z-abcd, 20261201T000004Z-abcd," in message
    assert "20261201T000001Z-abcd and 1 more); type more characters" in message
    assert "20261201T000000Z-abcd" not in message
    assert isinstance(many.value, UsageError)  # exit 2, one line, no traceback


def test_an_unknown_id_suggests_the_nearest(repo: Repository) -> None:
    with pytest.raises(BackupNotFoundError) as typo:
        repo.resolve("20261207T020908Z-7f3c")
    message = str(typo.value)
    assert message.startswith("no backup '20261207T020908Z-7f3c' in ")
    assert "did you mean 20261207T020908Z-7f3a" in message
    assert message.endswith("`lifeboat backup list` shows the ids")


def test_an_unknown_id_of_a_known_day_suggests_that_days_backups(repo: Repository) -> None:
    with pytest.raises(BackupNotFoundError) as info:
        repo.resolve("20261207T2359")
    assert "did you mean 20261207T" in str(info.value)


def test_an_id_near_nothing_suggests_nothing_but_the_listing(repo: Repository) -> None:
    with pytest.raises(BackupNotFoundError) as info:
        repo.resolve("nightly")
    assert str(info.value) == (
        f"no backup 'nightly' in {repo.path}; `lifeboat backup list` shows the ids"
    )


def test_an_empty_id_is_refused(repo: Repository) -> None:
    with pytest.raises(BackupNotFoundError, match="give a backup id"):
        repo.resolve(" ")


def test_a_repository_without_backups_says_so(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    with pytest.raises(BackupNotFoundError) as info:
        repo.resolve("2026")
    assert "holds no backups yet; make one with `lifeboat backup create`" in str(info.value)


def test_names_that_are_not_ids_are_never_resolved(repo: Repository) -> None:
    (repo.backups_dir / "20261207-notes").mkdir()
    (repo.backups_dir / "20261207T020908Z-7f3a.old").mkdir()
    with pytest.raises(BackupNotFoundError, match="no backup"):
        repo.resolve("20261207-")
    assert repo.resolve("20261207T020908Z-7f3a") == "20261207T020908Z-7f3a"
    with pytest.raises(BackupNotFoundError, match="no backup"):
        repo.resolve("../repo/backups/20261207T020908Z-7f3a")

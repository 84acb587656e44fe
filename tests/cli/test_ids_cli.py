"""Backup ids at the command line: whole in `backup list` at 80 columns, a unique prefix
accepted wherever an id is, and the nearest ids suggested for an unknown one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_run import lifeboat, write_config
from helpers import stored_backup

from engine.repo.manifest import Manifest
from engine.repo.repository import Repository


def repository(tmp_path: Path) -> tuple[Path, list[Manifest]]:
    """Three backups, two a second apart (their ids share 15 characters), with a long label
    and a long scope: what cut the ids at 80 columns."""
    repo = Repository.open(tmp_path / "repo")
    sources = {"mongo-main": b"1", "etcd-cluster": b"2", "files-etc-and-more": b"3"}
    made = [
        stored_backup(repo, datetime(2026, 12, 7, 2, 9, 9, tzinfo=UTC), {"db": b"9"}, "nightly"),
        stored_backup(
            repo, datetime(2026, 12, 7, 2, 9, 8, tzinfo=UTC), sources, "pre-v1.4-upgrade-of-all"
        ),
        stored_backup(repo, datetime(2026, 12, 6, 2, 9, 9, tzinfo=UTC), {"db": b"6"}),
    ]
    text = f"[repository]\npath = {json.dumps(str(repo.path))}\n"
    return write_config(tmp_path / "c.toml", text), made


async def test_backup_list_at_80_columns_shows_whole_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, made = repository(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")  # the width rich's console takes
    listed = await lifeboat("backup", "list", config=config)
    assert listed.rc == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert "…" in listed.stdout  # the label and the scope were shortened, not the ids
    rows = [line.split()[0] for line in lines[1:] if not line.startswith(" ")]
    assert rows == [m.id for m in made]


async def test_a_unique_prefix_works_for_show_and_verify(tmp_path: Path) -> None:
    config, made = repository(tmp_path)
    prefix = made[2].id[:9]  # 20261206T: one backup that day
    shown = await lifeboat("backup", "show", prefix, config=config)
    assert shown.rc == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == f"backup    {made[2].id}"
    verified = await lifeboat("backup", "verify", made[1].id[:-2], "--json", config=config)
    assert verified.rc == 0, verified.stderr
    results = json.loads(verified.stdout.splitlines()[-1])
    assert [(r["id"], r["ok"]) for r in results] == [(made[1].id, True)]


async def test_an_ambiguous_prefix_or_unknown_id_exits_2_with_one_message(
    tmp_path: Path,
) -> None:
    config, made = repository(tmp_path)
    ambiguous = await lifeboat("backup", "show", "20261207T0209", config=config)
    assert ambiguous.rc == 2
    assert ambiguous.stderr.count("\n") == 1, ambiguous.stderr
    assert f"({made[0].id}, {made[1].id}); type more characters" in ambiguous.stderr
    typo = made[0].id[:-1] + ("0" if made[0].id[-1] != "0" else "1")
    unknown = await lifeboat("backup", "verify", typo, config=config)
    assert unknown.rc == 2
    assert unknown.stderr.count("\n") == 1, unknown.stderr
    assert f"no backup {typo!r}" in unknown.stderr
    assert f"did you mean {made[0].id}" in unknown.stderr
    assert "`lifeboat backup list` shows the ids" in unknown.stderr
    assert "Traceback" not in ambiguous.stderr + unknown.stderr


async def test_delete_by_prefix_is_confirmed_with_the_whole_id(tmp_path: Path) -> None:
    config, made = repository(tmp_path)
    prefix = made[2].id[:9]
    refused = await lifeboat("backup", "delete", prefix, "--confirm", prefix, config=config)
    assert refused.rc == 2
    assert f"deleting backup {made[2].id}: confirm by typing its name exactly: " in refused.stderr
    assert f"--confirm {made[2].id} (got {prefix!r})" in refused.stderr
    deleted = await lifeboat("backup", "delete", prefix, "--confirm", made[2].id, config=config)
    assert deleted.rc == 0, deleted.stderr
    assert deleted.stdout.strip() == f"deleted {made[2].id}"
    assert Repository.open(tmp_path / "repo").backup_ids() == [m.id for m in made[:2]]

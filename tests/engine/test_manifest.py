"""Manifests read back from disk are untrusted: every file stays inside its backup directory, no
link is followed, nothing empty verifies "OK", and every field has the type its readers expect.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import EventLog, stored_backup

from engine.config.load import parse_config
from engine.errors import ManifestError
from engine.jobs import run_verify
from engine.repo.manifest import ARTIFACT_KINDS, Manifest
from engine.repo.repository import MANIFEST, Repository
from engine.repo.verify import verify_backup
from engine.restore.plan import RestoreRequest, build_plan
from engine.restore.run import run_restore
from engine.sources import SOURCE_CLASSES

SECRET = b"-----BEGIN OPENSSH PRIVATE KEY----- the bastion's own\n"
MOMENT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.open(tmp_path / "repo")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the repository that no restore may ever ship."""
    path = tmp_path / "bastion" / "id_ed25519"
    path.parent.mkdir()
    path.write_bytes(SECRET)
    return path


def edit_manifest(
    repo: Repository, backup_id: str, change: Callable[[dict[str, Any]], None]
) -> None:
    path = repo.backup_dir(backup_id) / MANIFEST
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def config_for(repo: Repository, kind: str = "command") -> Any:
    source = (
        '[sources.db]\nkind = "command"\nhost = "h1"\nbackup = ["cat"]\nrestore = ["cat"]\n'
        if kind == "command"
        else '[sources.db]\nkind = "files"\nhost = "h1"\npaths = ["/etc/app"]\n'
    )
    return parse_config(
        f'[repository]\npath = "{repo.path}"\n[hosts.h1]\naddress = "127.0.0.1"\nport = 9\n'
        + source
    )


@pytest.mark.parametrize(
    ("how", "reason"),
    [("absolute", "is an absolute path"), ("dotdot", "climbs out with '..'")],
)
async def test_a_file_named_outside_the_backup_is_refused_before_anything_is_read(
    repo: Repository, outside: Path, how: str, reason: str
) -> None:
    backup = stored_backup(repo, MOMENT, {"db": b"rows"})
    name = (
        str(outside) if how == "absolute" else os.path.relpath(outside, repo.backup_dir(backup.id))
    )

    def point_at_the_secret(data: dict[str, Any]) -> None:
        data["artifacts"][0]["files"][0].update(
            path=name, bytes=len(SECRET), sha256=hashlib.sha256(SECRET).hexdigest()
        )

    edit_manifest(repo, backup.id, point_at_the_secret)
    with pytest.raises(ManifestError, match=f"backup {backup.id} is damaged: .*{reason}"):
        repo.load(backup.id)

    result = await run_verify(repo, backup.id, EventLog().emit)
    assert not result.ok
    assert [(p.source, p.path) for p in result.problems] == [("manifest", MANIFEST)]
    assert repo.verifications()[backup.id].ok is False

    request = RestoreRequest(backup.id, apply=True, confirm=("h1",))
    with pytest.raises(ManifestError, match=reason):  # before any connection is tried
        await run_restore(config_for(repo), repo, request, EventLog().emit)


def test_a_plain_name_in_a_subdirectory_is_refused_too(repo: Repository) -> None:
    backup = stored_backup(repo, MOMENT, {"db": b"rows"})
    edit_manifest(repo, backup.id, lambda d: d["artifacts"][0]["files"][0].update(path="a/db.out"))
    with pytest.raises(ManifestError, match="'a/db.out' has a directory separator"):
        repo.load(backup.id)


def test_an_artifact_that_is_a_link_is_not_followed(repo: Repository, outside: Path) -> None:
    backup = stored_backup(repo, MOMENT, {"db": SECRET})  # same bytes, same sha256
    artifact = repo.backup_dir(backup.id) / "db.out"
    artifact.unlink()
    artifact.symlink_to(outside)
    (problem,) = verify_backup(repo.backup_dir(backup.id), backup).problems
    assert str(problem).startswith("db.out (db): refused: a symbolic link (never followed)")


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d.update(artifacts=[], scope=[]), "scope"),
        (lambda d: d["artifacts"][0].update(files=[]), "artifacts.0.files"),
    ],
    ids=["no artifacts", "no files"],
)
async def test_an_empty_list_never_verifies_ok(
    repo: Repository, change: Callable[[dict[str, Any]], None], where: str
) -> None:
    backup = stored_backup(repo, MOMENT, {"db": b"rows"})
    edit_manifest(repo, backup.id, change)
    with pytest.raises(ManifestError, match=f"invalid manifest at {where}: .*at least 1 item"):
        repo.load(backup.id)
    result = await run_verify(repo, backup.id, EventLog().emit)
    assert not result.ok
    assert result.files_checked == 0


def test_verifying_sources_a_backup_lacks_is_not_ok(repo: Repository) -> None:
    backup = stored_backup(repo, MOMENT, {"db": b"rows"})
    result = verify_backup(repo.backup_dir(backup.id), backup, sources=("etcd",))
    assert [p.problem for p in result.problems] == ["lists no file of etcd to verify"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(schema=True), "manifest schema True is not one"),
        (lambda d: d.update(schema=1.0), "manifest schema 1.0 is not one"),
        (lambda d: d.update(schema_version=7), "unknown key schema_version"),
        (lambda d: d["artifacts"][0]["files"][0].update(bytes="4"), "bytes: Input should be"),
        (lambda d: d["artifacts"][0]["files"][0].update(bytes=-4), "bytes: Input should be"),
        (lambda d: d["artifacts"][0]["files"][0].update(sha256="A" * 64), "sha256: String"),
        (lambda d: d.update(scope=["db", "etcd"]), "scope db, etcd does not match"),
        (lambda d: d["artifacts"].append(d["artifacts"][0]), "a source appears twice"),
        (lambda d: d["artifacts"][0].update(source="../db"), "artifacts.0.source: String"),
        (lambda d: d.update(label="\x1b]0;owned\x07"), "control character '\\x1b' in a string"),
        (lambda d: d.update(trigger="schedule:nig}tly"), "trigger: String should match"),
        (lambda d: d.update(created_at="0001-01-01T00:00:00-12:00"), "not a time Lifeboat"),
        (lambda d: d.update(finished_at="2026-01-01T00:00:00"), "not a time Lifeboat"),
        (lambda d: d.update(id="٢٠٢٦٠١٠١T000000Z-abcd"), "id: String should match"),
        (
            lambda d: d["artifacts"][0].update(meta={"namespaces": ["app.users"]}),
            "namespaces: Input should be a valid dictionary",
        ),
        (
            lambda d: d["artifacts"][0].update(meta={"namespaces": {"a.b": {"documents": "9"}}}),
            "namespaces.a.b.documents: Input should be a valid integer",
        ),
        (lambda d: d["artifacts"][0].update(meta={"compression": "xz"}), "'zstd' or 'gzip'"),
        (lambda d: d["artifacts"][0].update(meta={"seconds": -1.5}), "seconds: Input should be"),
        (lambda d: d["artifacts"][0].update(meta={"seconds": 1e300}), "seconds: Input should be"),
        (lambda d: d["artifacts"][0].update(meta={"seconds": "9"}), "seconds: Input should be"),
        (
            lambda d: d["artifacts"][0].update(meta={"seconds": float("inf")}),
            "seconds: Input should be a finite number",
        ),
        (
            lambda d: d["artifacts"][0].update(kind="etcd-snapsxot"),
            "'etcd-snapsxot' is not an artifact kind this Lifeboat knows",
        ),
        (
            lambda d: d["artifacts"][0].update(kind="mongo-archive", meta={"naeespaces": {}}),
            "a mongo-archive artifact needs meta.namespaces",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_schema_games_make_a_damaged_backup(
    repo: Repository, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    backup = stored_backup(repo, MOMENT, {"db": b"rows"})
    edit_manifest(repo, backup.id, change)
    with pytest.raises(ManifestError) as caught:
        repo.load(backup.id)
    assert message in str(caught.value)
    assert caught.value.backup_id == backup.id


def test_a_manifest_survives_its_own_round_trip(repo: Repository) -> None:
    backup = stored_backup(repo, MOMENT, {"db": b"rows", "cfg": b"a = 1"}, label="[/bold] x")
    assert Manifest.from_json(backup.to_json().encode(), MANIFEST) == backup
    assert repo.load(backup.id) == backup


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["artifacts"][0].update(kind="command-output"),
            "the backup's db is a command-output artifact, and a files source restores "
            "files-tar only",
        ),
        (
            lambda d: d["artifacts"][0].update(
                kind="files-tar",
                files=[d["artifacts"][0]["files"][0]] * 2,
                meta={"compression": "gzip"},
            ),
            "the backup's db artifact lists 2 files where a files source writes one",
        ),
    ],
    ids=["another kind", "two files"],
)
def test_a_restore_refuses_an_artifact_its_source_does_not_write(
    repo: Repository, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    backup = stored_backup(repo, MOMENT, {"db": b"rows"})
    edit_manifest(repo, backup.id, change)
    plan = build_plan(config_for(repo, "files"), repo.load(backup.id), RestoreRequest(backup.id))
    assert plan.steps == []
    assert [check.detail for check in plan.problems][0].startswith(message)


def test_the_known_artifact_kinds_are_those_the_sources_write() -> None:
    assert set(ARTIFACT_KINDS) == {cls.artifact_kind for cls in SOURCE_CLASSES.values()}

"""Structural verification of artifacts, and the restore's refusal of unsafe archives."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import zstandard
from crafted_tar import store, tar_bytes
from helpers import EventLog

from engine.config.load import parse_config
from engine.repo.repository import Repository
from engine.repo.verify import verify_backup
from engine.restore.run import RestoreRefusedError, RestoreRequest, run_restore
from engine.sources import RestoreOptions


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.open(tmp_path / "repo")


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_sound_archives_pass(repo: Repository, compression: str) -> None:
    raw = tar_bytes({"etc/app/a.toml": b"a = 1\n", "etc/app/b.toml": b"b = 2\n"})
    data = gzip.compress(raw) if compression == "gzip" else zstandard.compress(raw)
    manifest = store(repo, "cfg.tar", data, compression)
    result = verify_backup(repo.backup_dir(manifest.id), manifest)
    assert result.ok, result.problems
    assert result.bytes_checked == len(data)


@pytest.mark.parametrize("bad_name", ["../escape.txt", "/etc/passwd", "etc/../../x"])
def test_unsafe_members_fail_verify(repo: Repository, bad_name: str) -> None:
    data = gzip.compress(tar_bytes({"etc/ok": b"1", bad_name: b"evil"}))
    manifest = store(repo, "cfg.tar.gz", data, "gzip")
    result = verify_backup(repo.backup_dir(manifest.id), manifest)
    assert [p.problem for p in result.problems] == [
        f"unsafe archive: {'absolute member path' if bad_name.startswith('/') else 'member path'}"
        f" {bad_name!r}"
        + ("" if bad_name.startswith("/") else " climbs out with '..'")
        + "; refusing it"
    ]


def test_truncated_archive_fails_as_undecodable_and_short(repo: Repository) -> None:
    data = zstandard.compress(tar_bytes({"etc/a": b"x" * 100_000}))
    manifest = store(repo, "cfg.tar.zst", data, "zstd")
    path = repo.backup_dir(manifest.id) / "cfg.tar.zst"
    path.write_bytes(data[: len(data) // 2])
    problems = [p.problem for p in verify_backup(repo.backup_dir(manifest.id), manifest).problems]
    assert any(p.startswith("the archive does not decode") for p in problems)
    assert f"size is {len(data) // 2} bytes, the manifest says {len(data)}" in problems


def test_missing_file_is_named(repo: Repository) -> None:
    manifest = store(repo, "cfg.tar.gz", gzip.compress(tar_bytes({"a": b"1"})), "gzip")
    (repo.backup_dir(manifest.id) / "cfg.tar.gz").unlink()
    (problem,) = verify_backup(repo.backup_dir(manifest.id), manifest).problems
    assert str(problem) == "cfg.tar.gz (cfg): missing"


async def test_restore_refuses_an_archive_with_a_dotdot_member(
    repo: Repository, tmp_path: Path
) -> None:
    data = gzip.compress(tar_bytes({"../escape.txt": b"evil"}))
    manifest = store(repo, "cfg.tar.gz", data, "gzip")
    config = parse_config(
        f'[repository]\npath = "{repo.path}"\n'
        '[hosts.h1]\naddress = "127.0.0.1"\nport = 9\n'
        '[sources.cfg]\nkind = "files"\nhost = "h1"\npaths = ["/etc/app"]\n'
    )
    target = tmp_path / "target"
    request = RestoreRequest(
        manifest.id, options=RestoreOptions(target_dir=target), apply=True, confirm=("h1",)
    )
    with pytest.raises(RestoreRefusedError, match="climbs out"):
        await run_restore(config, repo, request, EventLog().emit)
    assert not target.exists()

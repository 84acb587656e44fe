"""``restore --mirror``: an in-place files restore leaves what the backup does not hold unless
asked; with --mirror the dry run lists it, and the apply removes it only after the safety
backup (which holds it), audited. Against the in-process server, and through the CLI against
the system sshd."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest
from cli_run import lifeboat
from helpers import EventLog, config_text, files_source, tree_snapshot
from sshd import SSHTestServer

from engine.checks import Status
from engine.config.load import parse_config
from engine.config.model import Config
from engine.errors import UsageError
from engine.jobs import BackupRequest, run_backup
from engine.repo.content import NO_KEYS
from engine.repo.repository import Repository
from engine.restore.run import RestoreRefusedError, RestoreReport, RestoreRequest, run_restore
from engine.sources import RestoreOptions
from engine.sources.files_mirror import archive_members


def make_tree(data: Path) -> None:
    (data / "etc" / "app" / "conf.d").mkdir(parents=True)
    (data / "etc" / "app" / "app.toml").write_text("listen = 8080\n")
    (data / "etc" / "app" / "conf.d" / "a.toml").write_text("a = 1\n")
    (data / "certs").mkdir()
    (data / "certs" / "ca.pem").write_text("CA\n")


def add_strays(data: Path) -> list[str]:
    """What appears after the backup: files and a directory under the backed-up paths, and one
    beside them. Returns what --mirror must remove (outermost first)."""
    (data / "etc" / "app" / "app.toml").write_text("listen = broken\n")
    (data / "etc" / "app" / "new.toml").write_text("new\n")
    (data / "etc" / "app" / "new.d" / "deep").mkdir(parents=True)
    (data / "etc" / "app" / "new.d" / "deep" / "x.toml").write_text("x\n")
    (data / "certs" / "stray.pem").write_text("stray\n")
    (data / "etc" / "beside.txt").write_text("not backed up, not touched\n")
    return sorted(str(data / p) for p in ("etc/app/new.toml", "etc/app/new.d", "certs/stray.pem"))


def setup(server: SSHTestServer, tmp_path: Path) -> tuple[Config, Path]:
    data = tmp_path / "data"
    make_tree(data)
    sources = files_source("cfg", data / "etc" / "app", data / "certs")
    return parse_config(config_text(server, tmp_path / "repo", sources)), data


async def restore(config: Config, backup_id: str, **request: object) -> RestoreReport:
    repo = Repository.open(config.repository.path)
    full = RestoreRequest(backup_id, **request)  # type: ignore[arg-type]
    return await run_restore(config, repo, full, EventLog().emit)


async def test_mirror_removes_only_after_the_safety_backup_and_without_it_files_stay(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    """The in-process server here; the CLI test below runs the same removal through sshd."""
    config, data = setup(asyncssh_server, tmp_path)
    repo = Repository.open(config.repository.path)
    good = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    original = tree_snapshot(data)
    strays = add_strays(data)
    with_strays = tree_snapshot(data)
    mirror = RestoreOptions(mirror=True)

    # The dry run lists what would go, outermost only, and changes nothing.
    report = await restore(config, good.id, options=mirror)
    (check,) = [c for c in report.checks if c.name == "mirror h1"]
    assert check.status is Status.WARNING
    assert check.detail == (
        "--mirror removes 3 path(s) the backup does not hold, after the safety backup: "
        + ", ".join(strays)
    )
    assert tree_snapshot(data) == with_strays

    # Without --mirror the restore puts files back and leaves the strays.
    report = await restore(config, good.id, apply=True, confirm=("h1",))
    assert report.applied
    kept = {name: content for name, content in with_strays.items() if name not in original}
    assert tree_snapshot(data) == original | kept
    assert all(Path(p).exists() for p in strays)

    # --mirror needs the safety backup: it is what keeps what mirror removes.
    with pytest.raises(UsageError, match="--mirror removes files, and the safety backup"):
        await restore(
            config, good.id, options=mirror, apply=True, confirm=("h1",),
            safety_backup=False, skip_reason="in a hurry",
        )  # fmt: skip
    report = await restore(config, good.id, options=mirror, apply=True, confirm=("h1",))
    assert report.applied
    assert tree_snapshot(data) == original | {"etc/beside.txt": b"not backed up, not touched\n"}

    records = [json.loads(line) for line in (repo.path / "audit.jsonl").read_text().splitlines()]
    actions = [r["action"] for r in records[-4:]]
    assert actions == ["restore.safety-backup", "restore.start", "restore.mirror", "restore.finish"]
    assert records[-2]["removed"] == strays
    assert records[-2]["source"] == "cfg"
    assert records[-2]["backup"] == good.id

    # The safety backup, taken before, holds what --mirror removed.
    assert report.safety_backup is not None
    (saved,) = repo.load(report.safety_backup).artifacts
    members = archive_members(
        NO_KEYS, repo.backup_dir(report.safety_backup), saved.files[0], saved.meta["compression"]
    )
    assert {PurePosixPath(p.lstrip("/")) for p in strays} <= members


async def test_mirror_is_refused_for_paths_the_config_does_not_list(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    config, data = setup(asyncssh_server, tmp_path)
    repo = Repository.open(config.repository.path)
    good = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    narrower = parse_config(
        config_text(asyncssh_server, tmp_path / "repo", files_source("cfg", data / "certs"))
    )
    with pytest.raises(RestoreRefusedError) as info:
        await restore(narrower, good.id, options=RestoreOptions(mirror=True))
    assert (
        f"options cfg: --mirror removes files only under the paths [sources.cfg] lists, and this "
        f"backup holds {data / 'etc' / 'app'}: add it to paths, or restore without --mirror"
    ) in str(info.value)


async def test_restore_mirror_from_the_cli(openssh_server: SSHTestServer, tmp_path: Path) -> None:
    config, data = setup(openssh_server, tmp_path)
    config_file = tmp_path / "lifeboat.toml"
    config_file.write_text(
        config_text(
            openssh_server,
            tmp_path / "repo",
            files_source("cfg", data / "etc" / "app", data / "certs"),
        )
    )
    repo = Repository.open(config.repository.path)
    good = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    strays = add_strays(data)

    run = await lifeboat(
        "restore", good.id, "--mirror", "--apply", "--confirm", "h1", "--skip-safety-backup",
        "--reason", "x", config=config_file,
    )  # fmt: skip
    assert run.rc == 2
    assert "--mirror removes files, and the safety backup is what keeps them" in run.stderr
    assert all(Path(p).exists() for p in strays)

    run = await lifeboat(
        "restore", good.id, "--mirror", "--apply", "--confirm", "h1", config=config_file
    )
    assert run.rc == 0, run.stderr
    assert not any(Path(p).exists() for p in strays)
    assert (data / "etc" / "beside.txt").exists()

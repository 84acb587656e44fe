"""Backup, verify and restore of files and command sources through both real SSH servers."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from helpers import EventLog, command_source, files_source, make_config, tree_snapshot
from sshd import SSHTestServer

from engine.errors import RepositoryLockedError, UsageError
from engine.events import JobFinished, Progress
from engine.jobs import BackupRequest, JobFailedError, run_backup, run_verify
from engine.repo.repository import Repository
from engine.restore.run import RestoreRefusedError, RestoreRequest, run_restore
from engine.sources import RestoreOptions


@pytest.fixture(params=["openssh", "asyncssh"])
def bulk(request: pytest.FixtureRequest) -> str:
    """The client that carries backup data: the system ssh, or asyncssh itself."""
    return str(request.param)


def make_tree(root: Path) -> None:
    (root / "etc" / "app" / "conf.d").mkdir(parents=True)
    (root / "etc" / "app" / "app.toml").write_text("listen = 8080\n")
    (root / "etc" / "app" / "conf.d" / "extra.toml").write_text("x = 1\n" * 1000)
    (root / "certs").mkdir()
    (root / "certs" / "ca.pem").write_bytes(os.urandom(4096))


def repo_contents(repo: Repository) -> dict[str, list[str]]:
    return {
        name: sorted(p.name for p in (repo.path / name).iterdir())
        for name in ("backups", ".staging", ".failed")
        if (repo.path / name).exists()
    }


async def test_files_round_trip_into_target_dir_and_original_paths(
    ssh_server: SSHTestServer, bulk: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    make_tree(data)
    config = make_config(
        ssh_server,
        tmp_path / "repo",
        files_source("cfg", data / "etc" / "app", data / "certs"),
        bulk_transport=bulk,
    )
    repo = Repository.open(config.repository.path)
    events = EventLog()
    manifest = await run_backup(config, repo, BackupRequest(label="t1"), events.emit)

    (artifact,) = manifest.artifacts
    assert artifact.kind == "files-tar"
    assert artifact.meta["compression"] in {"zstd", "gzip"}
    assert artifact.files[0].path.startswith("cfg.tar.")
    assert events.of_type(JobFinished)[-1] == JobFinished(
        manifest.id, ok=True, manifest_id=manifest.id
    )
    assert events.of_type(Progress)[-1].done == artifact.files[0].bytes
    assert repo.list_backups()[0][0].id == manifest.id
    assert (await run_verify(repo, manifest.id, EventLog().emit)).ok

    original = tree_snapshot(data)
    target = tmp_path / "restored"
    request = RestoreRequest(
        manifest.id, options=RestoreOptions(target_dir=target), apply=True, confirm=("h1",)
    )
    report = await run_restore(config, repo, request, EventLog().emit)
    assert report.applied
    restored = tree_snapshot(target / data.relative_to("/"))
    assert restored == original

    (data / "etc" / "app" / "app.toml").write_text("broken\n")
    (data / "certs" / "ca.pem").unlink()
    await run_restore(
        config, repo, RestoreRequest(manifest.id, apply=True, confirm=("h1",)), EventLog().emit
    )
    assert tree_snapshot(data) == original


async def test_command_round_trip(ssh_server: SSHTestServer, bulk: str, tmp_path: Path) -> None:
    dump = tmp_path / "db.dump"
    dump.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    restored = tmp_path / "restored.dump"
    config = make_config(
        ssh_server,
        tmp_path / "repo",
        command_source("db", ["cat", str(dump)], ["dd", f"of={restored}", "status=none"]),
        bulk_transport=bulk,
    )
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    (artifact,) = manifest.artifacts
    assert artifact.files[0].bytes == dump.stat().st_size
    backup_file = repo.backup_dir(manifest.id) / artifact.files[0].path
    assert backup_file.read_bytes() == dump.read_bytes()
    assert stat.S_IMODE(backup_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(repo.backup_dir(manifest.id).stat().st_mode) == 0o700

    request = RestoreRequest(manifest.id, apply=True, confirm=("h1",))
    events = EventLog()
    await run_restore(config, repo, request, events.emit)
    assert restored.read_bytes() == dump.read_bytes()
    sent = [e for e in events if isinstance(e, Progress) and e.source == "db"]
    assert sent[-1].done == sent[-1].total == dump.stat().st_size


async def test_a_restore_command_that_stops_reading_fails_with_its_status(
    ssh_server: SSHTestServer, bulk: str, tmp_path: Path
) -> None:
    """Its input (12 MiB, more than any pipe holds) is cut off where it stopped: the
    feeding side ends quietly and the command's own status is the error."""
    dump = tmp_path / "db.dump"
    dump.write_bytes(os.urandom(12 * 1024 * 1024))
    config = make_config(
        ssh_server,
        tmp_path / "repo",
        command_source("db", ["cat", str(dump)], ["sh", "-c", "head -c 1000 >/dev/null; exit 7"]),
        bulk_transport=bulk,
    )
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    request = RestoreRequest(manifest.id, apply=True, confirm=("h1",), skip_reason="a test")
    async with asyncio.timeout(60):
        with pytest.raises(JobFailedError, match="exited with status 7"):
            await run_restore(config, repo, request, EventLog().emit)


async def test_flipped_byte_fails_verify_and_restore_touches_nothing(
    ssh_server: SSHTestServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    make_tree(data)
    config = make_config(ssh_server, tmp_path / "repo", files_source("cfg", data / "etc"))
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    path = repo.backup_dir(manifest.id) / manifest.artifacts[0].files[0].path
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))

    result = await run_verify(repo, manifest.id, EventLog().emit)
    assert not result.ok
    assert {p.path for p in result.problems} == {path.name}
    assert any("sha256 mismatch" in p.problem for p in result.problems)

    target = tmp_path / "target"
    request = RestoreRequest(
        manifest.id, options=RestoreOptions(target_dir=target), apply=True, confirm=("h1",)
    )
    with pytest.raises(RestoreRefusedError, match=path.name):
        await run_restore(config, repo, request, EventLog().emit)
    assert not target.exists()


async def test_failing_command_leaves_no_backup_and_keeps_staging_for_diagnosis(
    ssh_server: SSHTestServer, bulk: str, tmp_path: Path
) -> None:
    config = make_config(
        ssh_server,
        tmp_path / "repo",
        command_source("bad", ["sh", "-c", "echo partial; echo 'pg_dump: no such db' >&2; exit 3"])
        + command_source("good", ["echo", "fine"]),
        bulk_transport=bulk,
    )
    repo = Repository.open(config.repository.path)
    events = EventLog()
    with pytest.raises(JobFailedError) as info:
        await run_backup(config, repo, BackupRequest(), events.emit)
    assert "status 3" in str(info.value)
    assert "pg_dump: no such db" in str(info.value)
    contents = repo_contents(repo)
    assert contents["backups"] == []
    assert contents[".staging"] == []
    assert len(contents[".failed"]) == 1
    finished = events.of_type(JobFinished)[-1]
    assert not finished.ok
    assert [e.source for e in finished.errors] == ["bad"]


async def test_unknown_scope_is_a_usage_error(ssh_server: SSHTestServer, tmp_path: Path) -> None:
    config = make_config(ssh_server, tmp_path / "repo", command_source("db", ["true"]))
    repo = Repository.open(config.repository.path)
    with pytest.raises(UsageError, match="unknown source nope; configured sources: db"):
        await run_backup(config, repo, BackupRequest(scope=("nope",)), EventLog().emit)


class TriggerAfter:
    """An emit callback that runs ``action`` once when progress passes ``threshold`` bytes."""

    def __init__(self, threshold: int, action) -> None:  # noqa: ANN001
        self.threshold = threshold
        self.action = action
        self.fired = False

    def __call__(self, event: object) -> None:
        if isinstance(event, Progress) and event.done >= self.threshold and not self.fired:
            self.fired = True
            self.action()


async def test_dropped_connection_fails_the_job_and_leaves_nothing(
    ssh_server: SSHTestServer, bulk: str, tmp_path: Path
) -> None:
    config = make_config(
        ssh_server,
        tmp_path / "repo",
        command_source("endless", ["cat", "/dev/zero"]),
        bulk_transport=bulk,
    )
    repo = Repository.open(config.repository.path)
    trigger = TriggerAfter(4 * 1024 * 1024, ssh_server.drop)
    async with asyncio.timeout(60):
        with pytest.raises(JobFailedError, match="endless: .*connection lost|endless: "):
            await run_backup(config, repo, BackupRequest(), trigger)
    assert trigger.fired
    contents = repo_contents(repo)
    assert contents["backups"] == []
    assert contents[".staging"] == []


async def test_cancel_mid_backup_leaves_nothing(
    ssh_server: SSHTestServer, bulk: str, tmp_path: Path
) -> None:
    config = make_config(
        ssh_server,
        tmp_path / "repo",
        command_source("endless", ["cat", "/dev/zero"]),
        bulk_transport=bulk,
    )
    repo = Repository.open(config.repository.path)
    task: asyncio.Task[object] | None = None
    trigger = TriggerAfter(4 * 1024 * 1024, lambda: task.cancel() if task else None)
    task = asyncio.ensure_future(run_backup(config, repo, BackupRequest(), trigger))
    async with asyncio.timeout(60):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert repo_contents(repo) == {"backups": [], ".staging": []}


async def test_second_backup_is_refused_while_the_lock_is_held(
    ssh_server: SSHTestServer, tmp_path: Path
) -> None:
    config = make_config(ssh_server, tmp_path / "repo", command_source("db", ["echo", "x"]))
    repo = Repository.open(config.repository.path)
    with repo.lock("backup", "alice"), pytest.raises(RepositoryLockedError) as info:
        await run_backup(config, repo, BackupRequest(), EventLog().emit)
    message = str(info.value)
    assert f"pid {os.getpid()}" in message
    assert "backup by alice" in message
    assert "since 20" in message
    assert (await run_backup(config, repo, BackupRequest(), EventLog().emit)).id


async def test_full_disk_fails_clearly_and_frees_the_space(
    ssh_server: SSHTestServer, bulk: str, tiny_disk: Path
) -> None:
    config = make_config(
        ssh_server,
        tiny_disk / "repo",
        command_source("big", ["head", "-c", "8M", "/dev/urandom"]),
        bulk_transport=bulk,
    )
    repo = Repository.open(config.repository.path)
    with pytest.raises(JobFailedError, match="disk is full") as info:
        await run_backup(config, repo, BackupRequest(), EventLog().emit)
    assert "free space there" in str(info.value)
    assert repo_contents(repo) == {"backups": [], ".staging": []}


async def test_unreachable_host_fails_every_source_once_and_keeps_nothing(tmp_path: Path) -> None:
    from sshd import free_port

    from engine.config.load import parse_config

    config = parse_config(
        f'[repository]\npath = "{tmp_path / "repo"}"\n'
        f'[hosts.h1]\naddress = "127.0.0.1"\nport = {free_port()}\nconnect_timeout = 2\n'
        + command_source("a", ["true"])
        + command_source("b", ["true"])
    )
    repo = Repository.open(config.repository.path)
    with pytest.raises(JobFailedError) as info:
        await run_backup(config, repo, BackupRequest(), EventLog().emit)
    (line,) = str(info.value).splitlines()
    assert line.startswith("a, b: h1: cannot connect to")
    assert repo_contents(repo) == {"backups": [], ".staging": []}

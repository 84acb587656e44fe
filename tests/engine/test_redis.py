"""The redis source against a real redis-server through both SSH servers: a snapshot by
replication, verified structurally, restored while the server is stopped (the keys come back)
from the CLI's engine and from the wizard at 80x24, drilled, checked by a checklist; refused
clearly with a damaged snapshot, appendonly on, a wrong password or an older target server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from checklists import item, write_checklist
from consoles import console
from helpers import EventLog, config_text
from redis_server import RedisServer
from sshd import SSHTestServer
from timing import until
from wizard_pilot import choose, flat, open_wizard, run_checks, settle, shown

from engine.checklist.model import checklists_for
from engine.checklist.session import ChecklistSession
from engine.config.load import parse_config
from engine.config.model import Config
from engine.demo.services import BackgroundService
from engine.drill.run import DrillRequest, plan_drill, run_drill
from engine.errors import ConfigError, UsageError
from engine.jobs import BackupRequest, JobFailedError, run_backup, run_verify
from engine.repo import audit
from engine.repo.manifest import Manifest
from engine.repo.repository import Repository
from engine.restore.run import RestoreRefusedError, RestoreRequest, run_restore
from engine.sources.base import RestoreOptions
from tui.console.wizard_state import Step


@pytest.fixture
def redis_service(tmp_path: Path) -> Iterator[tuple[RedisServer, BackgroundService]]:
    """redis-server run as a background service (stop and start are shell commands, as a
    host's systemctl would be), seeded in two databases."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    service = BackgroundService(server.argv, directory / "redis.pid", directory / "redis.log")
    server.start_as(service)
    try:
        lines = [f"SET app:{i} v{i}" for i in range(120)] + ["RPUSH queue a b c"]
        lines += ["SELECT 2", *(f"HSET session:{i} user u{i}" for i in range(15))]
        server.cli(stdin="\n".join(lines) + "\n")
        yield server, service
    finally:
        server.stop_service(service)


def redis_config(
    ssh: SSHTestServer, tmp_path: Path, server: RedisServer, service: BackgroundService
) -> Config:
    source = (
        f'[sources.cache]\nkind = "redis"\nhost = "h1"\nport = {server.port}\n'
        f"rdb_path = {json.dumps(str(server.rdb_path))}\n"
        f"stop = {json.dumps(service.stop)}\nstart = {json.dumps(service.start)}\n"
    )
    return parse_config(config_text(ssh, tmp_path / "repo", source))


async def backed_up(
    ssh: SSHTestServer, tmp_path: Path, redis_service: tuple[RedisServer, BackgroundService]
) -> tuple[Config, Repository, Manifest]:
    """The redis source's config and repository, with one backup taken."""
    config = redis_config(ssh, tmp_path, *redis_service)
    repo = Repository.open(config.repository.path)
    return config, repo, await run_backup(config, repo, BackupRequest(), EventLog().emit)


async def test_a_snapshot_verifies_and_restores_the_keys(
    ssh_server: SSHTestServer,
    redis_service: tuple[RedisServer, BackgroundService],
    tmp_path: Path,
) -> None:
    server, _service = redis_service
    config, repo, manifest = await backed_up(ssh_server, tmp_path, redis_service)
    (artifact,) = manifest.artifacts
    assert artifact.kind == "redis-rdb"
    assert artifact.meta["databases"] == {"0": 121, "2": 15}
    assert artifact.files[0].path == "cache.rdb"
    assert (await run_verify(repo, manifest.id, EventLog().emit)).ok

    server.cli("FLUSHALL")
    server.cli("SET", "written:after", "the backup")
    # The snapshot the restore puts aside (once the backup's replication fork is done).
    await until(lambda: server.cli("SAVE") == "OK", "a snapshot saved")
    request = RestoreRequest(manifest.id, apply=True, confirm=("h1",))
    report = await run_restore(config, repo, request, EventLog().emit)
    assert report.applied
    assert server.cli("DBSIZE") == "121"
    assert server.cli("-n", "2", "DBSIZE") == "15"
    assert server.cli("GET", "app:7") == "v7"
    assert server.cli("EXISTS", "written:after") == "0"
    (kept,) = server.rdb_path.parent.glob("dump.rdb.before-*")  # the old one, kept
    assert b"written:after" in kept.read_bytes()

    # A checklist after the restore: the keys per database against the backup, a pattern.
    items = [
        item("redis_keys", "all", source="cache"),
        item("redis_keys", "sessions", source="cache", db=2, pattern="session:*", min=15),
        item("redis_keys", "too-many", source="cache", pattern="app:*", min=500),
    ]
    checklist = write_checklist(tmp_path, "after-redis", *items)
    with_checklist = config.model_copy(
        update={"checklists": config.checklists.model_copy(update={"paths": (checklist,)})}
    )
    loaded = checklists_for(with_checklist)["after-redis"]
    session = ChecklistSession.start(with_checklist, repo, loaded, manifest, {"sources": ["cache"]})
    await session.check()
    by_id = {state.id: state for state in session.run.items}
    assert by_id["all"].status == "passed"
    assert by_id["all"].detail == "db 0, '*': 121 keys (backup: 121, 0 of them with a TTL)"
    assert by_id["sessions"].status == "passed"
    assert by_id["too-many"].status == "failed"
    assert by_id["too-many"].detail == "db 0, 'app:*': 120 keys (at least 500)"
    unbounded = write_checklist(
        tmp_path, "bad", item("redis_keys", "some", source="cache", pattern="app:*")
    )
    bad = config.model_copy(
        update={"checklists": config.checklists.model_copy(update={"paths": (unbounded,)})}
    )
    with pytest.raises(ConfigError, match="a pattern needs min = N"):
        checklists_for(bad)


async def test_a_damaged_snapshot_fails_verify_and_a_restore_is_refused(
    asyncssh_server: SSHTestServer,
    redis_service: tuple[RedisServer, BackgroundService],
    tmp_path: Path,
) -> None:
    server, _service = redis_service
    config, repo, manifest = await backed_up(asyncssh_server, tmp_path, redis_service)
    stored = repo.backup_dir(manifest.id) / "cache.rdb"
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    result = await run_verify(repo, manifest.id, EventLog().emit)
    assert not result.ok
    request = RestoreRequest(manifest.id, apply=True, confirm=("h1",))
    with pytest.raises(RestoreRefusedError):
        await run_restore(config, repo, request, EventLog().emit)
    assert server.cli("DBSIZE") == "121"  # untouched

    server.cli("CONFIG", "SET", "appendonly", "yes")
    fresh = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    with pytest.raises(RestoreRefusedError) as refused:
        await run_restore(
            config, repo, RestoreRequest(fresh.id, apply=True, confirm=("h1",)), EventLog().emit
        )
    assert any("appendonly is on" in c.detail for c in refused.value.report.failed)


async def test_a_password_reaches_redis_cli_by_file_only_and_a_wrong_one_is_said(
    asyncssh_server: SSHTestServer,
    redis_service: tuple[RedisServer, BackgroundService],
    tmp_path: Path,
) -> None:
    server, service = redis_service
    server.cli("CONFIG", "SET", "requirepass", "r3dis-s3cret")
    password = tmp_path / "redis.password"
    password.write_text("r3dis-s3cret\n")
    base = redis_config(asyncssh_server, tmp_path, server, service)
    source = base.sources["cache"].model_copy(update={"password_file": password})
    config = base.model_copy(update={"sources": {"cache": source}})
    repo = Repository.open(config.repository.path)
    events = EventLog()
    manifest = await run_backup(config, repo, BackupRequest(), events.emit)
    assert manifest.artifacts[0].meta["databases"]["0"] == 121
    everything = repr(list(events)) + (repo.backup_dir(manifest.id) / "manifest.json").read_text()
    assert "r3dis-s3cret" not in everything

    password.write_text("not-it\n")
    with pytest.raises(JobFailedError) as failed:
        await run_backup(config, repo, BackupRequest(), EventLog().emit)
    assert "refused the password (AUTH failed: WRONGPASS" in str(failed.value)
    assert "fix sources.cache.password_file" in str(failed.value)
    assert "r3dis-s3cret" not in str(failed.value)


async def test_a_drill_destroys_the_keys_restores_them_and_finds_every_marker(
    asyncssh_server: SSHTestServer,
    redis_service: tuple[RedisServer, BackgroundService],
    tmp_path: Path,
) -> None:
    server, service = redis_service
    base = redis_config(asyncssh_server, tmp_path, server, service)
    source = base.sources["cache"].model_copy(update={"drill": True})
    config = base.model_copy(update={"sources": {"cache": source}})
    repo = Repository.open(config.repository.path)
    plan = plan_drill(config, DrillRequest())
    assert plan.destroys == (
        "cache on h1: every key is deleted (FLUSHALL), then the server is stopped, its snapshot "
        "replaced and started",
    )
    record = await run_drill(config, repo, DrillRequest(confirm=("h1",)), EventLog().emit)
    assert record.problems == []
    assert record.passed
    assert [(m["found"], m["expected"]) for m in record.markers] == [(100, 100)]
    assert server.cli("DBSIZE") == "121"  # the markers are gone again, the data is back
    assert server.cli("-n", "2", "DBSIZE") == "15"

    unready = config.sources["cache"].model_copy(update={"stop": None})
    with pytest.raises(UsageError, match="needs rdb_path, stop and start"):
        plan_drill(config.model_copy(update={"sources": {"cache": unready}}), DrillRequest())


async def test_a_snapshot_from_a_newer_server_is_refused_by_the_validator(
    asyncssh_server: SSHTestServer,
    redis_service: tuple[RedisServer, BackgroundService],
    tmp_path: Path,
) -> None:
    server, _service = redis_service
    config, repo, manifest = await backed_up(asyncssh_server, tmp_path, redis_service)
    dry = RestoreRequest(manifest.id)
    report = await run_restore(config, repo, dry, EventLog().emit)
    (version,) = [c for c in report.checks if c.name == "version h1"]
    assert version.detail.startswith("redis 7.0 on h1 loads RDB ")

    # As if taken from a Redis 7.4 server (RDB 12): this 7.0 server cannot load it.
    path = repo.backup_dir(manifest.id) / "manifest.json"
    data = json.loads(path.read_text())
    data["artifacts"][0]["meta"].update(rdb_version=12, server_version="7.4.1")
    path.write_text(json.dumps(data))
    with pytest.raises(RestoreRefusedError) as refused:
        await run_restore(config, repo, dry, EventLog().emit)
    messages = [c.detail for c in refused.value.report.failed]
    assert any(
        "loads RDB versions up to 10; the backup is RDB 12 (from 7.4.1)" in m for m in messages
    )


async def test_a_redis_restore_from_the_wizard_at_80x24(
    asyncssh_server: SSHTestServer,
    redis_service: tuple[RedisServer, BackgroundService],
    tmp_path: Path,
) -> None:
    server, service = redis_service
    config = redis_config(asyncssh_server, tmp_path, server, service)
    repo = Repository.open(config.repository.path)
    await run_backup(config, repo, BackupRequest(label="nightly"), EventLog().emit)
    server.cli("FLUSHALL")

    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await open_wizard(app, pilot)
        await choose(pilot, wizard, "other")
        await pilot.press("ctrl+n", "enter")  # the plan (the redis source), the backup
        await run_checks(app, pilot, wizard)
        assert "Every check passed" in shown(wizard, "#checks-verdict")
        await pilot.press("enter")
        assert wizard.state.step is Step.CONFIRM
        assert "the server is stopped, its snapshot" in flat(shown(wizard, "#confirm-text"))
        await pilot.press(*"h1", "enter")
        await settle(app, pilot)
        assert wizard.state.step is Step.DONE
        assert "Restored cache." in flat(shown(wizard, "#done-text"))
    assert server.cli("DBSIZE") == "121"
    assert server.cli("-n", "2", "DBSIZE") == "15"


async def test_a_selective_restore_replaces_only_the_matching_keys_of_a_running_server(
    ssh_server: SSHTestServer,
    redis_service: tuple[RedisServer, BackgroundService],
    tmp_path: Path,
) -> None:
    server, service = redis_service
    long_key = "prexor:v1:platform:" + "settings:" * 8  # long and repetitive: stored LZF
    seed = [
        f"SET {long_key} kept",
        "ZADD prexor:v1:platform:ranks 1 a 2 b",
        "XADD prexor:v1:platform:events * kind boot",
        "SADD prexor:v1:platform:nodes n1 n2 n3",
        "SET prexor:v1:platform:lease held EX 3600",
        "SET prexor:v1:other untouched",
    ]
    server.cli(stdin="\n".join(seed) + "\n")
    config = redis_config(ssh_server, tmp_path, server, service)
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    ttl_before = int(server.cli("PTTL", "prexor:v1:platform:lease"))

    changes = [
        f"DEL {long_key}",
        "DEL prexor:v1:platform:ranks prexor:v1:platform:events",
        "SREM prexor:v1:platform:nodes n2",
        "SET prexor:v1:other changed",
        "SET prexor:v1:platform:new written-after",
        "SELECT 2",
        "DEL session:3",
    ]
    server.cli(stdin="\n".join(changes) + "\n")
    options = RestoreOptions(namespaces=("prexor:v1:platform:*",))
    dry = await run_restore(
        config, repo, RestoreRequest(manifest.id, options=options), EventLog().emit
    )
    (matched,) = [c for c in dry.checks if c.name == "redis h1" and "match" in c.detail]
    assert matched.detail == "5 key(s) of the backup match prexor:v1:platform:*"
    assert "the server keeps running" in dry.plan.effect(dry.plan.steps[0])

    request = RestoreRequest(manifest.id, options=options, apply=True, confirm=("h1",))
    request = replace(request, safety_backup=False, skip_reason="test")
    report = await run_restore(config, repo, request, EventLog().emit)
    assert report.applied
    assert server.cli("GET", long_key) == "kept"
    assert server.cli("ZRANGE", "prexor:v1:platform:ranks", "0", "-1") == "a\nb"
    assert server.cli("XLEN", "prexor:v1:platform:events") == "1"
    assert server.cli("SCARD", "prexor:v1:platform:nodes") == "3"
    assert 0 < int(server.cli("PTTL", "prexor:v1:platform:lease")) <= ttl_before
    assert server.cli("GET", "prexor:v1:platform:new") == "written-after"  # not in the backup
    assert server.cli("GET", "prexor:v1:other") == "changed"  # not matched
    assert server.cli("-n", "2", "EXISTS", "session:3") == "0"
    (entry,) = [e for e in audit.entries(repo.path) if e["action"] == "restore.redis-keys"]
    assert (entry["restored"], entry["errors"]) == (5, 0)
    assert entry["patterns"] == ["prexor:v1:platform:*"]

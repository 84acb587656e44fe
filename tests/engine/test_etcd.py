"""etcd: snapshot through an SSH tunnel, verify, restore into a fresh dir, start on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from etcd_server import EtcdServer
from helpers import EventLog, config_text
from sshd import SSHTestServer

from engine.config.load import parse_config
from engine.config.model import Config
from engine.events import Progress
from engine.jobs import BackupRequest, run_backup, run_verify
from engine.repo.repository import Repository
from engine.restore.run import RestoreRefusedError, RestoreRequest, run_restore
from engine.sources import RestoreOptions, source_from
from engine.sources.etcd import EtcdSource

KEYS = 5000


def seed(server: EtcdServer) -> dict[bytes, bytes]:
    """5000 keys under several prefixes, a fifth of them attached to (long) leases."""
    expected: dict[bytes, bytes] = {}
    with server.client() as client:
        leases = [client.lease(3600) for _ in range(3)]
        for start in range(0, KEYS, 100):
            puts = []
            for i in range(start, start + 100):
                key = f"/{['groups', 'modules', 'nodes', 'locks'][i % 4]}/{i:05d}"
                value = json.dumps({"id": i, "payload": "x" * (i % 50)})
                lease = leases[i % 3] if i % 5 == 0 else None
                puts.append(client.transactions.put(key, value, lease=lease))
                expected[key.encode()] = value.encode()
            client.transaction(compare=[], success=puts, failure=[])
    return expected


def everything(server: EtcdServer) -> dict[bytes, bytes]:
    with server.client() as client:
        return {meta.key: value for value, meta in client.get_all()}


def etcd_config(
    ssh_server: SSHTestServer, tmp_path: Path, member: EtcdServer, restored: EtcdServer
) -> Config:
    sources = (
        '[sources.etcd]\nkind = "etcd"\nhost = "h1"\n'
        f'endpoint = "{member.endpoint}"\n'
        f'data_dir = "{tmp_path / "live" / "member.etcd"}"\n'
        f'name = "{restored.name}"\n'
        f'initial_cluster = "{restored.name}={restored.peer_url}"\n'
        f'initial_advertise_peer_urls = "{restored.peer_url}"\n'
        'initial_cluster_token = "lifeboat-test"\n'
    )
    return parse_config(config_text(ssh_server, tmp_path / "repo", sources))


async def test_etcd_backup_verify_restore_round_trip(
    ssh_server: SSHTestServer, etcd_member: EtcdServer, tmp_path: Path
) -> None:
    expected = seed(etcd_member)
    (tmp_path / "live").mkdir()
    restored_dir = tmp_path / "live" / "member.etcd.restored-PLACEHOLDER"
    restored = EtcdServer(tmp_path / "live", name="restored", data_dir=restored_dir)
    config = etcd_config(ssh_server, tmp_path, etcd_member, restored)
    repo = Repository.open(config.repository.path)
    events = EventLog()

    manifest = await run_backup(config, repo, BackupRequest(), events.emit)
    (artifact,) = manifest.artifacts
    assert artifact.kind == "etcd-snapshot"
    assert artifact.files[0].path == "etcd.snapshot.db"
    assert artifact.meta["key_count"] == KEYS
    assert artifact.meta["revision"] >= KEYS // 100
    assert artifact.meta["server_version"].startswith("3.")
    progress = events.of_type(Progress)
    assert progress[-1].done == progress[-1].total == artifact.files[0].bytes
    assert (await run_verify(repo, manifest.id, EventLog().emit)).ok

    restored.data_dir = tmp_path / "live" / f"member.etcd.restored-{manifest.id}"
    request = RestoreRequest(manifest.id, apply=True, confirm=("h1",))
    log = EventLog()
    report = await run_restore(config, repo, request, log.emit)
    assert restored.data_dir.is_dir()
    assert any("to bring it live" in getattr(e, "text", "") for e in log)
    (step,) = report.plan.steps
    live = tmp_path / "live" / "member.etcd"
    assert report.plan.effect(step).startswith(f"{live} is left in place")
    left = report.plan.left_to_do(step)
    assert left[0].startswith(f"restored into {restored.data_dir}; to bring it live")
    assert left[1:4] == (
        "# stop this etcd member",  # no stop command configured
        f"mv -T -- {live} {live}.before-{manifest.id}",
        f"mv -T -- {restored.data_dir} {live}",
    )
    assert left[4] == (
        f"etcd --data-dir={live} --name={restored.name} "
        f"--listen-client-urls=http://{etcd_member.endpoint} "
        f"--advertise-client-urls=http://{etcd_member.endpoint} "
        f"--listen-peer-urls={restored.peer_url} --initial-advertise-peer-urls={restored.peer_url} "
        f"--initial-cluster={restored.name}={restored.peer_url}"
    )
    restored.start()
    try:
        assert everything(restored) == expected
    finally:
        restored.stop()

    with pytest.raises(RestoreRefusedError, match="already exists"):  # by the validator
        await run_restore(config, repo, request, EventLog().emit)


async def test_truncated_snapshot_fails_verify(
    ssh_server: SSHTestServer, etcd_member: EtcdServer, tmp_path: Path
) -> None:
    seed(etcd_member)
    restored = EtcdServer(tmp_path, name="unused")
    config = etcd_config(ssh_server, tmp_path, etcd_member, restored)
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    snapshot = repo.backup_dir(manifest.id) / "etcd.snapshot.db"
    snapshot.write_bytes(snapshot.read_bytes()[:-1000])
    result = await run_verify(repo, manifest.id, EventLog().emit)
    problems = [p.problem for p in result.problems]
    assert any("is not a whole snapshot" in p for p in problems)


async def test_swap_without_commands_is_refused_before_anything(
    ssh_server: SSHTestServer, etcd_member: EtcdServer, tmp_path: Path
) -> None:
    restored = EtcdServer(tmp_path, name="unused")
    config = etcd_config(ssh_server, tmp_path, etcd_member, restored)
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    request = RestoreRequest(
        manifest.id, options=RestoreOptions(swap=True), apply=True, confirm=("h1",)
    )
    with pytest.raises(RestoreRefusedError, match="--swap needs sources.etcd.stop"):
        await run_restore(config, repo, request, EventLog().emit)
    assert not (tmp_path / "live").exists()


async def test_swap_moves_the_restored_dir_into_place_and_keeps_the_old(
    ssh_server: SSHTestServer, etcd_member: EtcdServer, tmp_path: Path
) -> None:
    seed(etcd_member)
    live = tmp_path / "live" / "member.etcd"
    live.mkdir(parents=True)
    (live / "old-marker").write_text("the data before the restore")
    calls = tmp_path / "calls.log"
    restored = EtcdServer(tmp_path / "live", name="restored", data_dir=live)
    base = etcd_config(ssh_server, tmp_path, etcd_member, restored)
    text = config_text(ssh_server, tmp_path / "repo", "")
    sources = {
        name: source.model_dump(mode="json", exclude_none=True)
        for name, source in base.sources.items()
    }
    sources["etcd"]["stop"] = ["sh", "-c", f"echo stop >> {calls}"]
    sources["etcd"]["start"] = ["sh", "-c", f"echo start >> {calls}"]
    config = parse_config(
        text
        + "[sources.etcd]\n"
        + "".join(f"{key} = {json.dumps(value)}\n" for key, value in sources["etcd"].items())
    )
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    request = RestoreRequest(
        manifest.id, options=RestoreOptions(swap=True), apply=True, confirm=("h1",)
    )
    await run_restore(config, repo, request, EventLog().emit)
    assert calls.read_text() == "stop\nstart\n"
    assert (live / "member" / "snap" / "db").is_file()
    aside = tmp_path / "live" / f"member.etcd.before-{manifest.id}"
    assert (aside / "old-marker").read_text() == "the data before the restore"
    restored.start()
    try:
        assert len(everything(restored)) == KEYS
    finally:
        restored.stop()
    # The same swap again would have nowhere to keep the data dir: refused before anything.
    with pytest.raises(RestoreRefusedError, match="an earlier swap kept the data dir there"):
        await run_restore(config, repo, request, EventLog().emit)
    assert calls.read_text() == "stop\nstart\n"


async def test_after_a_lost_quorum_the_safety_backup_leaves_the_silent_member_out(
    ssh_server: SSHTestServer, etcd_member: EtcdServer, tmp_path: Path
) -> None:
    """No member answers, so there is no current state to save: the restore goes ahead with
    the safety backup asked for, and the audit log says why the member was left out."""
    (tmp_path / "live").mkdir()
    restored = EtcdServer(tmp_path / "live", name="restored")
    config = etcd_config(ssh_server, tmp_path, etcd_member, restored)
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    etcd_member.stop()

    log = EventLog()
    request = RestoreRequest(manifest.id, apply=True, confirm=("h1",))
    report = await run_restore(config, repo, request, log.emit)

    assert report.applied
    assert report.safety_backup is None
    assert (tmp_path / "live" / f"member.etcd.restored-{manifest.id}").is_dir()
    lines = (repo.path / "audit.jsonl").read_text().splitlines()
    (saved,) = [r for r in map(json.loads, lines) if r["action"] == "restore.safety-backup"]
    assert saved["result"] == "nothing to save"
    assert saved["left_out"]["etcd"].startswith(f"etcd at {etcd_member.endpoint} does not answer")
    assert any("etcd is left out" in getattr(event, "text", "") for event in log)


def test_only_a_member_that_does_not_answer_counts_as_down(tmp_path: Path) -> None:
    """A member that refuses the client (TLS, credentials) runs: it is never taken for down,
    so no safety backup leaves it out and no swap is offered for it."""
    config = parse_config(
        f'[repository]\npath = "{tmp_path / "repo"}"\n'
        '[hosts.h1]\naddress = "127.0.0.1"\n'
        '[sources.etcd]\nkind = "etcd"\nhost = "h1"\nendpoint = "10.0.0.5:2379"\n'
    )
    source = source_from("etcd", config.sources["etcd"])
    assert isinstance(source, EtcdSource)
    silent = source._rpc_failure(
        "UNAVAILABLE", "failed to connect to all addresses; ipv4:127.0.0.1:39533: Socket closed"
    )
    assert silent.not_answering
    assert (
        str(silent)
        == "etcd at 10.0.0.5:2379 does not answer: the member is down or cannot be reached"
    )
    for code, details in [
        ("UNAUTHENTICATED", "invalid auth token"),
        ("UNAVAILABLE", "SSL handshake failed: certificate verify failed"),
        ("INTERNAL", "ipv4:127.0.0.1:40143 broke"),
    ]:
        refused = source._rpc_failure(code, details)
        assert not refused.not_answering, code
        assert "127.0.0.1:40143" not in str(refused)

"""The restore validator against real peers: each check that can refuse, refuses alone.

Every refusal is requested with ``apply=True`` and a correct confirmation, so the only thing
standing between the request and the target is the validator; each test then proves the
target is exactly as it was (files byte for byte, Mongo documents, etcd keys) and that no
safety backup or restore was started.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from etcd_server import EtcdServer
from helpers import EventLog, command_source, config_text, files_source, host_toml, tree_snapshot
from mongo_server import MongoServer
from sshd import SSHTestServer, free_port

from engine.checks import Check, Status
from engine.config.load import parse_config
from engine.config.model import Config
from engine.events import CheckReported, StageChanged
from engine.jobs import BackupRequest, run_backup
from engine.repo.manifest import Manifest
from engine.repo.repository import Repository
from engine.restore.locks import RepositoryTargetLocks
from engine.restore.run import RestoreRefusedError, RestoreReport, RestoreRequest, run_restore
from engine.restore.validate import CheckOrder
from engine.scaleout.coordination import Coordinator
from engine.sources import RestoreOptions

RAW = CodecOptions(document_class=RawBSONDocument)


def test_checks_are_listed_in_the_fixed_order_whatever_order_they_end_in() -> None:
    reported: list[tuple[str, tuple[int, int]]] = []
    order = CheckOrder(lambda check, place: reported.append((check.name, place)))
    up_front, checksums, host, locks = (order.group(n) for n in range(4))
    up_front(Check.ok("backup", "b"))
    host(Check.ok("ssh h1", "reachable"))  # the host answered before the checksums ended
    host(Check.warning("disk h1", "tight"))
    checksums(Check.ok("checksums", "good"))
    locks(Check.ok("lock h1", "free"))
    assert [check.name for check in order.listed()] == [
        "backup", "checksums", "ssh h1", "disk h1", "lock h1",
    ]  # fmt: skip
    # Each was reported as it ended, with its place, so a live list can insert it there.
    assert reported == [
        ("backup", (0, 0)), ("ssh h1", (2, 0)), ("disk h1", (2, 1)), ("checksums", (1, 0)),
        ("lock h1", (3, 0)),
    ]  # fmt: skip


# -- peers and their state ------------------------------------------------------------------


def make_files(root: Path) -> None:
    (root / "etc" / "app").mkdir(parents=True)
    (root / "etc" / "app" / "app.toml").write_text("listen = 8080\n")
    (root / "certs").mkdir()
    (root / "certs" / "ca.pem").write_bytes(os.urandom(2048))


def break_files(root: Path) -> None:
    """What an incident did after the backup (a restore would undo it)."""
    (root / "etc" / "app" / "app.toml").write_text("listen = broken\n")
    (root / "certs" / "ca.pem").unlink()


def seed_mongo(server: MongoServer) -> None:
    with server.client() as client:
        client.app.users.insert_many([{"_id": i, "name": f"u{i}"} for i in range(200)])
        client.app.modules.insert_many([{"_id": f"m{i}", "on": i % 2 == 0} for i in range(20)])


def mongo_state(server: MongoServer) -> dict[str, dict[object, bytes]]:
    """Every document of every user collection, as raw BSON."""
    with server.client() as client:
        state = {}
        for db_name in client.list_database_names():
            if db_name in {"admin", "config", "local"}:
                continue
            for name in client[db_name].list_collection_names():
                collection = client[db_name].get_collection(name, codec_options=RAW)
                state[f"{db_name}.{name}"] = {d["_id"]: bytes(d.raw) for d in collection.find()}
        return state


def seed_etcd(server: EtcdServer) -> None:
    with server.client() as client:
        for i in range(50):
            client.put(f"/nodes/{i:03d}", json.dumps({"id": i}))


def etcd_state(server: EtcdServer) -> dict[bytes, bytes]:
    with server.client() as client:
        return {meta.key: value for value, meta in client.get_all()}


def mongo_source(server: MongoServer) -> str:
    return f'[sources.mongo]\nkind = "mongo"\nhost = "h1"\nuri = "mongodb://127.0.0.1:{server.port}/"\n'


def etcd_source(member: EtcdServer, data_dir: Path, ca_file: Path | None = None) -> str:
    text = (
        f'[sources.etcd]\nkind = "etcd"\nhost = "h1"\nendpoint = "{member.endpoint}"\n'
        f'data_dir = "{data_dir}"\n'
    )
    return text + (f'ca_file = "{ca_file}"\n' if ca_file else "")


# -- running the validator ------------------------------------------------------------------


async def backup(config: Config, *scope: str) -> tuple[Repository, Manifest]:
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(scope), EventLog().emit)
    return repo, manifest


async def refused_apply(
    config: Config, repo: Repository, backup_id: str, **request: object
) -> tuple[RestoreReport, EventLog]:
    """Ask for a confirmed apply; return the refusal's report (the test fails without one)."""
    events = EventLog()
    full = RestoreRequest(backup_id, apply=True, confirm=("h1",), **request)  # type: ignore[arg-type]
    with pytest.raises(RestoreRefusedError) as info:
        await run_restore(config, repo, full, events.emit)
    report = info.value.report
    # Every check was shown as it came, and the error lists exactly the failed ones.
    in_order = sorted(events.of_type(CheckReported), key=lambda e: e.order)
    reported = [(e.name, e.status, e.detail) for e in in_order]
    assert reported == [(c.name, c.status.value, c.detail) for c in report.checks]
    for check in report.failed:
        assert f"{check.name}: {check.detail}" in str(info.value)
    assert not report.applied
    return report, events


def only_failure(report: RestoreReport) -> Check:
    """The one failed check (each scenario breaks one thing)."""
    assert len(report.failed) == 1, report.failed
    return report.failed[0]


def named(report: RestoreReport, name: str) -> Check:
    (check,) = [c for c in report.checks if c.name == name]
    return check


def assert_nothing_started(repo: Repository, backups: int = 1) -> None:
    """No safety backup, no restore: the audit log holds only the refused validation."""
    assert len(repo.list_backups()[0]) == backups
    records = [json.loads(line) for line in (repo.path / "audit.jsonl").read_text().splitlines()]
    assert [r["action"] for r in records] == ["restore.validate"]
    assert records[0]["result"] == "refused"
    assert records[0]["failed"]


def rewrite_meta(repo: Repository, backup_id: str, source: str, **meta: object) -> None:
    path = repo.backup_dir(backup_id) / "manifest.json"
    data = json.loads(path.read_text())
    (artifact,) = [a for a in data["artifacts"] if a["source"] == source]
    artifact["meta"].update(meta)
    path.write_text(json.dumps(data))


# -- a clean dry run --------------------------------------------------------------------------


async def test_dry_run_of_every_kind_passes_every_check_and_changes_nothing(
    ssh_server: SSHTestServer, mongo: MongoServer, etcd_member: EtcdServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    make_files(data)
    seed_mongo(mongo)
    seed_etcd(etcd_member)
    ca = tmp_path / "ca.crt"
    ca.write_text("the cluster CA\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("release notes\n")
    sources = (
        files_source("cfg", data / "etc", data / "certs")
        + mongo_source(mongo)
        + etcd_source(etcd_member, tmp_path / "live" / "member.etcd", ca)
        + command_source("notes", ["cat", str(notes)], ["tee", str(tmp_path / "notes.out")])
    )
    config = parse_config(config_text(ssh_server, tmp_path / "repo", sources))
    repo, manifest = await backup(config)
    files, documents, keys = tree_snapshot(data), mongo_state(mongo), etcd_state(etcd_member)
    break_files(data)
    broken = tree_snapshot(data)

    events = EventLog()
    report = await run_restore(config, repo, RestoreRequest(manifest.id), events.emit)

    not_ok = [c for c in report.checks if c.status is not Status.OK]
    assert not_ok == []
    names = {c.name for c in report.checks}
    assert names >= {
        "backup", "checksums", "ssh h1", "writable h1", "disk h1", "tools h1", "lock h1",
        "mongo mongo", "version mongo", "etcd etcd", "version etcd", "restore dir h1", "CA h1",
    }  # fmt: skip
    assert named(report, "checksums").detail.startswith("4 artifact(s)")
    assert named(report, "CA h1").detail.startswith(f"{ca} matches the backup")
    assert "is free" in named(report, "restore dir h1").detail
    # The fixed order, whichever check ended first: the checksums and the host ran at once.
    listed = [c.name for c in report.checks]
    assert listed[:2] == ["backup", "checksums"]
    assert listed[2] == "ssh h1"
    assert listed[-1] == "lock h1"
    in_order = sorted(events.of_type(CheckReported), key=lambda e: e.order)
    assert [e.name for e in in_order] == listed
    assert [s.source for s in report.steps] == ["cfg", "mongo", "etcd", "notes"]
    assert not report.applied
    assert report.safety_backup is None
    # A dry run writes nothing anywhere: not the targets, not the repository.
    assert tree_snapshot(data) == broken != files
    assert mongo_state(mongo) == documents
    assert etcd_state(etcd_member) == keys
    assert not (tmp_path / "live").exists()
    assert not (tmp_path / "notes.out").exists()
    assert not (repo.path / "audit.jsonl").exists()
    assert [m.id for m in repo.list_backups()[0]] == [manifest.id]


# -- one failure each -----------------------------------------------------------------------


async def files_backup(
    server: SSHTestServer, tmp_path: Path, extra: str = ""
) -> tuple[Config, Repository, Manifest, Path]:
    """A files backup of ``data``, which is then broken (what a restore would put right)."""
    data = tmp_path / "data"
    make_files(data)
    sources = files_source("cfg", data / "etc", data / "certs") + extra
    config = parse_config(config_text(server, tmp_path / "repo", sources))
    repo, manifest = await backup(config, "cfg")
    break_files(data)
    return config, repo, manifest, data


async def test_corrupted_artifact_is_refused(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    config, repo, manifest, data = await files_backup(asyncssh_server, tmp_path)
    before = tree_snapshot(data)
    (artifact,) = manifest.artifacts
    archive = repo.backup_dir(manifest.id) / artifact.files[0].path
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    archive.write_bytes(bytes(raw))

    report, _ = await refused_apply(config, repo, manifest.id)
    # One line per problem found (the sha256, and the archive's own structure).
    assert {c.name for c in report.failed} == {"checksums"}
    for check in report.failed:
        assert check.detail.startswith(f"{artifact.files[0].path} (cfg): ")
        assert check.detail.endswith("this backup cannot be trusted: choose another")
    assert any("sha256 mismatch" in c.detail for c in report.failed)
    assert tree_snapshot(data) == before
    assert_nothing_started(repo)


async def test_a_source_missing_from_the_backup_is_refused(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    extra = command_source("notes", ["echo", "hi"], ["tee", str(tmp_path / "notes.out")])
    config, repo, manifest, data = await files_backup(asyncssh_server, tmp_path, extra)
    before = tree_snapshot(data)
    assert manifest.scope == ("cfg",)

    report, _ = await refused_apply(config, repo, manifest.id, scope=("cfg", "notes"))
    check = only_failure(report)
    assert check.name == "source notes"
    assert check.detail == (
        f"backup {manifest.id} has no notes; it holds cfg: choose another backup or leave the "
        "source out"
    )
    assert [s.source for s in report.steps] == ["cfg"]  # the rest was still checked
    assert named(report, "checksums").status is Status.OK
    assert tree_snapshot(data) == before
    assert not (tmp_path / "notes.out").exists()
    assert_nothing_started(repo)


async def test_a_glob_matching_nothing_is_refused(
    asyncssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    seed_mongo(mongo)
    config = parse_config(config_text(asyncssh_server, tmp_path / "repo", mongo_source(mongo)))
    repo, manifest = await backup(config)
    with mongo.client() as client:
        client.app.users.delete_many({"_id": {"$in": list(range(100))}})
    before = mongo_state(mongo)

    report, _ = await refused_apply(
        config, repo, manifest.id, options=RestoreOptions(namespaces=("app.users", "nope.*"))
    )
    check = only_failure(report)
    assert check.name == "options mongo"
    held = list(manifest.artifacts[0].meta["namespaces"])
    assert sorted(held) == ["app.modules", "app.users"]
    assert check.detail == (
        f"mongo: --ns 'nope.*' matches no namespace in this backup; it holds {', '.join(held)}"
    )
    assert mongo_state(mongo) == before
    assert len(before["app.users"]) == 100
    assert_nothing_started(repo)


async def test_an_unreachable_host_is_refused(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    config, repo, manifest, data = await files_backup(asyncssh_server, tmp_path)
    before = tree_snapshot(data)
    closed = free_port()
    moved = config.model_copy(
        update={"hosts": {"h1": config.hosts["h1"].model_copy(update={"port": closed})}}
    )

    report, _ = await refused_apply(moved, repo, manifest.id)
    check = only_failure(report)
    assert check.name == "ssh h1"
    assert str(closed) in check.detail
    assert "writable h1" not in {c.name for c in report.checks}  # no probe without a host
    assert tree_snapshot(data) == before
    assert_nothing_started(repo)


async def test_a_held_target_lock_is_refused(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    config, repo, manifest, data = await files_backup(asyncssh_server, tmp_path)
    before = tree_snapshot(data)
    with RepositoryTargetLocks(repo.path).hold("h1", "other"):
        report, _ = await refused_apply(config, repo, manifest.id)
    check = only_failure(report)
    assert check.name == "lock h1"
    assert check.detail.startswith(f"another restore holds h1: pid {os.getpid()} on ")
    assert "(restore onto h1 by other)" in check.detail
    assert check.detail.endswith("wait for it to finish")
    assert tree_snapshot(data) == before
    assert_nothing_started(repo)
    # Released, the same request passes the validator.
    report = await run_restore(config, repo, RestoreRequest(manifest.id), EventLog().emit)
    assert named(report, "lock h1").status is Status.OK


async def test_with_coordination_a_target_held_in_etcd_is_refused(
    asyncssh_server: SSHTestServer, etcd_member: EtcdServer, tmp_path: Path
) -> None:
    """Another instance's restore of h1, held in etcd, refuses this one; and this restore holds
    h1 in etcd while it applies, so the other instance would be refused in turn."""
    extra = f'[coordination]\netcd = "{etcd_member.endpoint}"\n'
    config, repo, manifest, data = await files_backup(asyncssh_server, tmp_path, extra)
    other = Coordinator(etcd_member.client(), repo.repo_id(), "console-b", 10)
    try:
        with other.target_locks().hold("h1", "bob"):
            report, _ = await refused_apply(config, repo, manifest.id)
        check = only_failure(report)
        assert check.name == "lock h1"
        assert check.detail.startswith("another restore holds h1: console-b (pid ")
        assert "operator bob" in check.detail
        assert_nothing_started(repo)

        seen: list[str | None] = []
        events = EventLog()
        request = RestoreRequest(manifest.id, apply=True, confirm=("h1",))

        def watch(event: object) -> None:
            events.emit(event)  # type: ignore[arg-type]
            if isinstance(event, StageChanged) and event.stage == "restoring":
                seen.append(other.target_locks().holder("h1"))

        await run_restore(config, repo, request, watch)
        assert seen
        assert all(holder is not None and "operator tester" in holder for holder in seen)
        assert other.target_locks().holder("h1") is None  # released after the apply
    finally:
        other.close()


async def test_too_little_disk_is_refused(asyncssh_server: SSHTestServer, tmp_path: Path) -> None:
    extra = "[restore]\nfree_space_margin = 1e12\n"
    config, repo, manifest, data = await files_backup(asyncssh_server, tmp_path, extra)
    assert config.restore.free_space_margin == 1e12
    before = tree_snapshot(data)

    report, _ = await refused_apply(config, repo, manifest.id)
    check = only_failure(report)
    assert check.name == "disk h1"
    assert f"{data / 'etc'} has " in check.detail
    assert " x 1e+12 margin = " in check.detail
    assert check.detail.endswith("free space there, or restore to another target")
    assert tree_snapshot(data) == before
    assert_nothing_started(repo)


# -- version mismatches ---------------------------------------------------------------------


async def test_mongo_version_mismatch_is_refused_and_a_patch_only_warns(
    asyncssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    seed_mongo(mongo)
    config = parse_config(config_text(asyncssh_server, tmp_path / "repo", mongo_source(mongo)))
    repo, manifest = await backup(config)
    (artifact,) = manifest.artifacts
    running = artifact.meta["server_version"]
    major, minor, patch = (int(part) for part in running.split(".")[:3])
    with mongo.client() as client:
        client.app.modules.drop()
    before = mongo_state(mongo)

    rewrite_meta(repo, manifest.id, "mongo", server_version="2.9.0")
    report, _ = await refused_apply(config, repo, manifest.id)
    check = only_failure(report)
    assert check.name == "version mongo"
    assert check.detail.startswith(f"backed up from 2.9.0, target runs {running}: ")
    assert check.detail.endswith("restore into a server running 2.9.x")
    assert mongo_state(mongo) == before
    assert_nothing_started(repo)

    other_patch = f"{major}.{minor}.{patch + 1}"
    rewrite_meta(repo, manifest.id, "mongo", server_version=other_patch)
    report = await run_restore(config, repo, RestoreRequest(manifest.id), EventLog().emit)
    assert report.failed == []
    assert report.warnings == [
        Check.warning(
            "version mongo",
            f"backed up from {other_patch}, target runs {running} (same {major}.{minor}, "
            "other patch)",
        )
    ]


async def test_etcd_version_mismatch_is_refused_and_a_patch_only_warns(
    asyncssh_server: SSHTestServer, etcd_member: EtcdServer, tmp_path: Path
) -> None:
    seed_etcd(etcd_member)
    data_dir = tmp_path / "live" / "member.etcd"
    sources = etcd_source(etcd_member, data_dir)
    config = parse_config(config_text(asyncssh_server, tmp_path / "repo", sources))
    repo, manifest = await backup(config)
    running = manifest.artifacts[0].meta["server_version"]
    major, minor, patch = (int(part) for part in running.split("."))
    before = etcd_state(etcd_member)

    rewrite_meta(repo, manifest.id, "etcd", server_version="2.9.0")
    report, _ = await refused_apply(config, repo, manifest.id)
    check = only_failure(report)
    assert check.name == "version etcd"
    assert check.detail.startswith(f"backed up from 2.9.0, target runs {running}: ")
    assert etcd_state(etcd_member) == before
    assert not data_dir.parent.exists()
    assert_nothing_started(repo)

    rewrite_meta(repo, manifest.id, "etcd", server_version=f"{major}.{minor}.{patch + 1}")
    report = await run_restore(config, repo, RestoreRequest(manifest.id), EventLog().emit)
    assert report.failed == []
    assert [c.name for c in report.warnings] == ["version etcd"]
    assert f"(same {major}.{minor}, other patch)" in report.warnings[0].detail


async def test_a_silent_etcd_only_warns_and_the_tool_gives_the_version(
    asyncssh_server: SSHTestServer, etcd_member: EtcdServer, tmp_path: Path
) -> None:
    """After a lost quorum no member answers: that is why one restores, not a reason to stop."""
    sources = etcd_source(etcd_member, tmp_path / "live" / "member.etcd")
    config = parse_config(config_text(asyncssh_server, tmp_path / "repo", sources))
    repo, manifest = await backup(config)
    etcd_member.stop()

    report = await run_restore(config, repo, RestoreRequest(manifest.id), EventLog().emit)
    assert report.failed == []
    silent = named(report, "etcd etcd")
    assert silent.status is Status.WARNING
    assert silent.detail.startswith(f"etcd at {etcd_member.endpoint} does not answer: ")
    assert silent.down == "etcd"  # a safety backup skips it: there is nothing to read
    assert "ipv4:" not in silent.detail
    assert "sources.etcd" not in silent.detail
    # etcdctl on the host says which version would restore: the same as the backup's.
    assert named(report, "version etcd").status is Status.OK


# -- etcd targets ---------------------------------------------------------------------------


async def test_an_existing_etcd_restore_dir_is_refused(
    asyncssh_server: SSHTestServer, etcd_member: EtcdServer, tmp_path: Path
) -> None:
    seed_etcd(etcd_member)
    data_dir = tmp_path / "live" / "member.etcd"
    sources = etcd_source(etcd_member, data_dir)
    config = parse_config(config_text(asyncssh_server, tmp_path / "repo", sources))
    repo, manifest = await backup(config)
    taken = tmp_path / "live" / f"member.etcd.restored-{manifest.id}"
    (taken / "member").mkdir(parents=True)
    (taken / "member" / "marker").write_text("an earlier restore, maybe in use\n")
    before, keys = tree_snapshot(tmp_path / "live"), etcd_state(etcd_member)

    report, _ = await refused_apply(config, repo, manifest.id)
    check = only_failure(report)
    assert check.name == "restore dir h1"
    assert check.detail == (
        f"{taken} already exists; a restore never writes over a data dir: remove or rename it"
    )
    assert tree_snapshot(tmp_path / "live") == before
    assert sorted(p.name for p in (tmp_path / "live").iterdir()) == [taken.name]
    assert etcd_state(etcd_member) == keys
    assert_nothing_started(repo)


async def test_a_changed_ca_is_refused(
    asyncssh_server: SSHTestServer, etcd_member: EtcdServer, tmp_path: Path
) -> None:
    seed_etcd(etcd_member)
    ca = tmp_path / "pki" / "ca.crt"
    ca.parent.mkdir()
    ca.write_text("-----BEGIN CERTIFICATE-----\nthe CA at backup time\n")
    data_dir = tmp_path / "live" / "member.etcd"
    sources = etcd_source(etcd_member, data_dir, ca)
    config = parse_config(config_text(asyncssh_server, tmp_path / "repo", sources))
    repo, manifest = await backup(config)
    recorded = manifest.artifacts[0].meta["ca_sha256"]
    assert len(recorded) == 64
    ca.write_text("-----BEGIN CERTIFICATE-----\na CA rotated since\n")
    keys = etcd_state(etcd_member)

    dry = EventLog()
    with pytest.raises(RestoreRefusedError) as info:
        await run_restore(config, repo, RestoreRequest(manifest.id), dry.emit)
    check = only_failure(info.value.report)
    assert check.name == "CA h1"
    assert check.detail.startswith(f"{ca} on h1 is sha256 ")
    assert f"the backup was taken with {recorded[:16]}…" in check.detail
    assert not (repo.path / "audit.jsonl").exists()  # a dry run is not audited

    report, _ = await refused_apply(config, repo, manifest.id)
    assert only_failure(report) == check
    assert etcd_state(etcd_member) == keys
    assert not data_dir.parent.exists()
    assert_nothing_started(repo)

    ca.unlink()
    report, _ = await refused_apply(config, repo, manifest.id)
    assert only_failure(report).detail == f"{ca} cannot be read on h1; restore the CA first"


async def test_a_target_host_is_the_one_checked_and_locked(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    """With --target-host h2, the plan, its lock check and its confirmation concern h2 only:
    h2 held by another restore refuses, even though h1 (the source's own host) is free."""
    config, repo, manifest, data = await files_backup(asyncssh_server, tmp_path)
    text = config_text(asyncssh_server, tmp_path / "repo", "")
    text += host_toml(asyncssh_server, "h2")
    two = parse_config(text + files_source("cfg", data / "etc", data / "certs"))
    before = tree_snapshot(data)
    with RepositoryTargetLocks(repo.path).hold("h2", "other"):
        events = EventLog()
        request = RestoreRequest(manifest.id, target_host="h2", apply=True, confirm=("h2",))
        with pytest.raises(RestoreRefusedError) as info:
            await run_restore(two, repo, request, events.emit)
    report = info.value.report
    assert report.plan.hosts == ("h2",)
    assert [c.name for c in report.failed] == ["lock h2"]
    assert "lock h1" not in {c.name for c in report.checks}
    assert tree_snapshot(data) == before
    assert_nothing_started(repo)

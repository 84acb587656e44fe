"""Mongo through both SSH servers: driver dump, verify, full/selective/renamed restore."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import EventLog, config_text
from mongo_data import RAW, documents, mongo_config  # noqa: F401
from mongo_server import MongoServer
from sshd import SSHTestServer

from engine.config.load import parse_config
from engine.config.model import Config
from engine.jobs import BackupRequest, run_backup, run_verify
from engine.repo.manifest import Manifest
from engine.repo.repository import Repository
from engine.restore.run import RestoreRefusedError, RestoreRequest, run_restore
from engine.sources import RestoreOptions

SEEDED = {"app.users": 4000, "app.events": 5000, "billing.invoices": 1000}


def seed(server: MongoServer) -> None:
    with server.client() as client:
        users = client.app.users
        users.insert_many(
            [{"_id": i, "email": f"user{i}@example.com", "age": i % 90} for i in range(4000)]
        )
        users.create_index([("email", 1)], unique=True, name="email_unique")
        events = client.app.events
        events.insert_many(
            [
                {"_id": f"e{i}", "user": i % 4000, "at": datetime(2026, 1, 1, tzinfo=UTC),
                 "kind": ["login", "deploy", "logout"][i % 3], "n": {"x": i, "tags": ["a", "b"]}}
                for i in range(5000)
            ]
        )  # fmt: skip
        events.create_index([("user", 1), ("kind", 1)], name="user_kind")
        client.billing.invoices.insert_many(
            [{"_id": i, "amount": i * 1.5, "paid": i % 2 == 0} for i in range(1000)]
        )


def indexes(server: MongoServer, namespace: str) -> list[dict[str, object]]:
    db, coll = namespace.split(".", 1)
    with server.client() as client:
        return sorted(
            ({k: v for k, v in ix.items() if k != "ns"} for ix in client[db][coll].list_indexes()),
            key=lambda ix: str(ix["name"]),
        )


async def backup(config: Config) -> tuple[Repository, Manifest]:
    repo = Repository.open(config.repository.path)
    return repo, await run_backup(config, repo, BackupRequest(), EventLog().emit)


async def restore(config: Config, repo: Repository, backup_id: str, **options: object) -> None:
    request = RestoreRequest(
        backup_id,
        options=RestoreOptions(**options),
        apply=True,
        confirm=("h1",),  # type: ignore[arg-type]
    )
    await run_restore(config, repo, request, EventLog().emit)


async def test_full_restore_is_byte_identical_with_indexes(
    ssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    seed(mongo)
    before = {ns: documents(mongo, ns) for ns in SEEDED}
    index_specs = {ns: indexes(mongo, ns) for ns in SEEDED}
    config = mongo_config(ssh_server, tmp_path, mongo)
    repo, manifest = await backup(config)

    (artifact,) = manifest.artifacts
    assert artifact.files[0].path == "mongo.archive.gz"
    assert {ns: v["documents"] for ns, v in artifact.meta["namespaces"].items()} == SEEDED
    assert artifact.meta["server_version"]
    assert (await run_verify(repo, manifest.id, EventLog().emit)).ok
    with gzip.open(repo.backup_dir(manifest.id) / "mongo.archive.gz") as archive:
        assert archive.read(4) == bytes.fromhex("6de29981")

    with mongo.client() as client:
        client.drop_database("app")
        client.drop_database("billing")
    await restore(config, repo, manifest.id)
    for ns in SEEDED:
        assert documents(mongo, ns) == before[ns], ns
        assert indexes(mongo, ns) == index_specs[ns], ns


async def test_selective_restore_touches_only_matching_namespaces(
    ssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    seed(mongo)
    users = documents(mongo, "app.users")
    config = mongo_config(ssh_server, tmp_path, mongo)
    repo, manifest = await backup(config)
    with mongo.client() as client:
        client.app.users.delete_many({"age": {"$lt": 50}})
        client.app.events.insert_one({"_id": "after-backup"})
        client.billing.invoices.drop()
    events_now = documents(mongo, "app.events")

    await restore(config, repo, manifest.id, namespaces=("app.us*",))
    assert documents(mongo, "app.users") == users
    assert documents(mongo, "app.events") == events_now
    assert documents(mongo, "billing.invoices") == {}


async def test_renamed_restore_lands_in_the_other_database(
    ssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    seed(mongo)
    config = mongo_config(ssh_server, tmp_path, mongo)
    repo, manifest = await backup(config)
    with mongo.client() as client:
        client.app.users.insert_one({"_id": -1, "email": "new@example.com"})
    app_now = documents(mongo, "app.users")
    await restore(
        config, repo, manifest.id, namespaces=("app.*",), ns_from="app.*", ns_to="staging_app.*"
    )
    assert len(documents(mongo, "staging_app.users")) == SEEDED["app.users"]
    assert len(documents(mongo, "staging_app.events")) == SEEDED["app.events"]
    assert documents(mongo, "app.users") == app_now
    assert documents(mongo, "staging_app.invoices") == {}


def flip_inside_a_document(path: Path, needle: bytes) -> None:
    """Change one byte of the decompressed archive inside ``needle`` and recompress."""
    raw = bytearray(gzip.decompress(path.read_bytes()))
    at = raw.index(needle)
    raw[at] ^= 0x01
    path.write_bytes(gzip.compress(bytes(raw)))


async def test_flipped_byte_names_the_namespace_and_restore_touches_nothing(
    ssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    seed(mongo)
    config = mongo_config(ssh_server, tmp_path, mongo)
    repo, manifest = await backup(config)
    flip_inside_a_document(repo.backup_dir(manifest.id) / "mongo.archive.gz", b"user1234@example")
    result = await run_verify(repo, manifest.id, EventLog().emit)
    assert any("app.users" in p.problem and "CRC mismatch" in p.problem for p in result.problems)

    with mongo.client() as client:
        client.app.users.delete_many({})
    with pytest.raises(RestoreRefusedError):
        await restore(config, repo, manifest.id)
    assert documents(mongo, "app.users") == {}


async def test_unknown_glob_is_refused_before_anything(
    ssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    seed(mongo)
    config = mongo_config(ssh_server, tmp_path, mongo)
    repo, manifest = await backup(config)
    with pytest.raises(RestoreRefusedError, match="--ns 'nope.*' matches no namespace"):
        await restore(config, repo, manifest.id, namespaces=("nope.*",))


async def test_password_never_leaves_the_config(
    ssh_server: SSHTestServer,
    mongo: MongoServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A server that refuses the login: the error, events and repository hold no secret."""
    config = parse_config(
        config_text(ssh_server, tmp_path / "repo", "")
        + '[sources.mongo]\nkind = "mongo"\nhost = "h1"\n'
        + f'uri = "mongodb://backup:uri-s3cret@127.0.0.1:{mongo.port}/?authSource=admin"\n'
    )
    repo = Repository.open(config.repository.path)
    events = EventLog()
    with pytest.raises(Exception) as info:  # noqa: PT011 - the message is what is checked
        await run_backup(config, repo, BackupRequest(), events.emit)
    seen = str(info.value) + repr(list(events)) + capsys.readouterr().out
    assert "uri-s3cret" not in seen
    assert "mongo" in str(info.value)
    for path in repo.path.rglob("*"):
        if path.is_file():
            assert b"uri-s3cret" not in path.read_bytes()


FIXTURE = Path(__file__).parent.parent / "fixtures" / "mongodump-archives" / "dump-w-oplog.archive"
# Stand-ins for the host's mongodump/mongorestore, which no package here provides: they log
# their argv and the config file they were given, then write a real mongodump archive (or
# keep what they read), so the test sees exactly what Lifeboat hands the real tools.
STAND_IN = """#!/bin/sh
log="$(dirname "$0")/$(basename "$0").log"
printf '%s\\n' "$@" > "$log.argv"
for arg in "$@"; do
  case "$arg" in
    --config=*) f="${arg#--config=}"; cp "$f" "$log.config"; stat -c %a "$f" > "$log.mode";;
  esac
done
"""


def stand_in(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text(STAND_IN + body)
    path.chmod(0o755)
    return path


async def test_mongodump_method_hands_secrets_by_file_only(
    ssh_server: SSHTestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    dump = stand_in(tools, "mongodump", f"gzip -c {FIXTURE}\n")
    restored = tmp_path / "restored.archive.gz"
    load = stand_in(tools, "mongorestore", f"cat > {restored}\n")
    password_file = tmp_path / "mongo.password"
    password_file.write_text("file-s3cret\n")
    sources = (
        '[sources.mongo]\nkind = "mongo"\nhost = "h1"\nmethod = "mongodump"\n'
        'uri = "mongodb://backup:uri-s3cret@db.internal:27017/?authSource=admin"\n'
        f'password_file = "{password_file}"\n'
        f'mongodump = ["{dump}"]\nmongorestore = ["{load}"]\n'
    )
    config = parse_config(config_text(ssh_server, tmp_path / "repo", sources))
    repo, manifest = await backup(config)

    (artifact,) = manifest.artifacts
    assert artifact.meta["method"] == "mongodump"
    assert artifact.meta["namespaces"]["test.foo"]["documents"] == 25
    assert (await run_verify(repo, manifest.id, EventLog().emit)).ok
    argv = (tools / "mongodump.log.argv").read_text().splitlines()
    assert argv[:2] == ["--archive", "--gzip"]
    handed = (tools / "mongodump.log.config").read_text()
    assert "uri-s3cret" in handed
    assert "file-s3cret" in handed
    assert (tools / "mongodump.log.mode").read_text().strip() == "600"
    assert not Path(next(a for a in argv if a.startswith("--config="))[9:]).exists()

    await restore(config, repo, manifest.id, namespaces=("test.*",))
    backup_file = repo.backup_dir(manifest.id) / "mongo.archive.gz"
    assert restored.read_bytes() == backup_file.read_bytes()
    argv = (tools / "mongorestore.log.argv").read_text().splitlines()
    assert "--nsInclude=test.*" in argv
    assert "--drop" in argv
    assert not Path(next(a for a in argv if a.startswith("--config="))[9:]).exists()

    everything = capsys.readouterr().out + "".join(
        " ".join(line for line in (tools / f"{t}.log.argv").read_text().splitlines())
        for t in ("mongodump", "mongorestore")
    )
    assert "s3cret" not in everything
    for path in repo.path.rglob("*"):
        if path.is_file():
            assert b"s3cret" not in path.read_bytes()

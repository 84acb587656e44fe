"""Encrypted backups end to end: nothing in clear reaches the repository, Debian's `age` opens
every artifact into what a plaintext backup holds, verify checks what is stored without the
identity and everything with it, and restores need the identity and say so."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pymongo
import pytest
import zstandard
from age_keys import age_decrypt, encryption_toml, keygen, protect
from cli_run import LIFEBOAT, lifeboat, write_config
from helpers import EventLog, command_source, config_text, files_source, make_config, tree_snapshot
from mongo_server import MongoServer
from sshd import SSHTestServer
from terminal import Terminal

from engine.config.load import parse_config
from engine.crypto.age import Encryptor, Identity
from engine.crypto.identities import read_identities
from engine.errors import ConfigError, UsageError
from engine.jobs import BackupRequest, run_backup, run_verify
from engine.mongo_archive import summarize
from engine.repo.content import DecryptingReader, Keyring
from engine.repo.manifest import Manifest
from engine.repo.repository import Repository
from engine.restore.run import RestoreRefusedError, RestoreRequest, run_restore
from engine.sources import RestoreOptions

MARKER = b"MARKER-IN-CLEAR-6d1f0c"


def seed_tree(root: Path) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "app.toml").write_bytes(MARKER + b"\nlisten = 8080\n")
    (root / "etc" / "big.bin").write_bytes(MARKER * 40_000)  # several age chunks


def stored_files(repo: Repository, manifest: Manifest) -> dict[str, Path]:
    return {a.source: repo.backup_dir(manifest.id) / a.files[0].path for a in manifest.artifacts}


def nothing_in_clear(root: Path) -> list[Path]:
    """Every file under ``root`` that holds the marker (there should be none)."""
    return [p for p in root.rglob("*") if p.is_file() and MARKER in p.read_bytes()]


async def test_an_encrypted_backup_stores_no_plaintext_and_age_opens_it(
    ssh_server: SSHTestServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    seed_tree(data)
    identity, key = keygen(tmp_path)
    sink = tmp_path / "restored.out"
    app = data / "etc" / "app.toml"
    dumped = app.read_bytes() + bytes(300_000)
    sources = files_source("cfg", data / "etc") + command_source(
        "dump", ["sh", "-c", f"cat {app}; head -c 300000 /dev/zero"], ["sh", "-c", f"cat > {sink}"]
    )
    config = make_config(ssh_server, tmp_path / "repo", sources + encryption_toml(identity))
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)

    assert nothing_in_clear(repo.path) == []
    assert manifest.schema_version == 2
    assert manifest.encryption is not None
    assert manifest.encryption.recipients == (str(identity.recipient),)
    stored = stored_files(repo, manifest)
    for artifact in manifest.artifacts:
        (entry,) = artifact.files
        assert entry.path.endswith(".age")
        opened = age_decrypt(stored[artifact.source], key)
        assert (len(opened), hashlib.sha256(opened).hexdigest()) == (
            entry.plain_bytes,
            entry.plain_sha256,
        )
    assert age_decrypt(stored["dump"], key) == dumped
    cfg = manifest.artifact("cfg")
    assert cfg is not None
    tar_bytes = age_decrypt(stored["cfg"], key)
    if cfg.meta["compression"] == "zstd":
        tar_bytes = zstandard.ZstdDecompressor().decompressobj().decompress(tar_bytes)
    else:
        tar_bytes = gzip.decompress(tar_bytes)
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as archive:
        assert {m.name for m in archive if m.isfile()} >= {f"{str(data)[1:]}/etc/app.toml"}

    shallow = await run_verify(repo, manifest.id, EventLog().emit)
    assert shallow.ok
    assert shallow.sealed == 2
    deep = await run_verify(repo, manifest.id, EventLog().emit, keyring=Keyring((identity,)))
    assert deep.ok
    assert deep.sealed == 0

    without = RestoreRequest(manifest.id, apply=True, confirm=("h1",))
    with pytest.raises(RestoreRefusedError) as refused:
        await run_restore(config, repo, without, EventLog().emit)
    (failed,) = refused.value.report.failed
    assert failed.name == "encryption"
    assert str(identity.recipient) in failed.detail
    assert "--identity" in failed.detail

    target = tmp_path / "restored"
    request = RestoreRequest(
        manifest.id,
        options=RestoreOptions(target_dir=target),
        apply=True,
        confirm=("h1",),
        keyring=Keyring((identity,)),
    )
    report = await run_restore(config, repo, request, EventLog().emit)
    assert report.applied
    assert tree_snapshot(target / data.relative_to("/")) == tree_snapshot(data)
    assert sink.read_bytes() == dumped
    assert nothing_in_clear(repo.path) == []  # the safety backup is encrypted too


async def test_a_mongo_dump_is_encrypted_as_it_streams_and_age_opens_a_gzipped_archive(
    asyncssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    with pymongo.MongoClient(mongo.uri) as client:
        client.app.users.insert_many(
            [{"_id": i, "email": MARKER.decode() + str(i)} for i in range(300)]
        )
    identity, key = keygen(tmp_path)
    sources = f'[sources.db]\nkind = "mongo"\nhost = "h1"\nuri = "{mongo.uri}"\n'
    config = make_config(asyncssh_server, tmp_path / "repo", sources + encryption_toml(identity))
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    assert nothing_in_clear(repo.path) == []

    opened = age_decrypt(stored_files(repo, manifest)["db"], key)
    assert opened[:2] == b"\x1f\x8b"  # gzip, as `mongorestore --archive --gzip` reads
    assert summarize(io.BytesIO(opened)).namespaces["app.users"].documents == 300

    with pymongo.MongoClient(mongo.uri) as client:
        client.app.users.drop()
    request = RestoreRequest(manifest.id, apply=True, confirm=("h1",), keyring=Keyring((identity,)))
    await run_restore(config, repo, request, EventLog().emit)
    with pymongo.MongoClient(mongo.uri) as client:
        assert client.app.users.count_documents({}) == 300


async def test_tampered_or_truncated_ciphertext_is_caught_with_and_without_the_identity(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    identity, _key = keygen(tmp_path)
    other, _ = keygen(tmp_path, "other.txt")
    sources = command_source("dump", ["head", "-c", "500000", "/dev/urandom"], ["cat"])
    config = make_config(asyncssh_server, tmp_path / "repo", sources + encryption_toml(identity))
    repo = Repository.open(config.repository.path)
    flipped = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    cut = await run_backup(config, repo, BackupRequest(), EventLog().emit)

    path = stored_files(repo, flipped)["dump"]
    data = bytearray(path.read_bytes())
    data[200_000] ^= 0x01
    path.write_bytes(bytes(data))
    path = stored_files(repo, cut)["dump"]
    path.write_bytes(path.read_bytes()[:-100])

    mine, wrong = Keyring((identity,)), Keyring((other,))
    for manifest, shallow_says, deep_says in [
        (flipped, "sha256 mismatch", "does not authenticate"),
        (cut, "size is", "truncated"),
    ]:
        shallow = await run_verify(repo, manifest.id, EventLog().emit)
        assert [shallow_says in str(p) for p in shallow.problems] == [True]
        deep = await run_verify(repo, manifest.id, EventLog().emit, keyring=mine)
        assert any(deep_says in str(p) for p in deep.problems)
        assert any(shallow_says in str(p) for p in deep.problems)

    # A healthy encrypted backup and the wrong identity: refused, naming who can open it.
    healthy = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    result = await run_verify(repo, healthy.id, EventLog().emit, keyring=wrong)
    (problem,) = result.problems
    assert "none of the identities given opens it" in problem.problem
    assert str(identity.recipient) in problem.problem
    request = RestoreRequest(healthy.id, apply=True, confirm=("h1",), keyring=wrong)
    with pytest.raises(RestoreRefusedError) as refused:
        await run_restore(config, repo, request, EventLog().emit)
    assert [c.name for c in refused.value.report.failed] == ["encryption"]
    assert str(other.recipient) in refused.value.report.failed[0].detail


async def test_a_repository_mixing_plain_and_encrypted_backups_serves_both_and_says_which(
    asyncssh_server: SSHTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity, key = keygen(tmp_path)
    sink = tmp_path / "restored.out"
    sources = command_source("dump", ["printf", "hello"], ["sh", "-c", f"cat > {sink}"])
    plain_text = config_text(asyncssh_server, tmp_path / "repo", sources)
    plain = write_config(tmp_path / "plain.toml", plain_text)
    sealed = write_config(tmp_path / "sealed.toml", plain_text + encryption_toml(identity))
    ids = []
    for config in (plain, sealed):
        ran = await lifeboat("backup", "create", "--json", config=config)
        assert ran.rc == 0, ran.stderr
        ids.append(next(str(e["manifest_id"]) for e in ran.json_lines() if e.get("manifest_id")))
    plain_id, sealed_id = ids

    shown = await lifeboat("backup", "show", plain_id, config=sealed)
    assert "stored    in plaintext (not encrypted)" in shown.stdout
    shown = await lifeboat("backup", "show", sealed_id, config=plain)
    assert "encrypted age-v1" in shown.stdout
    assert str(identity.recipient) in shown.stdout
    assert "dump.out.age" in shown.stdout

    verified = await lifeboat("backup", "verify", "--all", config=plain)
    assert verified.rc == 0, verified.stdout
    assert "1 encrypted file(s) checked as stored" in verified.stdout
    deep = await lifeboat("backup", "verify", "--all", "--identity", str(key), config=plain)
    assert deep.rc == 0, deep.stdout
    assert "checked as stored" not in deep.stdout

    refused = await lifeboat("restore", sealed_id, "--dry-run", config=plain)
    assert refused.rc == 1
    assert f"encrypted to {identity.recipient}" in " ".join(refused.stdout.split())
    monkeypatch.setenv("LIFEBOAT_AGE_IDENTITY", identity.secret_text())
    for backup_id in (plain_id, sealed_id):
        applied = await lifeboat("restore", backup_id, "--apply", "--confirm", "h1", config=plain)
        assert applied.rc == 0, applied.stdout + applied.stderr
        assert sink.read_bytes() == b"hello"
        assert identity.secret_text() not in applied.stdout + applied.stderr
    audit_log = (tmp_path / "repo" / "audit.jsonl").read_text()
    assert identity.secret_text() not in audit_log
    assert [json.loads(line)["action"] for line in audit_log.splitlines()].count(
        "restore.finish"
    ) == 2


async def test_a_bad_identity_or_recipient_is_one_clear_usage_error(tmp_path: Path) -> None:
    text = '[repository]\npath = "/tmp/lifeboat-unused"\n[encryption]\nrecipients = ["age1nope"]\n'
    config = write_config(tmp_path / "bad.toml", text)
    ran = await lifeboat("status", config=config)
    assert ran.rc == 2
    assert "encryption.recipients[0]: 'age1nope' is not an age recipient" in ran.stderr
    assert "Traceback" not in ran.stderr

    good = write_config(tmp_path / "good.toml", f'[repository]\npath = "{tmp_path / "r"}"\n')
    missing = tmp_path / "absent-key.txt"
    ran = await lifeboat("backup", "verify", "--all", "--identity", str(missing), config=good)
    assert ran.rc == 2
    assert f"{missing}: cannot read the identity file" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_a_passphrase_protected_identity_file_is_opened_with_what_is_typed(
    tmp_path: Path,
) -> None:
    identity, key = keygen(tmp_path)
    answer = "correct horse battery"
    protected = protect(key, answer)
    typed = iter(["wrong", answer])
    assert read_identities(str(protected), lambda: next(typed)) == (identity,)
    with pytest.raises(UsageError, match="protected by a passphrase"):
        read_identities(str(protected), lambda: "wrong")
    assert read_identities(f"  {identity.secret_text()}\n") == (identity,)
    with pytest.raises(UsageError, match="copied whole"):
        read_identities(identity.secret_text()[:-3])


def test_the_config_holds_public_keys_only(tmp_path: Path) -> None:
    identity, _key = keygen(tmp_path)
    listed = tmp_path / "recipients.txt"
    listed.write_text(f"# ops team\n{identity.recipient}\n\n")
    base = '[repository]\npath = "/tmp/x"\n[encryption]\n'
    config = parse_config(base + f'recipients_file = "{listed}"\n')
    assert config.encryption is not None
    assert config.encryption.all_recipients() == (identity.recipient,)
    for body, says in [
        (f'recipients = ["{identity.secret_text()}"]', "is a secret identity, not a recipient"),
        ("", "names no recipient"),
        (f'recipients_file = "{tmp_path / "none.txt"}"', "encryption.recipients_file: cannot"),
    ]:
        with pytest.raises(ConfigError) as error:
            parse_config(base + body + "\n")
        assert says in error.value.problems[0]
        assert identity.secret_text() not in error.value.problems[0]


def test_the_decrypting_reader_serves_any_read_size(tmp_path: Path) -> None:
    identity = Identity.generate()
    data = os.urandom(300_000)
    encryptor = Encryptor([identity.recipient])
    sealed = encryptor.header() + encryptor.update(data) + encryptor.finish()
    for sizes in ([1, 7, 65_536, 100_000], [-1], [300_000], [299_999, 5]):
        reader = DecryptingReader(io.BytesIO(sealed), [identity], "f.age", ())
        got = b"".join(reader.read(size) for size in sizes)
        got += b"".join(iter(lambda r=reader: r.read(4096), b""))
        assert got == data
        assert reader.read(10) == b""


async def test_on_a_terminal_restore_asks_for_the_identity_and_never_echoes_it(
    asyncssh_server: SSHTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity, _key = keygen(tmp_path)
    sink = tmp_path / "restored.out"
    sources = command_source("dump", ["printf", "hello"], ["sh", "-c", f"cat > {sink}"])
    text = config_text(asyncssh_server, tmp_path / "repo", sources) + encryption_toml(identity)
    config = write_config(tmp_path / "lifeboat.toml", text)
    made = await lifeboat("backup", "create", config=config)
    assert made.rc == 0, made.stderr
    (backup_id,) = Repository.open(tmp_path / "repo").backup_ids()
    monkeypatch.delenv("LIFEBOAT_AGE_IDENTITY", raising=False)

    argv = ["--config", str(config), "restore", backup_id, "--dry-run"]
    terminal = await Terminal.start(LIFEBOAT, *argv)
    try:
        await terminal.until(lambda t: "(hidden):" in t, "the prompt")
        assert f"the backup is encrypted to {identity.recipient}" in terminal.text
        os.write(terminal.master, identity.secret_text().encode() + b"\r")
        assert await terminal.ended() == 0, terminal.text
    finally:
        terminal.close()
    assert "the identity given opens it" in " ".join(terminal.text.split())
    assert identity.secret_text() not in terminal.text

"""Applying a restore: the safety backup (and undoing a restore with it), consent, the audit
log, alternate targets, and a selective Mongo restore planned by the decision tree."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from helpers import EventLog, config_text, files_source, tree_snapshot
from mongo_server import MongoServer
from sshd import SSHTestServer

from engine.config.load import parse_config
from engine.config.model import Config
from engine.errors import UsageError
from engine.jobs import BackupRequest, run_backup, run_verify
from engine.repo.audit import GENESIS
from engine.repo.manifest import Manifest, utc_now
from engine.repo.repository import Repository
from engine.restore.run import RestoreReport, RestoreRequest, run_restore
from engine.restore.scenario import SAFETY_TRIGGER, choose_backup, recommend
from engine.restore.tree import load_trees, walk
from engine.sources import RestoreOptions

RAW = CodecOptions(document_class=RawBSONDocument)


def make_files(root: Path) -> None:
    (root / "etc" / "app" / "conf.d").mkdir(parents=True)
    (root / "etc" / "app" / "app.toml").write_text("listen = 8080\n")
    (root / "etc" / "app" / "conf.d" / "extra.toml").write_text("x = 1\n" * 200)
    (root / "certs").mkdir()
    (root / "certs" / "ca.pem").write_bytes(os.urandom(2048))


def change_files(root: Path) -> None:
    """An incident after the backup: contents change (tar restores contents, and never
    deletes, so only changed files make a before/after that a restore fully reverses)."""
    (root / "etc" / "app" / "app.toml").write_text("listen = broken\n")
    (root / "etc" / "app" / "conf.d" / "extra.toml").write_text("x = 2\n")
    (root / "certs" / "ca.pem").write_bytes(b"not a certificate")


def files_config(server: SSHTestServer, tmp_path: Path, extra: str = "") -> tuple[Config, Path]:
    data = tmp_path / "data"
    make_files(data)
    sources = files_source("cfg", data / "etc", data / "certs") + extra
    return parse_config(config_text(server, tmp_path / "repo", sources)), data


async def backup(config: Config, label: str | None = None) -> tuple[Repository, Manifest]:
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(label=label), EventLog().emit)
    return repo, manifest


async def apply(
    config: Config, repo: Repository, backup_id: str, **request: object
) -> RestoreReport:
    full = {"apply": True, "confirm": ("h1",)} | request
    return await run_restore(config, repo, RestoreRequest(backup_id, **full), EventLog().emit)  # type: ignore[arg-type]


def audit_records(repo: Repository) -> list[dict[str, object]]:
    path = repo.path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- the safety backup ----------------------------------------------------------------------


async def test_apply_keeps_a_safety_backup_that_undoes_the_restore(
    ssh_server: SSHTestServer, tmp_path: Path
) -> None:
    config, data = files_config(ssh_server, tmp_path)
    repo, good = await backup(config, "good")
    original = tree_snapshot(data)
    change_files(data)
    changed = tree_snapshot(data)
    assert changed != original

    report = await apply(config, repo, good.id)
    assert report.applied
    assert tree_snapshot(data) == original
    assert report.safety_backup is not None
    safety = repo.load(report.safety_backup)
    assert safety.trigger == SAFETY_TRIGGER == "pre-restore"
    assert safety.label == f"pre-restore-{good.id}"
    assert safety.scope == ("cfg",)
    assert safety.artifacts[0].meta["paths"] == [str(data / "etc"), str(data / "certs")]
    assert (await run_verify(repo, safety.id, EventLog().emit)).ok
    assert {m.id for m in repo.list_backups()[0]} == {good.id, safety.id}
    # The scenario planner still offers the good backup, not the newer broken state.
    choice = choose_backup(config, repo, ("cfg",), utc_now())
    assert choice.manifest is not None
    assert choice.manifest.id == good.id

    # The restore was a mistake: restoring the safety backup brings the state before back.
    undo = await apply(config, repo, safety.id)
    assert tree_snapshot(data) == changed
    assert undo.safety_backup is not None
    assert repo.load(undo.safety_backup).label == f"pre-restore-{safety.id}"


async def test_skipping_the_safety_backup_needs_a_reason_which_is_audited(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    config, data = files_config(asyncssh_server, tmp_path)
    repo, good = await backup(config)
    original = tree_snapshot(data)
    change_files(data)
    changed = tree_snapshot(data)

    for reason in (None, "", "   "):
        with pytest.raises(UsageError, match="skipping the safety backup needs a reason"):
            await apply(config, repo, good.id, safety_backup=False, skip_reason=reason)
    assert tree_snapshot(data) == changed
    assert audit_records(repo) == []  # refused before anything, validation included

    why = "repository disk nearly full; ticket OPS-1234"
    report = await apply(config, repo, good.id, safety_backup=False, skip_reason=why)
    assert report.applied
    assert report.safety_backup is None
    assert tree_snapshot(data) == original
    assert [m.id for m in repo.list_backups()[0]] == [good.id]
    (skipped,) = [r for r in audit_records(repo) if r["action"] == "restore.safety-backup"]
    assert skipped["result"] == "skipped"
    assert skipped["reason"] == why
    assert skipped["backup"] == good.id


async def test_the_audit_log_records_every_step_in_a_chain(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    config, data = files_config(asyncssh_server, tmp_path)
    repo, good = await backup(config)
    change_files(data)
    report = await apply(config, repo, good.id)

    records = audit_records(repo)
    assert [r["action"] for r in records] == [
        "restore.validate",
        "restore.confirm",
        "restore.safety-backup",
        "restore.start",
        "restore.finish",
    ]
    assert all(r["backup"] == good.id and r["operator"] == "tester" for r in records)
    validate, confirm, safety, start, finish = records
    assert validate["result"] == "ok"
    assert validate["failed"] == []
    assert validate["hosts"] == ["h1"]
    assert confirm["confirmed"] == ["h1"]
    assert safety["result"] == "ok"
    assert safety["safety_backup"] == report.safety_backup
    assert start["sources"] == ["cfg"]
    assert start["safety_backup"] == report.safety_backup
    assert finish["result"] == "ok"
    assert finish["errors"] == []
    # Each line carries the sha256 of the one before it.
    lines = (repo.path / "audit.jsonl").read_bytes().splitlines()
    assert records[0]["prev"] == GENESIS
    for before, record in zip(lines, records[1:], strict=False):
        assert record["prev"] == hashlib.sha256(before).hexdigest()


async def test_a_wrong_confirmation_is_a_usage_error(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    config, data = files_config(asyncssh_server, tmp_path)
    repo, good = await backup(config)
    change_files(data)
    changed = tree_snapshot(data)
    for confirm in [("h2",), (), ("h1", "h2"), ("H1",)]:
        with pytest.raises(UsageError) as info:
            await apply(config, repo, good.id, confirm=confirm)
        assert str(info.value) == (
            f"to restore backup {good.id} onto h1, confirm by typing each target host's "
            "name: --confirm h1"
        )
    assert tree_snapshot(data) == changed
    assert audit_records(repo) == []
    assert len(repo.list_backups()[0]) == 1


# -- alternate targets ----------------------------------------------------------------------


async def test_an_alternate_target_gets_the_restore_and_the_original_is_untouched(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    staging = tmp_path / "staging"
    target = (
        '[targets.staging]\ndescription = "the staging box"\n'
        f'[targets.staging.sources.cfg]\ndirectory = "{staging}"\n'
    )
    config, data = files_config(asyncssh_server, tmp_path, target)
    repo, good = await backup(config)
    original = tree_snapshot(data)
    change_files(data)
    changed = tree_snapshot(data)

    with pytest.raises(UsageError, match="confirm by typing the target staging's name"):
        await apply(config, repo, good.id, target="staging", confirm=("h1",))
    report = await apply(config, repo, good.id, target="staging", confirm=("staging",))
    assert report.plan.target == "staging"
    assert report.plan.confirm_names == ("staging",)
    assert tree_snapshot(staging / data.relative_to("/")) == original
    assert tree_snapshot(data) == changed  # the original paths were not touched
    assert report.safety_backup is None  # the staging box held nothing yet
    (nothing,) = [r for r in audit_records(repo) if r["action"] == "restore.safety-backup"]
    assert nothing["result"] == "nothing to save"
    assert [r["target"] for r in audit_records(repo) if r["action"] == "restore.start"] == [
        "staging"
    ]

    # Again, over a staging copy someone edited: the safety backup saves staging, not prod.
    edited = staging / data.relative_to("/") / "etc" / "app" / "app.toml"
    edited.write_text("staging experiment\n")
    again = await apply(config, repo, good.id, target="staging", confirm=("staging",))
    assert edited.read_text() == "listen = 8080\n"
    assert again.safety_backup is not None
    saved = repo.load(again.safety_backup).artifacts[0].meta["paths"]
    assert saved == [str(staging) + str(data / "etc"), str(staging) + str(data / "certs")]
    assert tree_snapshot(data) == changed


# -- a selective Mongo restore from the decision tree ---------------------------------------


def documents(server: MongoServer, namespace: str) -> dict[object, bytes]:
    db, coll = namespace.split(".", 1)
    with server.client() as client:
        collection = client[db].get_collection(coll, codec_options=RAW)
        return {doc["_id"]: bytes(doc.raw) for doc in collection.find()}


NAMESPACES = (
    "app.module_packages",
    "app.mod_billing_invoices",
    "app.mod_billing_plans",
    "app.mod_chat_rooms",
    "app.users",
    "billing.ledger",
)


async def test_module_removed_scenario_restores_only_its_namespaces(
    asyncssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    with mongo.client() as client:
        client.app.module_packages.insert_many([{"_id": "billing"}, {"_id": "chat"}])
        client.app.mod_billing_invoices.insert_many([{"_id": i, "eur": i} for i in range(300)])
        client.app.mod_billing_plans.insert_many([{"_id": p} for p in ("free", "pro")])
        client.app.mod_chat_rooms.insert_many([{"_id": i} for i in range(50)])
        client.app.users.insert_many([{"_id": i, "name": f"u{i}"} for i in range(100)])
        client.billing.ledger.insert_many([{"_id": i} for i in range(10)])
    at_backup = {ns: documents(mongo, ns) for ns in NAMESPACES}
    sources = (
        f'[sources.mongo]\nkind = "mongo"\nhost = "h1"\nuri = "mongodb://127.0.0.1:{mongo.port}/"\n'
    )
    config = parse_config(config_text(asyncssh_server, tmp_path / "repo", sources))
    repo, good = await backup(config)
    assert (await run_verify(repo, good.id, EventLog().emit)).ok

    # The billing module is removed; the application keeps writing elsewhere.
    with mongo.client() as client:
        client.app.module_packages.delete_one({"_id": "billing"})
        client.app.mod_billing_invoices.drop()
        client.app.mod_billing_plans.drop()
        client.app.mod_chat_rooms.insert_one({"_id": "new room"})
        client.app.users.insert_one({"_id": "after", "name": "late signup"})
        client.billing.ledger.delete_many({})
    untouched = {ns: documents(mongo, ns) for ns in NAMESPACES[3:]}
    packages_now = documents(mongo, "app.module_packages")

    tree = load_trees(config.runbooks.paths, config.sources)["restore"]
    steps = walk(
        tree, {"scenario": "module-removed", "globs": "app.module_packages app.mod_billing_*"}
    )
    plan = recommend(config, steps)
    assert plan.sources == ("mongo",)
    assert plan.namespaces == ("app.module_packages", "app.mod_billing_*")
    choice = choose_backup(config, repo, plan.sources, utc_now())
    assert choice.manifest is not None
    assert choice.manifest.id == good.id
    assert choice.verified
    request = RestoreRequest(
        choice.manifest.id,
        scope=plan.sources,
        options=RestoreOptions(namespaces=plan.namespaces),
        apply=True,
        confirm=("h1",),
    )
    report = await run_restore(config, repo, request, EventLog().emit)

    for ns in NAMESPACES[:3]:
        assert documents(mongo, ns) == at_backup[ns], ns
    for ns in NAMESPACES[3:]:
        assert documents(mongo, ns) == untouched[ns], ns
    assert untouched["billing.ledger"] == {}
    # The safety backup holds what the restore overwrote: the matching namespaces only.
    assert report.safety_backup is not None
    safety = repo.load(report.safety_backup).artifacts[0]
    assert set(safety.meta["namespaces"]) == {"app.module_packages"}
    assert safety.meta["namespaces"]["app.module_packages"]["documents"] == len(packages_now)

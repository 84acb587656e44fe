"""Checklist items that fit the restore a run validates (items bound to sources that were not
restored are not applicable), and the ``etcd_health`` item against a real etcd."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from checklists import checklists_toml, item, write_checklist
from cli_run import lifeboat, write_config
from etcd_server import EtcdServer
from helpers import EventLog, config_text
from sshd import SSHTestServer

from engine.checklist.model import checklists_for, not_applicable
from engine.checklist.report import to_markdown
from engine.checklist.run import NOT_APPLICABLE, ChecklistRun, ItemState, new_run, sign, waive
from engine.checklist.session import ChecklistSession
from engine.config.load import parse_config
from engine.config.model import Config
from engine.errors import UsageError
from engine.jobs import BackupRequest, run_backup
from engine.repo import audit
from engine.repo.repository import Repository

SOURCES = (
    '[sources.files1]\nkind = "files"\nhost = "h1"\npaths = ["/etc"]\n'
    '[sources.db]\nkind = "mongo"\nhost = "h1"\nuri = "mongodb://127.0.0.1:1/"\n'
    '[sources.kv]\nkind = "etcd"\nhost = "h1"\n'
)

# One item of each kind; the bound ones name their source directly or through a value.
ITEMS = (
    item("http", "ready", url="http://127.0.0.1:1/ready"),
    item("command", "status", host="h1", argv=["true"]),
    item("mongo_count", "counts", source="{mongo}", namespace="*"),
    item("mongo_query", "audit", source="db", namespace="app.audit"),
    item("etcd_keys", "keys", source="kv"),
    item("etcd_health", "health", source="{etcd}"),
    item("manual", "smoke", instruction="Deploy something.", note="required"),
)


def offline(tmp_path: Path, values: dict[str, str]) -> Config:
    """A config whose host is never contacted, with checklist ``t`` of ``ITEMS``."""
    path = write_checklist(tmp_path, "t", *ITEMS)
    return parse_config(
        f'operator = "tester"\n[repository]\npath = {json.dumps(str(tmp_path / "repo"))}\n'
        '[hosts.h1]\naddress = "db1.invalid"\n' + SOURCES + checklists_toml([path], values)
    )


def statuses(run: ChecklistRun) -> dict[str, str]:
    return {state.id: state.status for state in run.items}


def test_items_bound_to_sources_not_restored_do_not_apply(tmp_path: Path) -> None:
    loaded = checklists_for(offline(tmp_path, {"mongo": "db"}))["t"]  # etcd is not set
    by_id = {i.id: i for i in loaded.checklist.items}

    # A restore of the Mongo source: the etcd items do not apply, whether named or unset.
    reasons = {i: not_applicable(by_id[i], ["db"]) for i in by_id}
    assert reasons == {
        "ready": None,
        "status": None,
        "counts": None,
        "audit": None,
        "keys": "not applicable: kv was not restored (the restore was of db)",
        "health": "not applicable: its source (checklists.values.etcd) is not set; "
        "the restore was of db",
        "smoke": None,
    }
    # A restore of the etcd source: the Mongo items do not apply; health's value is unset.
    assert [i for i in by_id if not_applicable(by_id[i], ["kv"])] == ["counts", "audit", "health"]
    # A restore of files only: every bound item is out, the others stay.
    assert [i for i in by_id if not_applicable(by_id[i], ["files1"])] == [
        "counts", "audit", "keys", "health"
    ]  # fmt: skip
    # No restore (a run of its own): everything applies, as before.
    assert [i for i in by_id if not_applicable(by_id[i], [])] == []


def test_a_run_of_a_restore_records_not_applicable_items_that_never_block(
    tmp_path: Path,
) -> None:
    config = offline(tmp_path, {"mongo": "db", "etcd": "kv"})
    loaded = checklists_for(config)["t"]

    plain = new_run(loaded)
    assert set(statuses(plain).values()) == {"pending"}
    assert [i.id for i in plain.blocking()] == [i.id for i in plain.items]
    emptied = new_run(loaded, restore={"sources": []})  # no sources named: every item runs
    assert set(statuses(emptied).values()) == {"pending"}

    run = new_run(loaded, restore={"sources": ["kv"], "target": "staging"})
    assert statuses(run) == {
        "ready": "pending",
        "status": "pending",
        "counts": NOT_APPLICABLE,
        "audit": NOT_APPLICABLE,
        "keys": "pending",
        "health": "pending",
        "smoke": "pending",
    }
    assert run.state("audit").detail == (
        "not applicable: db was not restored (the restore was of kv)"
    )
    assert [i.id for i in run.blocking()] == ["ready", "status", "keys", "health", "smoke"]
    with pytest.raises(UsageError, match="nothing to waive"):
        waive(run, "counts", "not ours")

    # Stored and read back as it was; the report names them, without a result time.
    repo = Repository.open(config.repository.path)
    session = ChecklistSession(config, repo, run, loaded)
    session.save()
    resumed = ChecklistSession.resume(config, repo, run.id)
    assert statuses(resumed.run) == statuses(run)
    assert resumed.automatic_ids() == ["ready", "status", "keys", "health"]
    report = to_markdown(resumed.run)
    assert "- Not applicable (bound to sources not restored, not run): counts, audit" in report
    assert re.search(r"\| Check audit \| N/A \| not applicable: db was not restored", report)
    assert "N/A: not run" in report

    # Once the items that apply are done, the run signs off; the audit names what did not apply.
    for state in run.items:
        if state.status == "pending":
            state.status = "ticked" if state.kind == "manual" else "passed"
    session.sign_off()
    (entry,) = [e for e in audit.entries(repo.path) if e["action"] == "checklist.signoff"]
    assert entry["not_applicable"] == ["counts", "audit"]
    assert entry["waived"] == []
    with pytest.raises(UsageError):
        sign(run, "tester", "here", None)  # signed once only


# -- etcd_health ----------------------------------------------------------------------------


def etcd_config(server: SSHTestServer, tmp_path: Path, member: EtcdServer) -> Config:
    path = write_checklist(
        tmp_path,
        "t",
        item("etcd_health", "health", source="kv", timeout=10),
        item("etcd_keys", "keys", source="kv"),
    )
    source = f'[sources.kv]\nkind = "etcd"\nhost = "h1"\nendpoint = "{member.endpoint}"\n'
    return parse_config(
        config_text(server, tmp_path / "repo", source) + checklists_toml([path], {})
    )


async def run_items(config: Config, restored: list[str] | None = None) -> dict[str, ItemState]:
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    restore = {"sources": restored} if restored is not None else None
    session = ChecklistSession.start(config, repo, checklists_for(config)["t"], manifest, restore)
    await session.check()
    return {state.id: state for state in session.run.items}


async def test_etcd_health_reports_the_member_through_the_tunnel(
    asyncssh_server: SSHTestServer, etcd_member: EtcdServer, tmp_path: Path
) -> None:
    with etcd_member.client() as client:
        for i in range(5):
            client.put(f"/k/{i}", "v")
        member_id = client.status().leader.id
    config = etcd_config(asyncssh_server, tmp_path, etcd_member)
    items = await run_items(config, ["kv"])
    health = items["health"]
    assert health.status == "passed", health.detail
    assert re.fullmatch(
        rf"etcd 3\.\d+\.\d+ at {etcd_member.endpoint} is healthy \(the leader\)", health.detail
    )
    version, members, size, raft = health.evidence
    assert re.fullmatch(r"version 3\.\d+\.\d+", version)
    assert members == f"member {member_id:x}, leader {member_id:x}"
    assert re.fullmatch(r"db size \d+\.\d KiB \(\d+ bytes\)", size)
    assert re.fullmatch(r"raft index [1-9]\d*, term [1-9]\d*", raft)
    assert items["keys"].status == "passed", items["keys"].detail

    # The member is gone: the item fails, saying so, within its timeout.
    etcd_member.stop()
    repo = Repository.open(config.repository.path)
    session = ChecklistSession.start(config, repo, checklists_for(config)["t"])
    await session.check(only=["health"])
    gone = session.run.state("health")
    assert gone.status == "failed"
    assert gone.detail
    assert gone.evidence == []


# -- the CLI ---------------------------------------------------------------------------------


async def test_cli_run_restored_leaves_out_items_of_other_sources(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    path = write_checklist(
        tmp_path,
        "t",
        item("command", "up", host="h1", argv=["echo", "READY"], stdout="READY"),
        item("etcd_keys", "keys", source="kv"),
    )
    sources = '[sources.kv]\nkind = "etcd"\nhost = "h1"\nendpoint = "127.0.0.1:1"\n'
    sources += '[sources.conf]\nkind = "files"\nhost = "h1"\npaths = ["/etc/hostname"]\n'
    text = config_text(asyncssh_server, tmp_path / "repo", sources) + checklists_toml([path])
    config_path = write_config(tmp_path / "lifeboat.toml", text)

    unknown = await lifeboat("checklist", "run", "t", "--restored", "nope", "--non-interactive",
                             config=config_path)  # fmt: skip
    assert unknown.rc == 2
    assert "--restored: no source 'nope'; sources: conf, kv" in unknown.stderr

    restored = await lifeboat("checklist", "run", "t", "--restored", "conf", "--non-interactive",
                              config=config_path)  # fmt: skip
    assert restored.rc == 0, restored.stderr
    assert "PASSED        up: `echo READY` exited 0" in restored.stdout
    assert (
        "N/A           keys: not applicable: kv was not restored (the restore was of conf)"
        in restored.stdout
    )
    run_id = re.search(r"^run (\S+) saved", restored.stdout, re.M)
    assert run_id is not None
    report = await lifeboat("checklist", "export", run_id[1], config=config_path)
    assert "- Restored: conf\n" in report.stdout
    assert "| Check keys | N/A | not applicable: kv was not restored" in report.stdout
    signed = await lifeboat("checklist", "sign-off", run_id[1], config=config_path)
    assert signed.rc == 0, signed.stderr

    # Without --restored, every item runs: the etcd one fails (nothing listens there).
    everything = await lifeboat("checklist", "run", "t", "--non-interactive", config=config_path)
    assert everything.rc == 1
    assert "required item(s) failed: keys" in everything.stderr

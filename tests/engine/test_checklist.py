"""Validation checklists: every item kind against real peers, loading and its errors, runs
(tick, waive, sign-off, storage, export) and the ``lifeboat checklist`` commands."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import socket
import ssl
import threading
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from checklists import (
    PAGES,
    PageHandler,
    checklists_toml,
    item,
    write_checklist,
)
from cli_run import LIFEBOAT, lifeboat, write_config
from etcd_server import EtcdServer
from helpers import EventLog, config_text, stored_backup
from mongo_server import MongoServer
from sshd import SSHTestServer, free_port
from timing import until
from tls import self_signed

from engine.checklist.model import checklists_for
from engine.checklist.report import to_json, to_markdown
from engine.checklist.run import (
    ChecklistRun,
    ItemState,
    load_run,
    new_run,
    run_ids,
    save,
    unsigned_runs,
)
from engine.checklist.session import ChecklistSession
from engine.config.load import parse_config
from engine.config.model import Config
from engine.errors import ConfigError, UsageError
from engine.jobs import BackupRequest, run_backup
from engine.repo import audit
from engine.repo.manifest import Manifest
from engine.repo.repository import Repository

# -- building checklists and configs --------------------------------------------------------


def down_host(server: SSHTestServer, name: str = "h2") -> str:
    """A host whose SSH port nothing listens on."""
    return (
        f'[hosts.{name}]\naddress = "127.0.0.1"\nport = {free_port()}\n'
        f"user = {json.dumps(server.user)}\nidentity = {json.dumps(str(server.identity))}\n"
        f"known_hosts = {json.dumps(str(server.known_hosts))}\n"
    )


def make(
    server: SSHTestServer,
    tmp_path: Path,
    *items: str,
    sources: str = "",
    values: dict[str, str] | None = None,
    name: str = "t",
) -> Config:
    """A config with host h1 (``server``), host h2 (down), ``sources`` and one checklist."""
    path = write_checklist(tmp_path, name, *items)
    text = config_text(server, tmp_path / "repo", sources) + down_host(server)
    return parse_config(text + checklists_toml([path], values))


async def run_checklist(
    config: Config,
    name: str = "t",
    manifest: Manifest | None = None,
    restored: list[str] | None = None,
) -> tuple[ChecklistRun, dict[str, ItemState], list[tuple[str, str]]]:
    """Run the automatic items of a new run (validating a restore of ``restored`` sources,
    when given); the run, its items by id, and every state change heard."""
    repo = Repository.open(config.repository.path)
    restore = {"sources": restored} if restored is not None else None
    loaded = checklists_for(config)[name]
    session = ChecklistSession.start(config, repo, loaded, manifest, restore)
    heard: list[tuple[str, str]] = []
    await session.check(changed=lambda s: heard.append((s.id, s.status)))
    run = session.run
    assert load_run(repo.path, run.id) == run  # every result saved
    return run, {state.id: state for state in run.items}, heard


# -- http ----------------------------------------------------------------------------------


async def test_http_items_direct_and_through_a_tunnel(
    asyncssh_server: SSHTestServer, http_server: tuple[str, list[str]], tmp_path: Path
) -> None:
    base, seen = http_server
    config = make(
        asyncssh_server,
        tmp_path,
        item("http", "direct-ok", url=f"{base}/ready", body="all 3 controllers"),
        item("http", "direct-503", url=f"{base}/broken"),
        item("http", "expect-503", url=f"{base}/broken", status=503, body="unavailable"),
        item("http", "body-lacks", url=f"{base}/ready", body="degraded"),
        item("http", "via-ok", url=f"{base}/ready", via="h1", body="lifeboat-ready"),
        item("http", "via-503", url=f"{base}/broken", via="h1"),
        item("http", "via-down", url=f"{base}/ready", via="h2"),
        item("http", "not-http", url="ftp://127.0.0.1/ready"),
    )
    run, items, heard = await run_checklist(config)
    assert {i: s.status for i, s in items.items()} == {
        "direct-ok": "passed",
        "direct-503": "failed",
        "expect-503": "passed",
        "body-lacks": "failed",
        "via-ok": "passed",
        "via-503": "failed",
        "via-down": "failed",
        "not-http": "failed",
    }
    assert items["direct-ok"].detail == "HTTP 200"
    assert items["direct-ok"].evidence == ["HTTP 200", PAGES["/ready"][1].decode()]
    assert items["direct-503"].detail == "HTTP 503, expected 200"
    assert items["direct-503"].evidence == ["HTTP 503", "upstream unavailable"]
    assert items["body-lacks"].detail == "HTTP 200 but the body lacks 'degraded'"
    assert items["via-ok"].detail == "HTTP 200 (via h1)"
    assert items["via-ok"].evidence[1] == PAGES["/ready"][1].decode()
    assert items["via-503"].detail == "HTTP 503, expected 200"
    # Through a host that cannot be reached, nothing is fetched: the tunnel is really used.
    assert items["via-down"].evidence == []
    assert items["via-down"].detail.startswith("h2: cannot connect to ")
    assert items["not-http"].detail == "'ftp://127.0.0.1/ready' is not an http(s) URL"
    assert sorted(seen) == ["/broken"] * 3 + ["/ready"] * 3
    # Every item was heard running, then with its result; timings and times are kept.
    for state in run.items:
        assert heard.count((state.id, "running")) == 1
        assert heard.index((state.id, "running")) < heard.index((state.id, state.status))
        assert state.at is not None
        assert state.seconds is not None
        assert state.seconds >= 0


async def test_https_items_verify_the_url_name_also_through_a_tunnel(
    asyncssh_server: SSHTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path, "localhost")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    server.seen = []  # type: ignore[attr-defined]
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        config = make(
            asyncssh_server,
            tmp_path,
            item("http", "direct", url=f"https://localhost:{port}/ready", body="healthy"),
            item("http", "via", url=f"https://localhost:{port}/ready", via="h1", body="healthy"),
            # The certificate names localhost, not 127.0.0.1: refused, though the tunnel's
            # end is on 127.0.0.1 in every case.
            item("http", "wrong-name", url=f"https://127.0.0.1:{port}/ready", via="h1"),
        )
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test's own CA
        _, items, _ = await run_checklist(config)
        assert items["direct"].status == "passed", items["direct"].detail
        assert items["via"].status == "passed", items["via"].detail
        assert items["via"].detail == "HTTP 200 (via h1)"
        assert items["wrong-name"].status == "failed"
        assert "certificate" in items["wrong-name"].detail.lower()

        monkeypatch.delenv("SSL_CERT_FILE")  # an unknown CA is refused
        _, items, _ = await run_checklist(config)
        assert items["via"].status == "failed"
        assert "certificate verify failed" in items["via"].detail.lower()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert server.seen == ["/ready"] * 2  # type: ignore[attr-defined]


# -- mongo ---------------------------------------------------------------------------------


def seed_mongo(server: MongoServer) -> None:
    with server.client() as client:
        client.app.users.insert_many(
            [{"_id": i, "name": f"user{i}", "age": 20 + i % 50} for i in range(60)]
        )
        client.app.events.insert_many([{"_id": f"e{i}", "n": i} for i in range(25)])
        client.billing.invoices.insert_many([{"_id": i, "paid": i % 2 == 0} for i in range(10)])


def mongo_source(server: MongoServer) -> str:
    return (
        f'[sources.db]\nkind = "mongo"\nhost = "h1"\nuri = "mongodb://127.0.0.1:{server.port}/"\n'
    )


async def take_backup(config: Config) -> Manifest:
    repo = Repository.open(config.repository.path)
    return await run_backup(config, repo, BackupRequest(), EventLog().emit)


async def test_mongo_count_matches_the_backup_until_a_collection_changes(
    asyncssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    seed_mongo(mongo)
    config = make(
        asyncssh_server,
        tmp_path,
        item("mongo_count", "app", source="db", namespace="app.*"),
        item("mongo_count", "billing", source="db", namespace="billing.invoices"),
        item("mongo_count", "nothing", source="db", namespace="shop.*"),
        item("mongo_count", "events-min", source="db", namespace="app.events", min=25),
        item("mongo_count", "events-too-few", source="db", namespace="app.events", min=26),
        sources=mongo_source(mongo),
    )
    manifest = await take_backup(config)
    (artifact,) = manifest.artifacts
    assert artifact.meta["namespaces"]["app.users"]["documents"] == 60

    _, items, _ = await run_checklist(config, manifest=manifest)
    assert items["app"].status == "passed", items["app"].detail
    assert items["app"].detail == "2 namespace(s) match the backup's counts"
    assert items["app"].evidence == [
        "app.events: 25 documents (backup: 25)",
        "app.users: 60 documents (backup: 60)",
    ]
    assert items["billing"].status == "passed"
    assert items["nothing"].status == "failed"
    assert items["nothing"].detail == "the backup holds no namespace matching 'shop.*'"
    assert items["events-min"].status == "passed"
    assert items["events-min"].detail == "app.events: 25 documents (at least 25)"
    assert items["events-too-few"].status == "failed"
    assert items["events-too-few"].detail == "app.events: 25 documents (at least 26)"

    with mongo.client() as client:
        client.app.users.insert_many([{"_id": 100}, {"_id": 101}])
    _, items, _ = await run_checklist(config, manifest=manifest)
    assert items["app"].status == "failed"
    assert items["app"].detail == "counts differ from the backup in app.users"
    assert "app.users: 62 documents (backup: 60)" in items["app"].evidence
    assert items["billing"].status == "passed"

    # Without a backup, only the items with a minimum can run.
    _, items, _ = await run_checklist(config)
    assert items["app"].status == "failed"
    assert "run the checklist with --backup ID" in items["app"].detail
    assert items["events-min"].status == "passed"


async def test_mongo_query_shows_its_rows_and_fails_below_min(
    asyncssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    seed_mongo(mongo)
    config = make(
        asyncssh_server,
        tmp_path,
        item(
            "mongo_query", "oldest", source="db", namespace="app.users",
            filter={"age": {"$gte": 60}}, sort={"_id": -1}, limit=3, min=2,
        ),
        item(
            "mongo_query", "too-few", source="db", namespace="app.users",
            filter={"age": 69}, min=5,
        ),
        item("mongo_query", "empty", source="db", namespace="app.missing"),
        sources=mongo_source(mongo),
    )  # fmt: skip
    _, items, _ = await run_checklist(config)
    oldest = items["oldest"]
    assert oldest.status == "passed", oldest.detail
    assert oldest.detail == "3 row(s) from app.users (at least 2)"
    # ages 60..69 are users 40..49: the three highest _ids, newest first.
    assert [json.loads(row) for row in oldest.evidence] == [
        {"_id": 49, "name": "user49", "age": 69},
        {"_id": 48, "name": "user48", "age": 68},
        {"_id": 47, "name": "user47", "age": 67},
    ]
    assert items["too-few"].status == "failed"
    assert items["too-few"].detail == "1 row(s) from app.users (at least 5)"
    assert [json.loads(row)["_id"] for row in items["too-few"].evidence] == [49]
    assert items["empty"].status == "failed"
    assert items["empty"].evidence == []


# -- etcd ----------------------------------------------------------------------------------


async def test_etcd_keys_whole_keyspace_against_the_backup_and_a_prefix_with_min(
    asyncssh_server: SSHTestServer, etcd_member: EtcdServer, tmp_path: Path
) -> None:
    with etcd_member.client() as client:
        for i in range(12):
            client.put(f"/{'groups' if i % 3 else 'nodes'}/{i:02d}", f"v{i}")
    config = make(
        asyncssh_server,
        tmp_path,
        item("etcd_keys", "all", source="kv"),
        item("etcd_keys", "nodes", source="kv", prefix="/nodes/", min=4),
        item("etcd_keys", "groups", source="kv", prefix="/groups/", min=9),
        sources=f'[sources.kv]\nkind = "etcd"\nhost = "h1"\nendpoint = "{etcd_member.endpoint}"\n',
    )
    manifest = await take_backup(config)
    assert manifest.artifacts[0].meta["key_count"] == 12

    _, items, _ = await run_checklist(config, manifest=manifest)
    assert items["all"].status == "passed", items["all"].detail
    assert items["all"].evidence == ["the whole keyspace: 12 keys (backup: 12)"]
    assert items["nodes"].status == "passed"
    assert items["nodes"].detail == "prefix '/nodes/': 4 keys (at least 4)"
    assert items["groups"].status == "failed"
    assert items["groups"].detail == "prefix '/groups/': 8 keys (at least 9)"

    with etcd_member.client() as client:
        client.delete("/groups/01")
    _, items, _ = await run_checklist(config, manifest=manifest)
    assert items["all"].status == "failed"
    assert items["all"].detail == "the whole keyspace: 11 keys (backup: 12)"
    assert items["nodes"].status == "passed"

    _, items, _ = await run_checklist(config)
    assert items["all"].status == "failed"
    assert "run with --backup ID" in items["all"].detail


# -- command, timeouts, unset values -------------------------------------------------------


async def test_command_items_exit_status_stdout_regex_timeout_and_unset_values(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    config = make(
        asyncssh_server,
        tmp_path,
        item("command", "ok", host="h1", argv=["sh", "-c", "echo nodes: 3 READY"],
             stdout=r"^nodes: \d+ READY$"),
        item("command", "exit-3", host="h1", argv=["sh", "-c", "echo half; echo oops >&2; exit 3"]),
        item("command", "no-match", host="h1", argv=["echo", "nodes: 2 DEGRADED"],
             stdout="READY"),
        item("command", "slow", host="h1", argv=["sleep", "5"], timeout=0.5),
        item("command", "filled", host="{ctl}", argv=["echo", "{greeting}"], stdout="^hi there$"),
        item("command", "unset", host="{controller}", argv=["echo", "{nothing}"]),
        item("manual", "look", instruction="Look at the dashboard."),
        values={"ctl": "h1", "greeting": "hi there"},
    )  # fmt: skip
    run, items, heard = await run_checklist(config)
    assert items["ok"].status == "passed"
    assert items["ok"].detail == "`sh -c echo nodes: 3 READY` exited 0"
    assert items["ok"].evidence == ["nodes: 3 READY"]
    assert items["exit-3"].status == "failed"
    assert items["exit-3"].detail.endswith("exited 3")
    assert items["exit-3"].evidence == ["half", "stderr: oops"]
    assert items["no-match"].status == "failed"
    assert items["no-match"].detail == "`echo nodes: 2 DEGRADED` output does not match 'READY'"
    assert items["no-match"].evidence == ["nodes: 2 DEGRADED"]
    assert items["slow"].status == "failed"
    assert items["slow"].detail == "no result within 0.5 s"
    assert items["filled"].status == "passed", items["filled"].detail
    assert items["filled"].evidence == ["hi there"]
    assert items["unset"].status == "failed"
    assert items["unset"].detail.startswith(
        "not configured: set checklists.values.controller, checklists.values.nothing"
    )
    # A manual item is left for the operator.
    assert items["look"].status == "pending"
    assert not any(item_id == "look" for item_id, _ in heard)
    assert [i.id for i in run.blocking()] == ["exit-3", "no-match", "slow", "unset", "look"]


PREXORCTL = """#!/bin/sh
# A stand-in for the controller's CLI: what a healthy cluster prints (DOWN_NODE breaks it).
case "$1 $2" in
  "status "*) echo "controllers: 2/2 healthy" ;;
  "group list") echo "lobby  3 instances" ;;
  "module list") echo "billing  ACTIVE" ;;
  "node list") if [ -e "$(dirname "$0")/DOWN_NODE" ]; then echo "node-1  DISCONNECTED";
               else echo "node-1  READY"; fi ;;
  *) echo "unknown command: $*" >&2; exit 2 ;;
esac
"""


async def test_the_built_in_post_restore_checklist_runs_against_a_restored_system(
    asyncssh_server: SSHTestServer,
    mongo: MongoServer,
    http_server: tuple[str, list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "prexorctl").write_text(PREXORCTL)
    (tools / "prexorctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")  # the in-process host's PATH
    seed_mongo(mongo)
    with mongo.client() as client:
        client.app.audit.insert_many([{"_id": i, "createdAt": 1000 + i} for i in range(30)])
    values = {
        "controller": "h1",
        "ready_url": f"{http_server[0]}/ready",
        "mongo": "db",
        "audit_namespace": "app.audit",
    }
    config = parse_config(
        config_text(asyncssh_server, tmp_path / "repo", mongo_source(mongo))
        + checklists_toml([], values)
    )
    manifest = await take_backup(config)
    # A restore of the Mongo source: the etcd items (no etcd value is set) do not apply.
    run, items, heard = await run_checklist(config, "post-restore", manifest, ["db"])
    assert run.backup == manifest.id
    assert {i: s.status for i, s in items.items() if s.status != "passed"} == {
        "etcd-health": "not_applicable",
        "etcd-keys": "not_applicable",
        "smoke-deploy": "pending",
    }, {i: s.detail for i, s in items.items()}
    assert items["etcd-keys"].detail == (
        "not applicable: its source (checklists.values.etcd) is not set; the restore was of db"
    )
    assert not {i for i, _ in heard} & {"etcd-health", "etcd-keys"}  # never run
    assert items["counts"].detail == "4 namespace(s) match the backup's counts"
    assert items["daemons"].evidence == ["node-1  READY"]
    assert items["audit-rows"].detail == "20 row(s) from app.audit (at least 1)"
    assert json.loads(items["audit-rows"].evidence[0]) == {"_id": 29, "createdAt": 1029}

    # Re-running one item: a daemon did not come back.
    (tools / "DOWN_NODE").touch()
    session = ChecklistSession.resume(config, Repository(config.repository.path), run.id)
    await session.check(only=["daemons"])
    run = session.run
    assert run.state("daemons").status == "failed"
    assert run.state("daemons").evidence == ["node-1  DISCONNECTED"]
    assert [i.id for i in run.blocking()] == ["daemons", "smoke-deploy"]
    assert run.state("counts").status == "passed"


# -- loading -------------------------------------------------------------------------------

MISTAKES = {
    "unknown host": (
        item("command", "a", host="h1", argv=["true"])
        + "\n"
        + item("command", "b", host="db9", argv=["true"]),
        "items[1].host: unknown host 'db9'; configured hosts: h1",
    ),
    "wrong source kind": (
        item("etcd_keys", "k", source="files1"),
        "items[0].source: 'files1' is not an etcd source; etcd sources: kv",
    ),
    "unknown source": (
        item("mongo_count", "c", source="nosuch", namespace="*"),
        "items[0].source: 'nosuch' is not a mongo source; mongo sources: db",
    ),
    "duplicate id": (
        item("manual", "same", instruction="x") + "\n" + item("manual", "same", instruction="y"),
        "items[1].id: 'same' is used twice",
    ),
    "bad regex": (
        item("command", "r", host="h1", argv=["true"], stdout="READY("),
        "items[0].stdout: Value error, not a regular expression",
    ),
    "unknown kind": (
        item("ftp", "f"),
        "items[0]: Input tag 'ftp' found using 'kind' does not match",
    ),
    "unknown key": (
        item("manual", "m", instruction="x", colour="red"),
        "items[0].colour: Extra inputs are not permitted",
    ),
    "prefix without min": (
        item("etcd_keys", "p", source="kv", prefix="/nodes/"),
        "items[0].min: a prefix needs min = N",
    ),
    "toml syntax": (
        '[[items]]\nid = "x\n',
        "Illegal character '\\n' (at line 5, column 8); fix the TOML syntax",
    ),
    "count glob with min": (
        item("mongo_count", "c", source="db", namespace="app.*", min=1),
        "items[0].namespace: 'app.*' must name one collection as db.collection",
    ),
    "query glob": (
        item("mongo_query", "q", source="db", namespace="app.user?"),
        "items[0].namespace: 'app.user?' must name one collection as db.collection",
    ),
    "query without a collection": (
        item("mongo_query", "q", source="db", namespace="app"),
        "items[0].namespace: 'app' must name one collection as db.collection",
    ),
    "no items": ("", "items: Field required"),
    "empty items": ("items = []\n", "items: Value error, a checklist needs at least one [[items]]"),
}


OFFLINE_SOURCES = (
    '[sources.files1]\nkind = "files"\nhost = "h1"\npaths = ["/etc"]\n'
    '[sources.db]\nkind = "mongo"\nhost = "h1"\nuri = "mongodb://127.0.0.1:1/"\n'
    '[sources.kv]\nkind = "etcd"\nhost = "h1"\n'
)


def offline_config(
    tmp_path: Path, paths: list[Path], values: dict[str, str] | None = None
) -> Config:
    """A config whose host is never contacted: loading checklists needs no peer."""
    return parse_config(
        f'operator = "tester"\n[repository]\npath = {json.dumps(str(tmp_path / "repo"))}\n'
        '[hosts.h1]\naddress = "db1.invalid"\n' + OFFLINE_SOURCES + checklists_toml(paths, values)
    )


@pytest.mark.parametrize("mistake", list(MISTAKES), ids=list(MISTAKES))
def test_checklist_mistakes_name_the_file_and_the_item(tmp_path: Path, mistake: str) -> None:
    items, words = MISTAKES[mistake]
    good = write_checklist(tmp_path, "good", item("manual", "m", instruction="fine"))
    bad = write_checklist(tmp_path, "bad", items)
    with pytest.raises(ConfigError) as info:
        checklists_for(offline_config(tmp_path, [good, bad]))
    problems = info.value.problems
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{bad}: ")
    assert words in problems[0]


def test_a_missing_checklist_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        checklists_for(offline_config(tmp_path, [tmp_path / "gone.toml"]))
    (problem,) = info.value.problems
    assert problem.startswith(f"{tmp_path / 'gone.toml'}: cannot read")
    assert problem.endswith("fix checklists.paths")


BUILT_IN_VALUES = {
    "controller": "h1",
    "ready_url": "http://127.0.0.1:8080/api/v1/system/ready",
    "mongo": "db",
    "etcd": "kv",
    "audit_namespace": "prexorcloud.audit_log",
}


def test_the_built_in_post_restore_checklist_loads_with_and_without_values(
    tmp_path: Path,
) -> None:
    bare = checklists_for(offline_config(tmp_path, []))["post-restore"]
    assert bare.checklist.title == "After a restore: is it good?"
    ids = [i.id for i in bare.checklist.items]
    assert ids == [
        "ready", "status", "groups", "modules", "counts", "audit-rows", "etcd-health",
        "etcd-keys", "daemons", "smoke-deploy",
    ]  # fmt: skip
    # Every automatic item waits for a value; the manual one needs none.
    assert dict(bare.missing) == {
        "ready": ("ready_url", "controller"),
        "status": ("controller",),
        "groups": ("controller",),
        "modules": ("controller",),
        "counts": ("mongo",),
        "audit-rows": ("mongo", "audit_namespace"),
        "etcd-health": ("etcd",),
        "etcd-keys": ("etcd",),
        "daemons": ("controller",),
    }

    filled = checklists_for(offline_config(tmp_path, [], BUILT_IN_VALUES))["post-restore"]
    assert dict(filled.missing) == {}
    checklist = filled.checklist
    ready = checklist.item("ready")
    assert (ready.url, ready.via) == (BUILT_IN_VALUES["ready_url"], "h1")  # type: ignore[union-attr]
    assert checklist.item("status").host == "h1"  # type: ignore[union-attr]
    assert checklist.item("counts").source == "db"  # type: ignore[union-attr]
    assert checklist.item("audit-rows").namespace == "prexorcloud.audit_log"  # type: ignore[union-attr]
    assert checklist.item("etcd-health").source == "kv"  # type: ignore[union-attr]
    assert checklist.item("etcd-keys").source == "kv"  # type: ignore[union-attr]

    # A value is checked like the text it stands for: a source of the wrong kind is named.
    with pytest.raises(ConfigError) as info:
        checklists_for(offline_config(tmp_path, [], BUILT_IN_VALUES | {"mongo": "kv"}))
    assert info.value.problems == [
        "runbooks/checklists/post-restore.toml: items[4].source: 'kv' is not a mongo source; "
        "mongo sources: db",
        "runbooks/checklists/post-restore.toml: items[5].source: 'kv' is not a mongo source; "
        "mongo sources: db",
    ]


def test_a_configured_checklist_of_the_same_name_replaces_the_built_in(tmp_path: Path) -> None:
    ours = tmp_path / "ours.toml"
    ours.write_text(
        'name = "post-restore"\ntitle = "Our own after-restore check"\n\n'
        + item("manual", "eyeball", instruction="Look at the dashboard.", note="required")
    )
    extra = write_checklist(tmp_path, "nightly", item("command", "up", host="h1", argv=["true"]))
    found = checklists_for(offline_config(tmp_path, [ours, extra]))
    assert sorted(found) == ["nightly", "post-restore"]
    replaced = found["post-restore"].checklist
    assert replaced.title == "Our own after-restore check"
    assert [i.id for i in replaced.items] == ["eyeball"]
    assert found["nightly"].checklist.item("up").kind == "command"

    # Values meant for the replacement do not break the built-in it replaced: here
    # "controller" is a URL, not a host, which the built-in's items could not use.
    ours.write_text(
        'name = "post-restore"\ntitle = "Ours"\n\n'
        + item("http", "ready", url="{controller}/ready")
    )
    values = {"controller": "http://ctl.example.com:8080", "mongo": "kv"}
    found = checklists_for(offline_config(tmp_path, [ours], values))
    assert found["post-restore"].checklist.item("ready").url == (  # type: ignore[union-attr]
        "http://ctl.example.com:8080/ready"
    )
    with pytest.raises(ConfigError) as info:
        checklists_for(offline_config(tmp_path, [], values))
    assert info.value.problems[0] == (
        "runbooks/checklists/post-restore.toml: items[1].host: unknown host "
        "'http://ctl.example.com:8080'; configured hosts: h1"
    )


# -- runs: tick, waive, sign-off, storage, export ------------------------------------------

RUN_ITEMS = (
    item("command", "up", host="h1", argv=["echo", "cluster up"], stdout="up"),
    item("command", "broken", host="h1", argv=["false"]),
    item("command", "nice-to-have", host="h1", argv=["false"], required=False),
    item("manual", "smoke", instruction="Deploy to staging; note the deploy id.", note="required"),
    item("manual", "glance", instruction="Glance at the dashboard."),
)


async def failed_run(server: SSHTestServer, tmp_path: Path) -> ChecklistSession:
    """A new run of RUN_ITEMS, its automatic items checked: one required item failed."""
    config = make(server, tmp_path, *RUN_ITEMS)
    repo = Repository.open(config.repository.path)
    session = ChecklistSession.start(config, repo, checklists_for(config)["t"])
    await session.check()
    return session


async def test_sign_off_needs_every_required_item_done_and_records_who_where_and_why(
    asyncssh_server: SSHTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIFEBOAT_OPERATOR", "alice")  # over the config's "tester"
    monkeypatch.setenv("SSH_CLIENT", "203.0.113.7 50022 22")
    session = await failed_run(asyncssh_server, tmp_path)
    run, repo_path = session.run, session.repo.path
    assert [(i.id, i.status) for i in run.items] == [
        ("up", "passed"), ("broken", "failed"), ("nice-to-have", "failed"),
        ("smoke", "pending"), ("glance", "pending"),
    ]  # fmt: skip

    # Refused while a required item failed or a required manual item is open; an optional
    # item that failed does not hold it up.
    with pytest.raises(UsageError) as info:
        session.sign_off()
    message = str(info.value)
    assert message.startswith(
        "cannot sign off: broken is failed; smoke is pending; glance is pending"
    )
    assert "nice-to-have" not in message
    assert run.signoff is None
    assert not (repo_path / "audit.jsonl").exists()

    # A note is required by "smoke"; automatic items are not ticked. Each tick is saved.
    for empty in ("", "   "):
        with pytest.raises(UsageError, match="smoke: this item needs a note"):
            session.tick("smoke", empty)
    with pytest.raises(UsageError, match="only manual items are ticked"):
        session.tick("broken", "it is fine")
    assert run.state("smoke").status == "pending"
    session.tick("smoke", "  deployed to staging-eu, deploy 4711  ")
    assert load_run(repo_path, run.id).state("smoke").note == "deployed to staging-eu, deploy 4711"
    session.tick("glance", "")
    assert (run.state("smoke").status, run.state("smoke").note) == (
        "ticked", "deployed to staging-eu, deploy 4711"
    )  # fmt: skip
    with pytest.raises(UsageError, match=r"^cannot sign off: broken is failed \(each"):
        session.sign_off()

    # A waiver needs a reason.
    for empty in ("", "  "):
        with pytest.raises(UsageError, match="broken: a waiver needs a written reason"):
            session.waive("broken", empty)
    assert run.state("broken").status == "failed"
    with pytest.raises(UsageError, match="no item 'nope'"):
        session.waive("nope", "whatever")
    session.waive("broken", "known flaky probe, ticket OPS-12")

    # Not while an automatic item, even an optional one, is being checked: its result would
    # be saved into the run after the signature.
    checking = session.check(["nice-to-have"])
    with pytest.raises(UsageError, match="nice-to-have is being checked; wait for it"):
        session.sign_off()
    await checking

    signed = session.sign_off()
    assert (signed.operator, signed.host, signed.client) == (
        "alice", socket.gethostname(), "203.0.113.7"
    )  # fmt: skip

    # Stored: the waiver's reason, the note, the sign-off; the file 0600 in a 0700 directory.
    path = repo_path / "checklists" / f"{run.id}.json"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    stored = load_run(repo_path, run.id)
    assert stored == run
    assert stored.state("broken").waiver == "known flaky probe, ticket OPS-12"
    assert stored.signoff is not None
    assert stored.signoff.operator == "alice"
    assert json.loads(path.read_text())["items"][1]["waiver"] == "known flaky probe, ticket OPS-12"
    assert run_ids(repo_path) == [run.id]

    # The audit log has the sign-off with the waiver's reason, and still verifies.
    (entry,) = audit.entries(repo_path)
    assert entry["action"] == "checklist.signoff"
    assert entry["operator"] == "alice"
    assert entry["run"] == run.id
    assert entry["checklist"] == "t"
    assert entry["client"] == "203.0.113.7"
    assert entry["waived"] == ["broken: known flaky probe, ticket OPS-12"]
    assert audit.verify(repo_path).ok

    # The Markdown report shows each item, its evidence, the waiver and the sign-off.
    report = to_markdown(stored)
    assert report.startswith("# t checks (t)\n")
    assert "| Check broken | WAIVED | waived: known flaky probe, ticket OPS-12 |" in report
    assert "| Check smoke | DONE (manual) | deployed to staging-eu, deploy 4711 |" in report
    assert "| Check nice-to-have (optional) | FAILED | `false` exited 1 |" in report
    assert "| Check up | PASSED | `echo cluster up` exited 0 |" in report
    assert "```\ncluster up\n```" in report
    assert "Waiver: known flaky probe, ticket OPS-12" in report
    assert report.endswith(
        f"**Signed off** by alice on {socket.gethostname()} (SSH client 203.0.113.7) at "
        f"{signed.at}.\n"
    )
    assert json.loads(to_json(stored)) == stored.to_dict()

    # Once is enough, and a signed-off run does not change, also when opened again.
    again = ChecklistSession.resume(session.config, session.repo, run.id)
    with pytest.raises(UsageError, match="already signed off by alice"):
        again.sign_off()
    for change in (lambda: again.tick("glance", "x"), lambda: again.waive("up", "x"), again.check):
        with pytest.raises(UsageError, match="the run was signed off by alice; start a new run"):
            change()
    assert len(list(audit.entries(repo_path))) == 1
    assert load_run(repo_path, run.id) == stored


async def test_sign_off_names_the_config_operator_without_an_ssh_client(
    asyncssh_server: SSHTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIFEBOAT_OPERATOR", raising=False)
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    session = await failed_run(asyncssh_server, tmp_path)
    session.tick("smoke", "deploy 1")
    session.tick("glance", "")
    session.waive("broken", "not deployed here")
    signed = session.sign_off()
    assert (signed.operator, signed.client) == ("tester", None)
    (entry,) = audit.entries(session.repo.path)
    assert (entry["operator"], entry["client"]) == ("tester", None)
    report = to_markdown(load_run(session.repo.path, session.run.id))
    assert f"**Signed off** by tester on {socket.gethostname()} at" in report
    assert "SSH client" not in report


async def test_a_session_saves_as_it_goes_and_each_step_is_one_write_for_the_hook(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    config = make(
        asyncssh_server,
        tmp_path,
        item("command", "up", host="h1", argv=["true"]),
        item("command", "down", host="h1", argv=["false"]),
        item("manual", "look", instruction="Look at the dashboard."),
    )
    repo = Repository.open(config.repository.path)
    heard: list[tuple[bool, list[str], int]] = []  # on the main thread, statuses, audit lines

    def hook() -> str:
        """What the catalog would read when it is told: the run on disk and the audit log."""
        stored = load_run(repo.path, run_ids(repo.path)[0])
        lines = len(list(audit.entries(repo.path))) if (repo.path / "audit.jsonl").exists() else 0
        on_main = threading.current_thread() is threading.main_thread()
        heard.append((on_main, [i.status for i in stored.items], lines))
        return "the catalog missed this change"

    said: list[str] = []
    repo.write_hook.attach(hook, lambda text: said.append(f"repository: {text}"))
    session = ChecklistSession.start(config, repo, checklists_for(config)["t"], warn=said.append)
    assert heard == [(True, ["pending", "pending", "pending"], 0)]

    # Two results saved as they came, the hook told once, in a thread: off the event loop.
    await session.check()
    assert heard[1:] == [(False, ["passed", "failed", "pending"], 0)]
    session.tick("look", "all green")
    session.waive("down", "known flaky")
    assert [statuses for _, statuses, _ in heard[2:]] == [
        ["passed", "failed", "ticked"], ["passed", "waived", "ticked"]
    ]  # fmt: skip
    session.sign_off()  # the catalog hears of it after the audit record
    assert heard[-1] == (True, ["passed", "waived", "ticked"], 1)
    assert len(heard) == 5
    assert said == ["the catalog missed this change"] * 5  # to the session, not the repository


async def test_a_cancelled_check_saves_what_it_did_not_finish_as_not_run(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    config = make(
        asyncssh_server,
        tmp_path,
        item("command", "slow", host="h1", argv=["sleep", "20"], timeout=60),
        item("command", "quick", host="h1", argv=["true"]),
    )
    repo = Repository.open(config.repository.path)
    session = ChecklistSession.start(config, repo, checklists_for(config)["t"])
    checking = asyncio.ensure_future(session.check())

    def stored(item_id: str) -> str:
        return load_run(repo.path, session.run.id).state(item_id).status

    await until(lambda: stored("quick") == "passed", "the quick item's result on disk")
    assert session.run.state("slow").status == "running"
    assert session.status_of(session.run.state("slow")) == "running"
    with pytest.raises(UsageError, match="^slow is being checked; wait for it"):
        session.check(["slow"])
    with pytest.raises(UsageError, match="^slow is being checked; wait for it"):
        session.waive("slow", "too slow")
    checking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await checking
    assert not session.checking
    assert (stored("slow"), stored("quick")) == ("pending", "passed")

    # Left "running" on disk by a process that stopped, it shows as not run.
    session.run.state("slow").status = "running"
    assert session.status_of(session.run.state("slow")) == "pending"


def test_resuming_a_run_whose_checklist_or_backup_is_gone(tmp_path: Path) -> None:
    config = offline_config(tmp_path, [])
    repo = Repository.open(config.repository.path)
    backup = stored_backup(repo, datetime(2026, 11, 21, tzinfo=UTC), {"db": b"dump\n"})
    (repo.backup_dir(backup.id) / "manifest.json").write_text("{")
    run = ChecklistRun(
        "20261121T150000Z-ab12", "gone", "A removed checklist", "2026-11-21T15:00:00Z",
        backup=backup.id, items=[ItemState("look", "Look", "manual", True)],
    )  # fmt: skip
    save(repo, run)

    gone = f"checklist 'gone' of run {run.id} is no longer configured"
    with pytest.raises(UsageError, match=gone):
        ChecklistSession.resume(config, repo, run.id, checklists_for(config))
    session = ChecklistSession.resume(config, repo, run.id)  # the checklist is read when needed
    assert session.manifest is None
    assert session.manifest_problem is not None
    assert f"backup {backup.id} is damaged" in session.manifest_problem
    session.waive("look", "the checklist was retired")  # a waiver needs no checklist
    assert load_run(repo.path, run.id).state("look").status == "waived"
    with pytest.raises(UsageError, match=gone):
        session.tick("look", "")


def test_loading_an_unknown_run_is_a_usage_error(tmp_path: Path) -> None:
    repo_path = Repository.open(tmp_path / "repo").path
    with pytest.raises(UsageError, match="no checklist run 'nope'.*lifeboat checklist list"):
        load_run(repo_path, "nope")
    loaded = checklists_for(offline_config(tmp_path, []))["post-restore"]
    kept = new_run(loaded, backup="20260101T000000Z-abcd")
    save(Repository(repo_path), kept)
    assert load_run(repo_path, kept.id) == kept
    report = to_markdown(kept)  # the backup is not in the repository: named by id only
    assert "- Backup: `20260101T000000Z-abcd`\n" in report
    assert "| The newest audit rows look right | not run |  |" in report
    assert report.endswith("**Not signed off.**\n")
    (repo_path / "checklists" / "garbled.json").write_text('{"id": "garbled"')
    with pytest.raises(UsageError, match="garbled.json is not a readable checklist run"):
        load_run(repo_path, "garbled")
    for shape in ("null", "42", '["a"]', '{"id": "x", "items": 5}'):  # JSON, but not a run
        (repo_path / "checklists" / "odd.json").write_text(shape)
        with pytest.raises(UsageError, match="odd.json is not a readable checklist run"):
            load_run(repo_path, "odd")
    assert [run.id for run in unsigned_runs(repo_path)] == [kept.id]  # the odd one is skipped


# -- the CLI -------------------------------------------------------------------------------


async def test_cli_run_list_tick_waive_sign_off_export(
    openssh_server: SSHTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIFEBOAT_OPERATOR", "carol")
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    smoke = write_checklist(
        tmp_path,
        "smoke",
        item("command", "hello", host="h1", argv=["echo", "hello from h1"], stdout="^hello"),
        item("manual", "deploy", instruction="Deploy to staging.", note="required"),
        item("command", "optional-fail", host="h1", argv=["false"], required=False),
    )
    broken = write_checklist(
        tmp_path,
        "broken",
        item("command", "fails", host="h1", argv=["sh", "-c", "echo no quorum; exit 4"]),
        item("command", "works", host="h1", argv=["true"]),
    )
    config = write_config(
        tmp_path / "lifeboat.toml",
        config_text(openssh_server, tmp_path / "repo", "") + checklists_toml([smoke, broken]),
    )
    repo_path = tmp_path / "repo"

    failing = await lifeboat("checklist", "run", "broken", "--non-interactive", config=config)
    assert failing.rc == 1, failing.stderr
    assert "required item(s) failed: fails" in failing.stderr
    assert re.search(
        r"^FAILED\s+fails: `sh -c echo no quorum; exit 4` exited 4$", failing.stdout, re.M
    )
    assert re.search(r"^PASSED\s+works: ", failing.stdout, re.M)
    assert "Traceback" not in failing.stderr
    (broken_id,) = run_ids(repo_path)

    # All automatic items pass; a manual item left pending does not fail the command, nor
    # does an optional item that failed.
    passing = await lifeboat("checklist", "run", "smoke", "--non-interactive", "--json",
                             config=config)  # fmt: skip
    assert passing.rc == 0, passing.stderr
    run = json.loads(passing.stdout)
    statuses = {i["id"]: i["status"] for i in run["items"]}
    assert statuses == {"hello": "passed", "deploy": "pending", "optional-fail": "failed"}
    assert run["items"][0]["evidence"] == ["hello from h1"]
    smoke_id = run["id"]
    assert sorted(run_ids(repo_path)) == sorted([broken_id, smoke_id])

    listed = await lifeboat("checklist", "list", config=config)
    assert listed.rc == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert "smoke" in lines[smoke_id]
    assert "not signed off, 1 required item(s) open" in lines[smoke_id]
    assert "broken" in lines[broken_id]
    assert "not signed off, 1 required item(s) open" in lines[broken_id]

    refused = await lifeboat("checklist", "sign-off", smoke_id, config=config)
    assert refused.rc == 2
    assert "cannot sign off: deploy is pending" in refused.stderr
    no_note = await lifeboat("checklist", "tick", smoke_id, "deploy", config=config)
    assert no_note.rc == 2
    assert "deploy: this item needs a note" in no_note.stderr
    ticked = await lifeboat(
        "checklist", "tick", smoke_id, "deploy", "--note", "deploy 99 healthy", config=config
    )
    assert ticked.rc == 0, ticked.stderr
    signed = await lifeboat("checklist", "sign-off", smoke_id, config=config)
    assert signed.rc == 0, signed.stderr
    assert f"run {smoke_id} signed off by carol at " in signed.stdout
    again = await lifeboat("checklist", "sign-off", smoke_id, config=config)
    assert again.rc == 2
    assert "already signed off by carol" in again.stderr

    unwaived = await lifeboat("checklist", "waive", broken_id, "fails", "--reason", " ",
                              config=config)  # fmt: skip
    assert unwaived.rc == 2
    assert "a waiver needs a written reason" in unwaived.stderr
    waived = await lifeboat(
        "checklist", "waive", broken_id, "fails", "--reason", "quorum probe is wrong here",
        config=config,
    )  # fmt: skip
    assert waived.rc == 0, waived.stderr
    assert (await lifeboat("checklist", "sign-off", broken_id, config=config)).rc == 0

    listed = await lifeboat("checklist", "list", "--json", config=config)
    assert {r["id"]: r["signoff"]["operator"] for r in json.loads(listed.stdout)} == {
        smoke_id: "carol", broken_id: "carol"
    }  # fmt: skip

    report = await lifeboat("checklist", "export", smoke_id, "--format", "md", config=config)
    assert report.rc == 0, report.stderr
    md = report.stdout
    assert md.startswith(f"# smoke checks (smoke)\n\n- Run: `{smoke_id}`")
    assert "| Check hello | PASSED | `echo hello from h1` exited 0 |" in md
    assert "| Check deploy | DONE (manual) | deploy 99 healthy |" in md
    assert "| Check optional-fail (optional) | FAILED | `false` exited 1 |" in md
    assert "```\nhello from h1\n```" in md
    assert re.search(r"^\*\*Signed off\*\* by carol on \S+ at \S+Z\.$", md, re.M)
    broken_md = await lifeboat("checklist", "export", broken_id, config=config)
    assert "| Check fails | WAIVED | waived: quorum probe is wrong here |" in broken_md.stdout
    assert "```\nno quorum\n```" in broken_md.stdout
    as_json = await lifeboat("checklist", "export", broken_id, "--format", "json", config=config)
    assert json.loads(as_json.stdout)["items"][0]["waiver"] == "quorum probe is wrong here"

    audited = [e for e in audit.entries(repo_path) if e["action"] == "checklist.signoff"]
    assert [(e["run"], e["operator"]) for e in audited] == [
        (smoke_id, "carol"),
        (broken_id, "carol"),
    ]
    assert audited[1]["waived"] == ["fails: quorum probe is wrong here"]


async def test_cli_unknown_checklist_and_unset_values(
    openssh_server: SSHTestServer, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "lifeboat.toml", config_text(openssh_server, tmp_path / "repo", "")
    )
    unknown = await lifeboat("checklist", "run", "nosuch", "--non-interactive", config=config)
    assert unknown.rc == 2
    assert "no checklist 'nosuch'; checklists: post-restore" in unknown.stderr
    assert not (tmp_path / "repo" / "checklists").exists()

    # The built-in checklist without values: every automatic item says what to set.
    bare = await lifeboat("checklist", "run", "post-restore", "--non-interactive", "--json",
                          config=config)  # fmt: skip
    assert bare.rc == 1
    run = json.loads(bare.stdout)
    details = {i["id"]: (i["status"], i["detail"]) for i in run["items"]}
    assert details["smoke-deploy"] == ("pending", "")
    assert details["counts"] == (
        "failed",
        "not configured: set checklists.values.mongo in the config, or waive this item",
    )
    assert all(status == "failed" for i, (status, _) in details.items() if i != "smoke-deploy")
    assert "required item(s) failed: ready, status, groups" in bare.stderr
    unknown_run = await lifeboat("checklist", "export", "20990101T000000Z-0000", config=config)
    assert unknown_run.rc == 2
    assert "no checklist run '20990101T000000Z-0000'" in unknown_run.stderr


async def test_cli_run_against_a_backup_and_its_report(
    openssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    seed_mongo(mongo)
    counts = write_checklist(
        tmp_path, "counts", item("mongo_count", "all", source="db", namespace="*")
    )
    text = config_text(openssh_server, tmp_path / "repo", mongo_source(mongo))
    config_path = write_config(tmp_path / "lifeboat.toml", text + checklists_toml([counts]))
    manifest = await take_backup(parse_config(text))

    unknown = await lifeboat("checklist", "run", "counts", "--backup", "20990101T000000Z-0000",
                             "--non-interactive", config=config_path)  # fmt: skip
    assert unknown.rc == 2
    assert "no backup '20990101T000000Z-0000'" in unknown.stderr

    good = await lifeboat("checklist", "run", "counts", "--backup", manifest.id,
                          "--non-interactive", "--json", config=config_path)  # fmt: skip
    assert good.rc == 0, good.stderr
    run = json.loads(good.stdout)
    assert run["backup"] == manifest.id
    assert run["items"][0]["detail"] == "3 namespace(s) match the backup's counts"

    with mongo.client() as client:
        client.billing.invoices.insert_one({"_id": 99})
    bad = await lifeboat("checklist", "run", "counts", "--backup", manifest.id,
                         "--non-interactive", config=config_path)  # fmt: skip
    assert bad.rc == 1
    assert "counts differ from the backup in billing.invoices" in bad.stdout
    assert "required item(s) failed: all" in bad.stderr
    bad_id = re.search(r"^run (\S+) saved", bad.stdout, re.M)
    assert bad_id is not None

    report = await lifeboat("checklist", "export", bad_id[1], config=config_path)
    assert report.rc == 0, report.stderr
    assert (
        f"- Backup: `{manifest.id}`, taken {manifest.created_at:%Y-%m-%d %H:%M}Z by tester; "
        "sources db\n"
    ) in report.stdout
    assert "billing.invoices: 11 documents (backup: 10)" in report.stdout
    assert report.stdout.endswith("**Not signed off.**\n")


async def on_a_terminal(config: Path, answers: str, *args: str) -> tuple[int, str, str]:
    """``lifeboat`` with a terminal for stdin that already holds ``answers`` (one per line)."""
    master, slave = pty.openpty()
    try:
        os.write(master, answers.encode())
        proc = await asyncio.create_subprocess_exec(
            LIFEBOAT, "--config", str(config), *args,
            stdin=slave, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "LIFEBOAT_CONFIG": ""},
        )  # fmt: skip
        os.close(slave)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        os.close(master)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_run_on_a_terminal_asks_ticks_waives_and_signs_off(
    openssh_server: SSHTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIFEBOAT_OPERATOR", "dave")
    path = write_checklist(
        tmp_path,
        "t",
        item("command", "fails", host="h1", argv=["false"]),
        item("manual", "deploy", instruction="Deploy to staging.", note="required"),
        item("manual", "glance", instruction="Glance at the dashboard."),
    )
    config = write_config(
        tmp_path / "lifeboat.toml",
        config_text(openssh_server, tmp_path / "repo", "") + checklists_toml([path]),
    )
    # deploy: done, with a note; glance: not done; neither "fails" nor "glance" waived: the
    # required item that failed is still failed, and sign-off is not offered.
    rc, out, err = await on_a_terminal(
        config, "y\ndeploy 12 healthy\nn\nn\nn\n", "checklist", "run", "t"
    )
    assert rc == 1, err
    assert "required item(s) failed: fails" in err
    assert "Deploy to staging." in out
    assert "fails is failed: `false` exited 1" in out
    assert "glance is pending" in out
    assert "sign the run off?" not in out
    (run_id,) = run_ids(tmp_path / "repo")
    run = load_run(tmp_path / "repo", run_id)
    assert [(i.id, i.status) for i in run.items] == [
        ("fails", "failed"), ("deploy", "ticked"), ("glance", "pending")
    ]  # fmt: skip
    assert run.state("deploy").note == "deploy 12 healthy"
    assert run.signoff is None

    # Everything done on the terminal, and signed off there. A required note left empty, or a
    # waiver without a reason, is asked for again.
    rc, out, err = await on_a_terminal(
        config, "y\n  \ndeploy 13\ny\n\ny\n   \nflaky\ny\n", "checklist", "run", "t"
    )
    assert rc == 0, err
    assert out.count("note (required)") == 2
    assert out.count("reason (recorded)") == 2
    (newest_id,) = set(run_ids(tmp_path / "repo")) - {run_id}
    newest = load_run(tmp_path / "repo", newest_id)
    assert [(i.id, i.status) for i in newest.items] == [
        ("fails", "waived"), ("deploy", "ticked"), ("glance", "ticked")
    ]  # fmt: skip
    assert newest.signoff is not None
    assert newest.signoff.operator == "dave"
    assert f"signed off by dave at {newest.signoff.at}" in out
    (entry,) = [e for e in audit.entries(tmp_path / "repo") if e["action"] == "checklist.signoff"]
    assert entry["run"] == newest.id
    assert entry["waived"] == ["fails: flaky"]

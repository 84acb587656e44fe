"""DR drills end to end against real peers: the asyncssh server (and sshd for the CLI), a real
etcd stopped and started by the drill's swap, and the Mongo wire server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import etcd3
import pymongo
import pytest
from age_keys import encryption_toml, keygen
from etcd_server import EtcdServer
from helpers import EventLog, config_text, files_source
from mongo_server import MongoServer
from sshd import SSHTestServer

from engine.config.load import parse_config
from engine.config.model import Config
from engine.demo.services import BackgroundService
from engine.drill import history
from engine.drill.markers import ETCD_PREFIX, FILE_PREFIX, MONGO_COLLECTION
from engine.drill.run import DrillRequest, plan_drill, run_drill
from engine.errors import UsageError
from engine.events import Event, StageChanged
from engine.repo import audit
from engine.repo.content import Keyring
from engine.repo.repository import Repository
from engine.restore.locks import RepositoryTargetLocks
from tui.cli.main import main

MARKERS = 30


@pytest.fixture
def etcd_service(tmp_path: Path) -> Iterator[tuple[EtcdServer, BackgroundService]]:
    """A real etcd run in the background by pid file, so the drill's swap can stop and
    start it the way a host's service manager would."""
    directory = tmp_path / "etcd"
    directory.mkdir()
    member = EtcdServer(directory, name="drill")
    argv = [
        "etcd", "--name", member.name, "--data-dir", str(member.data_dir),
        "--listen-client-urls", f"http://{member.endpoint}",
        "--advertise-client-urls", f"http://{member.endpoint}",
        "--listen-peer-urls", member.peer_url,
        "--initial-advertise-peer-urls", member.peer_url,
        "--initial-cluster", f"{member.name}={member.peer_url}",
    ]  # fmt: skip
    service = BackgroundService(argv, directory / "etcd.pid", directory / "etcd.log")
    _sh(service.start)
    _wait_until_ready(member)
    try:
        yield member, service
    finally:
        _sh(service.stop)


def _sh(argv: list[str]) -> None:
    import subprocess

    subprocess.run(argv, check=True, timeout=60)


def _wait_until_ready(member: EtcdServer) -> None:
    import time

    deadline = time.monotonic() + 30
    while True:
        try:
            with member.client() as client:
                client.put("/app/config", "v1")
                return
        except etcd3.exceptions.Etcd3Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def seed_files(data: Path) -> None:
    for relative, text in {"etc/app.toml": "listen = 1\n", "lib/state.json": "{}\n"}.items():
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        (data / relative).write_text(text)


def seed_data(data: Path, mongo: MongoServer) -> None:
    seed_files(data)
    with pymongo.MongoClient(mongo.uri) as client:
        client.app.groups.insert_many([{"_id": i, "name": f"g{i}"} for i in range(50)])


def drill_config(
    server: SSHTestServer,
    tmp_path: Path,
    mongo: MongoServer,
    etcd: tuple[EtcdServer, BackgroundService] | None,
    *,
    extra: str = "",
    flag: bool = True,
) -> Config:
    data = tmp_path / "data"
    flagged = f"drill = {'true' if flag else 'false'}\n"
    sources = files_source("cfg", data / "etc", data / "lib") + flagged
    sources += f'[sources.db]\nkind = "mongo"\nhost = "h1"\nuri = "{mongo.uri}"\n' + flagged
    if etcd is not None:
        member, service = etcd
        sources += (
            f'[sources.kv]\nkind = "etcd"\nhost = "h1"\nendpoint = "{member.endpoint}"\n'
            f"data_dir = {json.dumps(str(member.data_dir))}\n"
            f'name = "{member.name}"\ninitial_cluster = "{member.name}={member.peer_url}"\n'
            f'initial_advertise_peer_urls = "{member.peer_url}"\n'
            f"stop = {json.dumps(service.stop)}\nstart = {json.dumps(service.start)}\n"
        ) + flagged
    sources += f"[drill]\nmarkers = {MARKERS}\n" + extra
    return parse_config(config_text(server, tmp_path / "repo", sources))


async def test_a_drill_restores_every_marker_and_records_its_timings(
    asyncssh_server: SSHTestServer,
    mongo: MongoServer,
    etcd_service: tuple[EtcdServer, BackgroundService],
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    seed_data(data, mongo)
    checklist = tmp_path / "drill-checklist.toml"
    checklist.write_text(
        'name = "drill-check"\ntitle = "t"\n'
        '[[items]]\nid = "counts"\nkind = "mongo_count"\ntitle = "counts"\n'
        'source = "db"\nnamespace = "app.*"\n'
        '[[items]]\nid = "keys"\nkind = "etcd_keys"\ntitle = "keys"\nsource = "kv"\n'
    )
    # The repository is encrypted: the drill proves an encrypted backup restores.
    identity, _key = keygen(tmp_path)
    extra = f'checklist = "drill-check"\n[checklists]\npaths = ["{checklist}"]\n'
    extra += encryption_toml(identity)
    config = drill_config(asyncssh_server, tmp_path, mongo, etcd_service, extra=extra)
    repo = Repository.open(config.repository.path)
    events = EventLog()
    with pytest.raises(UsageError, match="give its identity with --identity FILE"):
        await run_drill(config, repo, DrillRequest(confirm=("h1",)), events.emit)

    request = DrillRequest(confirm=("h1",), keyring=Keyring((identity,)))
    record = await run_drill(config, repo, request, events.emit)

    assert record.problems == []
    assert record.passed
    assert record.sources == ["cfg", "db", "kv"]
    assert record.backup_seconds is not None
    assert record.backup_seconds > 0
    assert record.restore_seconds is not None
    assert record.restore_seconds > 0
    assert record.timings().startswith("backup ")
    assert ", restore " in record.timings()
    found = {m["source"]: (m["found"], m["expected"]) for m in record.markers}
    assert found == {"cfg": (20, 20), "db": (MARKERS, MARKERS), "kv": (MARKERS, MARKERS)}
    assert record.checklist == "drill-check"
    assert record.checklist_failed == []
    stages = [e.stage for e in events if isinstance(e, StageChanged) and e.source == "drill"]
    assert stages[:4] == ["seeding markers", "backing up", "verifying", "destroying"]
    manifest = repo.load(record.backup_id or "")
    assert manifest.trigger == "drill"
    assert manifest.encrypted
    assert f"{MONGO_COLLECTION}" in " ".join(manifest.artifact("db").meta["namespaces"])  # type: ignore[union-attr]

    # The data came back, and nothing of the drill stayed behind.
    assert (data / "etc" / "app.toml").read_text() == "listen = 1\n"
    assert not list(data.rglob(f"{FILE_PREFIX}*"))
    with pymongo.MongoClient(mongo.uri) as client:
        assert client.app.groups.count_documents({}) == 50
        assert MONGO_COLLECTION not in client.app.list_collection_names()
    member, _service = etcd_service
    with member.client() as client:
        assert client.get("/app/config")[0] == b"v1"
        assert list(client.get_prefix(ETCD_PREFIX)) == []
    assert not list(member.data_dir.parent.glob("*.before-*"))

    (stored,) = history.load(repo.path)
    assert stored.id == record.id
    assert stored.passed
    actions = [entry["action"] for entry in audit.entries(repo.path)]
    assert actions[0] == "drill.start"
    assert actions[-1] == "drill.finish"
    assert actions.count("drill.destroy") == 3
    assert "restore.confirm" in actions
    assert audit.verify(repo.path).bad_line is None


async def test_a_restore_that_misses_a_marker_fails_the_drill_naming_it(
    asyncssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    seed_data(data, mongo)
    config = drill_config(asyncssh_server, tmp_path, mongo, None)
    repo = Repository.open(config.repository.path)
    lost_markers: list[Path] = []
    stages: list[str] = []

    def emit(event: Event) -> None:
        # Once the files restore is done, lose a marker, as a restore that misses data would.
        if not isinstance(event, StageChanged):
            return
        stages.append(event.stage)
        if "restoring" in stages and event.source == "cfg" and event.stage == "done":
            markers = sorted((data / "lib").glob(f"{FILE_PREFIX}*"))
            if markers and not lost_markers:
                markers[3].unlink()
                lost_markers.append(markers[3])

    record = await run_drill(config, repo, DrillRequest(confirm=("h1",)), emit)

    assert lost_markers, "the restore never reported cfg done"
    assert not record.passed
    (problem,) = record.problems
    assert problem.startswith("markers missing after the restore: cfg: 19 of 20 markers came back")
    assert str(lost_markers[0]) in problem
    assert {m["source"]: m["found"] for m in record.markers} == {"cfg": 19, "db": MARKERS}
    # A failed drill keeps its markers for the post-mortem.
    assert len(list(data.rglob(f"{FILE_PREFIX}*"))) == 19
    assert history.load(repo.path)[0].verdict == "failed"
    finish = [e for e in audit.entries(repo.path) if e["action"] == "drill.finish"]
    assert finish[0]["verdict"] == "failed"


async def test_sources_not_flagged_for_drills_are_refused_before_anything(
    asyncssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    seed_data(tmp_path / "data", mongo)
    config = drill_config(asyncssh_server, tmp_path, mongo, None, flag=False)
    repo = Repository.open(config.repository.path)

    with pytest.raises(UsageError, match="no source is flagged for drills"):
        await run_drill(config, repo, DrillRequest(confirm=("h1",)), EventLog().emit)
    with pytest.raises(UsageError) as refused:
        await run_drill(config, repo, DrillRequest(("cfg",), confirm=("h1",)), EventLog().emit)
    assert "sources.cfg is not flagged for drills: a drill destroys its data" in str(refused.value)
    assert "drill = true on [sources.cfg]" in str(refused.value)
    assert list(repo.iter_backups()) == []
    assert history.load(repo.path) == []
    with pymongo.MongoClient(mongo.uri) as client:
        assert MONGO_COLLECTION not in client.app.list_collection_names()


def test_what_a_drill_cannot_do_is_refused_with_every_reason(tmp_path: Path) -> None:
    text = (
        f'[repository]\npath = "{tmp_path / "repo"}"\n[hosts.h1]\naddress = "db1.invalid"\n'
        '[sources.dump]\nkind = "command"\nhost = "h1"\nbackup = ["cat", "/x"]\ndrill = true\n'
        '[sources.kv]\nkind = "etcd"\nhost = "h1"\ndata_dir = "/var/lib/etcd"\ndrill = true\n'
        '[sources.cfg]\nkind = "files"\nhost = "h1"\npaths = ["/etc/app"]\ndrill = true\n'
        '[targets.prod]\nsources.cfg = { directory = "/srv" }\n'
    )
    config = parse_config(text)
    with pytest.raises(UsageError) as refused:
        plan_drill(config, DrillRequest())
    message = str(refused.value)
    assert "sources.dump: a drill cannot seed markers in a command source" in message
    assert "sources.kv: a drill restores etcd live (--swap), which needs stop and start" in message
    with pytest.raises(UsageError, match="targets.prod is not flagged for drills"):
        plan_drill(config, DrillRequest(("cfg",), target="prod"))
    plan = plan_drill(config, DrillRequest(("cfg",)))
    assert plan.confirm_names == ("h1",)
    assert plan.destroys == ("cfg on h1: every path it backs up is removed",)


async def test_a_drill_onto_a_flagged_target_leaves_the_source_as_it_was(
    asyncssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    seed_data(data, mongo)
    restored = tmp_path / "staging"
    extra = (
        f'[targets.staging]\ndrill = true\nsources.cfg = {{ directory = "{restored}" }}\n'
        f'sources.db = {{ uri = "{mongo.uri}" }}\n'
    )
    config = drill_config(asyncssh_server, tmp_path, mongo, None, extra=extra)
    repo = Repository.open(config.repository.path)
    with pytest.raises(UsageError, match="--confirm staging"):
        await run_drill(config, repo, DrillRequest(target="staging", confirm=("h1",)), print)

    request = DrillRequest(("cfg",), target="staging", confirm=("staging",))
    record = await run_drill(config, repo, request, EventLog().emit)

    assert record.passed, record.problems
    assert record.scenario == "restore cfg onto target staging"
    copy = restored / str(data / "etc" / "app.toml").lstrip("/")
    assert copy.read_text() == "listen = 1\n"
    assert (data / "etc" / "app.toml").read_text() == "listen = 1\n"
    assert not list(data.rglob(f"{FILE_PREFIX}*"))
    assert not list(restored.rglob(f"{FILE_PREFIX}*"))


def test_the_cli_previews_asks_for_the_name_and_prints_the_timings(
    openssh_server: SSHTestServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LIFEBOAT_CONFIG", raising=False)
    data = tmp_path / "data"
    seed_files(data)
    path = tmp_path / "lifeboat.toml"
    path.write_text(
        config_text(
            openssh_server,
            tmp_path / "repo",
            files_source("cfg", data / "etc", data / "lib") + "drill = true\n",
        )
    )

    def lifeboat(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(["--config", str(path), *argv])
        out, err = capsys.readouterr()
        return int(info.value.code or 0), out, err

    rc, out, _err = lifeboat("drill", "--plan")
    assert rc == 0
    assert out.splitlines() == [
        "drill: restore cfg in place",
        "  cfg on h1: every path it backs up is removed",
    ]
    rc, _out, err = lifeboat("drill")  # no terminal, no --confirm
    assert rc == 2
    assert "confirm by typing each name: --confirm h1" in err
    assert "Traceback" not in err

    rc, out, err = lifeboat("drill", "--confirm", "h1")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("drill ")
    assert lines[0].endswith("PASSED: restore cfg in place")
    assert lines[1].startswith("backup ")
    assert ", restore " in lines[1]
    assert "markers cfg: 20 of 20 came back" in lines

    rc, out, _err = lifeboat("drill", "list")
    assert rc == 0
    assert "passed" in out
    assert "restore cfg in place" in out
    rc, out, _err = lifeboat("drill", "list", "--json")
    assert json.loads(out)[0]["verdict"] == "passed"


async def test_the_etcd_fixture_service_restarts(
    etcd_service: tuple[EtcdServer, BackgroundService],
) -> None:
    """The stop/start commands the drill relies on really stop and start the member."""
    member, service = etcd_service
    await asyncio.to_thread(_sh, service.stop)
    assert not Path(service.pid_file).exists()
    with pytest.raises(etcd3.exceptions.Etcd3Exception), member.client() as client:
        client.status()
    await asyncio.to_thread(_sh, service.start)
    await asyncio.to_thread(_wait_until_ready, member)


async def test_a_refused_restore_fails_the_drill_and_names_the_backup_holding_the_data(
    asyncssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    seed_data(tmp_path / "data", mongo)
    config = drill_config(asyncssh_server, tmp_path, mongo, None)
    repo = Repository.open(config.repository.path)
    request = DrillRequest(("cfg",), confirm=("h1",))
    with RepositoryTargetLocks(repo.path).hold("h1", "bob"):  # another restore is running
        record = await run_drill(config, repo, request, EventLog().emit)
    assert not record.passed
    (problem,) = record.problems
    assert problem.startswith("the drill stopped after destroying data on the drill target")
    assert "another restore holds h1" in problem
    assert f"backup {record.backup_id} holds it: lifeboat restore {record.backup_id}" in problem
    assert not (tmp_path / "data" / "etc").exists()  # destroyed, as the drill said
    assert record.restore_seconds is None

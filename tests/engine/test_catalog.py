"""The shared MongoDB catalog against the Mongo wire server (mongod, else nx-27017): sync,
rebuild after loss, incremental updates from every writer, search, the CLI, the browser, and
every write still succeeding (with a warning that names no secret) while the catalog is down."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pymongo
import pytest
from checklists import checklists_toml, item, write_checklist
from helpers import EventLog, command_source, files_source, make_config, stored_backup
from mongo_server import MongoServer
from sshd import SSHTestServer, free_port
from textual.widgets import OptionList
from timing import pilot_until
from wizard_pilot import settle, shown

from engine.checklist.run import ChecklistRun, ItemState, save
from engine.config.load import parse_config
from engine.config.model import Config
from engine.drill import history
from engine.drill.history import DrillRecord
from engine.drill.run import DrillRequest, run_drill
from engine.errors import ConfigError
from engine.events import LogLine
from engine.jobs import BackupRequest, run_backup, run_verify
from engine.repo.manifest import Artifact, ArtifactFile, Manifest
from engine.repo.repository import Repository, VerifyRecord
from engine.scaleout.catalog import (
    CatalogError,
    keep_current,
    open_catalog,
    refresh_catalog,
    search,
    sync,
    update,
)
from tui.cli.main import main
from tui.console.app import LifeboatApp
from tui.console.screens.backups import BackupsScreen
from tui.console.screens.checklist import ChecklistScreen
from tui.console.screens.checklist_open import ChecklistPicker
from tui.console.screens.modals import ConfirmModal
from tui.console.widgets.backup_list import BackupList

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DATABASE = "lifeboat_test"
COLLECTIONS = ("backups", "checklist_runs", "drills")
SECRET = "s3cret-pw"
HOST = '[hosts.h1]\naddress = "127.0.0.1"\nport = 1\n'  # never contacted by these tests
DB_SOURCE = command_source("db", ["cat", "/nonexistent"])


def catalog_toml(uri: str, timeout: float = 5.0) -> str:
    return (
        f'[catalog]\nmongo_uri = {json.dumps(uri)}\ndatabase = "{DATABASE}"\ntimeout = {timeout}\n'
    )


def down_uri() -> str:
    """A catalog that does not answer (nothing listens), with a password to keep secret."""
    return f"mongodb://lifeboat:{SECRET}@127.0.0.1:{free_port()}/?directConnection=true"


def offline_config(repo: Path, catalog: str = "") -> Config:
    return parse_config(
        f'operator = "tester"\n[repository]\npath = {json.dumps(str(repo))}\n'
        + HOST
        + DB_SOURCE
        + catalog
    )


def mongo_backup(
    repo: Repository, moment: datetime, label: str, host: str, namespaces: tuple[str, ...]
) -> Manifest:
    """A real backup of a Mongo archive artifact from ``host`` holding ``namespaces``."""
    data = b"archive\n" * 10
    backup_id = f"{moment:%Y%m%dT%H%M%SZ}-{hashlib.sha256(label.encode()).hexdigest()[:4]}"
    staging = repo.create_staging(backup_id)
    (staging / "mongo.archive.gz").write_bytes(data)
    manifest = Manifest(
        id=backup_id,
        label=label,
        created_at=moment,
        finished_at=moment + timedelta(seconds=5),
        trigger="schedule:nightly",
        operator="bob",
        tool_version="0.1.0",
        scope=("mongo",),
        artifacts=(
            Artifact(
                source="mongo",
                kind="mongo-archive",
                host=host,
                files=(
                    ArtifactFile(
                        path="mongo.archive.gz",
                        bytes=len(data),
                        sha256=hashlib.sha256(data).hexdigest(),
                    ),
                ),
                meta={"namespaces": {name: {"documents": 3} for name in namespaces}},
            ),
        ),
    )
    repo.commit(staging, manifest)
    return manifest


def checklist_run(backup_id: str, run_id: str = "20260301T130000Z-c0de") -> ChecklistRun:
    return ChecklistRun(
        id=run_id,
        checklist="smoke",
        title="Smoke test",
        started="2026-03-01T13:00:00Z",
        backup=backup_id,
        items=[ItemState("look", "Look at the dashboard", "manual", True)],
    )


def drill_record(backup_id: str, drill_id: str = "20260301T140000Z-d1f0") -> DrillRecord:
    return DrillRecord(
        drill_id, "2026-03-01T14:00:00Z", "alice", ["db"], None, "restore db in place",
        "2026-03-01T14:02:00Z", backup_id, 3.5, 0.5, 42.0, verdict="passed",
    )  # fmt: skip


Filled = tuple[Repository, Config, list[Manifest]]


@pytest.fixture
def filled(mongo: MongoServer, tmp_path: Path) -> Filled:
    """A repository with three backups, a checklist run and a drill, and a config whose
    catalog is the test server."""
    config = offline_config(tmp_path / "repo", catalog_toml(mongo.uri))
    repo = Repository.open(config.repository.path)
    made = [
        stored_backup(repo, START, {"db": b"dump\n" * 50}, "nightly"),
        mongo_backup(repo, START + timedelta(hours=1), "Pre-v1.4 (Upgrade)", "db1", ("app.users",)),
        mongo_backup(
            repo, START + timedelta(hours=2), "hourly", "db2", ("shop.orders", "appxusers")
        ),
    ]
    save(repo, checklist_run(made[0].id))
    history.append(repo.path, drill_record(made[1].id))
    return repo, config, made


def dump(server: MongoServer) -> dict[str, list[dict[str, Any]]]:
    """Every document of the catalog, sorted, per collection."""
    with pymongo.MongoClient(server.uri, tz_aware=True) as client:
        return {
            name: sorted(client[DATABASE][name].find(), key=lambda doc: doc["_id"])
            for name in COLLECTIONS
        }


def synced(config: Config, repo: Repository) -> dict[str, tuple[int, int, int]]:
    opened = open_catalog(config)
    assert opened is not None
    with opened:
        report = sync(opened, repo)
    assert report.problems == ()
    return {name: (c.indexed, c.written, c.removed) for name, c in report.collections.items()}


def updated(config: Config, repo: Repository) -> dict[str, tuple[int, int, int]]:
    opened = open_catalog(config)
    assert opened is not None
    with opened:
        report = update(opened, repo)
    return {name: (c.indexed, c.written, c.removed) for name, c in report.collections.items()}


def found(config: Config, repo: Repository, text: str) -> list[str]:
    opened = open_catalog(config)
    assert opened is not None
    with opened:
        return search(opened, repo, text)


# -- sync and rebuild ------------------------------------------------------------------------


def test_sync_indexes_backups_checklist_runs_and_drills(filled: Filled, mongo: MongoServer) -> None:
    repo, config, made = filled
    assert synced(config, repo) == {
        "backups": (3, 3, 0),
        "checklist_runs": (1, 1, 0),
        "drills": (1, 1, 0),
    }
    rid = repo.repo_id()
    catalog = dump(mongo)
    backup = next(doc for doc in catalog["backups"] if doc["id"] == made[1].id)
    assert backup["_id"] == f"{rid}/{made[1].id}"
    assert backup["repo"] == rid
    assert (backup["label"], backup["trigger"], backup["operator"]) == (
        "Pre-v1.4 (Upgrade)",
        "schedule:nightly",
        "bob",
    )
    assert (backup["created_at"], backup["finished_at"]) == (
        made[1].created_at,
        made[1].finished_at,
    )
    assert (backup["scope"], backup["hosts"], backup["namespaces"]) == (
        ["mongo"],
        ["db1"],
        ["app.users"],
    )
    assert backup["size"] == made[1].size
    assert backup["verify"] is None
    assert backup["manifest"] == json.loads(made[1].to_json())  # the manifest as on disk
    (run,) = catalog["checklist_runs"]
    assert run["_id"] == f"{rid}/20260301T130000Z-c0de"
    assert (run["checklist"], run["backup"], run["signoff"]) == ("smoke", made[0].id, None)
    assert run["items"][0]["id"] == "look"
    (drill,) = catalog["drills"]
    assert drill["_id"] == f"{rid}/20260301T140000Z-d1f0"
    assert (drill["verdict"], drill["restore_seconds"], drill["backup_id"]) == (
        "passed",
        42.0,
        made[1].id,
    )


def test_sync_after_dropping_the_catalog_rebuilds_it_equal(
    filled: Filled, mongo: MongoServer, tmp_path: Path
) -> None:
    repo, config, _made = filled
    other_config = offline_config(tmp_path / "other", catalog_toml(mongo.uri))
    other = Repository.open(other_config.repository.path)
    stored_backup(other, START, {"db": b"other\n"}, "nightly")
    repo.record_verify(VerifyRecord(_made[0].id, "2026-03-01T12:30:00Z", False, ("bad",)))
    synced(config, repo)
    synced(other_config, other)
    before = dump(mongo)
    assert len(before["backups"]) == 4  # two repositories in one catalog

    with pymongo.MongoClient(mongo.uri) as client:
        client.drop_database(DATABASE)
    assert dump(mongo) == {name: [] for name in COLLECTIONS}
    synced(config, repo)
    synced(other_config, other)
    assert dump(mongo) == before

    # A sync replaces only its own repository's documents.
    repo.delete(_made[0].id)
    assert synced(config, repo)["backups"] == (2, 2, 1)
    assert [doc["label"] for doc in dump(mongo)["backups"] if doc["repo"] == other.repo_id()] == [
        "nightly"
    ]


# -- keeping it current ----------------------------------------------------------------------


def test_update_writes_only_what_changed_and_ends_equal_to_a_sync(
    filled: Filled, mongo: MongoServer
) -> None:
    repo, config, made = filled
    synced(config, repo)
    assert updated(config, repo) == {
        "backups": (3, 0, 0),
        "checklist_runs": (1, 0, 0),
        "drills": (1, 0, 0),
    }
    new = stored_backup(repo, START + timedelta(days=1), {"db": b"new\n"}, "fresh")
    assert updated(config, repo)["backups"] == (4, 1, 0)
    assert found(config, repo, "fresh") == [new.id]

    repo.delete(made[0].id)
    repo.record_verify(VerifyRecord(made[1].id, "2026-03-02T00:00:00Z", True))
    run = checklist_run(made[0].id)
    run.items[0].status, run.items[0].note = "ticked", "all green"
    save(repo, run)
    history.append(repo.path, drill_record(new.id, "20260302T000000Z-d2c1"))
    assert updated(config, repo) == {
        "backups": (3, 1, 1),  # the verify changed one; one is gone
        "checklist_runs": (1, 1, 0),
        "drills": (2, 1, 0),
    }
    incremental = dump(mongo)
    verified = next(doc for doc in incremental["backups"] if doc["id"] == made[1].id)
    assert verified["verify"] == {"ok": True, "at": "2026-03-02T00:00:00Z", "problems": []}
    assert incremental["checklist_runs"][0]["items"][0]["note"] == "all green"
    synced(config, repo)
    assert dump(mongo) == incremental

    (repo.path / "checklists" / "20260301T130000Z-c0de.json").unlink()
    assert updated(config, repo)["checklist_runs"] == (0, 0, 1)


async def test_backup_verify_checklist_save_and_delete_keep_it_current(
    asyncssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    dump_file = tmp_path / "app.dump"
    dump_file.write_bytes(b"INSERT 1;\n" * 100)
    config = make_config(
        asyncssh_server,
        tmp_path / "repo",
        command_source("db", ["cat", str(dump_file)]) + catalog_toml(mongo.uri),
    )
    repo = keep_current(Repository.open(config.repository.path), config)
    events = EventLog()
    manifest = await run_backup(config, repo, BackupRequest(label="indexed"), events.emit)
    assert not events.of_type(LogLine)
    assert found(config, repo, "INDEXED") == [manifest.id]

    assert (await run_verify(repo, manifest.id, events.emit, config=config)).ok
    (backup,) = dump(mongo)["backups"]
    assert backup["verify"]["ok"] is True

    save(repo, checklist_run(manifest.id))
    assert [doc["backup"] for doc in dump(mongo)["checklist_runs"]] == [manifest.id]

    repo.delete(manifest.id)
    assert dump(mongo)["backups"] == []
    assert not events.of_type(LogLine)


async def test_a_drill_indexes_its_backup_verify_and_record(
    asyncssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    for relative in ("etc/app.toml", "lib/state.json"):
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        (data / relative).write_text("kept\n")
    sources = files_source("cfg", data / "etc", data / "lib") + "drill = true\n"
    config = make_config(asyncssh_server, tmp_path / "repo", sources + catalog_toml(mongo.uri))
    repo = keep_current(Repository.open(config.repository.path), config)

    record = await run_drill(config, repo, DrillRequest(confirm=("h1",)), EventLog().emit)

    assert record.passed, record.problems
    catalog = dump(mongo)
    (drill,) = catalog["drills"]
    assert (drill["id"], drill["verdict"]) == (record.id, "passed")
    (backup,) = catalog["backups"]
    assert (backup["id"], backup["trigger"]) == (record.backup_id, "drill")
    assert backup["verify"]["ok"] is True


async def test_a_backup_succeeds_while_the_catalog_is_down_with_a_warning(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    dump_file = tmp_path / "app.dump"
    dump_file.write_bytes(b"INSERT 1;\n" * 100)
    uri = down_uri()
    config = make_config(
        asyncssh_server,
        tmp_path / "repo",
        command_source("db", ["cat", str(dump_file)]) + catalog_toml(uri, timeout=0.3),
    )
    warnings: list[str] = []
    repo = keep_current(Repository.open(config.repository.path), config, warnings.append)
    events = EventLog()

    manifest = await run_backup(config, repo, BackupRequest(), events.emit)

    assert repo.is_backup(manifest.id)
    assert warnings == []  # the job's own log line says it
    (warning,) = events.of_type(LogLine)
    assert isinstance(warning, LogLine)
    assert (warning.source, warning.level) == ("catalog", "warning")
    server = uri.split("@")[1].split("/")[0]
    assert f"catalog: {server} does not answer (" in warning.text
    assert "check [catalog] mongo_uri, or remove [catalog]" in warning.text
    assert "run `lifeboat catalog sync` once it answers" in warning.text
    assert SECRET not in warning.text
    assert "lifeboat:" not in warning.text  # nor the user name: no credentials at all

    # The other writers carry on the same way.
    save(repo, checklist_run(manifest.id))
    repo.delete(manifest.id)
    assert not repo.is_backup(manifest.id)
    assert len(warnings) == 2
    assert all("run `lifeboat catalog sync` once it answers" in w for w in warnings)
    assert "lifeboat catalog sync" in (refresh_catalog(config, repo) or "")


def test_catalog_errors_name_the_server_but_no_secret(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    opened = open_catalog(offline_config(repo.path, catalog_toml(down_uri(), timeout=0.2)))
    assert opened is not None
    with opened, pytest.raises(CatalogError) as info:
        search(opened, repo, "anything")
    message = str(info.value)
    assert message.startswith("catalog: 127.0.0.1:")
    assert "does not answer" in message
    assert SECRET not in message
    assert open_catalog(offline_config(repo.path)) is None

    with pytest.raises(ConfigError) as bad:
        open_catalog(offline_config(repo.path, catalog_toml(f"mongodb://u:{SECRET}@")))
    assert str(bad.value).startswith("catalog.mongo_uri: ")
    assert SECRET not in str(bad.value)


# -- search ----------------------------------------------------------------------------------


def test_search_by_label_host_namespace_and_more_newest_first(
    filled: Filled, tmp_path: Path, mongo: MongoServer
) -> None:
    repo, config, made = filled
    nightly, upgrade, hourly = (m.id for m in made)
    synced(config, repo)
    other_config = offline_config(tmp_path / "other", catalog_toml(mongo.uri))
    other = Repository.open(other_config.repository.path)
    theirs = stored_backup(other, START - timedelta(days=1), {"db": b"x\n"}, "nightly")
    synced(other_config, other)

    for text, expected in {
        "upgrade": [upgrade],  # a label, any case
        "(UPGRADE)": [upgrade],  # regex characters are literal
        "db2": [hourly],  # a host
        "h1": [nightly],
        "app.users": [upgrade],  # a Mongo namespace; the dot is no wildcard (appxusers)
        "shop.": [hourly],
        "db": [hourly, upgrade, nightly],  # newest first: hosts db1, db2, the scope db
        "db1 pre": [upgrade],  # every word must match
        nightly[:15]: [nightly],  # the id
        "nothing-like-this": [],
        "": [hourly, upgrade, nightly],
    }.items():
        assert found(config, repo, text) == expected, text
    assert found(other_config, other, "nightly") == [theirs.id]  # one repository at a time


# -- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def lifeboat(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str, str]]:
    monkeypatch.delenv("LIFEBOAT_CONFIG", raising=False)

    def run(config: Path, *argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(["--config", str(config), *argv])
        out, err = capsys.readouterr()
        return int(info.value.code or 0), out, err

    return run


def config_file(tmp_path: Path, repo: Repository, uri: str) -> Path:
    path = tmp_path / "lifeboat.toml"
    path.write_text(
        f'operator = "tester"\n[repository]\npath = "{repo.path}"\n'
        + HOST
        + DB_SOURCE
        + catalog_toml(uri)
    )
    return path


def test_cli_sync_search_and_delete(
    filled: Filled,
    mongo: MongoServer,
    tmp_path: Path,
    lifeboat: Callable[..., tuple[int, str, str]],
) -> None:
    repo, _config, made = filled
    path = config_file(tmp_path, repo, mongo.uri)
    rc, out, err = lifeboat(path, "catalog", "sync")
    assert rc == 0, err
    assert out.splitlines() == [
        "backups: 3 indexed, 0 removed",
        "checklist_runs: 1 indexed, 0 removed",
        "drills: 1 indexed, 0 removed",
    ]
    rc, out, _err = lifeboat(path, "catalog", "sync", "--json")
    assert json.loads(out)["backups"] == {"indexed": 3, "written": 3, "removed": 0}

    rc, out, err = lifeboat(path, "catalog", "search", "app.users")
    assert rc == 0, err
    (header, row) = out.splitlines()
    assert header.split() == ["id", "created", "label", "hosts", "size"]
    assert row.split()[0] == made[1].id
    assert "db1" in row.split()
    rc, out, _err = lifeboat(path, "catalog", "search", "db", "--json")
    assert [m["id"] for m in json.loads(out)] == [m.id for m in reversed(made)]

    rc, out, err = lifeboat(path, "backup", "delete", made[2].id, "--confirm", made[2].id)
    assert rc == 0, err
    assert "warning" not in err
    rc, out, _err = lifeboat(path, "catalog", "search", "db2")
    assert out.strip() == "no backup matches 'db2'"

    # A backup gone behind the catalog's back is named, and sync is the fix.
    repo.delete(made[1].id)
    rc, out, err = lifeboat(path, "catalog", "search", "db1")
    assert "the catalog lists 1 backup(s) the repository no longer holds" in err
    assert "lifeboat catalog sync" in err


def test_cli_prune_and_checklist_commands_keep_it_current(
    filled: Filled,
    mongo: MongoServer,
    tmp_path: Path,
    lifeboat: Callable[..., tuple[int, str, str]],
) -> None:
    repo, config, made = filled
    path = config_file(tmp_path, repo, mongo.uri)
    synced(config, repo)
    rc, _out, err = lifeboat(path, "backup", "prune", "--keep", "1")
    assert rc == 0, err
    assert "warning" not in err
    kept = [m.id for m in repo.list_backups()[0]]
    assert sorted(doc["id"] for doc in dump(mongo)["backups"]) == sorted(kept)
    assert len(kept) < len(made)

    run_id = checklist_run(made[0].id).id
    rc, _out, err = lifeboat(path, "checklist", "waive", run_id, "look", "--reason", "no screen")
    assert rc == 0, err
    [indexed] = dump(mongo)["checklist_runs"]
    assert [item["waiver"] for item in indexed["items"]] == ["no screen"]


def test_cli_without_a_catalog_or_with_one_down(
    tmp_path: Path, lifeboat: Callable[..., tuple[int, str, str]]
) -> None:
    repo = Repository.open(tmp_path / "repo")
    stored_backup(repo, START, {"db": b"dump\n"}, "nightly")
    path = tmp_path / "lifeboat.toml"
    base = f'operator = "tester"\n[repository]\npath = "{repo.path}"\n' + HOST + DB_SOURCE
    path.write_text(base)
    for argv in (("catalog", "sync"), ("catalog", "search", "x")):
        rc, _out, err = lifeboat(path, *argv)
        assert rc == 2
        assert err.strip() == (
            "lifeboat: error: no [catalog] is configured; add [catalog] mongo_uri = ... "
            "(see README)"
        )

    path.write_text(base + catalog_toml(down_uri(), timeout=0.2))
    rc, _out, err = lifeboat(path, "catalog", "sync")
    assert rc == 1
    assert "does not answer" in err
    assert SECRET not in err
    (backup_id,) = repo.backup_ids()
    rc, out, err = lifeboat(path, "backup", "delete", backup_id, "--confirm", backup_id)
    assert rc == 0  # the delete stands; the catalog is behind, and the warning says so
    assert out.strip() == f"deleted {backup_id}"
    assert "lifeboat: warning: the catalog missed this change (run `lifeboat catalog sync`" in err
    assert "catalog: 127.0.0.1:" in err
    assert "lifeboat catalog sync" in err
    assert SECRET not in err
    assert not repo.is_backup(backup_id)


# -- the browser -----------------------------------------------------------------------------


async def open_browser(app: LifeboatApp, pilot: Any) -> BackupsScreen:
    await pilot.press("l")
    await settle(app, pilot)
    assert isinstance(app.screen, BackupsScreen)
    return app.screen


async def test_the_browser_searches_through_the_catalog(
    filled: Filled, mongo: MongoServer, tmp_path: Path
) -> None:
    repo, config, made = filled
    synced(config, repo)
    with pymongo.MongoClient(mongo.uri) as client:  # only the catalog knows this label
        client[DATABASE].backups.update_one(
            {"_id": f"{repo.repo_id()}/{made[0].id}"}, {"$set": {"label": "only-in-the-catalog"}}
        )
    app = LifeboatApp(config, repo, settings=tmp_path / "console.json")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_browser(app, pilot)
        listing = screen.query_one(BackupList)
        assert "search the catalog" in screen.query_one("#filter").placeholder  # type: ignore[attr-defined]
        await pilot.press("slash", *"only-in")
        await settle(app, pilot)
        assert listing.shown_ids() == [made[0].id]
        assert "1 of 3 match 'only-in'" in str(listing.border_subtitle)
        await pilot.press("enter", "escape")  # back to the list, then clear the filter
        await settle(app, pilot)
        assert listing.shown_ids() == [m.id for m in reversed(made)]
        await pilot.press("slash", *"APP.USERS")
        await settle(app, pilot)
        assert listing.shown_ids() == [made[1].id]

        # Deleting from the browser updates the catalog too.
        await pilot.press("enter", "x")
        await pilot.press(*made[1].id, "enter")
        await settle(app, pilot)
        assert not repo.is_backup(made[1].id)
        assert listing.shown_ids() == []
        assert "no backup matches 'APP.USERS'" in shown(screen, "#backups")
    assert found(config, repo, "app.users") == []


async def test_the_browser_filters_itself_when_the_catalog_is_down(
    filled: Filled, tmp_path: Path
) -> None:
    repo, _config, made = filled
    config = offline_config(repo.path, catalog_toml(down_uri(), timeout=0.2))
    app = LifeboatApp(config, repo, settings=tmp_path / "console.json")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_browser(app, pilot)
        listing = screen.query_one(BackupList)
        await pilot.press("slash")
        screen.query_one("#filter").value = "db1"  # type: ignore[attr-defined]
        await pilot.pause()
        while any(not worker.is_finished for worker in app.workers):  # one fails: no settle()
            await pilot.pause(0.05)
        await pilot.pause()
        assert listing.shown_ids() == [made[1].id]  # filtered here, on the same fields
        problem = shown(screen, "#problems")
        assert "does not answer" in problem
        assert SECRET not in problem
        assert "filter by" in screen.query_one("#filter").placeholder  # type: ignore[attr-defined]

        await pilot.press("enter", "x", *made[1].id, "enter")  # a delete stands, with a warning
        await settle(app, pilot)
        assert not repo.is_backup(made[1].id)
        assert "the catalog missed this change" in shown(screen, "#problems")
        warning = app.board.log[-1]
        assert (warning.source, warning.level) == ("backups", "warning")
        assert "run `lifeboat catalog sync` once it answers" in warning.text
        assert SECRET not in warning.text


# -- the console's checklist -----------------------------------------------------------------


async def test_a_sign_off_in_the_console_reaches_the_catalog_by_itself(
    filled: Filled, mongo: MongoServer, tmp_path: Path
) -> None:
    """The run is resumed and signed off in the console; nothing else is written, and the
    catalog has the sign-off (the repository's write hook, not the next unrelated write)."""
    repo, _config, made = filled
    smoke = write_checklist(tmp_path, "smoke", item("manual", "look", instruction="Look."))
    config = offline_config(repo.path, catalog_toml(mongo.uri) + checklists_toml([smoke]))
    run = checklist_run(made[0].id)
    run.items[0].status, run.items[0].note = "ticked", "looks fine"
    save(repo, run)
    synced(config, repo)

    def indexed_signoff() -> dict[str, Any] | None:
        (document,) = dump(mongo)["checklist_runs"]
        return document["signoff"]  # type: ignore[no-any-return]

    assert indexed_signoff() is None
    app = LifeboatApp(config, Repository.open(repo.path), settings=tmp_path / "console.json")
    async with app.run_test(size=(80, 24)) as pilot:
        app.action_checklist()
        await pilot_until(pilot, lambda: isinstance(app.screen, ChecklistPicker), "the picker")
        options = app.screen.query_one(OptionList)
        await pilot.press(*["down"] * options.get_option_index(f"resume:{run.id}"), "enter")
        await pilot_until(pilot, lambda: isinstance(app.screen, ChecklistScreen), "the run")
        await pilot.press("s")
        await pilot_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
        await pilot.click("#yes")
        await pilot_until(pilot, lambda: indexed_signoff() is not None, "the catalog's sign-off")
        signed = indexed_signoff()
        assert signed is not None
        assert signed["operator"] == "tester"
        assert "catalog" not in " ".join(str(n.message) for n in app._notifications)
    assert [m.id for m in repo.list_backups()[0]] == [m.id for m in reversed(made)]

"""The backups browser driven by keyboard through Pilot against a real repository: rows newest
first, filter, detail, verify (good and corrupted), delete with a typed id, restore checks and
a restore applied through the in-process SSH server."""

from __future__ import annotations

import gc
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from consoles import console
from helpers import command_source, make_config
from rich.console import Console, RenderableType
from sshd import SSHTestServer
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import Input, SelectionList
from timing import pilot_until
from wizard_pilot import answer, choose, flat, next_button, run_checks, settle, shown

from engine.config.load import parse_config
from engine.config.model import Config
from engine.events import Event
from engine.jobs import BackupRequest, run_backup
from engine.repo.manifest import Artifact, ArtifactFile, Manifest
from engine.repo.repository import Repository, new_backup_id
from tui.console.app import FIRST_CHUNK, LifeboatApp
from tui.console.screens.backups import BackupsScreen, open_backup
from tui.console.screens.checklist import ChecklistScreen
from tui.console.screens.modals import TypedConfirmModal
from tui.console.screens.wizard import RestoreWizard
from tui.console.widgets.backup_detail import BackupDetail, describe_backup
from tui.console.widgets.backup_list import BackupList
from tui.console.wizard_state import Step

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOST = '[hosts.h1]\naddress = "127.0.0.1"\nport = 1\n'  # a dry run never connects


def config_for(tmp_path: Path, sources: str) -> Config:
    return parse_config(
        f'operator = "tester"\n[repository]\npath = {json.dumps(str(tmp_path / "repo"))}\n'
        + HOST
        + sources
    )


DB = command_source("db", ["cat", "/nonexistent"], ["dd", "of=/dev/null"])


def command_backup(
    repo: Repository, moment: datetime, label: str | None = None, data: bytes = b"dump\n" * 100
) -> Manifest:
    """A backup whose file is real: a command-output artifact with its true sha256."""
    backup_id = new_backup_id(moment)
    staging = repo.create_staging(backup_id)
    (staging / "db.out").write_bytes(data)
    manifest = Manifest(
        id=backup_id,
        label=label,
        created_at=moment,
        finished_at=moment + timedelta(seconds=3),
        trigger="manual",
        operator="alice",
        tool_version="0.1.0",
        scope=("db",),
        artifacts=(
            Artifact(
                source="db",
                kind="command-output",
                host="h1",
                files=(
                    ArtifactFile(
                        path="db.out", bytes=len(data), sha256=hashlib.sha256(data).hexdigest()
                    ),
                ),
                meta={"command": ["pg_dump", "app"]},
            ),
        ),
    )
    repo.commit(staging, manifest)
    return manifest


def cluster_backup(repo: Repository, moment: datetime) -> Manifest:
    """A Mongo and etcd backup, described only (its files are not checked here)."""
    backup_id = new_backup_id(moment)
    staging = repo.create_staging(backup_id)
    manifest = Manifest(
        id=backup_id,
        label="pre-v1.4-upgrade",
        created_at=moment,
        finished_at=moment + timedelta(minutes=2),
        trigger="schedule:nightly",
        operator="bob",
        tool_version="0.1.0",
        scope=("mongo", "etcd"),
        artifacts=(
            Artifact(
                source="mongo",
                kind="mongo-archive",
                host="db1",
                files=(ArtifactFile(path="mongo.archive.gz", bytes=123456, sha256="ab" * 32),),
                meta={
                    "method": "driver",
                    "server_version": "7.0.5",
                    "namespaces": {
                        "app.users": {"documents": 1000, "bytes": 52000, "crc": "0" * 16},
                        "app.groups": {"documents": 25, "bytes": 900, "crc": "1" * 16},
                    },
                },
            ),
            Artifact(
                source="etcd",
                kind="etcd-snapshot",
                host="etcd1",
                files=(ArtifactFile(path="etcd.snapshot.db", bytes=20512, sha256="cd" * 32),),
                meta={
                    "revision": 4242,
                    "key_count": 17,
                    "member_id": "8e9e05c52164694d",
                    "server_version": "3.5.9",
                    "db_size": 20480,
                },
            ),
        ),
    )
    repo.commit(staging, manifest)
    return manifest


def painted(widget: Widget) -> str:
    """What ``widget`` shows on screen right now (inside its border), as plain text."""
    width, height = widget.outer_size
    lines = [strip.text for strip in widget.render_lines(Region(0, 0, width, height))]
    if widget.styles.border_top[0]:
        lines = [line[1:-1] for line in lines[1:-1]]
    return "\n".join(line.strip() for line in lines)


def text_of(renderable: RenderableType, width: int = 100) -> str:
    out = Console(width=width, file=io.StringIO(), record=True)
    out.print(renderable)
    return out.export_text()


async def open_browser(app: LifeboatApp, pilot: object) -> BackupsScreen:
    await pilot.press("l")  # type: ignore[attr-defined]
    await app.workers.wait_for_complete()
    await pilot.pause()  # type: ignore[attr-defined]
    assert isinstance(app.screen, BackupsScreen)
    return app.screen


def detail_text(screen: BackupsScreen) -> str:
    return painted(screen.query_one("#detail-body")) + painted(screen.query_one("#detail-error"))


@pytest.fixture
def repo_and_config(tmp_path: Path) -> tuple[Repository, Config]:
    config = config_for(tmp_path, DB)
    return Repository.open(config.repository.path), config


async def test_rows_are_newest_first_and_the_cursor_drives_the_detail(
    repo_and_config: tuple[Repository, Config], tmp_path: Path
) -> None:
    repo, config = repo_and_config
    made = [command_backup(repo, START + timedelta(hours=h), f"run-{h}") for h in range(3)]
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_browser(app, pilot)
        listing = screen.query_one(BackupList)
        newest_first = [m.id for m in reversed(made)]
        assert listing.shown_ids() == newest_first
        lines = painted(listing).splitlines()
        assert lines[0].split() == ["id", "created", "label", "scope", "size", "verify"]
        assert [line.split()[0] for line in lines[1:4]] == newest_first
        assert lines[1].split()[-1] == "-"  # never verified
        assert listing.has_focus
        assert screen.query_one(BackupDetail).border_title == made[2].id
        await pilot.press("down")
        assert listing.highlighted == made[1].id
        await pilot.press("end")
        await pilot.pause()
        assert screen.query_one(BackupDetail).border_title == made[0].id
        assert "run-0" in detail_text(screen)
        await pilot.press("home")
        assert listing.highlighted == made[2].id


async def test_a_read_index_leaves_the_collector_until_the_console_quits(
    repo_and_config: tuple[Repository, Config], tmp_path: Path
) -> None:
    """More backups than the first screenful: a thread reads the rest, then what lives as
    long as the console is frozen out of the GC's full passes, and given back on quitting."""
    repo, config = repo_and_config
    for n in range(FIRST_CHUNK + 10):
        command_backup(repo, START + timedelta(minutes=n))
    assert gc.get_freeze_count() == 0
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_browser(app, pilot)
        await pilot_until(pilot, lambda: gc.get_freeze_count() > 0, "the index to be read")
        assert len(app.backups) == FIRST_CHUNK + 10
    assert gc.get_freeze_count() == 0


async def test_esc_clears_the_filter_then_goes_back_to_the_dashboard(
    repo_and_config: tuple[Repository, Config], tmp_path: Path
) -> None:
    repo, config = repo_and_config
    command_backup(repo, START, "nightly")
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_browser(app, pilot)
        listing = screen.query_one(BackupList)
        await pilot.press("slash", *"zzz")
        await pilot.press("escape")  # from the filter box: back to the list, filter kept
        assert listing.has_focus
        assert screen.query_one("#filter", Input).value == "zzz"
        await pilot.press("escape")  # clears the filter
        assert screen.query_one("#filter", Input).value == ""
        assert app.current_mode == "backups"
        await pilot.press("escape")  # nothing left to undo here: back to the dashboard
        await pilot_until(pilot, lambda: app.current_mode == "dashboard", "the dashboard")
        await pilot.press("D")
        await pilot_until(pilot, lambda: app.current_mode == "drills", "the drills")
        await pilot.press("escape")
        await pilot_until(pilot, lambda: app.current_mode == "dashboard", "the dashboard again")


async def test_damaged_backups_are_named_and_the_others_browse(
    repo_and_config: tuple[Repository, Config], tmp_path: Path
) -> None:
    repo, config = repo_and_config
    made = [command_backup(repo, START + timedelta(hours=h), f"run-{h}") for h in range(2)]
    spoiled = command_backup(repo, START + timedelta(hours=3), "spoiled")
    path = repo.backup_dir(spoiled.id) / "manifest.json"
    path.write_bytes(path.read_bytes().replace(b'"alice"', b'"al\xefce"'))
    (repo.backups_dir / "20260301T170000Z-dead").mkdir()  # newer, and no manifest
    app = console(config, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_browser(app, pilot)
        assert screen.query_one(BackupList).shown_ids() == [m.id for m in reversed(made)]
        box = " ".join(painted(screen.query_one("#problems")).split())
        assert box.startswith("2 problems, see the dashboard's log; the last: ")
        assert f"backup {spoiled.id} is damaged: manifest.json: not UTF-8" in box
        screen.refresh_index()  # read again: the same damage is not counted twice
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert " ".join(painted(screen.query_one("#problems")).split()).startswith("2 problems")
        assert "run-1" in detail_text(screen)


async def test_filter_narrows_by_label_host_and_namespace(
    repo_and_config: tuple[Repository, Config], tmp_path: Path
) -> None:
    repo, config = repo_and_config
    plain = command_backup(repo, START, "nightly")
    cluster = cluster_backup(repo, START + timedelta(hours=1))
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_browser(app, pilot)
        listing = screen.query_one(BackupList)
        await pilot.press("slash", *"upg")  # type-to-filter
        assert listing.shown_ids() == [cluster.id]
        await pilot.press("enter")  # back to the list, filter kept
        assert listing.has_focus
        assert "1 of 2" in str(listing.border_subtitle)
        await pilot.press("escape")  # clears the filter
        assert listing.shown_ids() == [cluster.id, plain.id]
        await pilot.press("slash")
        box = screen.query_one("#filter", Input)
        for query, expected in (
            ("APP.USERS", [cluster.id]),  # a Mongo namespace, any case
            ("etcd1", [cluster.id]),  # a host
            ("nightly db", [plain.id]),  # every word must match
            ("nothing-like-this", []),
        ):
            box.value = query
            await pilot.pause()
            assert listing.shown_ids() == expected, query
        assert "no backup matches" in painted(listing)


async def test_detail_shows_files_namespaces_and_etcd_facts(
    repo_and_config: tuple[Repository, Config], tmp_path: Path
) -> None:
    repo, config = repo_and_config
    cluster = cluster_backup(repo, START)
    app = console(config, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_browser(app, pilot)
        shown = detail_text(screen)
    for expected in (
        "pre-v1.4-upgrade",
        "schedule:nightly by bob",
        "lifeboat 0.1.0",
        "mongo.archive.gz",
        "120.6 KiB",
        "sha256 abababababab",
        "MongoDB 7.0.5",
        "app.users",
        "1,000 docs",
        "25 docs",
        "etcd.snapshot.db",
        "revision 4242",
        "17 keys",
        "member 8e9e05c52164694d",
        "never verified",
    ):
        assert expected in shown, expected
    assert "ababababababab" not in shown  # the sha256 is shortened
    # The pane is a pure function of the manifest and its verify record.
    assert "app.groups" in text_of(describe_backup(cluster, None))


async def test_verify_passes_then_a_corrupted_file_is_named(
    repo_and_config: tuple[Repository, Config], tmp_path: Path
) -> None:
    repo, config = repo_and_config
    good = command_backup(repo, START, "good")
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_browser(app, pilot)
        listing = screen.query_one(BackupList)
        await pilot.press("v")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert repo.verifications()[good.id].ok
        assert "OK" in detail_text(screen)
        assert "✓" in detail_text(screen)
        assert painted(listing).splitlines()[1].rstrip().endswith("OK")

        (repo.backup_dir(good.id) / "db.out").write_bytes(b"dump\n" * 99 + b"dumq\n")
        await pilot.press("v")
        await app.workers.wait_for_complete()
        await pilot.pause()
        record = repo.verifications()[good.id]
        assert not record.ok
        shown = detail_text(screen)
        assert "FAILED" in shown
        assert "db.out (db): sha256 mismatch" in shown
        assert "✗" in shown
        assert painted(listing).splitlines()[1].rstrip().endswith("FAILED")


async def test_delete_needs_the_typed_id_and_is_audited(
    repo_and_config: tuple[Repository, Config], tmp_path: Path
) -> None:
    repo, config = repo_and_config
    keep = command_backup(repo, START, "keep")
    doomed = command_backup(repo, START + timedelta(hours=1), "doomed")
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_browser(app, pilot)
        listing = screen.query_one(BackupList)
        assert listing.highlighted == doomed.id
        await pilot.press("x")
        assert isinstance(app.screen, TypedConfirmModal)
        await pilot.press("escape")  # Esc cancels: nothing happens
        assert app.screen is screen
        await pilot.press("x", *"2026", "enter")  # the wrong text is refused
        modal = app.screen
        assert isinstance(modal, TypedConfirmModal)
        assert "that is not" in painted(modal.query_one("#problem"))
        assert repo.is_backup(doomed.id)
        modal.query_one(Input).value = doomed.id
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen is screen
        assert not repo.is_backup(doomed.id)
        assert listing.shown_ids() == [keep.id]
        assert listing.highlighted == keep.id
    records = [json.loads(line) for line in (repo.path / "audit.jsonl").read_text().splitlines()]
    assert [(r["action"], r["backup"], r["operator"]) for r in records] == [
        ("backup.delete", doomed.id, "tester")
    ]


async def test_restore_dry_run_passes_and_stops_at_the_typed_host(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    target = tmp_path / "restored.dump"
    config = make_config(
        asyncssh_server,
        tmp_path / "repo",
        command_source("db", ["cat", "/nonexistent"], ["dd", f"of={target}", "status=none"]),
    )
    repo = Repository.open(config.repository.path)
    backup = command_backup(repo, START, "to-restore")
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_browser(app, pilot)
        await pilot.press("r")
        await pilot.pause()
        wizard = app.screen
        assert isinstance(wizard, RestoreWizard)
        assert wizard.state.backup == backup
        assert "Backup" not in shown(wizard, "#steps")  # chosen in the browser: no backup step
        await choose(pilot, wizard, "other")  # every source, in place
        assert wizard.query_one("#plan-sources", SelectionList).selected == ["db"]
        await pilot.press("ctrl+n")
        assert shown(wizard, "#target-list") == "original hosts: h1"
        await run_checks(app, pilot, wizard)
        (job,) = app.board.jobs.values()
        # In the fixed order, though the checksums and the host checks run at once.
        assert [(check.name, check.status) for check in job.checks] == [
            ("backup", "ok"),
            ("checksums", "ok"),
            ("ssh h1", "ok"),
            ("tools h1", "ok"),
            ("lock h1", "ok"),
        ]
        table = shown(wizard, "#checks-table")
        assert "✓ tools h1  dd is installed" in table
        assert "Every check passed" in shown(wizard, "#checks-verdict")
        assert not next_button(wizard).disabled
        assert str(next_button(wizard).label) == "Continue"
        await pilot.press("enter")  # Continue (focused once the checks passed)
        assert wizard.state.step is Step.CONFIRM
        assert f"Restore db from {backup.id} onto h1." in flat(shown(wizard, "#confirm-text"))
        assert wizard.query_one("#confirm-name", Input).placeholder == "h1"
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.screen is screen
        kinds = [job.kind for job in app.board.jobs.values()]
        assert kinds == ["check"]  # the dry run only
        assert job.finished is not None
        assert job.finished.ok
    assert not (repo.path / "audit.jsonl").exists()  # nothing was applied
    assert not target.exists()
    assert repo.is_backup(backup.id)


async def test_restore_refused_lists_each_problem(tmp_path: Path) -> None:
    config = config_for(tmp_path, command_source("db", ["cat", "/nonexistent"]))  # no restore
    repo = Repository.open(config.repository.path)
    backup = command_backup(repo, START)
    (repo.backup_dir(backup.id) / "db.out").write_bytes(b"damaged")
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_browser(app, pilot)
        await pilot.press("r")
        await pilot.pause()
        wizard = app.screen
        assert isinstance(wizard, RestoreWizard)
        await choose(pilot, wizard, "other")
        await pilot.press("ctrl+n")
        await run_checks(app, pilot, wizard)
        (job,) = app.board.jobs.values()
        failed = [check.name for check in job.checks if check.status == "fail"]
        assert failed == ["options db", "checksums", "ssh h1"]  # h1 is port 1: closed
        table = flat(shown(wizard, "#checks-table"))
        assert "✗ options db" in table
        assert "no restore command is configured" in table
        assert "db.out (db): size is 7 bytes" in table
        assert "✗ ssh h1" in table
        verdict = flat(shown(wizard, "#checks-verdict"))
        assert "Restore refused: 3 check(s) failed; nothing was changed" in verdict
        assert next_button(wizard).disabled
        await pilot.press("ctrl+n")  # refused: there is no way on to the confirmation
        assert wizard.state.step is Step.CHECKS
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, BackupsScreen)
    assert not (repo.path / "audit.jsonl").exists()


async def test_restore_namespace_globs_are_for_mongo_only(tmp_path: Path) -> None:
    config = config_for(
        tmp_path,
        '[sources.mongo]\nkind = "mongo"\nhost = "h1"\nuri = "mongodb://127.0.0.1:27017/"\n'
        '[sources.etcd]\nkind = "etcd"\nhost = "h1"\n',
    )
    repo = Repository.open(config.repository.path)
    cluster_backup(repo, START)  # described only: its files are missing
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_browser(app, pilot)
        await pilot.press("r")
        await pilot.pause()
        wizard = app.screen
        assert isinstance(wizard, RestoreWizard)
        await choose(pilot, wizard, "module-removed")
        await answer(pilot, wizard, "app.users")
        sources = wizard.query_one("#plan-sources", SelectionList)
        assert sources.selected == ["mongo"]  # the plan offers etcd too, unselected
        assert "etcd  etcd on h1" in shown(wizard, "#plan-sources")
        assert wizard.query_one("#plan-globs", Input).value == "app.users"
        await pilot.press("ctrl+n")
        await run_checks(app, pilot, wizard)
        (job,) = app.board.jobs.values()
        assert job.scope == ("mongo",)
        assert "mongo.archive.gz (mongo): missing" in flat(shown(wizard, "#checks-table"))
        assert wizard.state.request().options.namespaces == ("app.users",)

        await pilot.press("ctrl+b", "ctrl+b")  # back to the plan: etcd instead of mongo
        assert wizard.state.step is Step.PLAN
        assert sources.has_focus
        await pilot.press("home", "space", "down", "space", "ctrl+n")
        await run_checks(app, pilot, wizard)
        etcd_job = list(app.board.jobs.values())[-1]
        assert etcd_job.scope == ("etcd",)
        assert wizard.state.request().options.namespaces == ()  # the globs stay with mongo
        assert not [check for check in etcd_job.checks if check.name == "options"]
        assert "etcd.snapshot.db (etcd): missing" in flat(shown(wizard, "#checks-table"))
        await pilot.press("escape")


async def test_palette_helper_opens_the_browser_on_a_backup(
    repo_and_config: tuple[Repository, Config], tmp_path: Path
) -> None:
    repo, config = repo_and_config
    old = command_backup(repo, START, "old")
    command_backup(repo, START + timedelta(days=1), "new")
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        open_backup(app, old.id)
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, BackupsScreen)
        assert screen.query_one(BackupList).highlighted == old.id


async def test_restore_applies_after_typing_the_host(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    target = tmp_path / "restored.dump"
    source = tmp_path / "app.dump"
    source.write_bytes(b"INSERT 1;\n" * 5000)
    config = make_config(
        asyncssh_server,
        tmp_path / "repo",
        command_source("db", ["cat", str(source)], ["dd", f"of={target}", "status=none"]),
        bulk_transport="asyncssh",
    )
    repo = Repository.open(config.repository.path)
    events: list[Event] = []
    manifest = await run_backup(config, repo, BackupRequest(label="real"), events.append)
    app = console(config, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await open_browser(app, pilot)
        await pilot.press("r")
        await pilot.pause()
        wizard = app.screen
        assert isinstance(wizard, RestoreWizard)
        await choose(pilot, wizard, "other")
        await pilot.press("ctrl+n")
        await run_checks(app, pilot, wizard)
        await pilot.press("enter")  # Continue
        assert wizard.state.step is Step.CONFIRM
        await pilot.press(*"h1", "enter")
        await settle(app, pilot)
        assert wizard.state.step is Step.DONE
        restores = list(app.board.jobs.values())
        assert [job.kind for job in restores] == ["check", "restore"]  # the dry run, the restore
        assert all(job.finished is not None and job.finished.ok for job in restores)
        (safety,) = [m for m in repo.list_backups()[0] if m.trigger == "pre-restore"]
        done = flat(shown(wizard, "#done-text"))
        assert f"From backup {manifest.id} onto their own hosts." in done
        assert f"The state before is kept in backup {safety.id}." in done
        await pilot.press("ctrl+n")  # Checklist: the post-restore checklist on this restore
        await settle(app, pilot)
        checklist = app.screen
        assert isinstance(checklist, ChecklistScreen)
        assert checklist.run.backup == manifest.id
        assert checklist.run.restore is not None
        assert checklist.run.restore["safety_backup"] == safety.id
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, BackupsScreen)
    assert target.read_bytes() == source.read_bytes()
    assert (repo.backup_dir(safety.id) / "db.out").read_bytes() == source.read_bytes()
    records = [json.loads(line) for line in (repo.path / "audit.jsonl").read_text().splitlines()]
    assert [record["action"] for record in records] == [
        "restore.validate",
        "restore.confirm",
        "restore.safety-backup",
        "restore.start",
        "restore.finish",
    ]
    assert all(record["backup"] == manifest.id for record in records)
    assert records[1]["confirmed"] == ["h1"]
    assert records[2]["safety_backup"] == safety.id
    assert records[4]["result"] == "ok"

"""The guided restore driven by keyboard through Pilot: a selective Mongo restore from the
dashboard against the Mongo wire server through the in-process SSH server, navigation that
keeps edits, Esc that applies nothing, advice instead of a restore, a skipped safety backup
that needs a reason, and snapshots of the plan and checks steps."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from consoles import console
from helpers import EventLog, command_source, make_config, stored_backup
from mongo_data import documents, mongo_config
from mongo_server import MongoServer
from sshd import SSHTestServer
from textual.pilot import Pilot
from textual.widgets import Checkbox, ContentSwitcher, Input, OptionList, SelectionList
from timing import pilot_until
from wizard_pilot import answer, choose, flat, next_button, open_wizard, run_checks, settle, shown

from engine.checklist.run import load_run
from engine.config.load import parse_config
from engine.config.model import Config
from engine.demo.server import InProcessSSHServer, SandboxKeys, write_known_hosts
from engine.jobs import BackupRequest, run_backup, run_verify
from engine.repo.manifest import Manifest
from engine.repo.repository import Repository, VerifyRecord
from tui.console.app import LifeboatApp
from tui.console.screens.checklist import ChecklistScreen
from tui.console.screens.dashboard import DashboardScreen
from tui.console.screens.wizard import QUIT_QUESTION, RestoreWizard
from tui.console.widgets.backup_picker import BackupPicker
from tui.console.wizard_state import Step

NOW = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
DUMP = b"INSERT 1;\n" * 500
BILLING = "app.mod_billing_invoices"
USERS = "app.users"


def seed_two(server: MongoServer) -> None:
    """A module's collection and one that belongs to nobody's module."""
    with server.client() as client:
        client.app.users.insert_many(
            [{"_id": i, "email": f"user{i}@example.com", "age": i % 90} for i in range(300)]
        )
        client.app.mod_billing_invoices.insert_many(
            [{"_id": i, "amount": i * 1.5, "paid": i % 2 == 0} for i in range(200)]
        )


def audit_records(repo: Repository) -> list[dict[str, object]]:
    return [json.loads(line) for line in (repo.path / "audit.jsonl").read_text().splitlines()]


def safety_backups(repo: Repository) -> list[Manifest]:
    return [m for m in repo.list_backups()[0] if m.trigger == "pre-restore"]


# -- (a) a whole run ---------------------------------------------------------------------------


async def test_selective_mongo_restore_from_the_dashboard(
    asyncssh_server: SSHTestServer, mongo: MongoServer, tmp_path: Path
) -> None:
    seed_two(mongo)
    billing = documents(mongo, BILLING)
    config = mongo_config(asyncssh_server, tmp_path, mongo)
    repo = Repository.open(config.repository.path)
    good = await run_backup(config, repo, BackupRequest(label="good"), EventLog().emit)
    assert (await run_verify(repo, good.id, EventLog().emit)).ok
    with mongo.client() as client:  # the module is removed, and users change meanwhile
        client.app.mod_billing_invoices.drop()
        client.app.users.delete_many({"age": {"$lt": 30}})
        client.app.users.insert_one({"_id": -1, "email": "new@example.com"})
    users_now = documents(mongo, USERS)
    assert documents(mongo, BILLING) == {}
    # A newer backup, never verified (and no Mongo archive): the wizard must not default to it.
    newer = good.created_at + timedelta(minutes=1)
    broken = stored_backup(repo, newer, {"mongo": b"not an archive"}, "broken")

    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await open_wizard(app, pilot)
        assert "Backup" in shown(wizard, "#steps")
        await choose(pilot, wizard, "module-removed")
        assert "Which namespaces were removed?" in flat(shown(wizard, "#question-text"))
        await answer(pilot, wizard, "app.mod_billing_*")

        assert wizard.state.step is Step.PLAN
        assert "Selective MongoDB restore" in shown(wizard, "#plan-text")
        assert wizard.query_one("#plan-sources", SelectionList).selected == ["mongo"]
        assert wizard.query_one("#plan-globs", Input).value == "app.mod_billing_*"
        await pilot.press("ctrl+n")

        assert wizard.state.step is Step.BACKUP
        backups = wizard.query_one("#backup-list", BackupPicker)
        assert backups.cursor == 1  # the newest *verified* backup
        listed = shown(wizard, "#backup-list").splitlines()
        assert len(listed) == 2
        assert listed[0].startswith(broken.id)
        assert listed[0].endswith("not verified  broken")
        assert listed[1].startswith(good.id)
        assert listed[1].endswith("verified  good")
        assert "not verified" not in listed[1]
        await pilot.press("enter")

        assert wizard.state.step is Step.TARGET
        assert shown(wizard, "#target-list") == "original hosts: h1"
        await run_checks(app, pilot, wizard)
        (check_job,) = app.board.jobs.values()
        assert check_job.finished is not None
        assert check_job.finished.ok
        assert [c for c in check_job.checks if c.status == "fail"] == []
        assert "Every check passed" in shown(wizard, "#checks-verdict")
        assert str(next_button(wizard).label) == "Continue"
        assert not next_button(wizard).disabled
        # The checks wrote nothing: the module is still gone, users still as changed.
        assert documents(mongo, BILLING) == {}
        assert documents(mongo, USERS) == users_now
        assert not (repo.path / "audit.jsonl").exists()
        assert safety_backups(repo) == []

        await pilot.press("enter")  # Continue
        assert wizard.state.step is Step.CONFIRM
        assert wizard.query_one("#confirm-name", Input).has_focus
        assert f"from {good.id} onto h1" in flat(shown(wizard, "#confirm-text"))
        await pilot.press(*"h1", "enter")
        await settle(app, pilot)

        assert wizard.state.step is Step.DONE
        assert wizard.query_one("#panes", ContentSwitcher).current == "pane-done"
        done = flat(shown(wizard, "#done-text"))
        assert "Restored mongo." in done
        assert f"From backup {good.id} onto their own hosts." in done
        assert "Namespaces: app.mod_billing_*" in done
        (safety,) = safety_backups(repo)
        assert f"The state before is kept in backup {safety.id}." in done
        assert str(next_button(wizard).label) == "Checklist"
        await pilot.press("escape")  # Esc still just closes
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)

    assert documents(mongo, BILLING) == billing  # the module's collection is back
    assert documents(mongo, USERS) == users_now  # and nothing else was touched
    assert safety.label == f"pre-restore-{good.id}"
    (artifact,) = safety.artifacts
    assert artifact.source == "mongo"
    assert USERS not in artifact.meta["namespaces"]  # it saved only what the restore overwrote
    actions = [(r["action"], r["backup"]) for r in audit_records(repo)]
    assert actions == [
        ("restore.validate", good.id),
        ("restore.confirm", good.id),
        ("restore.safety-backup", good.id),
        ("restore.start", good.id),
        ("restore.finish", good.id),
    ]


# -- (b) back and forward ----------------------------------------------------------------------

STAGING = (
    '[hosts.staging1]\naddress = "127.0.0.1"\nport = 1\n'
    "[targets.staging]\n"
    'description = "the staging cluster"\n'
    '[targets.staging.sources.mongo]\nhost = "staging1"\nuri = "mongodb://127.0.0.1:1/"\n'
)
MONGO = '[sources.mongo]\nkind = "mongo"\nhost = "h1"\nuri = "mongodb://127.0.0.1:27017/"\n'


def plain_config(tmp_path: Path, sources: str) -> Config:
    """A config whose hosts nobody answers on: enough for every step before the checks."""
    return parse_config(
        f'operator = "tester"\n[repository]\npath = {json.dumps(str(tmp_path / "repo"))}\n'
        '[hosts.h1]\naddress = "127.0.0.1"\nport = 1\n' + sources
    )


async def test_back_and_forward_keep_the_edits(tmp_path: Path) -> None:
    config = plain_config(tmp_path, MONGO + STAGING)
    repo = Repository.open(config.repository.path)
    older = stored_backup(
        repo, NOW - timedelta(days=1), {"mongo": b"m" * 100}, "older", mongo=("mongo",)
    )
    newer = stored_backup(repo, NOW, {"mongo": b"m" * 200}, "newer", mongo=("mongo",))
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await open_wizard(app, pilot)
        await choose(pilot, wizard, "module-removed")
        await answer(pilot, wizard, "app.mod_x_*")
        globs = wizard.query_one("#plan-globs", Input)
        assert globs.value == "app.mod_x_*"
        await pilot.press("tab")  # from the sources to the globs
        assert globs.has_focus
        await pilot.press("end", *" app.module_packages", "ctrl+n")

        assert wizard.state.step is Step.BACKUP
        backups = wizard.query_one("#backup-list", BackupPicker)
        assert backups.cursor == 0  # nothing verified: the newest
        await pilot.press("down", "enter")  # the older one instead
        assert wizard.state.step is Step.TARGET
        assert wizard.state.backup is not None
        assert wizard.state.backup.id == older.id
        await pilot.press("ctrl+b")  # back to the backups: the older one is still chosen
        assert wizard.state.step is Step.BACKUP
        assert backups.highlighted_id == older.id

        await pilot.press("ctrl+b")  # back to the plan: the typed globs are intact
        assert wizard.state.step is Step.PLAN
        assert globs.value == "app.mod_x_* app.module_packages"
        assert wizard.query_one("#plan-sources", SelectionList).selected == ["mongo"]
        await pilot.press("ctrl+b")  # back to the question: the answer is asked again
        assert wizard.state.step is Step.SCENARIO
        assert wizard.query_one("#answer", Input).has_focus
        await pilot.press("ctrl+b")  # and back to the first question
        assert wizard.query_one("#choices", OptionList).has_focus
        assert wizard.state.answers == {}
        await pilot.press("ctrl+b")  # nothing before the first question: it stays
        assert wizard.state.step is Step.SCENARIO
        assert wizard.query_one("#choices", OptionList).has_focus

        await choose(pilot, wizard, "module-removed")
        await answer(pilot, wizard, "app.mod_y_*")
        assert globs.value == "app.mod_y_*"  # a new answer makes a new plan
        await pilot.press("ctrl+n", "enter")
        assert wizard.state.step is Step.TARGET
        assert wizard.state.backup is not None
        assert wizard.state.backup.id == newer.id
        assert wizard.state.namespaces == ("app.mod_y_*",)
        targets = wizard.query_one("#target-list", OptionList)
        assert shown(wizard, "#target-list").splitlines() == [
            "original hosts: h1",
            "staging: the staging cluster",
        ]
        assert targets.highlighted == 0  # the original hosts by default
        await pilot.press("down", "enter")  # the staging target
        assert wizard.state.step is Step.CHECKS
        assert wizard.state.target == "staging"
        await settle(app, pilot)
        (job,) = app.board.jobs.values()
        assert job.scope == ("mongo",)
        await pilot.press("escape")


async def test_the_chosen_backup_survives_a_visit_to_the_plan(tmp_path: Path) -> None:
    config = plain_config(tmp_path, MONGO)
    repo = Repository.open(config.repository.path)
    older = stored_backup(repo, NOW - timedelta(days=1), {"mongo": b"m" * 100}, "older")
    stored_backup(repo, NOW, {"mongo": b"m" * 200}, "newer")
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await open_wizard(app, pilot)
        await choose(pilot, wizard, "mongo-lost")
        await pilot.press("ctrl+n", "down")  # the older backup
        await pilot.press("ctrl+b", "ctrl+n")  # to the plan and back, nothing changed
        assert wizard.query_one("#backup-list", BackupPicker).highlighted_id == older.id


async def test_a_drill_backup_is_never_the_default_and_the_step_says_why(
    tmp_path: Path,
) -> None:
    config = plain_config(tmp_path, MONGO)
    repo = Repository.open(config.repository.path)
    nightly = stored_backup(
        repo, NOW - timedelta(hours=6), {"mongo": b"m" * 100}, "nightly",
        trigger="schedule:nightly", mongo=("mongo",),
    )  # fmt: skip
    drill = stored_backup(
        repo, NOW - timedelta(hours=1), {"mongo": b"marker"}, "drill d1", trigger="drill",
        mongo=("mongo",),
    )  # fmt: skip
    for backup in (nightly, drill):
        repo.record_verify(VerifyRecord(backup.id, NOW.isoformat(), True))
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await open_wizard(app, pilot)
        await choose(pilot, wizard, "mongo-lost")
        await pilot.press("ctrl+n")
        await pilot_until(pilot, lambda: wizard.state.listed is not None, "the backups listed")
        await pilot.pause()
        backups = wizard.query_one("#backup-list", BackupPicker)
        assert backups.highlighted_id == nightly.id  # newer, but the drill's is passed over
        lines = shown(wizard, "#backup-list").splitlines()
        assert lines[0].startswith(drill.id)
        assert "drill, verified" in lines[0]
        assert "drill" not in lines[1].replace("drill d1", "")
        reason = wizard.query_one("#backup-reason")
        assert flat(shown(wizard, "#backup-reason")) == (
            f"Default {nightly.id}: the newest verified backup holding mongo (drill backups "
            "are never the default)."
        )
        assert reason.region.height > 0
        assert app.screen.region.contains_region(reason.region)  # on screen at 80x24
        await pilot.press("up", "enter")  # the drill's backup, chosen by hand: told what it is
        assert wizard.state.step is Step.BACKUP
        assert "is one of the drill backups" in shown(wizard, "#problem")
        await pilot.press("enter")  # and chosen again: allowed
        assert wizard.state.step is Step.TARGET
        assert wizard.state.backup is not None
        assert wizard.state.backup.id == drill.id


async def test_the_chosen_target_survives_going_back_from_the_checks(tmp_path: Path) -> None:
    config = plain_config(tmp_path, MONGO + STAGING)
    repo = Repository.open(config.repository.path)
    stored_backup(repo, NOW, {"mongo": b"m" * 200}, "newer")
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await open_wizard(app, pilot)
        await choose(pilot, wizard, "mongo-lost")
        await pilot.press("ctrl+n", "enter", "down", "enter")  # plan, backup, staging
        assert wizard.state.target == "staging"
        await settle(app, pilot)
        await pilot.press("ctrl+b")
        assert wizard.state.step is Step.TARGET
        targets = wizard.query_one("#target-list", OptionList)
        assert targets.get_option_at_index(targets.highlighted or 0).id == "staging"


async def test_space_toggles_the_first_source_on_the_plan(tmp_path: Path) -> None:
    config = plain_config(tmp_path, MONGO)
    stored_backup(Repository.open(config.repository.path), NOW, {"mongo": b"m"}, "one")
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await open_wizard(app, pilot)
        await choose(pilot, wizard, "mongo-lost")
        sources = wizard.query_one("#plan-sources", SelectionList)
        assert sources.has_focus
        assert sources.selected == ["mongo"]
        await pilot.press("space")
        assert sources.selected == []


# -- (c) Esc on the checks step ----------------------------------------------------------------


def command_config(server: SSHTestServer, tmp_path: Path, target: Path, **host: object) -> Config:
    return make_config(
        server,
        tmp_path / "repo",
        command_source("db", ["cat", "/nonexistent"], ["dd", f"of={target}", "status=none"]),
        **host,
    )


async def test_esc_after_the_checks_passed_applies_nothing(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    target = tmp_path / "restored.dump"
    config = command_config(asyncssh_server, tmp_path, target)
    repo = Repository.open(config.repository.path)
    stored_backup(repo, NOW, {"db": b"dump\n" * 100}, "nightly")
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        dashboard = app.screen
        wizard = await open_wizard(app, pilot)
        await choose(pilot, wizard, "other")
        await pilot.press("ctrl+n", "enter")  # plan, then the default backup
        await run_checks(app, pilot, wizard)
        assert "Every check passed" in shown(wizard, "#checks-verdict")
        assert next_button(wizard).has_focus
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.screen is dashboard
        (job,) = app.board.jobs.values()  # the checks only: no restore with apply
        assert job.kind == "check"
        assert job.finished is not None
        assert job.finished.ok
    assert not (repo.path / "audit.jsonl").exists()
    assert not target.exists()
    assert safety_backups(repo) == []


async def test_esc_while_the_checks_run_stops_them(tmp_path: Path) -> None:
    """The target's SSH port accepts and never answers: the checks hang there until Esc."""
    accepted: list[asyncio.StreamWriter] = []

    async def hang(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    silent = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    target = tmp_path / "restored.dump"
    config = parse_config(
        f'operator = "tester"\n[repository]\npath = {json.dumps(str(tmp_path / "repo"))}\n'
        f'[hosts.h1]\naddress = "127.0.0.1"\nport = {port}\nconnect_timeout = 120\n'
        + command_source("db", ["cat", "/nonexistent"], ["dd", f"of={target}"])
    )
    repo = Repository.open(config.repository.path)
    stored_backup(repo, NOW, {"db": b"dump\n" * 100}, "nightly")
    app = console(config, tmp_path)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            dashboard = app.screen
            wizard = await open_wizard(app, pilot)
            await choose(pilot, wizard, "other")
            await pilot.press("ctrl+n", "enter", "enter")  # plan, backup, target
            assert wizard.state.step is Step.CHECKS
            (job,) = app.board.jobs.values()
            await pilot_until(
                pilot,
                lambda: bool(accepted and any(c.name == "checksums" for c in job.checks)),
                "the checks to reach the silent host",
            )
            assert accepted
            assert job.finished is None  # still checking
            assert next_button(wizard).disabled
            await pilot.press("q")  # the checks change nothing: only the answers are lost
            assert str(getattr(app.screen, "question", "")) == QUIT_QUESTION
            await pilot.press("n")
            assert app.screen is wizard
            await pilot.press("escape")
            await settle(app, pilot)
            assert app.screen is dashboard
            assert job.finished is not None
            assert not job.finished.ok
            assert [c.name for c in job.checks] == ["backup", "checksums"]  # no ssh verdict
            assert "cancelled by the operator" in [entry.text for entry in app.board.log]
    finally:
        for writer in accepted:
            writer.close()
        silent.close()
        await silent.wait_closed()
    assert not (repo.path / "audit.jsonl").exists()


# -- (d) advice instead of a restore -------------------------------------------------------------


async def test_advice_shows_the_command_and_offers_no_restore(tmp_path: Path) -> None:
    config = plain_config(tmp_path, MONGO)
    stored_backup(Repository.open(config.repository.path), NOW, {"mongo": b"m"}, "one")
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        dashboard = app.screen
        wizard = await open_wizard(app, pilot)
        await choose(pilot, wizard, "controller-died")
        assert wizard.state.step is Step.SCENARIO
        assert wizard.query_one("#panes", ContentSwitcher).current == "pane-advice"
        advice = flat(shown(wizard, "#advice"))
        assert "fail over to the healthy peer" in advice
        assert "A healthy HA peer has all the data." in advice
        assert "Run instead: prexorctl cluster failover" in advice
        assert "• Check the peer first" in advice
        assert str(next_button(wizard).label) == "Close"
        assert wizard.state.recommendation is None  # no plan, nothing to restore
        await pilot.press("ctrl+b")  # back: the question again
        assert wizard.query_one("#panes", ContentSwitcher).current == "pane-question"
        assert str(next_button(wizard).label) == "Next"
        await choose(pilot, wizard, "controller-died")
        await pilot.press("ctrl+n")  # Close
        await pilot.pause()
        assert app.screen is dashboard
        assert app.board.jobs == {}


async def test_the_advice_heading_is_the_title(tmp_path: Path) -> None:
    app = console(plain_config(tmp_path, MONGO), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await open_wizard(app, pilot)
        await choose(pilot, wizard, "controller-died")
        assert shown(wizard, "#advice").splitlines()[0] == (
            "No restore: fail over to the healthy peer"
        )


# -- (e) skipping the safety backup ----------------------------------------------------------------


def over_a_file(server: SSHTestServer, tmp_path: Path) -> tuple[Path, Config, Manifest]:
    """A command source ``db`` that restores into a file holding other data, with a backup of
    ``DUMP`` (its backup command fails: so does a safety backup of it)."""
    target = tmp_path / "restored.dump"
    target.write_bytes(b"what was there before\n")
    config = command_config(server, tmp_path, target)
    backup = stored_backup(Repository.open(config.repository.path), NOW, {"db": DUMP}, "nightly")
    return target, config, backup


async def to_confirm(app: LifeboatApp, pilot: Pilot[None]) -> RestoreWizard:
    """Something else happened; the plan, backup and target as offered; the checks pass."""
    wizard = await open_wizard(app, pilot)
    await choose(pilot, wizard, "other")
    await pilot.press("ctrl+n", "enter")
    await run_checks(app, pilot, wizard)
    await pilot.press("enter")
    assert wizard.state.step is Step.CONFIRM
    return wizard


async def test_skipping_the_safety_backup_needs_a_reason_that_is_audited(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    target, config, backup = over_a_file(asyncssh_server, tmp_path)
    repo = Repository.open(config.repository.path)
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await to_confirm(app, pilot)
        reason = wizard.query_one("#skip-reason", Input)
        assert not reason.display
        await pilot.press("shift+tab")  # from the typed name to the safety checkbox
        assert wizard.query_one("#safety", Checkbox).has_focus
        await pilot.press("space")
        assert not wizard.query_one("#safety", Checkbox).value
        assert reason.display
        await pilot.press("tab", "tab")  # past the (empty) reason to the typed name
        assert wizard.query_one("#confirm-name", Input).has_focus
        await pilot.press(*"h1", "enter")
        assert "say why the safety backup is skipped" in shown(wizard, "#problem")
        assert reason.has_focus
        assert wizard.state.step is Step.CONFIRM
        assert len(app.board.jobs) == 1  # nothing started
        await pilot.press(*"disk full on h1", "enter")
        await settle(app, pilot)
        assert wizard.state.step is Step.DONE
        done = flat(shown(wizard, "#done-text"))
        assert "Restored db." in done
        assert "The state before is kept" not in done
        warnings = [e.text for e in app.board.log if e.level == "warning"]
        assert "safety backup skipped: disk full on h1" in warnings
    assert target.read_bytes() == DUMP
    assert safety_backups(repo) == []
    records = audit_records(repo)
    assert [r["action"] for r in records] == [
        "restore.validate",
        "restore.confirm",
        "restore.safety-backup",
        "restore.start",
        "restore.finish",
    ]
    skipped = records[2]
    assert skipped["backup"] == backup.id
    assert skipped["result"] == "skipped"
    assert skipped["reason"] == "disk full on h1"
    assert records[3]["safety_backup"] is None


async def test_a_failed_safety_backup_leads_back_to_confirm_not_to_a_checklist(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    """The source's backup command fails (``cat /nonexistent``), so the safety backup does:
    nothing is restored, Done says so without sending anyone to a checklist, and Back returns
    to Confirm, where skipping the safety backup with a reason restores."""
    target, config, _backup = over_a_file(asyncssh_server, tmp_path)
    repo = Repository.open(config.repository.path)
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await to_confirm(app, pilot)
        await pilot.press(*"h1", "enter")
        await settle(app, pilot)
        assert wizard.state.step is Step.DONE
        done = flat(shown(wizard, "#done-text"))
        assert "Nothing was restored: the safety backup failed." in done
        assert "✗ safety backup: db:" in done
        assert "db: db:" not in done  # the source is named once
        assert "--skip-safety-backup" not in done  # a CLI flag means nothing here
        assert "checklist" not in done
        assert "Back returns to Confirm" in done
        assert wizard.query_one("#back").display
        assert target.read_bytes() == b"what was there before\n"

        await pilot.press("ctrl+b")
        assert wizard.state.step is Step.CONFIRM
        await pilot.press("shift+tab", "space", "tab", *"the source is gone", "tab")
        await pilot.press(*"h1", "enter")
        await settle(app, pilot)
        assert wizard.state.step is Step.DONE
        assert "Restored db." in flat(shown(wizard, "#done-text"))
    assert target.read_bytes() == DUMP
    results = [r["result"] for r in audit_records(repo) if r["action"] == "restore.safety-backup"]
    assert results == ["failed", "skipped"]


async def test_enter_on_the_done_pane_opens_the_checklist(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    target = tmp_path / "restored.dump"
    config = command_config(asyncssh_server, tmp_path, target)
    repo = Repository.open(config.repository.path)
    backup = stored_backup(repo, NOW, {"db": b"dump\n"}, "nightly")
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        dashboard = app.screen
        wizard = await open_wizard(app, pilot)
        await choose(pilot, wizard, "other")
        await pilot.press("ctrl+n", "enter")
        await run_checks(app, pilot, wizard)
        await pilot.press("enter", "shift+tab", "space", "tab", *"test", "tab", *"h1", "enter")
        await settle(app, pilot)
        assert wizard.state.step is Step.DONE
        assert target.read_bytes() == b"dump\n"
        assert "Next: validate the result with the post-restore checklist" in flat(
            shown(wizard, "#done-text")
        )
        assert str(next_button(wizard).label) == "Checklist"
        await pilot.press("enter")  # the plan's checklist, on what was restored
        await settle(app, pilot)
        checklist = app.screen
        assert isinstance(checklist, ChecklistScreen)
        run = checklist.run
        assert (run.checklist, run.backup) == ("post-restore", backup.id)
        assert run.restore == {
            "sources": ["db"],
            "namespaces": [],
            "target": None,
            "hosts": ["h1"],
            "safety_backup": None,  # skipped
        }
        assert load_run(repo.path, run.id) == run
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is dashboard


# -- (f) snapshots ---------------------------------------------------------------------------------


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The console's clocks at NOW, as in test_tui_snapshots."""
    monkeypatch.setattr("engine.status.utc_now", lambda: NOW)
    monkeypatch.setattr("tui.format.current_time", lambda: NOW)


@pytest.fixture
def threaded_ssh(ssh_keys: SandboxKeys, tmp_path: Path) -> Iterator[SSHTestServer]:
    """The in-process asyncssh server on its own loop in a thread (a snapshot runs the app in
    a loop of its own), accepting any user name, so "reachable as operator" is the same on
    every machine."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = InProcessSSHServer(ssh_keys)
    asyncio.run_coroutine_threadsafe(server.start("127.0.0.1", 0), loop).result(30)
    known_hosts = tmp_path / "threaded_known_hosts"
    write_known_hosts(known_hosts, "127.0.0.1", server.port, ssh_keys.host_public_key)
    try:
        yield SSHTestServer(
            kind="asyncssh",
            address="127.0.0.1",
            port=server.port,
            user="operator",
            identity=ssh_keys.client_key,
            known_hosts=known_hosts,
            host_public_key=ssh_keys.host_public_key,
            drop=server.drop_connections,
        )
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def test_snapshot_plan_step(frozen: None, tmp_path: Path, snap_compare: Callable) -> None:
    config = plain_config(
        tmp_path,
        MONGO + '[sources.config]\nkind = "files"\nhost = "h1"\npaths = ["/etc/app"]\n',
    )
    repo = Repository.open(config.repository.path)
    stored_backup(repo, NOW - timedelta(hours=3), {"mongo": b"m" * 700, "config": b"c"}, "pre")
    app = LifeboatApp(config, repo, settings=tmp_path / "console.json")

    async def to_the_plan(pilot: Pilot[None]) -> None:
        wizard = await open_wizard(app, pilot)
        await choose(pilot, wizard, "module-removed")
        await answer(pilot, wizard, "app.mod_billing_*")
        assert wizard.state.step is Step.PLAN

    assert snap_compare(app, terminal_size=(80, 24), run_before=to_the_plan)


def test_snapshot_checks_step(
    frozen: None, threaded_ssh: SSHTestServer, tmp_path: Path, snap_compare: Callable
) -> None:
    """A command source: its checks (backup, checksums, ssh, tools, lock) read the same on
    every machine, unlike disk space or server versions."""
    config = command_config(threaded_ssh, tmp_path, Path("/nonexistent/restored.dump"))
    repo = Repository.open(config.repository.path)
    stored_backup(repo, NOW - timedelta(hours=3), {"db": b"dump\n" * 100}, "nightly")
    app = LifeboatApp(config, repo, settings=tmp_path / "console.json")

    async def to_the_checks(pilot: Pilot[None]) -> None:
        wizard = await open_wizard(app, pilot)
        await choose(pilot, wizard, "other")
        await pilot.press("ctrl+n", "enter")
        await run_checks(app, pilot, wizard)
        (job,) = app.board.jobs.values()
        assert [c.name for c in job.checks] == [  # fixed, though checksums and hosts run at once
            "backup",
            "checksums",
            "ssh h1",
            "tools h1",
            "lock h1",
        ]
        assert "Every check passed" in shown(wizard, "#checks-verdict")

    assert snap_compare(app, terminal_size=(80, 24), run_before=to_the_checks)

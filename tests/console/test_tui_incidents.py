"""The two incidents of issue 16, walked through at 80x24 on a fresh demo sandbox by keyboard
with every key counted: A, a Mongo collection dropped; B, the only etcd member killed (quorum
lost). Each ends in the data back and a signed-off checklist, with no dead end."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import etcd3
import pymongo
import pytest
from consoles import status_shown
from demo_console import Demo, Keys, answers, demo_console, kill_etcd
from textual.widgets import Checkbox, OptionList
from timing import pilot_until, until
from wizard_pilot import flat, settle, shown

from engine.checklist.run import ChecklistRun
from engine.config.sources import EtcdSourceConfig, MongoSourceConfig
from tui.console.app import LifeboatApp
from tui.console.screens.checklist import ChecklistScreen
from tui.console.screens.wizard import RestoreWizard
from tui.console.wizard_state import Step


async def open_wizard(keys: Keys, app: LifeboatApp) -> RestoreWizard:
    """``r`` on the dashboard, once it shows the status."""
    await status_shown(keys.pilot)
    await keys.press("r")
    wizard = app.screen
    assert isinstance(wizard, RestoreWizard)
    return wizard


async def choose(keys: Keys, wizard: RestoreWizard, value: str) -> None:
    """Arrow to the choice ``value`` of the question on screen and press Enter."""
    choices = wizard.query_one("#choices", OptionList)
    steps = choices.get_option_index(value) - (choices.highlighted or 0)
    await keys.press(*["down" if steps > 0 else "up"] * abs(steps), "enter")


DONE = ("passed", "ticked", "not_applicable")


def audit_records(demo: Demo) -> list[dict[str, object]]:
    lines = (demo.repo.path / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def etcd_keys(endpoint: str) -> int:
    host, port = endpoint.rsplit(":", 1)
    with etcd3.client(host=host, port=int(port), timeout=5) as client:
        return sum(1 for _ in client.get_all())


async def sign_off_and_export(keys: Keys, app: LifeboatApp) -> ChecklistRun:
    """From the Done step: open the offered checklist, let its automatic items run, tick the
    smoke deploy (the one manual item) with a note, sign off, export. Returns the run."""
    pilot = keys.pilot
    await keys.press("enter")  # Checklist
    await pilot_until(
        pilot,
        lambda: isinstance(app.screen, ChecklistScreen) and app.screen.is_mounted,
        "the checklist",
    )
    screen = app.screen
    assert isinstance(screen, ChecklistScreen)
    await settle(app, pilot)  # the automatic items ran
    run = screen.run
    assert run.checklist == "post-restore"
    open_items = [item.id for item in run.items if item.status not in DONE]
    assert open_items == ["smoke-deploy"], [(i.id, i.status, i.detail) for i in run.items]
    items = screen.query_one("#items", OptionList)
    assert items.highlighted == items.get_option_index("smoke-deploy")  # the one left to do
    await keys.press("t")
    await keys.type("ok")
    await keys.press("enter")
    await settle(app, pilot)
    await keys.press("s", "y")  # sign off, yes
    await settle(app, pilot)
    assert run.signoff is not None
    assert not [item for item in run.items if item.status == "waived"]
    await keys.press("e", "enter")  # export, to the name offered
    await settle(app, pilot)
    return run


def users(uri: str) -> list[dict[str, object]]:
    with pymongo.MongoClient(uri, directConnection=True) as client:
        return list(client.app.users.find().sort("_id"))


def drop_users(uri: str) -> None:
    with pymongo.MongoClient(uri, directConnection=True) as client:
        client.app.users.drop()


async def test_incident_a_a_collection_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where the report is exported
    async with demo_console(tmp_path / "demo") as demo:
        mongo = demo.config.sources["demo-mongo"]
        assert isinstance(mongo, MongoSourceConfig)
        uri = mongo.uri.get_secret_value()
        before = users(uri)
        assert before
        drop_users(uri)
        app = demo.app
        async with app.run_test(size=(80, 24)) as pilot:
            keys = Keys(pilot)
            wizard = await open_wizard(keys, app)
            await choose(keys, wizard, "module-removed")
            await keys.type("app.users")
            await keys.press("enter")
            assert wizard.state.step is Step.PLAN
            assert wizard.state.namespaces == ("app.users",)
            await keys.press("ctrl+n")
            await pilot_until(pilot, lambda: wizard.state.listed is not None, "the backups")
            await keys.press("enter", "enter")  # the default backup, the original host
            await settle(app, pilot)
            await keys.press("enter")
            assert wizard.state.step is Step.CONFIRM
            confirm = flat(shown(wizard, "#confirm-text"))
            assert "app.users: each collection is dropped and replaced" in confirm
            await keys.type("demo")
            await keys.press("enter")
            await settle(app, pilot)
            assert wizard.state.step is Step.DONE
            assert "Namespaces: app.users" in flat(shown(wizard, "#done-text"))
            assert await asyncio.to_thread(users, uri) == before
            restored_at = keys.count
            run = await sign_off_and_export(keys, app)
            print(f"incident A: {restored_at} keys to the data back, {keys.count} in all")
            assert keys.count <= 45
        report = (tmp_path / f"checklist-{run.id}.md").read_text()
        assert "- Restored: demo-mongo onto demo" in report
        assert "- Namespaces: app.users" in report
        start = [r for r in audit_records(demo) if r["action"] == "restore.start"]
        assert start[-1]["namespaces"] == {"demo-mongo": ["app.users"]}


async def test_incident_b_etcd_quorum_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with demo_console(tmp_path / "demo") as demo:
        etcd = demo.config.sources["demo-etcd"]
        assert isinstance(etcd, EtcdSourceConfig)
        backed_up = etcd_keys(etcd.endpoint)
        kill_etcd(demo)
        await until(lambda: not answers(etcd.endpoint), "the killed etcd to stop answering")
        app = demo.app
        async with app.run_test(size=(80, 24)) as pilot:
            keys = Keys(pilot)
            wizard = await open_wizard(keys, app)
            await choose(keys, wizard, "etcd-quorum-lost")
            assert wizard.state.sources == ("demo-etcd",)
            await keys.press("ctrl+n")  # the plan as offered
            await pilot_until(pilot, lambda: wizard.state.listed is not None, "the backups")
            await keys.press("enter", "enter")  # the default backup, the original host
            assert wizard.state.step is Step.CHECKS
            await settle(app, pilot)
            checks = flat(shown(wizard, "#checks-table"))
            assert f"etcd at {etcd.endpoint} does not answer" in checks
            await keys.press("enter")
            assert wizard.state.step is Step.CONFIRM
            confirm = flat(shown(wizard, "#confirm-text"))
            assert "is left in place: the snapshot is restored into a new directory" in confirm
            assert "What is there now is overwritten" not in confirm
            assert "demo-etcd does not answer, so it has nothing to save" in confirm
            assert not wizard.query_one("#safety", Checkbox).display
            assert wizard.query_one("#swap", Checkbox).value  # nothing runs: bring it back
            await keys.type("demo")
            await keys.press("enter")
            await settle(app, pilot)
            assert wizard.state.step is Step.DONE
            done = flat(shown(wizard, "#done-text"))
            assert "Restored demo-etcd." in done
            assert "demo-etcd on demo: etcd runs on the restored data" in done
            await until(lambda: answers(etcd.endpoint), "etcd to serve the restored data")
            assert await asyncio.to_thread(etcd_keys, etcd.endpoint) == backed_up
            restored_at = keys.count
            run = await sign_off_and_export(keys, app)
            print(f"incident B: {restored_at} keys to etcd serving its data, {keys.count} in all")
        passed = {item.id for item in run.items if item.status == "passed"}
        assert {"etcd-health", "etcd-keys"} <= passed

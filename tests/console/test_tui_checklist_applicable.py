"""The checklist screen after a restore: items bound to sources that were not restored are
shown as not applicable (dimmed, with the reason), are not run, and hold nothing up."""

from __future__ import annotations

from pathlib import Path

from checklists import checklists_toml, item, write_checklist
from helpers import config_text
from sshd import SSHTestServer
from textual.pilot import Pilot
from textual.widgets import OptionList
from timing import pilot_until
from wizard_pilot import flat, settle, shown

from engine.config.load import parse_config
from engine.repo.repository import Repository
from tui.console.app import LifeboatApp
from tui.console.screens.checklist import ChecklistScreen


async def highlight(pilot: Pilot[None], screen: ChecklistScreen, item_id: str) -> None:
    items = screen.query_one("#items", OptionList)
    steps = items.get_option_index(item_id) - (items.highlighted or 0)
    await pilot.press(*["down" if steps > 0 else "up"] * abs(steps))
    await pilot.pause()


async def test_items_of_sources_not_restored_are_shown_not_applicable(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    path = write_checklist(
        tmp_path,
        "after",
        item("command", "up", host="h1", argv=["echo", "READY"], stdout="READY"),
        item("etcd_keys", "keys", source="kv"),
        item("etcd_health", "health", source="{etcd}"),
        item("manual", "smoke", instruction="Deploy something.", note="required"),
    )
    sources = (
        '[sources.kv]\nkind = "etcd"\nhost = "h1"\nendpoint = "127.0.0.1:1"\n'
        '[sources.conf]\nkind = "files"\nhost = "h1"\npaths = ["/etc/hostname"]\n'
    )
    config = parse_config(
        config_text(asyncssh_server, tmp_path / "repo", sources) + checklists_toml([path])
    )
    app = LifeboatApp(
        config, Repository.open(config.repository.path), settings=tmp_path / "console.json"
    )
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_checklist(None, {"sources": ["conf"], "target": "h1"}, "after")
        await pilot_until(pilot, lambda: isinstance(app.screen, ChecklistScreen), "the run")
        screen = app.screen
        assert isinstance(screen, ChecklistScreen)
        await settle(app, pilot)  # the items that apply ran at once

        assert [line.split() for line in shown(screen, "#items").splitlines()] == [
            ["✓", "Check", "up", "PASSED"],
            ["-", "Check", "keys", "not", "applicable"],
            ["-", "Check", "health", "not", "applicable"],
            ["·", "Check", "smoke", "to", "tick"],
        ]
        run = screen.run
        assert [(s.id, s.status) for s in run.items] == [
            ("up", "passed"), ("keys", "not_applicable"), ("health", "not_applicable"),
            ("smoke", "pending"),
        ]  # fmt: skip
        assert screen.query_one("#items").border_subtitle == "1/2 done, 2 not applicable"
        assert flat(shown(screen, "#status")) == "1 required item(s) open: smoke"

        await highlight(pilot, screen, "health")
        evidence = flat(shown(screen, "#evidence-text"))
        assert "etcd_health · required · not applicable" in evidence
        assert (
            "not applicable: its source (checklists.values.etcd) is not set; the restore was of "
            "conf" in evidence
        )
        await pilot.press("a")  # not run on request either
        await pilot.pause()
        assert not screen.session.checking
        assert run.state("health").status == "not_applicable"
        await highlight(pilot, screen, "keys")
        await pilot.press("w")  # nothing to waive: no dialog
        await pilot.pause()
        assert app.screen is screen
        assert run.state("keys").status == "not_applicable"
        messages = [n.message for n in app._notifications]
        assert messages[-1] == (
            "keys: not applicable: kv was not restored (the restore was of conf); "
            "there is nothing to waive"
        )

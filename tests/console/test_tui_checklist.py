"""The validation checklist screen driven by keyboard through Pilot, against real peers: an HTTP
server and the in-process SSH server run the automatic items; waivers, ticks and the sign-off
are saved in the repository and audited; export; opening it from the picker, the backups
browser, the palette and resuming; snapshots of a stored run at 80x24 and 120x36."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from checklists import checklists_toml, item, write_checklist
from consoles import console
from helpers import config_text, stored_backup
from sshd import SSHTestServer
from textual.app import App
from textual.command import CommandList
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Label, OptionList
from timing import pilot_until
from wizard_pilot import flat, settle, shown

from engine.checklist.model import checklists_for
from engine.checklist.run import load_run, new_run, run_ids, save
from engine.checklist.session import ChecklistSession
from engine.config.load import parse_config
from engine.config.model import Config
from engine.repo import audit
from engine.repo.repository import Repository
from tui.console.app import LifeboatApp
from tui.console.screens.backups import BackupsScreen
from tui.console.screens.checklist import ChecklistScreen, open_checklist
from tui.console.screens.checklist_open import ChecklistPicker
from tui.console.screens.help import HelpScreen
from tui.console.screens.modals import ConfirmModal, TextModal

NOW = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)


def palette_offers(app: App[object], prompt: str) -> bool:
    """Whether the command palette's search has highlighted a command matching ``prompt``."""
    found = app.screen.query(CommandList)
    if not found or found.first().highlighted is None:
        return False
    commands = found.first()
    return prompt in str(commands.get_option_at_index(commands.highlighted or 0).prompt)


def notices(app: App[object]) -> list[str]:
    """The messages of the notifications shown so far (Textual keeps them on the app)."""
    return [notification.message for notification in app._notifications]


def option_labels(options: OptionList) -> list[str]:
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]


async def highlight(pilot: Pilot[None], screen: ChecklistScreen, item_id: str) -> None:
    """Move the cursor of the item list to ``item_id`` with the arrow keys."""
    items = screen.query_one("#items", OptionList)
    steps = items.get_option_index(item_id) - (items.highlighted or 0)
    await pilot.press(*["down" if steps > 0 else "up"] * abs(steps))
    await pilot.pause()


async def answer(pilot: Pilot[None], app: App[object], text: str) -> TextModal:
    """Type ``text`` (replacing what is there) into the open text dialog, press Enter, and let
    the change it makes be saved (in a worker)."""
    modal = app.screen
    assert isinstance(modal, TextModal)
    await pilot.press("ctrl+u", *text, "enter")
    await settle(app, pilot)
    return modal


async def now_showing(pilot: Pilot[None], kind: type[object]) -> object:
    """Wait for a screen of ``kind`` (a run or the picker opens from a worker), composed and
    mounted; return it. (On a busy machine a pushed screen may still be empty.)"""
    app = pilot.app
    await pilot_until(
        pilot,
        lambda: (
            isinstance(app.screen, kind) and app.screen.is_mounted and bool(app.screen.children)
        ),
        f"a {kind.__name__}",
    )
    await pilot.pause()
    return app.screen


# -- the whole run against real peers -------------------------------------------------------


def smoke_config(server: SSHTestServer, tmp_path: Path, base: str) -> Config:
    """Host h1 (the in-process SSH server) and a checklist "smoke" next to the built-in one."""
    path = write_checklist(
        tmp_path,
        "smoke",
        item("http", "ready", url=f"{base}/ready", body="controllers healthy"),
        item("command", "quorum", host="h1", argv=["sh", "-c", "echo no quorum; exit 4"]),
        item("command", "extra", host="h1", argv=["false"], required=False),
        item("manual", "deploy", instruction="Deploy to staging; note the id.", note="required"),
        title="Smoke checks",
    )
    return parse_config(config_text(server, tmp_path / "repo", "") + checklists_toml([path]))


async def test_run_waive_tick_sign_off_and_export_against_real_peers(
    asyncssh_server: SSHTestServer,
    http_server: tuple[str, list[str]],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIFEBOAT_OPERATOR", "alice")
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    monkeypatch.chdir(tmp_path)
    base, served = http_server
    config = smoke_config(asyncssh_server, tmp_path, base)
    repo = Repository.open(config.repository.path)
    backup = stored_backup(repo, NOW, {"db": b"dump\n"}, "nightly")
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        dashboard = app.screen
        app.action_checklist(backup.id)  # what the palette's "Validation checklist" does
        picker = await now_showing(pilot, ChecklistPicker)  # two checklists: which one?
        assert isinstance(picker, ChecklistPicker)
        assert option_labels(picker.query_one(OptionList)) == [
            "New run: After a restore: is it good? (post-restore)",
            "New run: Smoke checks (smoke)",
        ]
        await pilot.press("down", "enter")
        screen = await now_showing(pilot, ChecklistScreen)
        assert isinstance(screen, ChecklistScreen)
        run = screen.run
        assert (run.checklist, run.backup) == ("smoke", backup.id)
        assert run_ids(repo.path) == [run.id]  # saved as soon as it started
        await settle(app, pilot)  # the automatic items ran at once

        assert [line.split() for line in shown(screen, "#items").splitlines()] == [
            ["✓", "Check", "ready", "PASSED"],
            ["✗", "Check", "quorum", "FAILED"],
            ["✗", "Check", "extra", "(optional)", "FAILED"],
            ["·", "Check", "deploy", "to", "tick"],
        ]
        assert served == ["/ready"]
        assert f"backup {backup.id} (nightly)" in flat(shown(screen, "#about"))
        evidence = flat(shown(screen, "#evidence-text"))  # on the first item still open
        assert "`sh -c echo no quorum; exit 4` exited 4 evidence: no quorum" in evidence
        assert "w waives it with a reason" in evidence
        await highlight(pilot, screen, "ready")  # the evidence follows the cursor
        evidence = flat(shown(screen, "#evidence-text"))
        assert "Check ready http · required · PASSED at" in evidence
        assert "HTTP 200 evidence: HTTP 200 lifeboat-ready: all 3 controllers healthy" in evidence
        await highlight(pilot, screen, "quorum")
        stored = load_run(repo.path, run.id)
        assert [(i.id, i.status) for i in stored.items] == [
            ("ready", "passed"), ("quorum", "failed"), ("extra", "failed"), ("deploy", "pending"),
        ]  # fmt: skip
        assert flat(shown(screen, "#status")) == "2 required item(s) open: quorum, deploy"

        # Sign-off is refused, naming what is open; nothing is signed or audited.
        await pilot.press("s")
        assert app.screen is screen
        assert notices(app)[-1] == (
            "Not signed off: quorum is FAILED; deploy is to tick. Each required item must "
            "pass, be ticked, or be waived with a reason."
        )
        assert run.signoff is None
        assert not (repo.path / "audit.jsonl").exists()

        # A waiver needs a reason.
        await pilot.press("w")
        modal = await answer(pilot, app, "")
        assert app.screen is modal
        assert shown(modal, "#problem") == "a waiver needs a written reason"
        await answer(pilot, app, "quorum probe is wrong on staging, OPS-12")
        assert app.screen is screen
        assert run.state("quorum").status == "waived"
        assert "~ Check quorum" in shown(screen, "#items")
        assert "waived: quorum probe is wrong on staging, OPS-12" in flat(
            shown(screen, "#evidence-text")
        )

        # A manual item is ticked, not run; this one needs a note.
        await highlight(pilot, screen, "deploy")
        await pilot.press("a")
        assert notices(app)[-1] == "deploy is a manual item: t ticks it when done, w waives it"
        await pilot.press("t")
        modal = await answer(pilot, app, "   ")
        assert shown(modal, "#problem") == "this item needs a note saying what was seen"
        await answer(pilot, app, "deploy 4711 healthy")
        assert run.state("deploy").status == "ticked"
        assert load_run(repo.path, run.id).state("deploy").note == "deploy 4711 healthy"
        assert flat(shown(screen, "#status")) == (
            "every required item is done: s signs the run off"
        )

        # The sign-off names the signer; Yes signs and audits.
        await pilot.press("s")
        confirm = app.screen
        assert isinstance(confirm, ConfirmModal)
        question = flat(str(confirm.query_one(Label).content))
        assert f"Sign off run {run.id} (Smoke checks) as alice?" in question
        assert "Waived: quorum." in question
        await pilot.click("#yes")
        await settle(app, pilot)  # signed, saved and audited in a worker's thread
        assert app.screen is screen
        assert run.signoff is not None
        assert flat(shown(screen, "#status")).startswith("Signed off by alice on ")
        await pilot.press("t")  # a signed-off run does not change
        assert "signed off by alice" in notices(app)[-1]
        assert run.state("deploy").note == "deploy 4711 healthy"

        # Export: Markdown by default, JSON by the name; both 0600.
        await pilot.press("e")
        modal = app.screen
        assert isinstance(modal, TextModal)
        assert modal.query_one(Input).value == f"checklist-{run.id}.md"
        await pilot.press("enter")
        await settle(app, pilot)
        markdown = tmp_path / f"checklist-{run.id}.md"
        assert notices(app)[-1] == f"exported to {markdown}"
        await pilot.press("e")
        await answer(pilot, app, "run.json")
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is dashboard

    stored = load_run(repo.path, run.id)
    assert stored.signoff is not None
    assert stored.signoff.operator == "alice"
    assert stored.state("quorum").waiver == "quorum probe is wrong on staging, OPS-12"
    (entry,) = audit.entries(repo.path)
    assert entry["action"] == "checklist.signoff"
    assert (entry["operator"], entry["run"], entry["backup"]) == ("alice", run.id, backup.id)
    assert entry["waived"] == ["quorum: quorum probe is wrong on staging, OPS-12"]
    assert audit.verify(repo.path).ok
    report = markdown.read_text()
    assert report.startswith("# Smoke checks (smoke)\n")
    assert "| Check ready | PASSED | HTTP 200 |" in report
    assert "| Check quorum | WAIVED | waived: quorum probe is wrong on staging, OPS-12 |" in report
    assert "| Check extra (optional) | FAILED | `false` exited 1 |" in report
    assert "| Check deploy | DONE (manual) | deploy 4711 healthy |" in report
    assert "**Signed off** by alice on " in report
    assert json.loads((tmp_path / "run.json").read_text()) == stored.to_dict()
    for path in (markdown, tmp_path / "run.json"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


# -- opening: the browser, the palette, resuming ----------------------------------------------


def offline_config(tmp_path: Path) -> Config:
    """The built-in checklist only, with no values set: every automatic item fails at once
    ("not configured") without reaching any host."""
    return parse_config(
        f'operator = "tester"\n[repository]\npath = {json.dumps(str(tmp_path / "repo"))}\n'
        '[hosts.h1]\naddress = "127.0.0.1"\nport = 1\n'
    )


async def test_c_in_the_browser_starts_a_run_and_the_palette_resumes_it(tmp_path: Path) -> None:
    config = offline_config(tmp_path)
    repo = Repository.open(config.repository.path)
    older = stored_backup(repo, NOW - timedelta(days=1), {"db": b"old\n"}, "older")
    stored_backup(repo, NOW, {"db": b"new\n"}, "newer")
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("l")
        await settle(app, pilot)
        browser = app.screen
        assert isinstance(browser, BackupsScreen)
        await pilot.press("down", "c")  # one checklist, nothing to resume: a new run at once
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, ChecklistScreen)
        first = screen.run
        assert (first.checklist, first.backup) == ("post-restore", older.id)
        assert {i.status for i in first.items if i.kind != "manual"} == {"failed"}
        assert "not configured: set checklists.values.ready_url, checklists.values." in flat(
            shown(screen, "#evidence-text")
        )
        await pilot.press("question_mark")  # Help lists the screen's keys, shift+a too
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one(DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        keys = {str(key): str(does) for key, does in rows}
        assert keys["a"] == "Run the highlighted automatic item"
        assert keys["A"] == "Run every automatic item"
        assert keys["t"] == "Tick a manual item, with a note"
        assert keys["w"] == "Waive an item, with a reason"
        assert keys["s"] == "Sign the run off (audited)"
        assert keys["e"] == "Export as Markdown or JSON"
        await pilot.press("escape", "escape")
        await pilot.pause()
        assert app.screen is browser

        # Now a run is open: the palette's "Validation checklist" offers to resume it.
        await pilot.press("ctrl+p", *"Validation checklist")
        await pilot_until(
            pilot, lambda: palette_offers(app, "Validation checklist"), "the palette's search"
        )
        await pilot.press("enter")
        picker = await now_showing(pilot, ChecklistPicker)
        assert isinstance(picker, ChecklistPicker)
        assert option_labels(picker.query_one(OptionList)) == [
            "New run: After a restore: is it good? (post-restore)",
            f"Resume {first.id} post-restore, {len(first.blocking())} open",
        ]
        await pilot.press("down", "enter")
        resumed = await now_showing(pilot, ChecklistScreen)
        assert isinstance(resumed, ChecklistScreen)
        assert resumed.run == first
        assert not resumed.session.checking  # a resumed run is not run again by itself
        await highlight(pilot, resumed, "status")
        before = resumed.run.state("status").at
        await pilot.press("a")  # until asked to
        await settle(app, pilot)
        assert not resumed.session.checking
        again = load_run(repo.path, first.id).state("status")
        assert again.status == "failed"
        assert again.at != before


async def test_a_plan_naming_an_unknown_checklist_offers_the_configured_ones(
    tmp_path: Path,
) -> None:
    app = console(offline_config(tmp_path), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        open_checklist(app, None, {"sources": ["db"]}, "after-upgrade")
        picker = await now_showing(pilot, ChecklistPicker)
        assert isinstance(picker, ChecklistPicker)
        heading = flat(str(picker.query_one(Label).content))
        assert "The plan's checklist 'after-upgrade' is not configured: choose one." in heading
        await pilot.press("enter")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, ChecklistScreen)
        assert (screen.run.checklist, screen.run.restore) == ("post-restore", {"sources": ["db"]})


# -- snapshots -----------------------------------------------------------------------------


def stored_run_app(tmp_path: Path) -> tuple[LifeboatApp, Callable[[Pilot[None]], object]]:
    """A console and a step that opens a stored run (every status but running) on a backup."""
    path = write_checklist(
        tmp_path,
        "smoke",
        item("http", "ready", url="http://127.0.0.1:1/ready"),
        item("command", "status", host="h1", argv=["prexorctl", "status"]),
        item("command", "nodes", host="h1", argv=["prexorctl", "node", "list"], required=False),
        item("command", "probe", host="h1", argv=["probe"]),
        item("manual", "deploy", instruction="Deploy to staging; note the id.", note="required"),
        item("manual", "glance", instruction="Glance at the dashboard."),
        title="After the restore: smoke checks",
    )
    config = parse_config(
        f'operator = "tester"\n[repository]\npath = {json.dumps(str(tmp_path / "repo"))}\n'
        '[hosts.h1]\naddress = "127.0.0.1"\nport = 1\n' + checklists_toml([path])
    )
    repo = Repository.open(config.repository.path)
    backup = stored_backup(repo, NOW - timedelta(hours=3), {"db": b"dump\n"}, "nightly")
    loaded = checklists_for(config)["smoke"]
    run = new_run(loaded, backup.id, {"sources": ["db"], "target": None, "hosts": ["h1"]})
    run.id, run.started = "20261121T150500Z-ab12", "2026-11-21T15:05:00Z"
    states = {state.id: state for state in run.items}
    fill = {
        "ready": ("passed", "HTTP 200", ["HTTP 200", "ready: 3/3 controllers"], 0.42),
        "status": ("failed", "`prexorctl status` exited 3", ["controllers: 2/3"], 1.2),
        "nodes": ("passed", "`prexorctl node list` exited 0", ["node1 READY"], 0.8),
        "probe": ("waived", "`probe` exited 1", [], 0.1),
        "deploy": ("ticked", "", [], None),
    }
    for item_id, (status, detail, evidence, seconds) in fill.items():
        state = states[item_id]
        state.status, state.detail, state.evidence = status, detail, evidence
        state.at, state.seconds = "2026-11-21T15:05:03Z", seconds
    states["probe"].waiver = "probe retired, OPS-12"
    states["deploy"].note = "deploy 4711 healthy"
    save(repo, run)
    app = LifeboatApp(config, repo, settings=tmp_path / "console.json")

    async def open_it(pilot: Pilot[None]) -> None:
        session = ChecklistSession(config, repo, load_run(repo.path, run.id), loaded, backup)
        app.push_screen(ChecklistScreen(session, fresh=False))
        await pilot.pause()
        await pilot.press("down")  # the failed item: its evidence and what to do

    return app, open_it


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_stored_run(
    size: tuple[int, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    snap_compare: Callable[..., bool],
) -> None:
    monkeypatch.setattr("tui.format.current_time", lambda: NOW)
    app, open_it = stored_run_app(tmp_path)
    assert snap_compare(app, terminal_size=size, run_before=open_it)


async def test_leaving_while_items_run_keeps_them_as_not_run(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    path = write_checklist(
        tmp_path, "slow", item("command", "slow", host="h1", argv=["sleep", "20"], timeout=60)
    )
    config = parse_config(
        config_text(asyncssh_server, tmp_path / "repo", "") + checklists_toml([path])
    )
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        dashboard = app.screen
        app.action_checklist()
        await now_showing(pilot, ChecklistPicker)
        await pilot.press("down", "enter")  # the picker: post-restore, then slow
        screen = await now_showing(pilot, ChecklistScreen)
        assert isinstance(screen, ChecklistScreen)
        await pilot_until(
            pilot, lambda: screen.run.state("slow").status == "running", "the item to run"
        )
        assert "checking 1 automatic item(s)…" in shown(screen, "#status")
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.screen is dashboard
        assert "stopped 1 automatic item(s)" in notices(app)[-1]
        (run_id,) = run_ids(config.repository.path)
        assert load_run(config.repository.path, run_id).state("slow").status == "pending"

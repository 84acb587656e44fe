"""The restore wizard's state cannot leak (issue 16, item 4): leaving it for another mode asks
and closes it for good (a mode keeps its own screen stack, so a wizard left open there came
back, half filled, under that mode's key), ``q`` inside it asks, and a box's state reads
without colour."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from consoles import console
from helpers import stored_backup
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Label
from timing import pilot_until
from wizard_pilot import answer, choose, flat, open_wizard, shown

from engine.config.load import parse_config
from engine.config.model import Config
from engine.repo.repository import Repository
from tui.console.app import LifeboatApp
from tui.console.screens.dashboard import DashboardScreen
from tui.console.screens.modals import ConfirmModal
from tui.console.screens.wizard import LEAVE_QUESTION, QUIT_QUESTION, RestoreWizard
from tui.console.widgets.ticks import TickBox, TickList
from tui.console.wizard_state import Step

NOW = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
SOURCES = (
    '[sources.mongo]\nkind = "mongo"\nhost = "h1"\nuri = "mongodb://127.0.0.1:27017/"\n'
    '[sources.config]\nkind = "files"\nhost = "h1"\npaths = ["/etc/app"]\n'
)


def two_sources(tmp_path: Path) -> Config:
    """Mongo and files on a host nobody answers on: enough for every step before the checks."""
    config = parse_config(
        f'operator = "tester"\n[repository]\npath = {json.dumps(str(tmp_path / "repo"))}\n'
        '[hosts.h1]\naddress = "127.0.0.1"\nport = 1\n' + SOURCES
    )
    repo = Repository.open(config.repository.path)
    stored_backup(repo, NOW, {"mongo": b"m" * 100, "config": b"c"}, "nightly")
    return config


async def to_the_plan(app: LifeboatApp, pilot: Pilot[None]) -> RestoreWizard:
    """``r`` on the dashboard, a module removed: the plan, Mongo ticked and config not."""
    wizard = await open_wizard(app, pilot)
    await choose(pilot, wizard, "module-removed")
    await answer(pilot, wizard, "app.mod_billing_*")
    assert wizard.state.step is Step.PLAN
    assert wizard.state.sources == ("mongo",)
    return wizard


async def asked(app: LifeboatApp, pilot: Pilot[None], question: str) -> ConfirmModal:
    await pilot_until(
        pilot,
        lambda: isinstance(app.screen, ConfirmModal) and bool(app.screen.query(Label)),
        "a question",
    )
    modal = app.screen
    assert isinstance(modal, ConfirmModal)
    assert flat(str(modal.query_one(Label).content)) == question
    return modal


def wizards(app: LifeboatApp) -> list[RestoreWizard]:
    """Every wizard on any mode's screen stack."""
    stacks = app._screen_stacks.values()
    return [screen for stack in stacks for screen in stack if isinstance(screen, RestoreWizard)]


async def test_leaving_the_wizard_asks_and_it_never_comes_back_half_filled(
    tmp_path: Path,
) -> None:
    app = console(two_sources(tmp_path), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await to_the_plan(app, pilot)
        await pilot.press("l")
        await asked(app, pilot, LEAVE_QUESTION)
        await pilot.press("escape")  # No: the wizard as it was
        await pilot_until(pilot, lambda: app.screen is wizard, "the wizard again")
        assert app.current_mode == "dashboard"
        assert wizard.state.step is Step.PLAN

        await pilot.press("l")
        await asked(app, pilot, LEAVE_QUESTION)
        await pilot.click("#yes")
        await pilot_until(pilot, lambda: app.current_mode == "backups", "the browser")
        assert wizards(app) == []
        await pilot_until(  # on a busy machine a key pressed before the browser is mounted is lost
            pilot, lambda: app.screen.is_mounted and app.focused is not None, "the browser's focus"
        )

        await pilot.press("d")  # the dashboard, not the wizard left half filled
        await pilot_until(pilot, lambda: app.current_mode == "dashboard", "the dashboard")
        assert isinstance(app.screen, DashboardScreen)
        assert wizards(app) == []
        await pilot.press("r")  # then "down enter" ticked another source in the old plan
        await pilot_until(pilot, lambda: isinstance(app.screen, RestoreWizard), "a new wizard")
        fresh = app.screen
        assert isinstance(fresh, RestoreWizard)
        assert fresh is not wizard
        assert fresh.state.step is Step.SCENARIO
        assert fresh.state.answers == {}


async def test_the_palette_and_another_wizard_ask_too(tmp_path: Path) -> None:
    app = console(two_sources(tmp_path), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await to_the_plan(app, pilot)
        app.go_to("dashboard")  # "Go to dashboard": the mode under the wizard
        await asked(app, pilot, LEAVE_QUESTION)
        await pilot.click("#yes")
        await pilot_until(pilot, lambda: isinstance(app.screen, DashboardScreen), "dashboard")
        assert wizards(app) == []

        wizard = await to_the_plan(app, pilot)
        app.action_restore_wizard()  # "Restore" in the palette, a wizard open already
        await asked(app, pilot, LEAVE_QUESTION)
        await pilot.click("#yes")
        await pilot_until(pilot, lambda: isinstance(app.screen, RestoreWizard), "a new wizard")
        assert wizards(app) == [app.screen]
        assert app.screen is not wizard


async def test_q_in_the_wizard_asks(tmp_path: Path) -> None:
    app = console(two_sources(tmp_path), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await to_the_plan(app, pilot)
        await pilot.press("q")
        await asked(app, pilot, QUIT_QUESTION)
        await pilot.press("escape")  # No
        await pilot_until(pilot, lambda: app.screen is wizard, "the wizard again")
        assert not app._exit
        assert wizard.state.step is Step.PLAN
        await pilot.press("q")
        await asked(app, pilot, QUIT_QUESTION)
        await pilot.click("#yes")
        await pilot_until(pilot, lambda: app._exit, "the console quitting")


async def test_a_ticked_and_an_unticked_source_differ_in_plain_text(tmp_path: Path) -> None:
    app = console(two_sources(tmp_path), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await to_the_plan(app, pilot)
        rows = shown(wizard, "#plan-sources").splitlines()
        assert rows[:2] == ["▐X▌ mongo  mongo on h1", "▐ ▌ config  files on h1"]
        await pilot.press("space", "down", "space")  # mongo unticked, config ticked
        await pilot_until(
            pilot,
            lambda: (
                shown(wizard, "#plan-sources").splitlines()[:2]
                == ["▐ ▌ mongo  mongo on h1", "▐X▌ config  files on h1"]
            ),
            "the boxes swapped",
        )
        assert wizard.query_one(TickList).selected == ["config"]


class OneBox(App[None]):
    def compose(self) -> ComposeResult:
        yield TickBox("Take a safety backup of the target first", True, id="safety")


async def test_a_checkbox_reads_without_colour() -> None:
    app = OneBox()
    async with app.run_test(size=(60, 3)) as pilot:
        box = app.query_one(TickBox)
        assert shown(app.screen, "#safety").startswith("▐X▌ Take a safety backup")
        box.value = False
        await pilot_until(
            pilot, lambda: shown(app.screen, "#safety").startswith("▐ ▌ Take"), "the empty box"
        )

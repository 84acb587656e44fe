"""The Drills screen through Pilot: run a real drill over the in-process SSH server, see the
tested recovery procedure, its history, and the tier's measured RTO on the dashboard."""

from __future__ import annotations

from pathlib import Path

from consoles import status_shown
from helpers import files_source, make_config
from sshd import SSHTestServer
from textual.widgets import DataTable
from timing import pilot_until
from wizard_pilot import settle, shown

from engine.drill import history
from engine.repo.repository import Repository
from tui.console.app import LifeboatApp
from tui.console.screens.drills import DrillsScreen
from tui.console.screens.modals import TypedConfirmModal
from tui.console.widgets.tier_card import TierCard


async def test_a_drill_run_from_the_drills_screen_shows_its_rto(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "etc").mkdir(parents=True)
    (data / "etc" / "app.toml").write_text("listen = 1\n")
    sources = files_source("cfg", data / "etc") + "drill = true\n"
    sources += '[tiers.config]\nrpo = "24h"\nrto = "30m"\nsources = ["cfg"]\n'
    config = make_config(asyncssh_server, tmp_path / "repo", sources)
    app = LifeboatApp(config, Repository.open(config.repository.path), settings=tmp_path / "s")
    async with app.run_test(size=(80, 24)) as pilot:
        await status_shown(pilot)
        card = app.screen.query_one("#tier-config", TierCard)
        assert "RTO 30m: never drilled" in str(card.render())
        await pilot.press("D")
        screen = app.screen
        assert isinstance(screen, DrillsScreen)
        assert "no drill has run yet" in shown(screen, "#no-drills")

        await pilot.press("n")
        assert isinstance(app.screen, TypedConfirmModal)
        await pilot.press(*"h2", "enter")  # a wrong name starts nothing
        assert isinstance(app.screen, TypedConfirmModal)
        await pilot.press(*["backspace"] * 2, *"h1", "enter")
        await settle(app, pilot)

        (record,) = history.load(app.repository.path)
        assert record.passed, record.problems
        assert app.screen is screen
        table = screen.query_one("#procedures", DataTable)
        assert table.row_count == 1
        row = [str(cell) for cell in table.get_row_at(0)]
        assert row[0] == "PASSED"
        assert row[3] == "1 of 1"
        assert row[4] == "restore cfg in place"
        text = shown(screen, "#history-text")
        assert "markers cfg: 10 of 10" in text
        assert f"backup {record.backup_id}" in text
        assert "tier config: RTO 30m, met" in text

        await pilot.press("d")
        card = app.screen.query_one("#tier-config", TierCard)
        await pilot_until(pilot, lambda: card.status.last_drill is not None, "the drill shown")
        assert "RTO 30m: drill " in str(card.render())
        assert "OVER" not in str(card.render())


async def test_a_drill_with_nothing_flagged_says_why_and_starts_nothing(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    config = make_config(asyncssh_server, tmp_path / "repo", files_source("cfg", tmp_path))
    app = LifeboatApp(config, Repository.open(config.repository.path), settings=tmp_path / "s")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("D", "n")
        await pilot.pause()
        assert isinstance(app.screen, DrillsScreen)
        assert not app.board.jobs
        assert any("no source is flagged for drills" in n.message for n in app._notifications)

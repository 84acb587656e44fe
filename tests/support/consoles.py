"""A console on a config's repository, for Pilot tests, and a wait for its dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from timing import pilot_until

from engine.config.model import Config
from engine.repo.repository import Repository
from tui.console.app import LifeboatApp
from tui.console.screens.dashboard import DashboardScreen


def console(config: Config, tmp_path: Path) -> LifeboatApp:
    repo = Repository.open(config.repository.path)
    return LifeboatApp(config, repo, settings=tmp_path / "console.json")


async def status_shown(pilot: Pilot[Any]) -> DashboardScreen:
    """Until the dashboard on screen shows the status its thread gathered first."""
    dashboard = pilot.app.screen
    assert isinstance(dashboard, DashboardScreen)
    await pilot_until(pilot, lambda: dashboard.report is not None, "the dashboard's status")
    await pilot.pause()  # the tier cards it mounted
    return dashboard

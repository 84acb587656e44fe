"""Driving the guided restore (tui/screens/wizard.py) through Pilot, by keyboard: what a widget
shows, answering a question, waiting for the console's jobs."""

from __future__ import annotations

import contextlib

from textual.app import App
from textual.geometry import Region
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, OptionList
from textual.worker import WorkerCancelled, WorkerFailed
from timing import pilot_until

from tui.console.screens.dashboard import DashboardScreen
from tui.console.screens.wizard import RestoreWizard
from tui.console.wizard_state import Step


def shown(screen: Screen[object], selector: str) -> str:
    """What the widget ``selector`` paints right now (inside any border), as plain text."""
    widget: Widget = screen.query_one(selector)
    width, height = widget.outer_size
    lines = [strip.text for strip in widget.render_lines(Region(0, 0, width, height))]
    if widget.styles.border_top[0]:
        lines = [line[1:-1] for line in lines[1:-1]]
    return "\n".join(line.strip() for line in lines)


async def open_wizard(app: App[object], pilot: Pilot[object]) -> RestoreWizard:
    """``r`` on the dashboard: the wizard, on its first question."""
    assert isinstance(app.screen, DashboardScreen)
    await pilot.press("r")
    await pilot_until(pilot, lambda: isinstance(app.screen, RestoreWizard), "the wizard")
    wizard = app.screen
    assert isinstance(wizard, RestoreWizard)
    assert wizard.state.step is Step.SCENARIO
    return wizard


def next_button(wizard: RestoreWizard) -> Button:
    return wizard.query_one("#next", Button)


async def settle(app: App[object], pilot: Pilot[object]) -> None:
    """Let every worker (the console's jobs) finish and the screen catch up."""
    await pilot.pause()
    while busy := [worker for worker in app.workers if not worker.is_finished]:
        with contextlib.suppress(WorkerFailed, WorkerCancelled):  # a failure is the app's to show
            await app.workers.wait_for_complete(busy)
        await pilot.pause()


async def choose(pilot: Pilot[object], wizard: RestoreWizard, value: str) -> None:
    """Answer the question on screen with the choice ``value``: arrow to it, Enter."""
    choices = wizard.query_one("#choices", OptionList)
    assert choices.has_focus
    assert choices.highlighted is not None
    steps = choices.get_option_index(value) - choices.highlighted
    await pilot.press(*["down" if steps > 0 else "up"] * abs(steps), "enter")
    await pilot.pause()


async def answer(pilot: Pilot[object], wizard: RestoreWizard, text: str) -> None:
    """Type ``text`` into the free-text question on screen and press Enter."""
    assert wizard.query_one("#answer").has_focus
    await pilot.press(*text, "enter")
    await pilot.pause()


async def run_checks(app: App[object], pilot: Pilot[object], wizard: RestoreWizard) -> None:
    """On the target step: Enter takes the highlighted target and runs the checks to the end."""
    assert wizard.state.step is Step.TARGET
    await pilot.press("enter")
    assert wizard.state.step is Step.CHECKS
    await settle(app, pilot)


def flat(text: str) -> str:
    """``text`` with every run of whitespace (wrapped lines, table padding) as one space."""
    return " ".join(text.split())

"""Every key that works is in the footer or in `?` (issue 16, item 10); the header names the
config and its environment."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from consoles import console
from helpers import stored_backup
from textual.content import Content
from textual.pilot import Pilot
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Input, OptionList
from textual.widgets._footer import FooterKey
from textual.widgets._header import HeaderTitle
from textual.widgets._toast import Toast
from timing import pilot_until

from engine.config.load import load_config, parse_config
from engine.repo.repository import Repository
from tui.console.app import LifeboatApp
from tui.console.keys import MOVES, ours, shown_widgets
from tui.console.screens.backups import BackupsScreen
from tui.console.screens.checklist import ChecklistScreen
from tui.console.screens.checklist_open import ChecklistPicker
from tui.console.screens.dashboard import DashboardScreen
from tui.console.screens.drills import DrillsScreen
from tui.console.screens.help import HelpScreen
from tui.console.screens.modals import (
    BackupModal,
    ConfirmModal,
    TextModal,
    TypedConfirmModal,
    wrapped,
)
from tui.console.screens.wizard import RestoreWizard

NOW = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)


def offline_app(tmp_path: Path, top: str = "") -> LifeboatApp:
    """A console on a config file with one host nobody answers on, and one backup."""
    path = tmp_path / "lifeboat.toml"
    path.write_text(
        f'operator = "tester"\n{top}[repository]\npath = {json.dumps(str(tmp_path / "repo"))}\n'
        '[hosts.h1]\naddress = "127.0.0.1"\nport = 1\n'
        '[sources.db]\nkind = "command"\nhost = "h1"\nbackup = ["x"]\n'
        '[tiers.data]\nrpo = "1h"\nrto = "15m"\nsources = ["db"]\n'
    )
    config = load_config(path)
    stored_backup(Repository.open(config.repository.path), NOW, {"db": b"dump\n"}, "nightly")
    return console(config, tmp_path)


async def go(pilot: Pilot[Any], open_it: Callable[[LifeboatApp], object], kind: type) -> Screen:
    app = pilot.app
    assert isinstance(app, LifeboatApp)
    open_it(app)
    await pilot_until(pilot, lambda: isinstance(app.screen, kind), kind.__name__)
    await pilot.pause()
    return app.screen


SCREENS: dict[str, tuple[Callable[[LifeboatApp], object], type]] = {
    "dashboard": (lambda app: None, DashboardScreen),
    "browser": (lambda app: app.go_to("backups"), BackupsScreen),
    "drills": (lambda app: app.go_to("drills"), DrillsScreen),
    "checklist": (
        lambda app: app.open_checklist(next(app.repository.iter_backups()).id),
        ChecklistScreen,
    ),
    "wizard": (lambda app: app.action_restore_wizard(), RestoreWizard),
}


def working_keys(app: LifeboatApp, screen: Screen[Any]) -> dict[str, str]:
    """Every key that does something on ``screen`` (as shown, e.g. "?"), with what: the
    focused widget's, the screen's and the App's (Textual's included), and every binding the
    console's own widgets shown on the screen declare, whether focused or not."""
    found: dict[str, str] = {}
    for key, active in screen.active_bindings.items():
        found.setdefault(app.get_key_display(active.binding), f"{key}: {active.binding.action}")
    for widget in shown_widgets(screen):
        for binding in ours(widget):
            found.setdefault(app.get_key_display(binding), f"{binding.key}: {binding.action}")
    return found


async def help_keys(pilot: Pilot[Any], app: LifeboatApp) -> set[str]:
    """The keys the `?` screen lists: arrows one by one, and "^" in the moves' row meaning
    each of them with Ctrl too."""
    app.action_help()
    await pilot_until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
    await pilot.pause()
    table = app.screen.query_one(DataTable)
    listed: set[str] = set()
    for index in range(table.row_count):
        keys, does = map(str, table.get_row_at(index))
        tokens = keys.split()
        if does != MOVES:
            listed.update(tokens)
            continue
        moves = {c for token in tokens if token[0] in "↑↓←→" for c in token}
        moves |= {token for token in tokens if token[0] not in "↑↓←→^"}
        listed |= moves | ({f"^{move}" for move in moves} if "^" in tokens else set())
    await pilot.press("escape")
    return listed


@pytest.mark.parametrize("name", list(SCREENS))
async def test_every_working_key_is_in_the_footer_or_the_help(name: str, tmp_path: Path) -> None:
    app = offline_app(tmp_path)
    open_it, kind = SCREENS[name]
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await go(pilot, open_it, kind)
        screen.set_focus(None)  # `?` is a key an input takes: Help opens from the palette too
        await pilot.pause()
        working = working_keys(app, screen)
        footer = {key.key_display for key in screen.query(FooterKey)}
        listed = await help_keys(pilot, app)
        await pilot_until(pilot, lambda: app.screen is screen, "the help to close")
        missing = {shown: what for shown, what in working.items() if shown not in footer | listed}
        assert not missing, f"keys in neither the footer nor `?` on the {name}: {missing}"
        assert "?" in footer  # where to find the rest


DIALOGS: dict[str, Callable[[], ModalScreen[Any]]] = {
    "backup": lambda: BackupModal(("db",)),
    "confirm": lambda: ConfirmModal("Quit anyway?"),
    "typed": lambda: TypedConfirmModal("Delete it?", "20261121T150000Z"),
    "text": lambda: TextModal("Why?", verb="Waive"),
    "checklist picker": lambda: ChecklistPicker("Validation checklist", [("new:a", "New run")]),
    "help": HelpScreen,
}


@pytest.mark.parametrize("name", list(DIALOGS))
async def test_a_dialog_shows_its_own_keys_in_its_footer(name: str, tmp_path: Path) -> None:
    """Over a dialog `?` is not there (it is typed, or nothing): its footer shows its keys."""
    app = offline_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        dialog = DIALOGS[name]()
        app.push_screen(dialog)
        await pilot_until(pilot, lambda: app.screen is dialog, "the dialog")
        await pilot.pause()
        footer = {key.key_display for key in dialog.query(FooterKey)}
        for binding in ours(dialog):
            assert app.get_key_display(binding) in footer, (binding.key, footer)


async def test_help_lists_export_on_the_checklist(tmp_path: Path) -> None:
    app = offline_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        open_it, kind = SCREENS["checklist"]
        await go(pilot, open_it, kind)
        assert "e" in await help_keys(pilot, app)


@pytest.mark.parametrize("environment", [None, "production"])
async def test_the_header_names_the_config_and_the_environment(
    tmp_path: Path, environment: str | None
) -> None:
    top = f'environment = "{environment}"\n' if environment else ""
    app = offline_app(tmp_path, top)
    async with app.run_test(size=(120, 24)) as pilot:
        for name in ("dashboard", "drills", "wizard"):
            open_it, kind = SCREENS[name]
            screen = await go(pilot, open_it, kind)
            text = screen.query_one(HeaderTitle).render()
            assert isinstance(text, Content)
            assert text.plain.endswith(f"  {tmp_path / 'lifeboat.toml'}"), text.plain
            assert text.plain.startswith(f" {environment} ") == bool(environment), text.plain


async def test_without_a_config_file_the_header_names_the_repository(tmp_path: Path) -> None:
    config = parse_config(f"[repository]\npath = {json.dumps(str(tmp_path / 'repo'))}\n")
    app = console(config, tmp_path)
    async with app.run_test(size=(120, 24)) as pilot:
        await pilot.pause()
        text = app.screen.query_one(HeaderTitle).render()
        assert isinstance(text, Content)
        assert text.plain == f"Lifeboat  repository {tmp_path / 'repo'}"


async def test_ctrl_c_in_the_console_stops_nothing_and_says_what_does(tmp_path: Path) -> None:
    app = offline_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+c")
        said = lambda: [str(n.message) for n in app._notifications]  # noqa: E731, SLF001
        await pilot_until(pilot, lambda: bool(said()), "what Ctrl+C says")
        assert said() == ["Ctrl+C stops nothing here: q quits (asking first while jobs run)"]
        assert app.is_running


# -- error toasts --------------------------------------------------------------------------


def error_toasts(app: LifeboatApp) -> list[str]:
    return [str(n.message) for n in app._notifications if n.severity == "error"]  # noqa: SLF001


async def test_an_export_error_goes_when_an_export_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = offline_app(tmp_path)
    lasting(app, monkeypatch)
    async with app.run_test(size=(80, 24)) as pilot:
        open_it, kind = SCREENS["checklist"]
        screen = await go(pilot, open_it, kind)

        async def export(to: Path) -> None:
            await pilot.press("e")
            await pilot_until(pilot, lambda: isinstance(app.screen, TextModal), "the question")
            app.screen.query_one(Input).value = str(to)
            await pilot.press("enter")
            await pilot_until(pilot, lambda: app.screen is screen, "the answer")

        await export(tmp_path)  # a directory
        await pilot_until(pilot, lambda: bool(error_toasts(app)), "the error toast")
        assert error_toasts(app) == [f"{tmp_path} is a directory: name a file"]
        await export(tmp_path / "run.md")
        await pilot_until(pilot, lambda: not error_toasts(app), "the error toast to go")
        assert (tmp_path / "run.md").is_file()


def lasting(app: LifeboatApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """Error toasts that outlast any test: one that goes went because its cause did."""
    notify_problem = app.notify_problem
    monkeypatch.setattr(
        app, "notify_problem", lambda *args, **kw: notify_problem(*args, **{**kw, "timeout": 3600})
    )


async def test_a_refused_sign_off_goes_when_the_open_items_are_waived(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = offline_app(tmp_path)
    lasting(app, monkeypatch)
    async with app.run_test(size=(80, 24)) as pilot:
        open_it, kind = SCREENS["checklist"]
        screen = await go(pilot, open_it, kind)
        assert isinstance(screen, ChecklistScreen)
        run = screen.session.run
        await pilot_until(pilot, lambda: not screen.session.checking, "the automatic items")
        await pilot.press("s")
        await pilot_until(pilot, lambda: bool(error_toasts(app)), "the refusal")
        assert error_toasts(app)[0].startswith("Not signed off: ")
        items = screen.query_one("#items", OptionList)
        for state in run.blocking():
            items.highlighted = items.get_option_index(state.id)
            await pilot.press("w")
            await pilot_until(pilot, lambda: isinstance(app.screen, TextModal), "the reason")
            await pilot.press(*"not in this test", "enter")
            waived = lambda state=state: state.status == "waived"  # noqa: E731
            await pilot_until(pilot, waived, f"{state.id} waived")
            assert app.screen is screen
        await pilot_until(pilot, lambda: not error_toasts(app), "the refusal to go")


async def test_an_error_goes_when_its_condition_clears(tmp_path: Path) -> None:
    app = offline_app(tmp_path)
    busy = [True]
    async with app.run_test(size=(80, 24)) as pilot:
        app.notify_problem(
            "a verify is running: wait for it", cause="x", still=lambda: busy[0], timeout=3600
        )
        await pilot_until(pilot, lambda: bool(error_toasts(app)), "the error toast")
        app.jobs_changed.publish("verify-1")  # still busy: it stays
        await pilot.pause()
        assert error_toasts(app) == ["a verify is running: wait for it"]
        busy[0] = False
        app.jobs_changed.publish("verify-1")
        await pilot_until(pilot, lambda: not error_toasts(app), "the error toast to go")


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("dialog", ["confirm", "backup", "typed"])
async def test_error_toasts_never_cover_a_dialogs_buttons(
    tmp_path: Path, dialog: str, size: tuple[int, int]
) -> None:
    app = offline_app(tmp_path)
    async with app.run_test(size=size, notifications=True) as pilot:
        await pilot.pause()
        shown = {
            "confirm": lambda: ConfirmModal(wrapped("Quit anyway? " * 8)),
            "backup": lambda: BackupModal(("db", "config", "logs", "etc", "mongo")),
            "typed": lambda: TypedConfirmModal(wrapped("Delete it? " * 12), "20261121T150000Z"),
        }[dialog]()
        app.push_screen(shown)
        await pilot_until(pilot, lambda: app.screen is shown, "the dialog")
        for number in range(6):  # more than fit
            app.notify_problem(f"problem {number}: " + "it failed " * 12, cause=str(number))
        await pilot_until(pilot, lambda: len(shown.query(Toast)) == 6, "the toasts")
        await pilot.pause()
        for button in shown.query(Button):  # what is on top at every cell of each button
            region = button.region
            for x in range(region.x, region.right):
                for y in range(region.y, region.bottom):
                    on_top, _ = shown.get_widget_at(x, y)
                    assert on_top is button, (dialog, str(button.label), x, y, on_top)

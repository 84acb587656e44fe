"""The dashboard driven by keyboard through Pilot, with real backups over the in-process SSH
server: start a backup, watch it finish, cancel one, see tiers, help, themes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from consoles import console, status_shown
from helpers import command_source, make_config
from rich.console import Console, RenderableType
from sshd import SSHTestServer
from timing import pilot_until

from engine.config.load import parse_config
from engine.repo.repository import Repository
from engine.status import RpoState
from themes import THEMES
from tui.console.palette import LifeboatCommands
from tui.console.screens.help import HelpScreen
from tui.console.screens.modals import BackupModal, ConfirmModal
from tui.console.widgets.backup_list import BackupList
from tui.console.widgets.footer import KeysFooter
from tui.console.widgets.job_view import JobView
from tui.console.widgets.tier_card import TierCard

TIERS = '[tiers.data]\nrpo = "1h"\nrto = "15m"\nsources = ["db"]\n'


def text_of(renderable: RenderableType) -> str:
    out = Console(width=78, file=io.StringIO(), record=True)
    out.print(renderable)
    return out.export_text()


async def test_backup_started_from_the_dashboard_runs_to_completion(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    sources = command_source("db", ["head", "-c", "3000000", "/dev/urandom"]) + TIERS
    config = make_config(asyncssh_server, tmp_path / "repo", sources, bulk_transport="asyncssh")
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await status_shown(pilot)
        card = app.screen.query_one("#tier-data", TierCard)
        assert card.status.state is RpoState.BREACH  # nothing backed up yet
        await pilot.press("b")
        assert isinstance(app.screen, BackupModal)
        await pilot.press("tab", *"nightly", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        (job,) = app.board.jobs.values()
        assert job.finished is not None
        assert job.finished.ok
        assert job.sources["db"].done == 3_000_000
        assert job.sources["db"].stage == "done"
        (manifest,) = app.repository.list_backups()[0]
        assert manifest.label == "nightly"
        shown = text_of(app.screen.query_one(JobView).render())
        assert f"backup {manifest.id}  done" in shown
        assert "db" in shown
        await pilot_until(pilot, lambda: card.status.state is RpoState.OK, "the tier covered")
        assert card.status.last == manifest
        await pilot.press("l")  # the new backup is in the browser, on top
        await pilot_until(
            pilot,
            lambda: bool(app.screen.query(BackupList) and app.screen.query_one(BackupList).shown),
            "the browser to list the backup",
        )
        assert app.screen.query_one(BackupList).shown_ids() == [manifest.id]


async def test_an_alert_that_was_not_delivered_is_shown_not_only_logged(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    secret = "tok3n-s3cr3t-value"
    dead = f'[notify.ops]\nurls = ["json://127.0.0.1:1/{secret}"]\n'  # nothing listens on 1
    failing = command_source("db", ["sh", "-c", "echo disk on fire >&2; exit 3"])
    config = make_config(asyncssh_server, tmp_path / "repo", failing + TIERS + dead)
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await status_shown(pilot)
        app.start_backup()
        toasts = lambda: [n for n in app._notifications if n.title == "notification"]  # noqa: E731, SLF001
        await pilot_until(pilot, lambda: bool(toasts()), "the undelivered alert's toast")
        (toast,) = toasts()
        assert toast.severity == "warning"
        assert toast.message.startswith("notify.ops URL 1 (json://): not delivered")
        assert secret not in toast.message
        (job,) = app.board.jobs.values()
        await pilot_until(pilot, lambda: job.finished is not None, "the job to finish")
        assert job.finished is not None
        assert not job.finished.ok  # the backup's own failure stands


async def test_the_footer_is_built_once_per_frame_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Textual's Footer rebuilds its keys on every bindings change; a screen's start brings
    several at once (four rebuilds, 0.08 s before the first paint). One per frame now: the
    start's, then the one the status brings (Cancel job's state)."""
    config = parse_config(
        f'[repository]\npath = "{tmp_path / "repo"}"\n[hosts.h1]\naddress = "10.0.0.5"\n'
        + command_source("db", ["true"])
        + TIERS
    )
    built: list[str] = []
    rebuild = KeysFooter.recompose

    async def counted(footer: KeysFooter) -> None:
        built.append(footer.screen.__class__.__name__)
        await rebuild(footer)

    monkeypatch.setattr(KeysFooter, "recompose", counted)
    app = console(config, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await status_shown(pilot)
        await pilot.pause()
        footer = app.screen.query_one(KeysFooter)
        assert "Back up" in " ".join(str(key.description) for key in footer.query("FooterKey"))
    assert built.count("DashboardScreen") <= 2


async def test_cancel_asks_first_and_leaves_nothing(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    config = make_config(
        asyncssh_server,
        tmp_path / "repo",
        command_source("db", ["cat", "/dev/zero"]),
        bulk_transport="asyncssh",
    )
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        key = app.start_backup()
        while (
            app.board.jobs[key].sources.get("db") is None
            or app.board.jobs[key].sources["db"].done < 1_000_000
        ):
            await pilot.pause(0.05)
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.click("#yes")
        await app.workers.wait_for_complete()
        await pilot.pause()
        finished = app.board.jobs[key].finished
        assert finished is not None
        assert finished.cancelled
    repo = Repository.open(config.repository.path)
    assert repo.list_backups() == ([], [])
    assert list(repo.staging_dir.iterdir()) == []


async def test_help_lists_the_bindings_and_the_theme_is_remembered(tmp_path: Path) -> None:
    from engine.config.load import parse_config

    config = parse_config(f'[repository]\npath = "{tmp_path / "repo"}"\n')
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one("DataTable")
        rows = [table.get_row_at(i) for i in range(table.row_count)]  # type: ignore[attr-defined]
        assert ["b", "Back up"] in rows
        assert ["q", "Quit"] in rows
        await pilot.press("escape")
        app.theme = "lifeboat-light"
        await pilot.pause()
    again = console(config, tmp_path)
    assert again.theme == "lifeboat-light"


async def test_no_color_is_respected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.config.load import parse_config

    monkeypatch.setenv("NO_COLOR", "1")
    config = parse_config(f'[repository]\npath = "{tmp_path / "repo"}"\n')
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.no_color
        assert app.screen.query_one("#tiers")


async def test_quit_with_a_running_job_asks_first(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    config = make_config(
        asyncssh_server,
        tmp_path / "repo",
        command_source("db", ["cat", "/dev/zero"]),
        bulk_transport="asyncssh",
    )
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        key = app.start_backup()
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmModal)
        assert "1 job(s) running (backup)" in str(app.screen.question)
        await pilot.press("escape")  # no: the backup goes on
        await pilot.pause()
        assert app.is_running
        assert app.board.jobs[key].running
        await pilot.press("q")
        await pilot.click("#yes")
        await pilot.pause()
        assert not app.is_running


async def test_the_palette_offers_lifeboats_three_themes_and_no_other_picker(
    tmp_path: Path,
) -> None:
    config = parse_config(f"[repository]\npath = {json.dumps(str(tmp_path / 'repo'))}\n")
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)):
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Theme" not in titles  # Textual's picker would list its twenty built-in themes
        assert "Quit" in titles  # the rest of Textual's commands stay
        provider = LifeboatCommands(app.screen)
        themes = [title for title, _, _ in provider._commands() if title.startswith("Switch")]
        assert themes == [f"Switch theme: {name}" for name in sorted(t.name for t in THEMES)]
        assert len(themes) == 3


async def test_a_yes_no_question_takes_y_and_n(tmp_path: Path) -> None:
    config = parse_config(f"[repository]\npath = {json.dumps(str(tmp_path / 'repo'))}\n")
    app = console(config, tmp_path)
    answers: list[bool | None] = []
    async with app.run_test(size=(80, 24)) as pilot:
        for key in ("y", "n", "escape"):
            app.push_screen(ConfirmModal("Delete it?"), answers.append)
            await pilot_until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
            await pilot.press(key)
            await pilot_until(pilot, lambda: not isinstance(app.screen, ConfirmModal), key)
    assert answers == [True, False, False]

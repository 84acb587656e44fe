"""The dashboard at small and wide terminals, through Pilot: every tier card whole and on
screen, no card line cut (the RTO line is the last and always there), the cards in even rows,
the log more than one line at 80x24, a finished job's final per-source states; and the restore
wizard's Plan notes, which scroll instead of being cut."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from consoles import console, status_shown
from helpers import command_source, make_config, stored_backup
from sshd import SSHTestServer
from textual.containers import Vertical, VerticalScroll
from textual.geometry import Region
from textual.widgets import Button, Static
from timing import pilot_until
from wizard_pilot import choose, open_wizard, run_checks, settle, shown

from engine.config.load import parse_config
from engine.config.model import Config
from engine.events import JobFinished, JobStarted, Progress, StageChanged
from engine.repo.repository import Repository
from tui.console.screens.dashboard import DashboardScreen, tier_columns
from tui.console.screens.modals import BackupModal
from tui.console.widgets.job_view import JobView
from tui.console.widgets.log_pane import LogPane
from tui.console.widgets.tier_card import TierCard
from tui.console.wizard_state import Step

SIZES = [(80, 20), (60, 20), (70, 24), (80, 24), (120, 36), (200, 50)]


def demo_like(tmp_path: Path) -> Config:
    """Four tiers, as in the demo, over a files, a command, a mongo and an etcd source."""
    repo = tmp_path / "repo"
    return parse_config(
        f'[repository]\npath = "{repo}"\n[hosts.h1]\naddress = "10.0.0.5"\n'
        '[sources.app-config]\nkind = "files"\nhost = "h1"\npaths = ["/etc/app"]\n'
        '[sources.app-db]\nkind = "command"\nhost = "h1"\nbackup = ["x"]\n'
        '[sources.demo-mongo]\nkind = "mongo"\nhost = "h1"\n'
        'uri = "mongodb://backup@127.0.0.1:27017/?authSource=admin"\n'
        '[sources.demo-etcd]\nkind = "etcd"\nhost = "h1"\n'
        '[tiers.app-data]\nrpo = "1h"\nrto = "15m"\nsources = ["app-db"]\n'
        '[tiers.app-config]\nrpo = "1d"\nrto = "30m"\nsources = ["app-config"]\n'
        '[tiers.everything]\nrpo = "7d"\nrto = "1h"\n'
        'sources = ["app-config", "app-db", "demo-mongo", "demo-etcd"]\n'
        '[tiers.databases]\nrpo = "1h"\nrto = "30m"\nsources = ["demo-mongo", "demo-etcd"]\n'
        '[schedules.app-db]\ncron = "*/5 * * * *"\nscope = ["app-db"]\n'
        '[schedules.nightly]\ncron = "0 2 * * *"\n'
    )


def with_backup(config: Config, age: timedelta) -> None:
    repo = Repository.open(config.repository.path)
    names = ("app-config", "app-db", "demo-mongo", "demo-etcd")
    stored_backup(repo, datetime.now(UTC) - age, {name: b"x" * 3000 for name in names})


@pytest.mark.parametrize(
    ("count", "width", "columns"),
    [(4, 200, 4), (4, 120, 4), (4, 80, 2), (4, 60, 2), (4, 40, 1), (3, 80, 3), (5, 80, 3),
     (6, 120, 3), (1, 200, 1), (0, 80, 1)],
)  # fmt: skip
def test_tier_columns_keep_rows_even(count: int, width: int, columns: int) -> None:
    assert tier_columns(count, width) == columns


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("age", [timedelta(minutes=5), timedelta(hours=30)], ids=["ok", "late"])
async def test_every_tier_card_is_whole_and_on_screen(
    tmp_path: Path, size: tuple[int, int], age: timedelta
) -> None:
    config = demo_like(tmp_path)
    with_backup(config, age)
    app = console(config, tmp_path)
    async with app.run_test(size=size) as pilot:
        dashboard = await status_shown(pilot)
        cards = list(dashboard.query(TierCard))
        assert len(cards) == 4
        screen = Region(0, 0, *size)
        for card in cards:
            assert screen.contains_region(card.region), f"{card.id} at {card.region} in {size}"
            lines = card.lines()
            assert card.region.height == len(lines) + 2  # every line, and the borders
            assert lines[-1].plain.startswith("RTO ")
            widest = max(line.cell_len for line in lines)
            assert widest <= card.content_size.width, f"{card.id} cut at {size}"
        rows = Counter(card.region.y for card in cards)
        assert len(set(rows.values())) == 1, f"uneven rows {sorted(rows.values())} at {size}"
        box = dashboard.query_one("#tiers")
        assert all(box.region.contains_region(card.region) for card in cards)  # none cut
        assert dashboard.scroll_y == 0
        assert min(rows) == 1  # the first row right under the header
        if (size, age) == ((60, 20), timedelta(hours=30)):  # four-line cards: it scrolls
            assert dashboard.max_scroll_y > 0
            assert dashboard.show_vertical_scrollbar
        else:  # everything fits: the log above the footer
            assert dashboard.max_scroll_y == 0
            assert dashboard.query_one(LogPane).region.bottom <= size[1] - 1


async def test_the_backup_dialog_scrolls_to_its_buttons_at_80x20(tmp_path: Path) -> None:
    """Seven sources do not fit a 20-line terminal: the dialog scrolls, and Tab brings its
    buttons into view (they were cut off, and only Esc showed in the footer)."""
    sources = "".join(
        f'[sources.s{n}]\nkind = "command"\nhost = "h1"\nbackup = ["x"]\n' for n in range(7)
    )
    config = parse_config(
        f'[repository]\npath = "{tmp_path / "repo"}"\n[hosts.h1]\naddress = "10.0.0.5"\n' + sources
    )
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 20)) as pilot:
        await status_shown(pilot)
        await pilot.press("b")
        modal = app.screen
        assert isinstance(modal, BackupModal)
        start = modal.query_one("#start", Button)
        dialog = modal.query_one(Vertical)
        await pilot_until(
            pilot, lambda: bool(dialog.region and start.region), "the dialog laid out"
        )
        in_view = lambda: dialog.scrollable_content_region.contains_region(start.region)  # noqa: E731
        assert dialog.region.bottom <= 19  # above the footer
        assert not in_view()  # it does not fit at first
        for _ in range(4):  # the sources, the label, Cancel, Start
            if app.focused is not start:
                await pilot.press("tab")
        assert app.focused is start
        await pilot_until(pilot, in_view, "Start backup in view")


async def test_the_log_has_room_at_80x24(tmp_path: Path) -> None:
    config = demo_like(tmp_path)
    with_backup(config, timedelta(minutes=5))
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        dashboard = await status_shown(pilot)
        log = dashboard.query_one(LogPane)
        assert log.scrollable_content_region.height >= 2
        assert dashboard.query_one("#jobs", VerticalScroll).scrollable_content_region.height >= 3


async def test_a_finished_job_shows_final_states_at_80x24(tmp_path: Path) -> None:
    config = demo_like(tmp_path)
    with_backup(config, timedelta(minutes=5))
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        dashboard = await status_shown(pilot)
        board = app.board
        board.open("b1", "backup")
        for event in (
            JobStarted("20261121T150000Z-aaaa", "backup", ("app-db", "app-config", "demo-etcd")),
            StageChanged("app-db", "dumping"),
            Progress("app-db", 7_450_000, None, 2_000_000.0),
            StageChanged("app-config", "done"),
            Progress("app-config", 960, 960, 6_000.0),
            JobFinished("20261121T150000Z-aaaa", ok=False, cancelled=True),
        ):
            board.apply("b1", event)
        app.jobs_changed.publish("b1")
        await pilot.pause()
        text = shown(dashboard, "#job-b1")
        assert "cancelled · 7.1 MiB" in text
        assert "done · 960 B" in text
        assert "cancelled · 0 B" in text  # demo-etcd never started
        for live in ("dumping", "/s", "ETA"):
            assert live not in text
        assert dashboard.query_one(JobView).region.y > 0


async def test_the_etcd_plan_notes_scroll_at_80x24(tmp_path: Path) -> None:
    config = demo_like(tmp_path)
    with_backup(config, timedelta(minutes=5))
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await status_shown(pilot)
        wizard = await open_wizard(app, pilot)
        await choose(pilot, wizard, "etcd-quorum-lost")
        assert wizard.state.step is Step.PLAN
        notes = wizard.query_one("#plan-notes-scroll", VerticalScroll)
        text = wizard.query_one("#plan-notes", Static)
        assert notes.region.bottom <= 24 - 2  # above the buttons and the footer
        assert notes.scrollable_content_region.height >= 3
        assert text.size.height > notes.scrollable_content_region.height  # more than is shown
        assert notes.show_vertical_scrollbar  # and a scrollbar says so
        assert "Afterwards: checklist" in str(text.render())
        await pilot.press("tab")  # from the sources to the notes (no globs for etcd)
        assert notes.has_focus
        await pilot.press("end")
        await pilot_until(pilot, lambda: notes.scroll_y == notes.max_scroll_y > 0, "the end")
        assert isinstance(app.screen_stack[0], DashboardScreen)


async def test_a_finished_restore_shows_every_row_done(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    """The restore's own row ("restoring" while it ran) and the safety backup's end as done."""
    target = tmp_path / "restored.dump"
    target.write_bytes(b"what was there before\n")
    config = make_config(
        asyncssh_server,
        tmp_path / "repo",
        command_source("db", ["cat", str(target)], ["dd", f"of={target}", "status=none"]),
    )
    repo = Repository.open(config.repository.path)
    stored_backup(repo, datetime.now(UTC), {"db": b"INSERT 1;\n" * 500}, "nightly")
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await status_shown(pilot)
        wizard = await open_wizard(app, pilot)
        await choose(pilot, wizard, "other")
        await pilot.press("ctrl+n", "enter")  # plan, then the default backup
        await run_checks(app, pilot, wizard)
        await pilot.press("enter", *"h1", "enter")  # Continue, then confirm
        await settle(app, pilot)
        assert wizard.state.step is Step.DONE
        (checks,) = [job for job in app.board.jobs.values() if job.kind == "check"]
        (restore,) = [job for job in app.board.jobs.values() if job.kind == "restore"]
        checked = {name: state.stage for name, state in checks.sources.items()}
        assert checked == {"restore": "checked", "verify": "done"}  # the checksums, read
        assert restore.finished is not None
        assert restore.finished.ok
        stages = {name: state.stage for name, state in restore.sources.items()}
        assert stages == {
            "restore": "done",
            "verify": "done",
            "db (safety backup)": "done",
            "db": "done",
        }
        await pilot.press("escape")
        dashboard = app.screen
        assert isinstance(dashboard, DashboardScreen)
        await pilot_until(pilot, lambda: bool(dashboard.query(f"#job-{restore.key}")), "the job")
        text = shown(dashboard, f"#job-{restore.key}")
        assert "restoring" not in text
        assert "done · 0 B" in text  # the restore's own row: done, no rate
        rows = text.splitlines()[1:]
        assert [row[:12].strip() for row in rows] == ["restore", "verify", "db (safety …", "db"]
        assert rows[-1].endswith("done · 4.9 KiB")  # the backup's bytes, restored

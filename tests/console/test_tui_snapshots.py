"""Snapshots of the console's screens at 120x36 and 80x24, with time frozen; those that show
the dashboard wait for the status its thread gathers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from consoles import status_shown
from helpers import stored_backup

from engine.config.load import parse_config
from engine.drill import history
from engine.drill.history import DrillRecord
from engine.repo.repository import Repository, VerifyRecord
from engine.schedule.status import ScheduleState, write_state
from tui.console.app import LifeboatApp

NOW = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
SIZES = [(120, 36), (80, 24)]


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LifeboatApp:
    monkeypatch.setattr("engine.status.utc_now", lambda: NOW)
    monkeypatch.setattr("tui.format.current_time", lambda: NOW)
    repo_path = tmp_path / "repo"
    config = parse_config(
        f'[repository]\npath = "{repo_path}"\n[hosts.db1]\naddress = "10.0.0.5"\n'
        '[sources.mongo]\nkind = "command"\nhost = "db1"\nbackup = ["x"]\n'
        '[sources.config]\nkind = "files"\nhost = "db1"\npaths = ["/etc/app"]\n'
        '[tiers.data]\nrpo = "1h"\nrto = "15m"\nsources = ["mongo"]\n'
        '[tiers.config]\nrpo = "24h"\nrto = "30m"\nsources = ["config"]\n'
        '[tiers.archive]\nrpo = "30m"\nrto = "4h"\nsources = ["mongo", "config"]\n'
        '[schedules.hourly]\ncron = "0 * * * *"\nscope = ["mongo"]\n'
        '[schedules.nightly]\ncron = "0 2 * * *"\ntimezone = "Europe/Berlin"\n'
    )
    repo = Repository.open(repo_path)
    old = stored_backup(
        repo, NOW - timedelta(hours=30), {"mongo": b"m" * 5000}, "nightly", "schedule:nightly"
    )
    stored_backup(
        repo, NOW - timedelta(minutes=50), {"mongo": b"m" * 9000}, "hourly", "schedule:hourly"
    )
    write_state(repo, "hourly", ScheduleState("2026-11-18T00:00:00Z"))
    failed = ScheduleState(
        "2026-11-18T00:00:00Z", "2026-11-21T01:00:00Z", "failed", None, "db1: connection refused"
    )
    write_state(repo, "nightly", failed)
    both = stored_backup(
        repo, NOW - timedelta(hours=3), {"mongo": b"x" * 7000, "config": b"c" * 300}, "pre-v1.4"
    )
    repo.record_verify(VerifyRecord(both.id, "2026-11-21T12:10:00Z", True))
    repo.record_verify(VerifyRecord(old.id, "2026-11-21T12:10:00Z", False, ("bad",)))
    record_drills(repo_path, both.id)
    return LifeboatApp(config, repo, settings=tmp_path / "console.json")


def record_drills(repo_path: Path, backup_id: str) -> None:
    """A failed drill of everything, then a passed one of the config tier (42.5 s)."""
    everything = DrillRecord(
        "20261120T090000Z-d1f0", "2026-11-20T09:00:00Z", "alice", ["mongo", "config"], None,
        "restore mongo, config in place", "2026-11-20T09:04:00Z", backup_id, 12.0, 1.5, 95.0,
        markers=[{"source": "mongo", "expected": 100, "found": 95, "missing": ["m-00003"]}],
        problems=["markers missing after the restore: mongo: 95 of 100 markers came back"],
    )  # fmt: skip
    config = DrillRecord(
        "20261121T140000Z-d2c1", "2026-11-21T14:00:00Z", "alice", ["config"], None,
        "restore config in place", "2026-11-21T14:01:00Z", backup_id, 3.2, 0.4, 42.5,
        markers=[{"source": "config", "expected": 10, "found": 10, "missing": []}],
        verdict="passed",
    )  # fmt: skip
    history.append(repo_path, everything)
    history.append(repo_path, config)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard(app: LifeboatApp, size: tuple[int, int], snap_compare: Callable) -> None:
    assert snap_compare(app, terminal_size=size, run_before=status_shown)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_backup_dialog(app: LifeboatApp, size: tuple[int, int], snap_compare: Callable) -> None:
    assert snap_compare(app, press=["b"], terminal_size=size, run_before=status_shown)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help(app: LifeboatApp, size: tuple[int, int], snap_compare: Callable) -> None:
    assert snap_compare(app, press=["question_mark"], terminal_size=size, run_before=status_shown)


def test_light_theme(app: LifeboatApp, snap_compare: Callable) -> None:
    app.theme = "lifeboat-light"
    assert snap_compare(app, terminal_size=(80, 24), run_before=status_shown)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_browser(app: LifeboatApp, size: tuple[int, int], snap_compare: Callable) -> None:
    assert snap_compare(app, press=["l"], terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_restore_wizard_from_browser(
    app: LifeboatApp, size: tuple[int, int], snap_compare: Callable
) -> None:
    assert snap_compare(app, press=["l", "r"], terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_drills(app: LifeboatApp, size: tuple[int, int], snap_compare: Callable) -> None:
    assert snap_compare(app, press=["D", "down"], terminal_size=size)

"""A finished job's rows show each source's final state, never a live verb: the board settles
every source when the job finishes, and the job view drops rates, ETAs and pulses."""

from __future__ import annotations

import pytest

from engine.events import (
    CheckReported,
    JobFinished,
    JobStarted,
    Progress,
    SourceFailed,
    StageChanged,
)
from tui.console.jobs import JobBoard, SourceState, final_stage
from tui.console.widgets.job_view import amount, bar_of, info_of


def board_with(kind: str, scope: tuple[str, ...], *events: object) -> JobBoard:
    board = JobBoard()
    board.open("k", kind)
    board.apply("k", JobStarted("job-1", kind, scope))
    for event in events:
        board.apply("k", event)  # type: ignore[arg-type]
    return board


@pytest.mark.parametrize(
    ("stage", "finished", "expected"),
    [
        ("done", JobFinished("j", ok=False, cancelled=True), "done"),
        ("failed", JobFinished("j", ok=True), "failed"),
        ("dumping", JobFinished("j", ok=False, cancelled=True), "cancelled"),
        ("connecting", JobFinished("j", ok=False, errors=(SourceFailed("db", "boom"),)), "failed"),
        ("restoring", JobFinished("j", ok=True), "done"),
        ("restoring", JobFinished("j", ok=False), "failed"),
        ("waiting", JobFinished("j", ok=False), "skipped"),
        ("waiting", JobFinished("j", ok=False, cancelled=True), "cancelled"),
        ("validating", JobFinished("j", ok=True), "checked"),
        ("validating", JobFinished("j", ok=False), "failed"),
    ],
)
def test_final_stage(stage: str, finished: JobFinished, expected: str) -> None:
    assert final_stage("db", SourceState(stage=stage), finished) == expected


def test_a_done_restore_is_done_on_every_row() -> None:
    board = board_with(
        "restore",
        ("db",),
        StageChanged("restore", "validating"),
        StageChanged("restore", "restoring"),
        StageChanged("db", "connecting"),
        Progress("db", 0, None, 0.0),
        StageChanged("db", "done"),
        JobFinished("job-1", ok=True),
    )
    stages = {name: state.stage for name, state in board.jobs["k"].sources.items()}
    assert stages == {"restore": "done", "db": "done"}


def test_checks_take_their_place_in_the_fixed_order_as_they_come() -> None:
    board = board_with(
        "restore",
        ("db",),
        CheckReported("backup", "ok", "b", (0, 0)),
        CheckReported("ssh h1", "ok", "up", (2, 0)),
        CheckReported("checksums", "fail", "bad", (1, 0)),  # ended after the host's first
        CheckReported("tools h1", "ok", "dd", (2, 1)),
    )
    names = [check.name for check in board.jobs["k"].checks]
    assert names == ["backup", "checksums", "ssh h1", "tools h1"]


def test_a_failed_restore_names_the_failed_step_and_skips_the_rest() -> None:
    board = board_with(
        "restore",
        ("db", "files"),
        StageChanged("restore", "restoring"),
        StageChanged("db", "restoring"),
        StageChanged("db", "failed"),
        JobFinished("job-1", ok=False, errors=(SourceFailed("db", "boom"),)),
    )
    stages = {name: state.stage for name, state in board.jobs["k"].sources.items()}
    assert stages == {"restore": "failed", "db": "failed", "files": "skipped"}


def test_a_cancelled_backup_keeps_its_bytes_and_loses_its_rate() -> None:
    board = board_with(
        "backup",
        ("db", "logs", "late"),
        StageChanged("db", "dumping"),
        Progress("db", 7_450_000, None, 2_000_000.0),
        StageChanged("logs", "done"),
        JobFinished("job-1", ok=False, cancelled=True),
    )
    sources = board.jobs["k"].sources
    assert {name: state.stage for name, state in sources.items()} == {
        "db": "cancelled",
        "logs": "done",
        "late": "cancelled",  # in scope, never started: still a row
    }
    db = sources["db"]
    assert db.rate == 0.0
    assert info_of(db, estimate=10_000_000) == "cancelled · 7.1 MiB"


@pytest.mark.parametrize(
    ("kind", "ok", "expected"),
    [("check", True, "checked"), ("check", False, "failed"), ("restore", False, "failed")],
)  # the checks alone, passed or not, and a restore its checks refused
def test_checks_alone_restored_nothing(kind: str, ok: bool, expected: str) -> None:
    board = board_with(
        kind,
        ("db", "files"),
        StageChanged("restore", "validating"),
        JobFinished("job-1", ok=ok),
    )
    stages = {name: state.stage for name, state in board.jobs["k"].sources.items()}
    assert stages == {"restore": expected}


def test_a_worker_error_settles_the_rows_too() -> None:
    board = board_with("backup", ("db",), StageChanged("db", "uploading"))
    board.fail("k", "the worker died")
    assert board.jobs["k"].sources["db"].stage == "failed"


def test_a_verify_gets_no_rows_for_its_scope() -> None:
    board = board_with(
        "verify", ("db", "logs"), Progress("verify", 10, 10, 5.0), JobFinished("job-1", ok=True)
    )
    assert list(board.jobs["k"].sources) == ["verify"]


def test_final_rows_show_no_rate_eta_or_pulse() -> None:
    done = SourceState("done", 2_700_000, 2_700_000, 1_000_000.0)
    assert amount(done) == "2.6 MiB"
    assert info_of(done, None) == "done · 2.6 MiB"
    failed = SourceState("failed", 1_000, 4_000, 10.0)
    assert info_of(failed, 4_000) == "failed · 1000 B/3.9 KiB"
    assert bar_of(failed, None).total == 4_000
    assert bar_of(failed, None).completed == 1_000
    skipped = SourceState("skipped")
    assert bar_of(skipped, estimate=5_000).pulse is False
    assert bar_of(skipped, estimate=5_000).completed == 0
    live = SourceState("dumping", 1_000, None, 100.0)
    assert info_of(live, 2_000) == "dumping · 1000 B 100 B/s · ETA 10s"
    assert bar_of(SourceState("dumping"), None).total is None  # live and unknown: a pulse

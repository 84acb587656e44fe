"""Cron expressions (5 fields, 6 read seconds first, macros), time zones across DST, and
each schedule's status: next runs and the dead man's switch."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_run import lifeboat, write_config
from helpers import stored_backup

from engine.config.load import parse_config
from engine.config.schedules import ScheduleConfig
from engine.errors import ConfigError
from engine.repo.manifest import iso_z
from engine.repo.repository import Repository
from engine.schedule.cron import parse_cron, zone_named
from engine.schedule.status import ScheduleState, schedule_statuses, write_state
from engine.status import gather

UTC_ZONE = zone_named("UTC")
BERLIN = zone_named("Europe/Berlin")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def runs(expression: str, after: str, count: int, zone: str = "UTC") -> list[str]:
    times = parse_cron(expression).next_runs(at(after), zone_named(zone), count)
    return [iso_z(t) for t in times]


def test_five_fields_are_standard_cron() -> None:
    assert runs("30 2 * * 1", "2026-11-21T00:00:00+00:00", 2) == [
        "2026-11-23T02:30:00Z",
        "2026-11-30T02:30:00Z",
    ]


def test_six_fields_read_seconds_first() -> None:
    assert runs("0 0 0 * * *", "2026-11-21T15:00:00+00:00", 2) == [
        "2026-11-22T00:00:00Z",
        "2026-11-23T00:00:00Z",
    ]
    assert runs("*/2 * * * * *", "2026-11-21T15:00:01+00:00", 3) == [
        "2026-11-21T15:00:02Z",
        "2026-11-21T15:00:04Z",
        "2026-11-21T15:00:06Z",
    ]


@pytest.mark.parametrize(
    ("macro", "first", "second"),
    [
        ("@hourly", "2026-11-21T16:00:00Z", "2026-11-21T17:00:00Z"),
        ("@daily", "2026-11-22T00:00:00Z", "2026-11-23T00:00:00Z"),
        ("@weekly", "2026-11-22T00:00:00Z", "2026-11-29T00:00:00Z"),
    ],
)
def test_macros(macro: str, first: str, second: str) -> None:
    assert runs(macro, "2026-11-21T15:30:00+00:00", 2) == [first, second]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("61 * * * *", "the minute field '61' is out of range"),
        ("0 0 * * * 30", "only makes sense with seconds last; write it as '30 0 0 * * *'"),
        ("* * *", "has 3 fields; write five"),
        ("@often", "unknown cron macro '@often'"),
        ("0 0 0 * 13 *", "the month field '13'"),
    ],
)
def test_invalid_expressions_say_why(expression: str, expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        parse_cron(expression)


def test_an_invalid_schedule_fails_config_loading(tmp_path: Path) -> None:
    text = (
        f'[repository]\npath = "{tmp_path}"\n'
        '[schedules.nightly]\ncron = "0 0 * * * 30"\ntimezone = "Mars/Olympus"\n'
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    message = str(caught.value)
    assert "schedules.nightly.cron: invalid cron expression '0 0 * * * 30'" in message
    assert "seconds first" in message
    assert "schedules.nightly.timezone: unknown time zone 'Mars/Olympus'" in message


@pytest.mark.parametrize(
    ("expression", "day", "month"),
    [
        ("0 2 31 2 *", "31", "2"),
        ("0 0 2 30 2 *", "30", "2"),
        ("0 0 31 4,6,9,11 *", "31", "4,6,9,11"),
    ],
    ids=["31-feb", "seconds-first", "short-months"],
)
def test_a_schedule_that_never_fires_fails_config_loading(
    tmp_path: Path, expression: str, day: str, month: str
) -> None:
    text = f'[repository]\npath = "{tmp_path}"\n[schedules.yearly]\ncron = "{expression}"\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    [problem] = caught.value.problems
    assert problem.startswith(f"schedules.yearly.cron: cron expression {expression!r} never fires")
    assert f"day-of-month {day!r} in month {month!r}" in problem
    assert "fix the day-of-month or month field" in problem


def test_a_leap_day_schedule_fires_every_four_years() -> None:
    runs_ = parse_cron("0 0 29 2 *").next_runs(at("2026-01-01T00:00:00+00:00"), UTC_ZONE, 2)
    assert [iso_z(t) for t in runs_] == ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]


async def test_schedule_list_and_status_refuse_a_never_firing_cron_without_a_traceback(
    tmp_path: Path,
) -> None:
    config = write_config(
        tmp_path / "lifeboat.toml",
        f'[repository]\npath = "{tmp_path / "repo"}"\n[schedules.feb]\ncron = "0 2 31 2 *"\n',
    )
    for command in (("config", "check"), ("schedule", "list"), ("status",)):
        run = await lifeboat(*command, config=config)
        assert run.rc == 2, (command, run.stderr)
        assert "schedules.feb.cron: cron expression '0 2 31 2 *' never fires" in run.stderr
        assert "Traceback" not in run.stderr


def test_a_schedule_whose_runs_cannot_be_computed_is_reported_and_the_others_are_not_hurt(
    tmp_path: Path,
) -> None:
    """A schedule that got past validation (built in code) but never fires: status and the
    schedule list report it as a problem instead of crashing, and the other schedule is
    computed as usual."""
    repo = Repository.open(tmp_path / "repo")
    config = parse_config(schedule_config(repo.path))
    broken = ScheduleConfig.model_construct(cron="0 2 31 2 *")
    config = config.model_copy(update={"schedules": {**config.schedules, "feb": broken}})
    now = at("2026-11-21T15:10:00+00:00")
    hourly, feb = schedule_statuses(config, repo, [], now)
    assert iso_z(hourly.next_runs[0]) == "2026-11-21T16:00:00Z"
    assert hourly.error is None
    assert feb.next_runs == ()
    assert feb.error == "cron '0 2 31 2 *': no next fire time (failed to find next date)"
    assert feb.problem() == f"{feb.error}; fix its cron in the config"
    report = gather(config, repo, now)
    assert not report.healthy
    assert f"schedule feb: {feb.problem()}" in report.problems
    assert report.to_dict()["schedules"][1]["error"] == feb.error


@pytest.mark.parametrize(
    "name", ["x" * 300, "Europe", "../../etc/passwd"], ids=["too-long", "a-directory", "outside"]
)
def test_a_time_zone_that_is_no_zone_file_is_unknown(name: str) -> None:
    with pytest.raises(ValueError, match="^unknown time zone"):
        zone_named(name)


def test_berlin_spring_forward_never_skips_a_day() -> None:
    # 2026-03-29 02:30 does not exist in Berlin: that day it fires at 03:30 CEST.
    local = [
        t.astimezone(BERLIN).strftime("%m-%d %H:%M %Z")
        for t in parse_cron("30 2 * * *").next_runs(at("2026-03-27T12:00:00+00:00"), BERLIN, 4)
    ]
    assert local == ["03-28 02:30 CET", "03-29 03:30 CEST", "03-30 02:30 CEST", "03-31 02:30 CEST"]


def test_berlin_fall_back_never_runs_twice() -> None:
    # 2026-10-25 02:30 happens twice in Berlin: it fires once, at the first.
    daily = parse_cron("30 2 * * *").next_runs(at("2026-10-23T12:00:00+00:00"), BERLIN, 4)
    assert [iso_z(t) for t in daily] == [
        "2026-10-24T00:30:00Z",
        "2026-10-25T00:30:00Z",
        "2026-10-26T01:30:00Z",
        "2026-10-27T01:30:00Z",
    ]
    hourly = parse_cron("0 * * * *").next_runs(at("2026-10-24T22:30:00+00:00"), BERLIN, 5)
    assert len({t.astimezone(BERLIN).strftime("%H:%M") for t in hourly}) == 5
    assert hourly == sorted(set(hourly))


def test_previous_run_matches_the_fire_times() -> None:
    cron = parse_cron("0 * * * *")
    start = at("2026-10-24T20:00:00+00:00")
    fired = cron.next_runs(start, BERLIN, 12)
    for before, after in zip(fired, fired[1:], strict=False):
        assert cron.previous_run(after - timedelta(seconds=1), BERLIN) == before
        assert cron.previous_run(after, BERLIN) == after


def schedule_config(repo: Path, extra: str = "") -> str:
    return (
        f'[repository]\npath = "{repo}"\n[hosts.h1]\naddress = "127.0.0.1"\n'
        '[sources.db]\nkind = "command"\nhost = "h1"\nbackup = ["true"]\n'
        '[schedules.hourly]\ncron = "0 * * * *"\nscope = ["db"]\n' + extra
    )


def test_a_schedule_nothing_ran_is_overdue_and_one_that_ran_is_not(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    config = parse_config(schedule_config(repo.path))
    now = at("2026-11-21T15:10:00+00:00")
    [never] = schedule_statuses(config, repo, [], now)
    assert never.overdue
    assert never.problem() == "never run; start `lifeboat scheduler run`"
    assert [iso_z(t) for t in never.next_runs[:2]] == [
        "2026-11-21T16:00:00Z",
        "2026-11-21T17:00:00Z",
    ]

    write_state(repo, "hourly", ScheduleState(first_seen="2026-11-21T13:30:00Z"))
    backup = stored_backup(
        repo, now - timedelta(minutes=70), {"db": b"x"}, trigger="schedule:hourly"
    )
    [fresh] = schedule_statuses(config, repo, [backup], now)
    assert not fresh.overdue  # the 15:00 tick is within its grace (one interval)
    [late] = schedule_statuses(config, repo, [backup], now + timedelta(minutes=60))
    assert late.missed == at("2026-11-21T15:00:00+00:00")
    assert (late.problem() or "").startswith("no backup for the 2026-11-21T15:00:00Z tick; ")


def test_ticks_before_the_scheduler_first_saw_a_schedule_do_not_count(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    config = parse_config(schedule_config(repo.path, 'overdue_after = "5m"\n'))
    write_state(repo, "hourly", ScheduleState(first_seen="2026-11-21T15:02:00Z"))
    [status] = schedule_statuses(config, repo, [], at("2026-11-21T15:30:00+00:00"))
    assert not status.overdue
    [status] = schedule_statuses(config, repo, [], at("2026-11-21T16:06:00+00:00"))
    assert status.overdue
    assert status.missed == at("2026-11-21T16:00:00+00:00")


def test_a_disabled_schedule_is_never_overdue(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    config = parse_config(schedule_config(repo.path, "enabled = false\n"))
    [status] = schedule_statuses(config, repo, [], at("2026-11-21T15:30:00+00:00"))
    assert not status.overdue

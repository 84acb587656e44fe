"""Retention policies: the rules (restic's semantics), groups, time zones, pins, protections,
and the prune that applies them to a real repository."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from helpers import stored_backup
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config.load import parse_config
from engine.config.model import Config, RepositoryConfig
from engine.config.schedules import RetentionConfig, ScheduleConfig
from engine.drill import history
from engine.drill.history import DrillRecord
from engine.errors import UsageError
from engine.repo.manifest import Artifact, ArtifactFile, Manifest
from engine.repo.repository import Repository, VerifyRecord
from engine.repo.retention import PrunePlan, plan_prune, prune

_SERIAL = itertools.count()


def backup(
    when: str,
    label: str | None = None,
    trigger: str = "manual",
    sources: Sequence[str] = ("mongo",),
) -> Manifest:
    """A manifest (no files) created at ``when`` (ISO 8601, UTC unless an offset is given)."""
    moment = datetime.fromisoformat(when)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return manifest_at(moment, label, trigger, sources)


def manifest_at(
    moment: datetime, label: str | None, trigger: str, sources: Sequence[str]
) -> Manifest:
    artifacts = tuple(
        Artifact(
            source=s,
            kind="command-output",
            host="h1",
            files=(ArtifactFile(path=f"{s}.out", bytes=1, sha256="0" * 64),),
        )
        for s in sources
    )
    return Manifest(
        id=f"{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}-{next(_SERIAL) % 0x10000:04x}",
        label=label,
        created_at=moment,
        finished_at=moment,
        trigger=trigger,
        operator="tester",
        tool_version="0.1.0",
        scope=tuple(sources),
        artifacts=artifacts,
    )


def config(toml: str = "") -> Config:
    return parse_config('[repository]\npath = "/srv/repo"\n' + toml)


def nightly(policy: str, timezone: str = "UTC") -> str:
    """A [schedules.nightly] table with its own retention policy."""
    return (
        f'[schedules.nightly]\ncron = "0 2 * * *"\ntimezone = "{timezone}"\n'
        f"[schedules.nightly.retention]\n{policy}\n"
    )


def plan(
    cfg: Config,
    manifests: Sequence[Manifest],
    verified: Sequence[str] = (),
    drilled: Sequence[str] = (),
    keep_last: int | None = None,
) -> PrunePlan:
    return plan_prune(cfg, manifests, set(verified), list(drilled), keep_last)


def why(result: PrunePlan) -> dict[str, tuple[str, ...]]:
    """Backup id -> reasons, for kept backups only."""
    return {d.manifest.id: d.reasons for d in result.decisions if d.keep}


def removed(result: PrunePlan) -> dict[str, tuple[str, ...]]:
    return {d.manifest.id: d.reasons for d in result.decisions if not d.keep}


# -- the rules ------------------------------------------------------------------------------


def test_keep_last_keeps_the_newest_n_and_says_why_the_rest_go() -> None:
    made = [backup(f"2026-11-{day:02d}T10:00") for day in range(1, 6)]
    result = plan(config("[retention]\nkeep_last = 2\n"), made)
    assert [d.manifest.id for d in result.decisions] == [m.id for m in reversed(made)]
    assert why(result) == {made[4].id: ("last 2",), made[3].id: ("last 2",)}
    assert set(removed(result).values()) == {("no rule of [retention] keeps it",)}
    assert result.remove == tuple(reversed(made[:3]))


def test_keep_daily_counts_only_days_that_have_backups() -> None:
    late, early = backup("2026-11-20T20:00"), backup("2026-11-20T08:00")
    gap_before, gap_after, oldest = (
        backup("2026-11-18T10:00"),
        backup("2026-11-10T10:00"),
        backup("2026-11-09T10:00"),
    )
    result = plan(
        config("[retention]\nkeep_daily = 3\n"), [early, oldest, late, gap_after, gap_before]
    )
    assert why(result) == {
        late.id: ("daily 2026-11-20",),
        gap_before.id: ("daily 2026-11-18",),
        gap_after.id: ("daily 2026-11-10",),
    }
    assert set(removed(result)) == {early.id, oldest.id}


def test_keep_hourly_keeps_the_newest_of_each_hour() -> None:
    made = [backup(t) for t in ("2026-11-20T10:05", "2026-11-20T10:55", "2026-11-20T12:00")]
    result = plan(config("[retention]\nkeep_hourly = 5\n"), made)
    assert why(result) == {
        made[2].id: ("hourly 2026-11-20 12:00",),
        made[1].id: ("hourly 2026-11-20 10:00",),
    }


def test_keep_weekly_uses_iso_weeks_across_the_new_year() -> None:
    new_year = backup("2027-01-01T10:00")  # a Friday in ISO week 2026-W53
    same_week = backup("2026-12-28T10:00")
    week_before = backup("2026-12-27T10:00")  # Sunday: the end of 2026-W52
    result = plan(config("[retention]\nkeep_weekly = 2\n"), [new_year, same_week, week_before])
    assert why(result) == {new_year.id: ("weekly 2026-W53",), week_before.id: ("weekly 2026-W52",)}


def test_keep_monthly_skips_months_without_backups() -> None:
    made = [backup(t) for t in ("2026-11-30T10:00", "2026-11-02T10:00", "2026-08-15T10:00")]
    result = plan(config("[retention]\nkeep_monthly = 2\n"), made)
    assert why(result) == {made[0].id: ("monthly 2026-11",), made[2].id: ("monthly 2026-08",)}


def test_keep_within_counts_from_the_newest_backup_not_from_now() -> None:
    """A stopped scheduler must never let a prune empty the repository."""
    made = [backup(t) for t in ("2025-01-10T10:00", "2025-01-08T10:00", "2025-01-08T09:59")]
    result = plan(config('[retention]\nkeep_within = "2d"\n'), made)
    assert why(result) == {
        made[0].id: ("within 2d of newest",),
        made[1].id: ("within 2d of newest",),
    }
    assert list(removed(result)) == [made[2].id]


def test_rules_or_together_and_every_reason_is_given() -> None:
    made = [backup(t) for t in ("2026-11-20T10:00", "2026-11-19T10:00", "2026-10-01T10:00")]
    result = plan(config("[retention]\nkeep_last = 1\nkeep_monthly = 2\n"), made)
    assert why(result) == {
        made[0].id: ("last 1", "monthly 2026-11"),
        made[2].id: ("monthly 2026-10",),
    }


def test_equal_times_are_ordered_by_id() -> None:
    first, second = backup("2026-11-20T10:00"), backup("2026-11-20T10:00")
    assert first.id < second.id
    result = plan(config("[retention]\nkeep_last = 1\n"), [second, first])
    assert result.keep == (second,)


# -- groups and time zones ------------------------------------------------------------------


def test_a_schedule_policy_buckets_in_its_own_time_zone() -> None:
    late = backup("2026-11-20T23:30", trigger="schedule:nightly")  # 00:30 on the 21st in Berlin
    evening = backup("2026-11-20T22:30", trigger="schedule:nightly")  # 23:30 on the 20th
    noon = backup("2026-11-20T12:00", trigger="schedule:nightly")
    berlin = plan(config(nightly("keep_daily = 2", "Europe/Berlin")), [late, evening, noon])
    assert why(berlin) == {late.id: ("daily 2026-11-21",), evening.id: ("daily 2026-11-20",)}
    assert removed(berlin) == {noon.id: ("no rule of schedule nightly keeps it",)}
    utc = plan(config(nightly("keep_daily = 2")), [late, evening, noon])
    assert why(utc) == {late.id: ("daily 2026-11-20",)}


@pytest.mark.parametrize(
    ("rule", "times", "berlin", "utc"),
    [
        (
            "keep_weekly = 2",
            ("2026-11-30T00:30+01:00", "2026-11-29T12:00+01:00"),  # Monday 00:30, Sunday noon
            ("weekly 2026-W49", "weekly 2026-W48"),
            ("weekly 2026-W48", None),
        ),
        (
            "keep_monthly = 2",
            ("2026-12-01T00:30+01:00", "2026-11-30T12:00+01:00"),
            ("monthly 2026-12", "monthly 2026-11"),
            ("monthly 2026-11", None),
        ),
    ],
)
def test_weeks_and_months_turn_at_the_schedules_local_midnight(
    rule: str, times: tuple[str, str], berlin: tuple[str, str], utc: tuple[str, None]
) -> None:
    made = [backup(t, trigger="schedule:nightly") for t in times]
    for zone, expected in (("Europe/Berlin", berlin), ("UTC", utc)):
        result = plan(config(nightly(rule, zone)), made)
        assert [d.reasons[0] if d.keep else None for d in result.decisions] == list(expected)


def test_each_group_is_planned_by_its_own_policy() -> None:
    toml = (
        "[retention]\nkeep_last = 1\n"
        + nightly("keep_last = 1")
        + '[schedules.plain]\ncron = "0 * * * *"\n'
    )
    nights = [backup(f"2026-11-{d}T02:00", trigger="schedule:nightly") for d in (18, 19, 20)]
    others = [
        backup("2026-11-20T10:00", trigger="schedule:plain"),  # no policy of its own
        backup("2026-11-19T10:00", trigger="schedule:gone"),  # no longer configured
        backup("2026-11-18T10:00"),
        backup("2026-11-17T10:00", trigger="pre-restore"),
        backup("2026-11-16T10:00", trigger="drill"),
    ]
    result = plan(config(toml), nights + others)
    assert why(result) == {nights[2].id: ("last 1",), others[0].id: ("last 1",)}
    gone = removed(result)
    assert {gone[m.id] for m in nights[:2]} == {("no rule of schedule nightly keeps it",)}
    assert {gone[m.id] for m in others[1:]} == {("no rule of [retention] keeps it",)}


def test_a_group_without_rules_keeps_everything_and_says_how_to_add_one() -> None:
    night = backup("2026-11-20T02:00", trigger="schedule:nightly")
    older_night = backup("2026-11-19T02:00", trigger="schedule:nightly")
    manual, safety = backup("2026-11-01T10:00"), backup("2026-11-02T10:00", trigger="pre-restore")
    result = plan(config(nightly("keep_last = 1")), [night, older_night, manual, safety])
    assert why(result) == {
        night.id: ("last 1",),
        safety.id: ("no retention rule for pre-restore backups; add [retention] keep_daily = 7",),
        manual.id: ("no retention rule for manual backups; add [retention] keep_daily = 7",),
    }


def test_a_schedule_policy_of_pins_only_keeps_its_group_and_does_not_fall_back() -> None:
    made = [backup(f"2026-11-{d}T02:00", trigger="schedule:nightly") for d in (19, 20)]
    result = plan(config("[retention]\nkeep_last = 1\n" + nightly('pin = ["x"]')), made)
    expected = (
        "no retention rule for schedule nightly backups; "
        "add [schedules.nightly.retention] keep_daily = 7"
    )
    assert set(why(result).values()) == {(expected,)}
    assert result.remove == ()


# -- pins and protections -------------------------------------------------------------------


def test_pins_of_the_global_policy_apply_everywhere_and_a_schedules_to_its_group() -> None:
    toml = '[retention]\nkeep_last = 1\npin = ["pre-*"]\n' + nightly(
        'keep_last = 1\npin = ["keep-*"]'
    )
    newest = backup("2026-11-20T10:00")
    pre = backup("2026-11-01T10:00", label="pre-upgrade")
    not_ours = backup("2026-11-02T10:00", label="keep-me")
    night = backup("2026-11-20T02:00", trigger="schedule:nightly")
    night_pre = backup("2026-11-03T02:00", label="pre-x", trigger="schedule:nightly")
    night_keep = backup("2026-11-04T02:00", label="keep-this", trigger="schedule:nightly")
    result = plan(config(toml), [newest, pre, not_ours, night, night_pre, night_keep])
    assert why(result) == {
        newest.id: ("last 1",),
        night.id: ("last 1",),
        night_keep.id: ("pinned (keep-*)",),
        night_pre.id: ("pinned (pre-*)",),
        pre.id: ("pinned (pre-*)",),
    }
    assert list(removed(result)) == [not_ours.id]


def test_the_newest_verified_backup_of_each_source_is_never_removed() -> None:
    both = backup("2026-11-01T10:00", sources=("mongo", "etcd"))
    mongo = backup("2026-11-02T10:00", sources=("mongo",))
    unverified = backup("2026-11-03T10:00", sources=("mongo", "etcd"))
    older = backup("2026-10-01T10:00", sources=("mongo", "etcd"))
    result = plan(
        config("[retention]\nkeep_last = 1\n"),
        [both, mongo, unverified, older],
        verified=[both.id, mongo.id, older.id],
    )
    assert why(result) == {
        unverified.id: ("last 1",),
        mongo.id: ("newest verified backup of mongo",),
        both.id: ("newest verified backup of etcd",),
    }


def test_backups_passed_drills_restored_are_never_removed() -> None:
    newest = backup("2026-11-20T10:00", sources=("mongo",))
    last_drilled = backup("2026-11-05T10:00", trigger="drill", sources=("mongo",))
    etcd_drilled = backup("2026-11-04T10:00", trigger="drill", sources=("etcd", "mongo"))
    superseded = backup("2026-11-06T10:00", trigger="drill", sources=("mongo",))
    result = plan(
        config("[retention]\nkeep_last = 1\n"),
        [newest, last_drilled, etcd_drilled, superseded],
        drilled=["20200101T000000Z-0000", last_drilled.id, superseded.id, etcd_drilled.id],
    )
    assert why(result) == {
        newest.id: ("last 1",),
        last_drilled.id: ("restored by the newest passed drill",),
        etcd_drilled.id: ("newest drilled backup of etcd",),
    }
    assert list(removed(result)) == [superseded.id]


def test_keep_n_replaces_every_groups_rules_but_not_the_protections() -> None:
    toml = '[retention]\nkeep_daily = 30\npin = ["pre-*"]\n' + nightly("keep_within = '30d'")
    nights = [backup(f"2026-11-{d}T02:00", trigger="schedule:nightly") for d in (18, 19, 20)]
    manual = [backup(f"2026-11-{d}T10:00") for d in (18, 19, 20)]
    pinned = backup("2026-11-01T10:00", label="pre-upgrade")
    result = plan(config(toml), [*nights, *manual, pinned], verified=[nights[0].id], keep_last=2)
    assert why(result) == {
        manual[2].id: ("last 2",),
        nights[2].id: ("last 2",),
        manual[1].id: ("last 2",),
        nights[1].id: ("last 2",),
        nights[0].id: ("newest verified backup of mongo",),
        pinned.id: ("pinned (pre-*)",),
    }
    assert removed(result) == {manual[0].id: ("not among the last 2 of [retention] (--keep)",)}


def test_keep_n_must_be_positive() -> None:
    with pytest.raises(UsageError, match="at least 1"):
        plan(config(), [], keep_last=0)


@pytest.mark.parametrize(
    "toml", ["", '[retention]\npin = ["pre-*"]\n', nightly('pin = ["x"]'), nightly("")]
)
def test_prune_without_any_rule_is_a_usage_error(toml: str, tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    message = r"no retention policy is configured; add \[retention\] keep_daily = 7"
    with pytest.raises(UsageError, match=message):
        prune(config(toml), repo, "tester", dry_run=True)
    assert prune(config(toml), repo, "tester", dry_run=True, keep_last=3).decisions == ()


# -- properties on generated histories ------------------------------------------------------

SOURCES = ("mongo", "etcd", "config")
TRIGGERS = (
    "manual",
    "pre-restore",
    "drill",
    "schedule:nightly",
    "schedule:hourly",
    "schedule:gone",
)
LABELS = (None, None, "pre-upgrade", "keep-me", "nightly")
ZONES = {"nightly": ZoneInfo("Europe/Berlin"), "hourly": ZoneInfo("America/New_York")}
START = datetime(2026, 1, 1, tzinfo=UTC)

# Mostly unset, so that one rule at a time decides (several rules mask each other's mistakes).
unset = st.none() | st.none() | st.none()
counts = unset | st.integers(1, 6)
policies = st.builds(
    RetentionConfig,
    keep_last=counts,
    keep_hourly=counts,
    keep_daily=counts,
    keep_weekly=counts,
    keep_monthly=counts,
    keep_within=unset | st.integers(1, 96).map(lambda h: f"{h}h"),
    pin=st.lists(st.sampled_from(["pre-*", "keep-*"]), max_size=2, unique=True).map(tuple),
)
minutes = st.integers(0, 3 * 24 * 60) | st.integers(0, 180 * 24 * 60)
manifests = st.builds(
    lambda at, label, trigger, sources: manifest_at(
        START + timedelta(minutes=at), label, trigger, sorted(sources)
    ),
    minutes,
    st.sampled_from(LABELS),
    st.sampled_from(TRIGGERS),
    st.sets(st.sampled_from(SOURCES), min_size=1),
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[Config, list[Manifest], set[str], list[str]]:
    """A config with random policies, random backups, and random verify and drill results."""
    schedules = {
        name: ScheduleConfig(
            cron="0 2 * * *", timezone=str(zone), retention=draw(st.none() | policies)
        )
        for name, zone in ZONES.items()
    }
    cfg = Config(
        repository=RepositoryConfig(path=Path("/srv/repo")),
        retention=draw(policies),
        schedules=schedules,
    )
    made = draw(st.lists(manifests, min_size=5, max_size=40))
    ids = [m.id for m in made]
    verified = draw(st.sets(st.sampled_from(ids))) if ids else set()
    drilled = draw(st.lists(st.sampled_from(ids), max_size=5)) if ids else []
    return cfg, made, verified, drilled


def governing(cfg: Config, manifest: Manifest) -> tuple[str, RetentionConfig, ZoneInfo]:
    """The test's own reading of which policy governs a backup."""
    name = manifest.trigger.partition("schedule:")[2]
    schedule = cfg.schedules.get(name)
    if schedule is None or schedule.retention is None:
        return "", cfg.retention, ZoneInfo("UTC")
    return name, schedule.retention, schedule.zone


def newest(candidates: Sequence[Manifest]) -> list[Manifest]:
    return sorted(candidates, key=lambda m: (m.created_at, m.id), reverse=True)


def groups(cfg: Config, made: Sequence[Manifest]) -> dict[str, list[Manifest]]:
    found: dict[str, list[Manifest]] = {}
    for m in newest(made):
        found.setdefault(governing(cfg, m)[0], []).append(m)
    return found


def protected(made: Sequence[Manifest], verified: set[str], drilled: list[str]) -> set[str]:
    """What must never be removed (pins aside), computed independently of the engine."""
    by_id = {m.id: m for m in made}
    restored = [by_id[i] for i in drilled if i in by_id]
    keep = {m.id for m in restored[:1]}
    for source in SOURCES:
        holding = [m for m in newest(made) if m.artifact(source) and m.id in verified]
        keep.update(m.id for m in holding[:1])
        keep.update(m.id for m in [m for m in restored if m.artifact(source)][:1])
    return keep


def pinned(cfg: Config, m: Manifest) -> bool:
    pins = (*cfg.retention.pin, *governing(cfg, m)[1].pin)
    return m.label is not None and any(fnmatchcase(m.label, glob) for glob in pins)


@settings(max_examples=150, deadline=None)
@given(histories(), st.none() | st.integers(1, 4))
def test_protected_and_pinned_backups_are_never_removed(
    generated: tuple[Config, list[Manifest], set[str], list[str]], keep_last: int | None
) -> None:
    cfg, made, verified, drilled = generated
    result = plan(cfg, made, list(verified), drilled, keep_last)
    assert not {m.id for m in result.remove} & protected(made, verified, drilled)
    assert not any(pinned(cfg, m) for m in result.remove)


@settings(max_examples=100, deadline=None)
@given(histories(), st.none() | st.integers(1, 4))
def test_planning_again_on_what_was_kept_removes_nothing(
    generated: tuple[Config, list[Manifest], set[str], list[str]], keep_last: int | None
) -> None:
    cfg, made, verified, drilled = generated
    first = plan(cfg, made, list(verified), drilled, keep_last)
    again = plan(cfg, first.keep, list(verified), drilled, keep_last)
    assert again.remove == ()
    assert again.keep == first.keep


PERIODS: dict[str, Callable[[datetime], object]] = {
    "keep_hourly": lambda t: (t.date(), t.hour),
    "keep_daily": lambda t: t.date(),
    "keep_weekly": lambda t: t.isocalendar()[:2],
    "keep_monthly": lambda t: (t.year, t.month),
}


def promised(rules: RetentionConfig, members: list[Manifest], zone: ZoneInfo) -> set[str]:
    """What the rules promise to keep in one group (newest first), computed naively."""
    keep = {m.id for m in members[: rules.keep_last or 0]}
    for field, period in PERIODS.items():
        newest_of: dict[object, Manifest] = {}
        for m in reversed(members):  # oldest first: the last one written wins
            newest_of[period(m.created_at.astimezone(zone))] = m
        latest = newest(list(newest_of.values()))[: getattr(rules, field) or 0]
        keep.update(m.id for m in latest)
    if rules.keep_within and members:
        keep.update(
            m.id for m in members if members[0].created_at - m.created_at <= rules.keep_within
        )
    return keep


@settings(max_examples=150, deadline=None)
@given(histories())
def test_the_rules_keep_what_they_promise_and_nothing_unprotected_else(
    generated: tuple[Config, list[Manifest], set[str], list[str]],
) -> None:
    cfg, made, verified, drilled = generated
    result = plan(cfg, made, list(verified), drilled)
    kept = {m.id for m in result.keep}
    guarded = protected(made, verified, drilled) | {m.id for m in made if pinned(cfg, m)}
    for members in groups(cfg, made).values():
        _, rules, zone = governing(cfg, members[0])
        ids = {m.id for m in members}
        if rules.has_rules:
            assert members[0].id in kept
            assert kept & ids == (promised(rules, members, zone) | guarded) & ids
        else:
            assert ids <= kept


@settings(max_examples=100, deadline=None)
@given(histories(), st.integers(1, 4))
def test_keep_n_keeps_the_n_newest_of_each_group_and_only_protected_others(
    generated: tuple[Config, list[Manifest], set[str], list[str]], keep_last: int
) -> None:
    cfg, made, verified, drilled = generated
    result = plan(cfg, made, list(verified), drilled, keep_last)
    guarded = protected(made, verified, drilled)
    for members in groups(cfg, made).values():
        for position, m in enumerate(members):
            expected = position < keep_last or m.id in guarded or pinned(cfg, m)
            assert (m in result.keep) == expected, m.id


@settings(max_examples=100, deadline=None)
@given(histories())
def test_every_decision_says_why(
    generated: tuple[Config, list[Manifest], set[str], list[str]],
) -> None:
    cfg, made, verified, drilled = generated
    result = plan(cfg, made, list(verified), drilled)
    assert sorted(d.manifest.id for d in result.decisions) == sorted(m.id for m in made)
    for d in result.decisions:
        assert d.reasons
        if not d.keep:
            assert len(d.reasons) == 1
            assert d.reasons[0].startswith("no rule of ")


# -- the real prune on a real repository ----------------------------------------------------


def test_prune_removes_only_what_the_plan_removes_and_records_why(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    days = [datetime(2026, 11, d, 10, tzinfo=UTC) for d in range(1, 6)]
    made = [stored_backup(repo, day, {"mongo": b"data"}) for day in days]
    pinned_one = stored_backup(repo, datetime(2026, 10, 1, tzinfo=UTC), {"mongo": b"x"}, "pre-up")
    drilled = stored_backup(repo, datetime(2026, 9, 1, tzinfo=UTC), {"etcd": b"x"}, trigger="drill")
    failed_drill = stored_backup(repo, datetime(2026, 8, 1, tzinfo=UTC), {"etcd": b"y"})
    repo.record_verify(VerifyRecord(made[0].id, "2026-11-02T00:00:00Z", True))
    repo.record_verify(VerifyRecord(made[1].id, "2026-11-03T00:00:00Z", False))
    history.append(repo.path, drill_record("d1", drilled.id, "passed", "2026-09-01T10:00:00Z"))
    history.append(repo.path, drill_record("d2", failed_drill.id, "failed", "2026-09-02T10:00:00Z"))
    foreign = repo.backups_dir / "20200101T000000Z-keep-me"
    foreign.mkdir()
    (foreign / "manifest.json").write_text("{}")
    lookalike = repo.backups_dir / "20200101T000000Z-abcd"
    lookalike.mkdir()  # id-shaped, but no manifest: not a backup
    cfg = config('[retention]\nkeep_last = 2\npin = ["pre-*"]\n')

    dry = prune(cfg, repo, "tester", dry_run=True)
    doomed = [made[2].id, made[1].id, failed_drill.id]
    assert [m.id for m in dry.remove] == doomed
    assert len(repo.list_backups()[0]) == 8
    assert not (repo.path / "audit.jsonl").exists()

    done = prune(cfg, repo, "tester", dry_run=False)
    assert done == dry
    left = [made[4].id, made[3].id, pinned_one.id, drilled.id, made[0].id]
    assert sorted(m.id for m in repo.list_backups()[0]) == sorted(left)
    assert not any(repo.backup_dir(i).exists() for i in doomed)
    assert foreign.exists()
    assert lookalike.exists()
    entries = [json.loads(line) for line in (repo.path / "audit.jsonl").read_text().splitlines()]
    assert [(e["action"], e["backup"], e["reasons"]) for e in entries] == [
        ("backup.prune", i, ["no rule of [retention] keeps it"]) for i in doomed
    ]
    assert prune(cfg, repo, "tester", dry_run=False).remove == ()


def drill_record(drill_id: str, backup_id: str, verdict: str, started: str) -> DrillRecord:
    return DrillRecord(
        id=drill_id,
        started=started,
        operator="tester",
        sources=["etcd"],
        target=None,
        scenario="restore etcd in place",
        backup_id=backup_id,
        verdict=verdict,
    )

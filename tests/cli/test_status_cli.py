"""``lifeboat status`` and ``lifeboat schedule list``: what they print, and the exit codes
monitoring relies on (1 on an RPO breach or an overdue schedule, 0 otherwise)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from etcd_server import EtcdServer
from helpers import stored_backup
from prometheus_client.parser import text_string_to_metric_families

from engine.repo import locks
from engine.repo.manifest import iso_z, utc_now
from engine.repo.repository import Repository
from engine.scaleout.coordination import Coordinator
from engine.schedule.status import ScheduleState, write_state
from tui.cli.main import main


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "lifeboat.toml"
    path.write_text(
        f'operator = "tester"\n[repository]\npath = "{tmp_path / "repo"}"\n'
        '[hosts.h1]\naddress = "127.0.0.1"\n'
        '[sources.db]\nkind = "command"\nhost = "h1"\nbackup = ["true"]\n'
        '[tiers.gold]\nrpo = "1h"\nrto = "15m"\nsources = ["db"]\n'
        '[schedules.hourly]\ncron = "@hourly"\nscope = ["db"]\noverdue_after = "10m"\n' + extra
    )
    return path


def lifeboat(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["--config", str(config), *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return int(info.value.code or 0), out + err


def ran_on_time(repo: Repository, age: timedelta) -> None:
    """A scheduler saw the schedule long ago and its last tick's backup is ``age`` old."""
    now = utc_now()
    tick = now.replace(minute=0, second=0, microsecond=0)
    if now - tick < timedelta(minutes=10):  # that tick is still within its grace
        tick -= timedelta(hours=1)
    write_state(repo, "hourly", ScheduleState(first_seen=iso_z(now - timedelta(days=1))))
    moment = max(tick, now - age)
    stored_backup(repo, moment, {"db": b"x"}, label="auto", trigger="schedule:hourly")


def test_healthy_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    ran_on_time(Repository.open(tmp_path / "repo"), timedelta(minutes=5))
    code, out = lifeboat(capsys, config, "status")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "status OK"
    assert lines[2].startswith("  gold: ok, ")
    assert lines[2].endswith("(RPO 1h); RTO 15m: never drilled")
    assert "  hourly: @hourly (UTC) backs up db" in lines
    assert "locks: none held" in lines


def test_a_breached_tier_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, '[tiers.slow]\nrpo = "2h"\nrto = "1h"\nsources = ["db"]\n')
    repo = Repository.open(tmp_path / "repo")
    write_state(repo, "hourly", ScheduleState(first_seen=iso_z(utc_now())))
    stored_backup(repo, utc_now() - timedelta(minutes=100), {"db": b"x"})
    code, out = lifeboat(capsys, config, "status")
    assert code == 1
    assert out.splitlines()[0] == "status UNHEALTHY (1 problems)"
    assert "  gold: BREACH, 1h 40m ago (RPO 1h); RTO 15m: never drilled" in out
    assert "  slow: WARNING, 1h 40m ago (RPO 2h); RTO 1h: never drilled" in out  # only warns
    assert "problems:\n  tier gold: RPO 1h breached (last backup 1h 40m ago)" in out


def test_an_overdue_schedule_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    repo = Repository.open(tmp_path / "repo")
    code, out = lifeboat(capsys, config, "status", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["healthy"] is False
    never = "schedule hourly: never run; start `lifeboat scheduler run`"
    assert never in report["problems"]
    assert "tier gold: RPO 1h breached (never backed up)" in report["problems"]

    write_state(repo, "hourly", ScheduleState(first_seen=iso_z(utc_now() - timedelta(days=1))))
    stored_backup(repo, utc_now() - timedelta(minutes=30), {"db": b"x"})  # a manual one
    code, out = lifeboat(capsys, config, "status", "--json")
    report = json.loads(out)
    assert code == 1
    [problem] = report["problems"]  # the tier is fine; the schedule made nothing
    assert problem.startswith("schedule hourly: no backup for the ")
    [schedule] = report["schedules"]
    assert schedule["overdue"] is True
    assert len(schedule["next_runs"]) == 5


def test_held_locks_are_listed_with_their_holder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    repo = Repository.open(tmp_path / "repo")
    ran_on_time(repo, timedelta(minutes=5))
    (repo.path / "locks").mkdir(mode=0o700)
    with locks.hold(repo.path / "locks" / "restore-h1.lock", "restore onto h1", "alice"):
        code, out = lifeboat(capsys, config, "status")
    assert code == 0
    assert "locks:\n  restore h1: pid " in out
    assert "(restore onto h1 by alice) since " in out


def test_etcd_lock_holders_show_in_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], etcd_member: EtcdServer
) -> None:
    extra = f'[coordination]\netcd = "{etcd_member.endpoint}"\n'
    config = write_config(tmp_path, extra)
    repo = Repository.open(tmp_path / "repo")
    ran_on_time(repo, timedelta(minutes=5))
    coordinator = Coordinator(etcd_member.client(), repo.repo_id(), "scheduler-b", 10)
    try:
        claim = coordinator.claim_tick("hourly", utc_now().replace(microsecond=0))
        assert not isinstance(claim, str)
        code, out = lifeboat(capsys, config, "status", "--json")
        assert code == 0
        [held] = json.loads(out)["locks"]
        assert held["kind"] == "schedule"
        assert held["name"] == "hourly"
        assert held["holder"].startswith("scheduler-b (pid ")
        claim.finish()
        code, out = lifeboat(capsys, config, "status")
        assert "locks: none held" in out
    finally:
        coordinator.close()


def test_unreachable_etcd_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, '[coordination]\netcd = "127.0.0.1:9"\nlease_ttl = 2\n')
    code, out = lifeboat(capsys, config, "status")
    assert code == 1
    assert "coordination: etcd at 127.0.0.1:9 does not answer" in out
    assert "remove [coordination] to run uncoordinated" in out


def test_schedule_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = (
        '[schedules.berlin]\ncron = "0 0 2 * * *"\ntimezone = "Europe/Berlin"\nenabled = false\n'
    )
    config = write_config(tmp_path, extra)
    code, out = lifeboat(capsys, config, "schedule", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "hourly: @hourly (UTC) backs up db"
    assert [line[:7] for line in lines[1:6]] == ["  next "] * 5
    berlin = lines.index("berlin: 0 0 2 * * * (Europe/Berlin) backs up every source  (disabled)")
    assert lines[berlin + 1].endswith(":00:00Z  " + lines[berlin + 1][-13:])
    assert "02:00 CE" in lines[berlin + 1]
    code, out = lifeboat(capsys, config, "schedule", "list", "--json")
    listed: list[dict[str, Any]] = json.loads(out)
    assert [s["name"] for s in listed] == ["hourly", "berlin"]
    assert listed[1]["enabled"] is False
    assert listed[1]["overdue"] is False


def test_scheduler_without_schedules_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bare.toml"
    config.write_text(f'[repository]\npath = "{tmp_path / "repo"}"\n')
    code, out = lifeboat(capsys, config, "scheduler", "run")
    assert code == 2
    assert "no schedules are configured; add one" in out


def test_prometheus_format_parses_and_keeps_the_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    repo = Repository.open(tmp_path / "repo")
    now = utc_now()
    write_state(repo, "hourly", ScheduleState(first_seen=iso_z(now - timedelta(days=1))))
    stored_backup(repo, now - timedelta(hours=3), {"db": b"x"}, trigger="schedule:hourly")
    code, out = lifeboat(capsys, config, "status", "--format", "prometheus")
    assert code == 1  # the breach fails the check, whatever the format
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(out)
        for sample in family.samples
    }
    assert values[("lifeboat_tier_rpo_breached", (("tier", "gold"),))] == 1
    assert values[("lifeboat_tier_last_backup_age_seconds", (("tier", "gold"),))] >= 3 * 3600
    assert values[("lifeboat_schedule_overdue", (("schedule", "hourly"),))] == 1
    assert values[("lifeboat_healthy", ())] == 0


def test_status_without_coordination_imports_no_ssh_or_etcd(tmp_path: Path) -> None:
    """`lifeboat status` runs from cron and monitoring: without [coordination] it needs no SSH
    library nor etcd client (their imports alone cost 0.15 s)."""
    config = write_config(tmp_path)
    code = (
        f"import sys; sys.argv = ['lifeboat', '--config', {str(config)!r}, 'status']\n"
        "from tui.entry import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'asyncssh', 'etcd3', 'grpc', "
        "'textual'}), file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "status UNHEALTHY" in done.stdout  # it ran
    assert done.stderr.strip().splitlines()[-1] == "[]"

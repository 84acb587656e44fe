"""The scheduler daemon on a real repository and a real SSH server: ticks, catch-up after
downtime, no overlap, prune after success, JSON logs, and stopping on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import Log, command_source, config_text
from sshd import SSHTestServer
from timing import DEADLINE, LEASE_TTL, until

from engine.config.load import parse_config
from engine.config.model import Config
from engine.config.schedules import ScheduleConfig
from engine.repo.manifest import iso_z
from engine.repo.repository import Repository
from engine.scaleout.coordination import CoordinationError
from engine.schedule.daemon import Scheduler, SchedulerError
from engine.schedule.status import ScheduleState, read_state, schedule_statuses, write_state
from engine.schedule.ticks import local_claimer

LIFEBOAT = str(Path(sys.executable).with_name("lifeboat"))


def schedule_config(
    server: SSHTestServer, repo: Path, cron: str, backup: list[str], extra: str = ""
) -> str:
    return config_text(
        server,
        repo,
        command_source("db", backup)
        + f'[schedules.tick]\ncron = "{cron}"\nscope = ["db"]\nlabel = "auto"\n'
        + extra,
    )


def scheduled(repo: Repository) -> list[Any]:
    return [m for m in repo.iter_backups() if m.trigger == "schedule:tick"]


async def run_for(
    config: Config, repo: Repository, log: Log, enough: Callable[[], bool], what: str
) -> None:
    daemon = Scheduler(config, repo, local_claimer(repo, "tester"), log, "test")
    task = asyncio.create_task(daemon.run())
    try:
        await until(enough, what)
    finally:
        daemon.stop()
        await asyncio.wait_for(task, DEADLINE)


async def test_each_tick_runs_once_and_never_early(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    repo = Repository.open(tmp_path / "repo")
    config = parse_config(
        schedule_config(asyncssh_server, repo.path, "*/2 * * * * *", ["echo", "x"])
    )
    log = Log()
    await run_for(config, repo, log, lambda: len(log.events("backup.finished")) >= 3, "3 backups")

    fired = [record["fire"] for record in log.events("fired")]
    assert len(fired) == len(set(fired))
    finished = {record["backup"]: record["fire"] for record in log.events("backup.finished")}
    backups = scheduled(repo)
    assert {m.id for m in backups} == set(finished)
    for manifest in backups:
        assert manifest.label == "auto"
        assert iso_z(manifest.created_at) >= finished[manifest.id]  # never before its tick
        assert int(finished[manifest.id][17:19]) % 2 == 0  # a */2 seconds tick
    state = read_state(repo, "tick")
    assert state is not None
    assert state.last_outcome == "ok"
    assert log[0]["event"] == "started"
    assert log[-1]["event"] == "stopped"


async def test_after_downtime_the_newest_missed_tick_runs_once(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    repo = Repository.open(tmp_path / "repo")
    config = parse_config(schedule_config(asyncssh_server, repo.path, "@hourly", ["echo", "x"]))
    write_state(
        repo,
        "tick",
        ScheduleState(first_seen="2026-01-01T00:00:00Z", last_fire="2026-01-02T00:00:00Z"),
    )
    log = Log()
    await run_for(config, repo, log, lambda: bool(log.events("backup.finished")), "the catch-up")
    await asyncio.sleep(0.5)  # nothing else may start: the next tick is up to an hour away

    [catch_up] = log.events("catch-up")
    assert catch_up["last"] == "2026-01-02T00:00:00Z"
    assert catch_up["fire"].endswith(":00:00Z")
    assert len(log.events("fired")) == 1
    assert len(scheduled(repo)) == 1
    state = read_state(repo, "tick")
    assert state is not None
    assert state.last_fire == catch_up["fire"]


async def test_a_schedule_never_overlaps_itself(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    repo = Repository.open(tmp_path / "repo")
    slow = ["sh", "-c", "sleep 2.5; echo x"]
    config = parse_config(schedule_config(asyncssh_server, repo.path, "* * * * * *", slow))
    log = Log()
    await run_for(config, repo, log, lambda: len(log.events("backup.finished")) >= 2, "2 backups")

    skipped = log.events("skipped")
    assert skipped
    assert all(record["reason"] == "run still going" for record in skipped)
    backups = sorted(scheduled(repo), key=lambda m: m.created_at)
    for earlier, later in zip(backups, backups[1:], strict=False):
        assert earlier.finished_at <= later.created_at


async def test_prunes_after_each_success_and_a_prune_failure_fails_no_backup(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    repo = Repository.open(tmp_path / "repo")
    text = schedule_config(
        asyncssh_server, repo.path, "*/2 * * * * *", ["echo", "x"], "[retention]\nkeep_last = 2\n"
    )
    config = parse_config(text)
    log = Log()
    await run_for(config, repo, log, lambda: len(log.events("prune")) >= 3, "3 prunes")
    finished = [record["backup"] for record in log.events("backup.finished")]
    assert len(finished) >= 3
    assert sorted(m.id for m in scheduled(repo)) == sorted(finished)[-2:]
    assert log.events("prune")[-1]["removed"]

    (repo.path / ".trash").rmdir()  # emptied by each delete
    (repo.path / ".trash").write_text("in the way")  # so deleting a backup now fails
    failures = Log()
    await run_for(
        config, repo, failures, lambda: bool(failures.events("prune.failed")), "a failed prune"
    )
    assert failures.events("backup.finished")
    assert not failures.events("backup.failed")
    state = read_state(repo, "tick")
    assert state is not None
    assert state.last_outcome == "ok"


async def start_daemon(config: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        LIFEBOAT,
        "--config",
        str(config),
        "scheduler",
        "run",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, "LIFEBOAT_CONFIG": ""},
    )


async def read_until(proc: asyncio.subprocess.Process, event: str) -> list[dict[str, Any]]:
    """JSON log records up to and including the first ``event``."""
    assert proc.stdout is not None
    records = []
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), DEADLINE)
        assert line, f"the scheduler exited before {event}"
        records.append(json.loads(line))
        if records[-1]["event"] == event:
            return records


async def sigterm_while_running(
    server: SSHTestServer, tmp_path: Path, seconds: float, *args: str
) -> tuple[list[str], Repository]:
    """Start a scheduler whose backups take ``seconds``, SIGTERM it once one has fired; the
    events it logged from then on, and the repository."""
    repo = tmp_path / "repo"
    slow = ["sh", "-c", f"sleep {seconds}; echo x"]
    config = tmp_path / "lifeboat.toml"
    config.write_text(schedule_config(server, repo, "* * * * * *", slow))
    proc = await start_daemon(config, *args)
    await read_until(proc, "fired")
    proc.send_signal(signal.SIGTERM)
    rest = await read_until(proc, "stopped")
    assert await asyncio.wait_for(proc.wait(), DEADLINE) == 0
    return [record["event"] for record in rest], Repository.open(repo)


async def test_sigterm_lets_the_running_backup_finish(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    events, repo = await sigterm_while_running(asyncssh_server, tmp_path, 1.5)
    assert events.index("stopping") < events.index("backup.finished")
    assert "fired" not in events[events.index("stopping") :]
    assert len(scheduled(repo)) == 1


async def test_sigterm_with_cancel_on_stop_cancels_cleanly(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    events, repo = await sigterm_while_running(asyncssh_server, tmp_path, 30, "--cancel-on-stop")
    assert "backup.cancelled" in events
    assert scheduled(repo) == []
    assert not list((repo.path / ".staging").iterdir())
    state = read_state(repo, "tick")
    assert state is not None
    assert state.last_outcome == "cancelled"
    assert state.last_fire is None  # a cancelled tick is run again after a restart


class Daemon:
    """A ``lifeboat scheduler run`` process whose JSON log is read as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.records: list[dict[str, Any]] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.records.append(json.loads(line))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [record for record in self.records if record["event"] == name]

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), DEADLINE)
        await self.reader
        return code


def coordinated(server: SSHTestServer, repo: Path, endpoint: str, backup: list[str]) -> str:
    coordination = f'[coordination]\netcd = "{endpoint}"\nlease_ttl = {LEASE_TTL}\n'
    return schedule_config(server, repo, "*/2 * * * * *", backup, coordination)


async def test_three_schedulers_run_each_tick_exactly_once(
    asyncssh_server: SSHTestServer, etcd_member: Any, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    config = tmp_path / "lifeboat.toml"
    config.write_text(coordinated(asyncssh_server, repo, etcd_member.endpoint, ["echo", "x"]))
    daemons = [Daemon(await start_daemon(config)) for _ in range(3)]
    finished = lambda: [r for d in daemons for r in d.events("backup.finished")]  # noqa: E731
    await until(lambda: len(finished()) >= 5, "5 scheduled backups")
    assert [await daemon.stop() for daemon in daemons] == [0, 0, 0]

    runs = finished()
    fires = [record["fire"] for record in runs]
    assert len(fires) == len(set(fires)), "a tick ran twice"
    backups = scheduled(Repository.open(repo))
    assert sorted(m.id for m in backups) == sorted(record["backup"] for record in runs)
    reasons = {r["reason"].split(" ", 2)[0] for d in daemons for r in d.events("skipped")}
    assert reasons <= {"claimed", "tick", "previous", "run"}
    # Every tick from the first run to the last ran once, unless a run was still going.
    skips = [r for d in daemons for r in d.events("skipped") if "still going" in r["reason"]]
    busy = [(r.get("first", r.get("fire")), r.get("last", r.get("fire"))) for r in skips]
    tick = datetime.fromisoformat(min(fires))
    while iso_z(tick) < max(fires):
        late = any(first <= iso_z(tick) <= last for first, last in busy)
        assert iso_z(tick) in fires or late, f"tick {iso_z(tick)} never ran"
        tick += timedelta(seconds=2)


async def test_killing_the_holder_of_a_tick_lets_its_lease_expire_and_the_next_tick_run(
    asyncssh_server: SSHTestServer, etcd_member: Any, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    flag = tmp_path / "fast"
    # The first run lasts until the test lets it end, however slow the machine is.
    wait = f"until test -e {flag}; do sleep 0.1; done"
    backup = ["sh", "-c", f"timeout {DEADLINE} sh -c '{wait}'; echo x"]
    config = tmp_path / "lifeboat.toml"
    config.write_text(coordinated(asyncssh_server, repo, etcd_member.endpoint, backup))
    daemons = [Daemon(await start_daemon(config)) for _ in range(2)]
    await until(lambda: any(d.events("fired") for d in daemons), "a tick to be claimed")
    victim, survivor = daemons if daemons[0].events("fired") else daemons[::-1]
    [claimed] = victim.events("fired")
    pid = f"pid {victim.proc.pid} "
    refusals = lambda: [r for r in survivor.events("skipped") if pid in r["reason"]]  # noqa: E731
    await until(lambda: bool(refusals()), "the survivor to be refused while the victim runs")
    victim.proc.kill()
    await victim.proc.wait()
    flag.touch()

    await until(lambda: bool(survivor.events("backup.finished")), "the survivor's backup")
    assert await survivor.stop() == 0
    [run] = survivor.events("backup.finished")
    assert run["fire"] > claimed["fire"]
    backups = scheduled(Repository.open(repo))
    assert [m.id for m in backups] == [run["backup"]]  # the victim's half-made backup is not one


async def test_a_failed_run_is_logged_with_its_error_and_recorded(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    repo = Repository.open(tmp_path / "repo")
    failing = ["sh", "-c", "echo disk on fire >&2; exit 3"]
    config = parse_config(schedule_config(asyncssh_server, repo.path, "*/2 * * * * *", failing))
    log = Log()
    await run_for(config, repo, log, lambda: bool(log.events("backup.failed")), "a failure")

    [job, *_] = log.events("job")
    assert job["level"] == "error"
    assert job["source"] == "db"
    assert "disk on fire" in job["text"]
    [failed, *_] = log.events("backup.failed")
    assert "disk on fire" in failed["error"]
    assert scheduled(repo) == []
    state = read_state(repo, "tick")
    assert state is not None
    assert state.last_outcome == "failed"
    assert state.last_fire == failed["fire"]
    assert "disk on fire" in (state.last_error or "")


async def test_a_claim_that_fails_loses_that_tick_only(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    """etcd not answering in time at one tick: that tick is skipped with the reason, and the
    schedule goes on firing."""
    repo = Repository.open(tmp_path / "repo")
    config = parse_config(schedule_config(asyncssh_server, repo.path, "*/2 * * * * *", ["echo"]))
    claim = local_claimer(repo, "tester")
    attempts: list[str] = []

    def flaky(schedule: str, fire: datetime) -> Any:
        attempts.append(iso_z(fire))
        if len(attempts) == 1:
            raise CoordinationError("coordination: etcd request failed (deadline exceeded)")
        return claim(schedule, fire)

    log = Log()
    daemon = Scheduler(config, repo, flaky, log, "test")
    task = asyncio.create_task(daemon.run())
    try:
        await until(lambda: bool(log.events("backup.finished")), "a backup after the failure")
    finally:
        daemon.stop()
        await asyncio.wait_for(task, DEADLINE)
    [lost, *_] = log.events("skipped")
    assert lost["fire"] == attempts[0]
    assert (
        lost["reason"] == "cannot claim it: coordination: etcd request failed (deadline exceeded)"
    )
    assert log.events("backup.finished")[0]["fire"] > attempts[0]


async def test_a_new_schedule_is_never_called_overdue_once_a_scheduler_runs(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    """A schedule no scheduler has seen is overdue (nothing runs it). ``registered`` is set
    once every enabled schedule was seen, long before an hourly first tick; the watch's
    first look waits for it (it used to write ``overdue 1`` and alert on a fresh start), and
    so does the demo's console."""
    repo = Repository.open(tmp_path / "repo")
    textfile = tmp_path / "lifeboat.prom"
    metrics = f'[metrics]\ntextfile = "{textfile}"\n'
    config = parse_config(
        schedule_config(asyncssh_server, repo.path, "0 * * * *", ["echo"], extra=metrics)
    )
    (unseen,) = schedule_statuses(config, repo, [])
    assert unseen.overdue
    daemon = Scheduler(config, repo, local_claimer(repo, "tester"), Log(), "test")
    task = asyncio.create_task(daemon.run())
    try:
        await asyncio.wait_for(daemon.registered.wait(), DEADLINE)
        (seen,) = schedule_statuses(config, repo, [])
        assert not seen.overdue
        await until(textfile.exists, "the watch's first look")
    finally:
        daemon.stop()
        await asyncio.wait_for(task, DEADLINE)
    assert 'lifeboat_schedule_overdue{schedule="tick"} 0' in textfile.read_text()


async def test_a_schedule_that_fails_ends_alone_logged_at_once_and_the_run_fails(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    """A schedule whose next fire time cannot be computed (built in code past the config's
    check): its loop logs the error at once, the other schedule keeps firing, and the
    scheduler's run ends with an error naming it."""
    repo = Repository.open(tmp_path / "repo")
    config = parse_config(schedule_config(asyncssh_server, repo.path, "*/2 * * * * *", ["echo"]))
    broken = ScheduleConfig.model_construct(cron="0 2 31 2 *", scope=("db",))
    config = config.model_copy(update={"schedules": {"feb": broken, **config.schedules}})
    log = Log()
    daemon = Scheduler(config, repo, local_claimer(repo, "tester"), log, "test")
    task = asyncio.create_task(daemon.run())
    try:
        await until(lambda: bool(log.events("schedule.failed")), "the broken schedule's error")
        before = len(log.events("backup.finished"))
        await until(lambda: len(log.events("backup.finished")) > before, "the other one firing")
    finally:
        daemon.stop()
        with pytest.raises(SchedulerError) as caught:
            await asyncio.wait_for(task, DEADLINE)
    [failed] = log.events("schedule.failed")
    assert failed["schedule"] == "feb"
    assert "no next fire time" in failed["error"]
    assert {r["schedule"] for r in log.events("fired")} == {"tick"}
    assert log.events("stopped")[-1]["failed"] == ["feb"]
    assert "the scheduler stopped firing feb after an error" in str(caught.value)


async def test_a_scheduler_that_stops_on_an_error_exits_non_zero(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    """Its only schedule's state cannot be written (``schedules`` is a file, not the state
    directory): the loop fails, the daemon stops and says why, with exit status 1."""
    repo = Repository.open(tmp_path / "repo")
    (repo.path / "schedules").write_text("in the way")
    config = tmp_path / "lifeboat.toml"
    config.write_text(schedule_config(asyncssh_server, repo.path, "* * * * * *", ["echo"]))
    proc = await start_daemon(config)
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode == 1
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert events == ["started", "schedule.failed", "stopped"]
    assert "lifeboat: error: the scheduler stopped firing tick after an error" in err.decode()
    assert "Traceback" not in err.decode()

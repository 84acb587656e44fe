"""etcd coordination against a real etcd: tick claims, restore locks, leases outliving death."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from etcd_server import EtcdServer
from helpers import Log, config_text
from prometheus_client.parser import text_string_to_metric_families
from sshd import SSHTestServer, free_port
from timing import DEADLINE, ETCD_CLIENT_TIMEOUT, LEASE_TTL, eventually

from engine.config.load import parse_config
from engine.errors import RepositoryLockedError
from engine.repo.repository import Repository
from engine.restore.locks import TargetLocks
from engine.scaleout.coordination import (
    CoordinationError,
    Coordinator,
    LockInfo,
    TickClaim,
    open_coordinator,
)
from engine.schedule.daemon import Scheduler
from engine.status import LockLine, lock_lines

REPO = "repo-1"
T0 = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)


@pytest.fixture
def coordinators(etcd_member: EtcdServer) -> Iterator[Callable[..., Coordinator]]:
    """Makes Coordinators on the test etcd, each with its own client; closes them after."""
    made: list[Coordinator] = []

    def make(instance: str, ttl: float = LEASE_TTL, repo_id: str = REPO) -> Coordinator:
        coordinator = Coordinator(etcd_member.client(), repo_id, instance, ttl)
        made.append(coordinator)
        return coordinator

    yield make
    for coordinator in made:
        coordinator.close()


def claimed(result: TickClaim | str) -> TickClaim:
    assert isinstance(result, TickClaim), result
    return result


def lease_of(member: EtcdServer, key: str) -> int:
    with member.client() as client:
        _value, meta = client.get(key)
        assert meta is not None, f"{key} is absent"
        return int(meta.lease_id)


def test_claims_respect_running_runs_claimed_ticks_and_the_done_marker(
    coordinators: Callable[..., Coordinator], etcd_member: EtcdServer
) -> None:
    a, b = coordinators("scheduler-a"), coordinators("scheduler-b")
    t1, t2 = T0, T0 + timedelta(hours=1)

    first = claimed(a.claim_tick("nightly", t1))
    assert first.info.fire == "2026-11-21T02:00:00Z"
    assert not first.lost
    assert b.claim_tick("nightly", t1).startswith(f"claimed by scheduler-a (pid {os.getpid()} ")
    going = b.claim_tick("nightly", t2)
    assert going.startswith(f"previous run still going on scheduler-a (pid {os.getpid()} on ")
    assert claimed(b.claim_tick("weekly", t1))  # other schedules are independent
    first.finish()

    assert b.claim_tick("nightly", t1) == "tick already done"
    second = claimed(b.claim_tick("nightly", t2))
    second.finish()
    with etcd_member.client() as client:
        assert client.get(f"/lifeboat/{REPO}/schedules/nightly/done")[0] == b"2026-11-21T03:00:00Z"
    assert a.claim_tick("nightly", t1) == "tick already done"  # older than the newest done
    assert a.claim_tick("nightly", t2) == "tick already done"
    with pytest.raises(RuntimeError, match="has ended"):
        second.finish()

    # A released claim is given up, not done: the tick can be claimed again.
    t3 = t2 + timedelta(hours=1)
    with claimed(a.claim_tick("nightly", t3)):
        pass
    claimed(b.claim_tick("nightly", t3)).finish()
    # Naive times are refused: a fire time must say which instant it is.
    with pytest.raises(ValueError, match="no time zone"):
        a.claim_tick("nightly", datetime(2026, 11, 22, 2, 0))


def test_racing_instances_run_each_tick_once(coordinators: Callable[..., Coordinator]) -> None:
    racers = [coordinators("racer-a"), coordinators("racer-b")]
    barrier = threading.Barrier(2)

    def race(coordinator: Coordinator, fire: datetime) -> TickClaim | str:
        barrier.wait()
        return coordinator.claim_tick("nightly", fire)

    with ThreadPoolExecutor(2) as pool:
        for minute in range(40):
            fire = T0 + timedelta(minutes=minute)
            results = list(pool.map(race, racers, [fire, fire]))
            claims = [r for r in results if isinstance(r, TickClaim)]
            assert len(claims) == 1, results
            (winner,) = claims
            (refusal,) = [r for r in results if isinstance(r, str)]
            assert refusal.startswith(f"claimed by {winner.info.instance} ")
            winner.finish()


def test_holders_lists_live_claims_and_restore_locks(
    coordinators: Callable[..., Coordinator],
) -> None:
    a, b, watcher = coordinators("scheduler-a"), coordinators("console-b"), coordinators("w")
    assert watcher.holders() == []
    claim = claimed(a.claim_tick("nightly/full", T0))  # a "/" in a name stays one segment
    before = datetime.now(UTC) - timedelta(seconds=1)
    with b.target_locks().hold("db1", "alice"):
        restore, tick = watcher.holders()  # by key
        assert tick == LockInfo(
            key=f"/lifeboat/{REPO}/schedules/nightly%2Ffull/running",
            kind="schedule",
            name="nightly/full",
            instance="scheduler-a",
            host=socket.gethostname(),
            pid=os.getpid(),
            since=tick.since,
            fire="2026-11-21T02:00:00Z",
        )
        assert restore.key == f"/lifeboat/{REPO}/restore/db1"
        assert (restore.kind, restore.name, restore.instance) == ("restore", "db1", "console-b")
        assert (restore.operator, restore.pid, restore.fire) == ("alice", os.getpid(), None)
        for lock in (tick, restore):
            since = datetime.fromisoformat(lock.since)
            assert since.tzinfo is not None
            assert since >= before.replace(microsecond=0)
        assert restore.describe() == (
            f"console-b (pid {os.getpid()} on {socket.gethostname()}, operator alice) "
            f"since {restore.since}"
        )
        assert coordinators("x", repo_id="another-repo").holders() == []
    assert [lock.instance for lock in watcher.holders()] == ["scheduler-a"]
    claim.finish()
    assert watcher.holders() == []  # the done marker is not a lock


async def test_the_scheduler_watch_counts_the_locks_held_in_etcd(
    coordinators: Callable[..., Coordinator], tmp_path: Path
) -> None:
    textfile = tmp_path / "lifeboat.prom"
    config = parse_config(
        f'operator = "tester"\n[repository]\npath = "{tmp_path / "repo"}"\n'
        f'[metrics]\ntextfile = "{textfile}"\n'
    )
    repo = Repository.open(config.repository.path)
    scheduler, console = coordinators("scheduler-a"), coordinators("console-b")
    log = Log()
    daemon = Scheduler(
        config, repo, scheduler.claim_tick, log, "a", shared_locks=partial(lock_lines, scheduler)
    )
    with console.target_locks().hold("db1", "alice"):
        await daemon.look()
    assert held_metrics(textfile)[(("kind", "restore"),)] == 1  # a console's restore, in etcd
    await daemon.look()
    assert held_metrics(textfile)[(("kind", "restore"),)] == 0

    def etcd_away() -> list[LockLine]:
        raise CoordinationError("etcd at 127.0.0.1:1 does not answer")

    daemon.shared_locks = etcd_away
    await daemon.look()  # the rest of the status still counts, and the failure is said
    assert held_metrics(textfile)[(("kind", "repository"),)] == 0
    (failed,) = log.events("locks.failed")
    assert "does not answer" in failed["error"]


def held_metrics(textfile: Path) -> dict[tuple[tuple[str, str], ...], float]:
    held = next(
        f
        for f in text_string_to_metric_families(textfile.read_text())
        if f.name == "lifeboat_locks_held"
    )
    return {tuple(sorted(sample.labels.items())): sample.value for sample in held.samples}


def test_restore_target_locks_refuse_a_second_holder(
    coordinators: Callable[..., Coordinator],
) -> None:
    first: TargetLocks = coordinators("console-a").target_locks()
    second: TargetLocks = coordinators("console-b").target_locks()
    assert first.holder("db1") is None
    with first.hold("db1", "alice"):
        holder = second.holder("db1")
        assert holder is not None
        assert holder.startswith(f"console-a (pid {os.getpid()} on {socket.gethostname()}, ")
        assert ", operator alice) since " in holder
        with (
            pytest.raises(
                RepositoryLockedError, match=r"another restore holds db1: console-a "
            ) as refused,
            second.hold("db1", "bob"),
        ):
            pytest.fail("a second restore of db1 was let in")
        assert str(refused.value).endswith("; wait for it to finish")
        with second.hold("db2", "bob"):  # another target is free
            assert first.holder("db2") is not None
    assert second.holder("db1") is None
    with second.hold("db1", "bob"):
        assert first.holder("db1") is not None


def test_a_claim_whose_lease_was_revoked_is_lost_and_never_clobbers_its_successor(
    coordinators: Callable[..., Coordinator], etcd_member: EtcdServer
) -> None:
    a, b = coordinators("scheduler-a"), coordinators("scheduler-b")
    claim = claimed(a.claim_tick("nightly", T0))
    with etcd_member.client() as client:
        client.revoke_lease(lease_of(etcd_member, f"/lifeboat/{REPO}/schedules/nightly/running"))
    eventually(lambda: claim.lost, "the claim to be lost")
    assert a.holders() == []

    successor = claimed(b.claim_tick("nightly", T0))  # the tick was never done
    claim.finish()  # the run did happen: the tick is done, but b's keys stay b's
    assert [lock.instance for lock in a.holders()] == ["scheduler-b"]
    assert a.claim_tick("nightly", T0) == "tick already done"
    assert not successor.lost
    successor.finish()
    assert a.holders() == []


async def test_a_claim_is_lost_while_etcd_is_away_and_the_client_recovers(
    etcd_member: EtcdServer, tmp_path: Path
) -> None:
    repo = Repository.open(tmp_path / "repo")
    config = parse_config(
        f'[repository]\npath = "{repo.path}"\n'
        f'[coordination]\netcd = "{etcd_member.endpoint}"\nlease_ttl = {LEASE_TTL}\n'
    )
    async with open_coordinator(config, repo) as coordinator:
        assert coordinator is not None
        assert coordinator.instance == f"{socket.gethostname()}-{os.getpid()}"
        claim = claimed(coordinator.claim_tick("nightly", T0))
        etcd_member.stop()
        with pytest.raises(CoordinationError, match=r"^coordination: etcd request failed \("):
            coordinator.holders()
        eventually(lambda: claim.lost, "the claim to be lost")
        etcd_member.start()
        eventually(
            lambda: not isinstance(_try(coordinator.holders), CoordinationError),
            "etcd to answer again",
        )
        assert claim.lost  # for good: the lease may have been someone else's meanwhile
        claim.release()
        claimed(coordinator.claim_tick("nightly", T0 + timedelta(hours=1))).finish()


def _try(call: Callable[[], object]) -> object:
    try:
        return call()
    except CoordinationError as exc:
        return exc


VICTIM = """
import sys, time
from datetime import datetime
import etcd3
from engine.scaleout.coordination import Coordinator
client = etcd3.client(host="127.0.0.1", port=int(sys.argv[1]), timeout=float(sys.argv[4]))
coordinator = Coordinator(client, sys.argv[2], "victim", int(sys.argv[5]))
claim = coordinator.claim_tick("nightly", datetime.fromisoformat(sys.argv[3]))
print(claim if isinstance(claim, str) else "claimed", flush=True)
time.sleep(600)
"""


def test_a_killed_holder_keeps_its_claim_until_the_lease_expires(
    coordinators: Callable[..., Coordinator], etcd_member: EtcdServer
) -> None:
    survivor = coordinators("survivor")
    argv = [sys.executable, "-c", VICTIM, str(etcd_member.client_port), REPO, T0.isoformat()]
    argv += [str(ETCD_CLIENT_TIMEOUT), str(LEASE_TTL)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as victim:
        try:
            assert victim.stdout is not None
            assert victim.stdout.readline().strip() == "claimed"
            time.sleep(LEASE_TTL + 1)  # alive, it keeps its lease refreshed past the TTL
            (held,) = survivor.holders()
            assert (held.instance, held.pid) == ("victim", victim.pid)
            lease = lease_of(etcd_member, held.key)
            killed = time.monotonic()
        finally:
            victim.kill()

    next_tick = T0 + timedelta(hours=1)
    # Its last refresh was at most a third of the TTL before the kill: a claim tried within
    # half the TTL of it meets a live lease.
    soon = time.monotonic() - killed < LEASE_TTL / 2
    refusals: list[str] = []
    while isinstance(result := survivor.claim_tick("nightly", next_tick), str):
        refusals.append(result)
        assert time.monotonic() < killed + DEADLINE, "the dead holder's claim never expired"
        time.sleep(0.1)
    assert refusals or not soon
    assert all(
        r.startswith(f"previous run still going on victim (pid {victim.pid} ") for r in refusals
    )
    with etcd_member.client() as client:
        assert client.get_lease_info(lease).TTL == -1  # expired
    assert [lock.instance for lock in survivor.holders()] == ["survivor"]
    result.finish()


async def test_open_coordinator_refuses_an_etcd_that_does_not_answer(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    base = f'operator = "tester"\n[repository]\npath = "{repo.path}"\n'
    async with open_coordinator(parse_config(base), repo) as nothing:
        assert nothing is None
    endpoint = f"127.0.0.1:{free_port()}"
    config = parse_config(base + f'[coordination]\netcd = "{endpoint}"\n')
    with pytest.raises(CoordinationError) as refused:
        async with open_coordinator(config, repo):
            pytest.fail("yielded a coordinator for a dead etcd")
    message = str(refused.value)
    assert message.startswith(f"coordination: etcd at {endpoint} does not answer (")
    assert message.endswith(
        "; check [coordination] etcd, or remove [coordination] to run uncoordinated"
    )


async def test_open_coordinator_through_an_ssh_tunnel(
    asyncssh_server: SSHTestServer, etcd_member: EtcdServer, tmp_path: Path
) -> None:
    coordination = (
        f'[coordination]\netcd = "{etcd_member.endpoint}"\nhost = "h1"\n'
        f'lease_ttl = {LEASE_TTL}\ninstance = "tunnelled"\n'
    )
    config = parse_config(config_text(asyncssh_server, tmp_path / "repo", coordination))
    repo = Repository.open(config.repository.path)
    repo_id = json.loads((repo.path / "lifeboat-repo.json").read_text())["repo_id"]
    assert repo.repo_id() == repo_id
    direct = Coordinator(etcd_member.client(), repo_id, "direct", LEASE_TTL)
    try:
        async with open_coordinator(config, repo) as coordinator:
            assert coordinator is not None
            claim = claimed(await asyncio.to_thread(coordinator.claim_tick, "nightly", T0))
            await asyncio.sleep(LEASE_TTL + 1)  # past the TTL: refreshes go through the tunnel
            assert not claim.lost
            (held,) = await asyncio.to_thread(direct.holders)
            assert (held.instance, held.pid) == ("tunnelled", os.getpid())
            await asyncio.to_thread(claim.finish)
            assert await asyncio.to_thread(direct.claim_tick, "nightly", T0) == (
                "tick already done"
            )
            claimed(await asyncio.to_thread(coordinator.claim_tick, "weekly", T0))
            # Leaving releases whatever is still held.
            assert [lock.name for lock in await asyncio.to_thread(direct.holders)] == ["weekly"]
        assert await asyncio.to_thread(direct.holders) == []
    finally:
        await asyncio.to_thread(direct.close)


def test_lock_values_are_plain_json() -> None:
    info = LockInfo("/k", "restore", "db1", "i", "h", 1, "2026-11-21T02:00:00Z", operator="o")
    assert json.loads(info.to_json()) == {
        "kind": "restore",
        "name": "db1",
        "instance": "i",
        "host": "h",
        "pid": 1,
        "since": "2026-11-21T02:00:00Z",
        "operator": "o",
    }
    assert LockInfo.from_json("/k", info.to_json().replace("{", '{"new": 1, ', 1).encode()) == info
    with pytest.raises(CoordinationError, match="unreadable value"):
        LockInfo.from_json("/k", b"not json")

"""How long the console's UI loop stalls while it works: its worst stall, in ms.

Method: the console runs headless (``App.run_test``) on this process's event loop, the loop
Textual handles keys and paints on. A probe callback is scheduled on that loop every
``PROBE_MS`` (``loop.call_at``) and records how late it runs. Work that holds the loop for D ms
(one callback, or callbacks that follow each other without the timer's turn) makes the next
probe late by between D - PROBE_MS and D: the worst lateness in a scenario is its worst stall.
It is what an operator feels: a key pressed during the stall is handled that much later.

To say *why*, a watchdog thread looks at the loop thread's Python stack every ``SAMPLE_MS``
while the probe is overdue by more than ``WHY_MS``, and counts the innermost Lifeboat frame
(with the innermost frame of all, when that is a library's): each sample is about
``SAMPLE_MS`` of stall spent there. Garbage-collector pauses on the loop are timed too.

Each scenario runs on a fresh console at 120x36, the probe started once the console settled:

(a) a backup of ``--size`` (1 GiB) of a ``command`` source (``head -c SIZE /dev/zero``) from
    the system OpenSSH sshd on 127.0.0.1 (bulk bytes through the ``ssh`` client, as hosts do
    by default; ``--bulk asyncssh``: decrypted by asyncssh, on the loop), started as ``b`` does
    (``app.start_backup``), with the dashboard open, until the job ended and the dashboard
    caught up; the repository is on disk (the system temp dir), not tmpfs;
(b) a repository of 10,000 backups (bench/tui_browser.py's, in /dev/shm when it exists) and
    a config with a tier no backup covers and a schedule that never ran: a dashboard refresh
    (what a finished job and the 30 s timer trigger), then the wizard: ``r``, "MongoDB is
    corrupted" (which shows the Plan step), then Next on the Plan step;
(c) a checklist saved from the checklist screen: a new run on a backup (saved as it opens),
    then its manual item ticked with a note (saved again); the repository is on disk.

Target: a worst stall <= 50 ms in each. The last line reads ``worst_stall_ms=N``, the worst
of the three. Run it as root or as a user allowed to start sshd (it needs ``/run/sshd``)::

    .venv/bin/python bench/console_lag.py
    .venv/bin/python bench/console_lag.py --size 256M --runs 3 --only a,c
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from benchargs import human, parse_size, positive_int
from textual.pilot import Pilot
from tui_browser import make_repository

from engine.config.load import parse_config
from engine.demo.server import generate_keys
from engine.repo.repository import Repository
from tui.console.app import LifeboatApp, make_app
from tui.console.screens.wizard import RestoreWizard

ROOT = Path(__file__).resolve().parent.parent
# The benches start servers and drive screens the way the tests do (see ssh_throughput.py).
sys.path.insert(0, str(ROOT / "tests" / "support"))
from helpers import host_toml, stored_backup  # noqa: E402
from sshd import OpenSSHServer  # noqa: E402
from wizard_pilot import choose  # noqa: E402

SIZE = (120, 36)
PROBE_MS = 2.0
SAMPLE_MS = 5.0
WHY_MS = 20.0
TARGET_MS = 50.0
BACKUPS = 10_000
OWN = (str(ROOT / "engine"), str(ROOT / "tui"))


# -- the probe ---------------------------------------------------------------------------------


@dataclass
class Stall:
    """What the probe saw during one step."""

    worst_ms: float
    where: Counter[str]
    gc_ms: float

    def why(self, shown: int = 3) -> str:
        places = [f"~{n * SAMPLE_MS:.0f} ms in {place}" for place, n in self.where.most_common()]
        places = places[:shown] or ["nowhere over the watchdog's threshold"]
        return f"longest GC pause {self.gc_ms:.1f} ms; stalled: " + "; ".join(places)


def _place(frame: FrameType) -> str:
    """``engine/repo/sink.py:47 write`` for the innermost Lifeboat frame of a stack, with the
    innermost frame of all after it when that is not Lifeboat's (no source lines are read:
    the sample must cost the loop next to nothing)."""
    inner, own = frame, None
    walked: FrameType | None = frame
    while walked is not None and own is None:
        if walked.f_code.co_filename.startswith(OWN):
            own = walked
        walked = walked.f_back

    def name(f: FrameType) -> str:
        path = Path(f.f_code.co_filename)
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else Path(*path.parts[-2:])
        return f"{shown}:{f.f_lineno} {f.f_code.co_name}"

    if own is None:
        return name(inner)
    return name(own) if own is inner else f"{name(own)} > {name(inner)}"


class StallProbe:
    """A callback on the running loop every PROBE_MS that keeps its worst lateness, a watchdog
    thread that samples the loop's stack while the callback is overdue, and GC pause times."""

    def __init__(self, *, why: bool = True) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()
        self._stall = Stall(0.0, Counter(), 0.0)
        self._last = time.perf_counter()  # when the probe last ran (read by the watchdog)
        self._gc_started = 0.0
        self._due = self.loop.time() + PROBE_MS / 1000
        self._handle = self.loop.call_at(self._due, self._tick)
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="lag-watchdog", daemon=True)
        if why:
            self._watchdog.start()
        gc.callbacks.append(self._gc)

    def _tick(self) -> None:
        now = self.loop.time()
        self._stall.worst_ms = max(self._stall.worst_ms, (now - self._due) * 1000)
        self._last = time.perf_counter()
        self._due = now + PROBE_MS / 1000
        self._handle = self.loop.call_at(self._due, self._tick)

    def _watch(self) -> None:
        while not self._stop.wait(SAMPLE_MS / 1000):
            if (time.perf_counter() - self._last) * 1000 > WHY_MS:
                frame = sys._current_frames().get(self.thread)
                if frame is not None:
                    self._stall.where[_place(frame)] += 1

    def _gc(self, phase: str, _info: dict[str, int]) -> None:
        if threading.get_ident() != self.thread:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started:
            pause = (time.perf_counter() - self._gc_started) * 1000
            self._stall.gc_ms = max(self._stall.gc_ms, pause)

    def take(self) -> Stall:
        """What was seen since the probe started or was last taken; starts afresh."""
        seen, self._stall = self._stall, Stall(0.0, Counter(), 0.0)
        return seen

    def close(self) -> None:
        self._handle.cancel()
        self._stop.set()
        if self._watchdog.is_alive():
            self._watchdog.join()
        gc.callbacks.remove(self._gc)


# -- the scenarios -----------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    why: bool = True  # sample the loop's stack during stalls
    steps: dict[str, list[Stall]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, step: str, stall: Stall) -> None:
        self.steps.setdefault(step, []).append(stall)

    @property
    def worst_ms(self) -> float:
        return max(s.worst_ms for stalls in self.steps.values() for s in stalls)


async def settle(pilot: Pilot[None]) -> None:
    """Until every worker (jobs, readers) finished and the screen caught up."""
    await pilot.pause()
    while busy := [worker for worker in pilot.app.workers if not worker.is_finished]:
        await pilot.app.workers.wait_for_complete(busy)
        await pilot.pause()


async def on_console(
    app: LifeboatApp,
    scenario: Scenario,
    drive: Callable[[Pilot[None], StallProbe], Awaitable[None]],
) -> None:
    """Run ``drive`` on ``app`` headless, with the probe started once the console settled."""
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        gc.collect()  # what earlier scenarios left is not this one's pause
        probe = StallProbe(why=scenario.why)
        try:
            await drive(pilot, probe)
        finally:
            probe.close()


async def backup(work: Path, size: int, bulk: str, scenario: Scenario) -> None:
    """(a) a backup of ``size`` bytes from sshd with the dashboard open (``bulk``: the host's
    bulk_transport)."""
    server = OpenSSHServer(generate_keys(work / "keys"), work / "sshd")
    (work / "sshd").mkdir(exist_ok=True)
    server.start()
    try:
        config = parse_config(
            f'operator = "bench"\n[repository]\npath = {json.dumps(str(work / "repo"))}\n'
            + host_toml(server.describe(getpass.getuser()), bulk_transport=bulk)
            + '[sources.blob]\nkind = "command"\nhost = "h1"\n'
            + f'backup = ["head", "-c", "{size}", "/dev/zero"]\n'
            + '[tiers.data]\nrpo = "1h"\nrto = "15m"\nsources = ["blob"]\n'
        )

        async def drive(pilot: Pilot[None], probe: StallProbe) -> None:
            app = pilot.app
            assert isinstance(app, LifeboatApp)
            started = time.perf_counter()
            key = app.start_backup(label="lag")
            while app.board.jobs[key].finished is None:
                await pilot.pause(0.1)
            seconds = time.perf_counter() - started
            await settle(pilot)
            finished = app.board.jobs[key].finished
            assert finished is not None, "the backup did not finish"
            assert finished.ok, f"the backup failed: {finished}"
            scenario.add("backup", probe.take())
            scenario.notes.append(f"{size / seconds / 1e6:.0f} MB/s")

        await on_console(make_app(config, settings=work / "console.json"), scenario, drive)
    finally:
        server.stop()
        shutil.rmtree(work / "repo", ignore_errors=True)


def many_backups_config(repo: Path) -> str:
    """bench/tui_browser.py's sources, a tier no backup covers, a schedule that never ran."""
    return (
        f'operator = "bench"\n[repository]\npath = {json.dumps(str(repo))}\n'
        '[hosts.h1]\naddress = "127.0.0.1"\nport = 1\n'
        '[sources.config]\nkind = "command"\nhost = "h1"\nbackup = ["true"]\n'
        '[sources.mongo]\nkind = "mongo"\nhost = "h1"\nuri = "mongodb://127.0.0.1:1/"\n'
        '[sources.audit]\nkind = "command"\nhost = "h1"\nbackup = ["true"]\n'
        '[tiers.data]\nrpo = "1h"\nrto = "15m"\nsources = ["mongo", "config"]\n'
        '[tiers.audit]\nrpo = "24h"\nrto = "1h"\nsources = ["audit"]\n'
        '[schedules.hourly]\ncron = "0 * * * *"\nscope = ["config", "mongo"]\n'
        '[schedules.weekly]\ncron = "0 3 * * 0"\nscope = ["audit"]\n'
    )


async def many_backups(repo: Path, work: Path, scenario: Scenario) -> None:
    """(b) a dashboard refresh, then the wizard's Plan step and Next, over 10,000 backups."""
    config = parse_config(many_backups_config(repo))

    async def drive(pilot: Pilot[None], probe: StallProbe) -> None:
        app = pilot.app
        assert isinstance(app, LifeboatApp)
        app.backups_changed.publish(None)  # what a finished job does; the timer does the same
        await settle(pilot)
        scenario.add("dashboard refresh", probe.take())
        await pilot.press("r")
        await pilot.pause()
        wizard = app.screen
        probe.take()
        assert isinstance(wizard, RestoreWizard)
        await choose(pilot, wizard, "mongo-lost")  # type: ignore[arg-type]  # Pilot[object]
        await settle(pilot)
        assert step_of(wizard) == "plan", "the wizard did not show its plan"
        scenario.add("wizard shows the Plan", probe.take())
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert step_of(wizard) == "backup", "Next did not go to the backup step"
        scenario.add("wizard Plan -> Next", probe.take())

    await on_console(make_app(config, settings=work / "console.json"), scenario, drive)


def step_of(wizard: RestoreWizard) -> str:
    """The wizard's step in lower case."""
    return wizard.state.step.value.lower()


CHECKLIST = """name = "post-restore"
title = "After a restore"

[[items]]
id = "looked"
kind = "manual"
title = "The operator looked"
instruction = "Look at the application"
"""


async def checklist(work: Path, scenario: Scenario) -> None:
    """(c) a checklist run opened on a backup and ticked from the console, saved each time."""
    repo_path = work / "checklist-repo"
    shutil.rmtree(repo_path, ignore_errors=True)
    (work / "post-restore.toml").write_text(CHECKLIST)
    manifest = stored_backup(
        Repository.open(repo_path), datetime.now(UTC), {"config": b"x" * 64}, "lag"
    )
    config = parse_config(
        f'operator = "bench"\n[repository]\npath = {json.dumps(str(repo_path))}\n'
        '[hosts.h1]\naddress = "127.0.0.1"\nport = 1\n'
        '[sources.config]\nkind = "command"\nhost = "h1"\nbackup = ["true"]\n'
        f"[checklists]\npaths = [{json.dumps(str(work / 'post-restore.toml'))}]\n"
    )

    async def drive(pilot: Pilot[None], probe: StallProbe) -> None:
        app = pilot.app
        assert isinstance(app, LifeboatApp)
        app.action_checklist(manifest.id)
        await settle(pilot)
        scenario.add("checklist opened (saved)", probe.take())
        await pilot.press("t")
        await pilot.pause()
        await pilot.press(*"seen it", "enter")
        await settle(pilot)
        scenario.add("item ticked (saved)", probe.take())
        (run,) = (repo_path / "checklists").glob("*.json")
        assert '"ticked"' in run.read_text(), "the tick was not saved"

    await on_console(make_app(config, settings=work / "console.json"), scenario, drive)


# -- the report --------------------------------------------------------------------------------


def report(scenario: Scenario) -> None:
    mark = "ok" if scenario.worst_ms <= TARGET_MS else "OVER"
    notes = f" ({', '.join(scenario.notes)})" if scenario.notes else ""
    print(f"{scenario.name}: worst {scenario.worst_ms:.1f} ms [{mark}]{notes}")
    for step, stalls in scenario.steps.items():
        figures = [s.worst_ms for s in stalls]
        spread = ", ".join(f"{f:.1f}" for f in figures)
        median = statistics.median(figures)
        print(f"  {step}: worst {max(figures):.1f} ms, median {median:.1f} (runs: {spread})")
        worst = max(stalls, key=lambda s: s.worst_ms)
        print(f"    {worst.why()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"), help="(a), e.g. 256M")
    parser.add_argument(
        "--bulk", choices=["auto", "asyncssh"], default="auto", help="(a)'s bulk_transport"
    )
    parser.add_argument("--runs", type=positive_int, default=1, help="times each scenario runs")
    parser.add_argument("--only", default="a,b,c", help="scenarios to run, e.g. a,c")
    parser.add_argument("--no-why", action="store_true", help="no stack samples during stalls")
    parser.add_argument("--dir", type=Path, help="(b)'s repository (kept; reused if full)")
    args = parser.parse_args()
    chosen = set(args.only.split(","))
    scenarios = {
        "a": Scenario(f"(a) {human(args.size)} backup ({args.bulk}) with the console open"),
        "b": Scenario(f"(b) {BACKUPS:,} backups: dashboard refresh, wizard Plan -> Next"),
        "c": Scenario("(c) checklist saved"),
    }
    for scenario in scenarios.values():
        scenario.why = not args.no_why
    shm = Path("/dev/shm")
    with (
        tempfile.TemporaryDirectory(prefix="lifeboat-lag-") as tmp,
        tempfile.TemporaryDirectory(
            prefix="lifeboat-lag-", dir=shm if shm.is_dir() else None
        ) as fast,
    ):
        work = Path(tmp)
        repo = args.dir or Path(fast) / "repo"
        if "b" in chosen:
            started = time.perf_counter()
            make_repository(repo, BACKUPS)
            made = time.perf_counter() - started
            print(f"(b)'s repository: {BACKUPS:,} backups in {repo} ({made:.1f} s)")
        for _ in range(args.runs):
            if "a" in chosen:
                asyncio.run(backup(work, args.size, args.bulk, scenarios["a"]))
            if "b" in chosen:
                asyncio.run(many_backups(repo, work, scenarios["b"]))
            if "c" in chosen:
                asyncio.run(checklist(work, scenarios["c"]))
    ran = [scenarios[key] for key in sorted(chosen)]
    print(f"UI loop stalls (probe every {PROBE_MS:g} ms; target <= {TARGET_MS:g} ms each)")
    for scenario in ran:
        report(scenario)
    print(f"worst_stall_ms={max(s.worst_ms for s in ran):.0f}")


if __name__ == "__main__":
    main()

"""``lifeboat schedule list`` and ``lifeboat scheduler run``: backups that run by themselves.

``scheduler run`` stays in the foreground (for systemd or a container) and logs one JSON
object per line on stdout. SIGTERM or Ctrl-C stop it once the running jobs finish (at once
with ``--cancel-on-stop``; a second signal cancels them too).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, TextIO

import click

from engine.config.model import Config
from engine.errors import UsageError
from engine.repo.manifest import iso_z, utc_now
from engine.repo.repository import Repository
from engine.schedule.status import NEXT_RUNS, ScheduleStatus, schedule_statuses
from engine.schedule.ticks import local_claimer
from engine.status import lock_lines, schedule_dict
from tui.cli.common import CliState, pass_state, print_json, run_async
from tui.format import age

NO_SCHEDULES = (
    'no schedules are configured; add one, e.g. [schedules.nightly] cron = "0 2 * * *" '
    "(see README, Schedules)"
)


@click.group()
def schedule() -> None:
    """Configured schedules and their next runs."""


@schedule.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_state
def schedule_list(state: CliState, as_json: bool) -> None:
    """Each schedule with its next five runs and its last run."""
    config = state.config()
    if not config.schedules:
        raise UsageError(NO_SCHEDULES)
    repo = state.repository()
    statuses = schedule_statuses(config, repo, repo.iter_backups())
    if as_json:
        print_json([schedule_dict(s) for s in statuses])
        return
    for status in statuses:
        click.echo("\n".join(describe_schedule(status)))


def describe_schedule(
    status: ScheduleStatus, now: datetime | None = None, runs: int = NEXT_RUNS
) -> list[str]:
    """A schedule as a few lines: what, its next ``runs`` runs, how the last run went."""
    sched = status.schedule
    scope = ", ".join(sched.scope) or "every source"
    off = "" if sched.enabled else "  (disabled)"
    lines = [f"{status.name}: {sched.cron} ({sched.timezone}) backs up {scope}{off}"]
    for moment in status.next_runs[:runs]:
        local = moment.astimezone(sched.zone)
        shown = (
            iso_z(moment) if sched.timezone == "UTC" else f"{iso_z(moment)}  {local:%a %H:%M %Z}"
        )
        lines.append(f"  next {shown}")
    if status.last is not None:
        lines.append(f"  last backup {status.last.id} ({age(status.last.created_at, now)})")
    if status.state is not None and status.state.last_outcome not in (None, "ok"):
        lines.append(f"  last run {status.state.last_outcome}: {status.state.last_error}")
    if problem := status.problem():
        lines.append(f"  {'ERROR' if status.error else 'OVERDUE'}: {problem}")
    return lines


@click.group()
def scheduler() -> None:
    """The scheduler daemon."""


@scheduler.command("run")
@click.option(
    "--cancel-on-stop", is_flag=True, help="On SIGTERM, cancel running jobs instead of waiting."
)
@pass_state
def scheduler_run(state: CliState, cancel_on_stop: bool) -> None:
    """Fire the schedules until stopped, pruning after each success; logs JSON lines."""
    config = state.config()
    if not any(s.enabled for s in config.schedules.values()):
        raise UsageError(NO_SCHEDULES if not config.schedules else "every schedule is disabled")
    run_async(_run(config, state.repository(), cancel_on_stop))


async def _run(config: Config, repo: Repository, cancel_on_stop: bool) -> None:
    # Here, not at the top: `lifeboat status` imports this module for describe_schedule, and
    # needs neither the jobs, SSH nor etcd.
    from engine.scaleout.coordination import open_coordinator
    from engine.schedule.daemon import Scheduler, default_instance

    async with open_coordinator(config, repo) as coordinator:
        coordination = config.coordination
        instance = (coordination.instance if coordination else None) or default_instance()
        claim = coordinator.claim_tick if coordinator else local_claimer(repo, config.operator)
        shared = partial(lock_lines, coordinator) if coordinator else None
        daemon = Scheduler(
            config, repo, claim, json_log(instance, sys.stdout), instance, shared_locks=shared
        )
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            daemon.stop(cancel=cancel_on_stop or signals > 1)

        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, on_signal)
        await daemon.run()


def json_log(instance: str, stream: TextIO) -> Callable[..., None]:
    """A log function writing one JSON object per line to ``stream``."""

    def log(event: str, level: str = "info", **fields: Any) -> None:
        record = {"ts": iso_z(utc_now()), "level": level, "event": event, "instance": instance}
        stream.write(json.dumps({**record, **fields}, default=str) + "\n")
        stream.flush()

    return log

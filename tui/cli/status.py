"""``lifeboat status``: every tier against its RPO and RTO, every schedule, every held lock.

Exits 1 when a tier is past its RPO, a schedule is overdue or a backup is damaged, so cron or
monitoring can alert on it; 0 otherwise (warnings included).
"""

from __future__ import annotations

import sys

import click

from engine.durations import format_duration
from engine.metrics import render
from engine.status import (
    BackupFacts,
    RpoState,
    StatusReport,
    TierStatus,
    gather,
    shared_locks,
)
from tui.cli.common import CliState, pass_state, print_json, run_async
from tui.cli.schedule import describe_schedule
from tui.format import age, seconds_text

EXIT_UNHEALTHY = 1


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "prometheus"]),
    default="text",
    show_default=True,
    help="json for scripts; prometheus: metrics in Prometheus' text format.",
)
@click.option("--json", "as_json", is_flag=True, help="The same as --format json.")
@pass_state
def status(state: CliState, fmt: str, as_json: bool) -> None:
    """RPO/RTO per tier, overdue schedules and lock holders; exits 1 on a breach."""
    config = state.config()
    repo = state.repository()
    facts = BackupFacts()
    report = gather(config, repo, shared_locks=run_async(shared_locks(config, repo)), facts=facts)
    if as_json or fmt == "json":
        print_json(report.to_dict())
    elif fmt == "prometheus":
        click.echo(render(report, facts.newest(repo, config.sources)), nl=False)
    else:
        click.echo("\n".join(describe_report(report)))
    if not report.healthy:
        sys.exit(EXIT_UNHEALTHY)


def describe_report(report: StatusReport) -> list[str]:
    verdict = "OK" if report.healthy else f"UNHEALTHY ({len(report.problems)} problems)"
    lines = [f"status {verdict}"]
    if report.tiers:
        lines.append("tiers:")
        lines.extend(f"  {describe_tier(t, report)}" for t in report.tiers)
    if report.schedules:
        lines.append("schedules:")
        for schedule in report.schedules:
            lines.extend(f"  {line}" for line in describe_schedule(schedule, report.at, runs=2))
    lines.append("locks:" if report.locks else "locks: none held")
    lines.extend(f"  {lock.kind} {lock.name}: {lock.holder}" for lock in report.locks)
    if report.problems:
        lines.append("problems:")
        lines.extend(f"  {problem}" for problem in report.problems)
    return lines


def describe_tier(tier: TierStatus, report: StatusReport) -> str:
    rpo = format_duration(tier.tier.rpo)
    last = age(tier.last.finished_at, report.at) if tier.last else "never backed up"
    state = {RpoState.OK: "ok", RpoState.WARNING: "WARNING", RpoState.BREACH: "BREACH"}
    drill = tier.last_drill
    if drill is None:
        rto = "never drilled"
    elif drill.restore_seconds is None or not drill.passed:
        rto = "last drill FAILED"
    else:
        verdict = "met" if tier.rto_met else "OVER"
        rto = f"drill {seconds_text(drill.restore_seconds)} ({verdict})"
    rto_text = f"RTO {format_duration(tier.tier.rto)}: {rto}"
    line = f"{tier.name}: {state[tier.state]}, {last} (RPO {rpo}); {rto_text}"
    offsite = tier.offsite
    if offsite is not None:
        where = (
            f"{age(offsite.copy.finished_at, report.at)} on {', '.join(offsite.remotes)}"
            if offsite.copy
            else "no copy"
        )
        line += (
            f"; off-host {state[offsite.state]}, {where} (RPO {format_duration(tier.offsite_rpo)})"
        )
    return line

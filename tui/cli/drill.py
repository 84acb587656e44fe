"""``lifeboat drill``: prove a restore works, and measure it (the real RTO).

``drill`` seeds markers in the sources flagged ``drill = true``, backs them up, verifies,
destroys them, restores, runs the drill checklist's automatic items and checks every marker
came back; it prints ``backup Ns, restore Ms`` and exits 1 when the drill failed. It asks for
the target's (or each host's) name on a terminal, or takes ``--confirm``. ``drill list``
prints the history.
"""

from __future__ import annotations

import sys

import click

from engine.drill import history
from engine.drill.history import DrillRecord
from engine.drill.run import DrillRequest, plan_drill, run_drill
from engine.errors import LifeboatError
from tui.cli.common import (
    CliState,
    RunByDefaultGroup,
    identity_option,
    keyring_for,
    pass_state,
    print_json,
    run_async,
)
from tui.cli.complete import source_names
from tui.cli.progress import make_renderer


class DrillFailedError(LifeboatError):
    """The drill ran and failed: exit 1."""


@click.group(cls=RunByDefaultGroup)
def drill() -> None:
    """DR drills: seed markers, back up, destroy, restore, check, time it.

    \b
    lifeboat drill --plan                 what a drill would destroy; touches nothing
    lifeboat drill --confirm HOST         run it (only sources with drill = true)
    lifeboat drill list                   the history: scenario, result, RTO
    """


@drill.command("run", hidden=True)
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="NAME",
    help="Drill only these.",
    shell_complete=source_names,
)
@click.option("--target", metavar="NAME", help="Restore onto this [targets.NAME] (drill = true).")
@click.option("--plan", "plan_only", is_flag=True, help="Show what would be destroyed; stop.")
@click.option(
    "--confirm", multiple=True, metavar="NAME", help="Type the target's (or each host's) name."
)
@identity_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_state
def drill_run(
    state: CliState,
    sources: tuple[str, ...],
    target: str | None,
    plan_only: bool,
    confirm: tuple[str, ...],
    identity: str | None,
    as_json: bool,
) -> None:
    """Run a drill on the sources flagged drill = true."""
    config = state.config()
    encrypted_to: tuple[str, ...] = ()
    if config.encryption is not None and not plan_only:
        encrypted_to = tuple(str(r) for r in config.encryption.all_recipients())
    keyring = keyring_for(identity, encrypted_to=encrypted_to)
    request = DrillRequest(sources, target, confirm, keyring)
    plan = plan_drill(config, request)
    if plan_only or not (confirm or as_json):
        click.echo(f"drill: {plan.scenario}", err=not plan_only)
        for line in plan.destroys:
            click.echo(f"  {line}", err=not plan_only)
        if plan_only:
            return
    if not confirm and not as_json and sys.stdin.isatty():
        ask = "type {} to destroy and restore its data"
        typed = [click.prompt(ask.format(name)) for name in plan.confirm_names]
        request = DrillRequest(sources, target, tuple(typed), keyring)
    with make_renderer(as_json) as renderer:
        record = run_async(run_drill(config, state.repository(), request, renderer.emit))
    if as_json:
        print_json(record.to_dict())
    else:
        click.echo(summary(record))
    if not record.passed:
        raise DrillFailedError(f"drill {record.id} FAILED; see above (lifeboat drill list)")


def summary(record: DrillRecord) -> str:
    lines = [
        f"drill {record.id} {record.verdict.upper()}: {record.scenario}",
        record.timings(),
    ]
    lines += [
        f"markers {m['source']}: {m['found']} of {m['expected']} came back" for m in record.markers
    ]
    if record.checklist:
        result = "failed" if record.checklist_failed else "passed"
        lines.append(f"checklist {record.checklist}: {result} (run {record.checklist_run})")
    lines += [f"problem: {problem}" for problem in record.problems]
    return "\n".join(lines)


@drill.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_state
def drill_list(state: CliState, as_json: bool) -> None:
    """The drills run, newest first: when, scenario, result, RTO."""
    records = history.load(state.repository().path)
    if as_json:
        print_json([record.to_dict() for record in records])
        return
    if not records:
        click.echo("no drill has run yet; flag sources with drill = true, then lifeboat drill")
    for record in records:
        result = f"{record.verdict:<6}  {record.timings():<28}"
        click.echo(f"{record.started}  {result}  {record.scenario}")

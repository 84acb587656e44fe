"""``lifeboat restore ID ...``: the plain, checked restore (the guided wizard builds on it)."""

from __future__ import annotations

from pathlib import Path

import click

from engine.errors import UsageError
from engine.restore.run import RestoreRequest, run_restore
from engine.sources import RestoreOptions
from tui.commands.common import CliState, pass_state, print_json, run_async
from tui.progress import make_renderer


@click.command()
@click.argument("backup_id", metavar="ID")
@click.option("--scope", multiple=True, metavar="SOURCE", help="Restore only these sources.")
@click.option("--target-host", metavar="HOST", help="Restore onto this configured host instead.")
@click.option(
    "--target-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Extract files sources under this directory instead of their original paths.",
)
@click.option(
    "--swap",
    is_flag=True,
    help="etcd: stop the member, move the restored data dir into place, start it again.",
)
@click.option(
    "--ns",
    "namespaces",
    multiple=True,
    metavar="GLOB",
    help="mongo: restore only namespaces matching these globs (db.collection, e.g. 'app.mod_*').",
)
@click.option("--ns-from", metavar="PATTERN", help="mongo: rename namespaces matching this ...")
@click.option(
    "--ns-to",
    metavar="PATTERN",
    help="... to this, e.g. --ns-from 'app.*' --ns-to 'staging_app.*'.",
)
@click.option("--no-drop", is_flag=True, help="mongo: keep target collections (do not drop first).")
@click.option("--dry-run", is_flag=True, help="Run the checks only; change nothing.")
@click.option("--apply", is_flag=True, help="Restore for real (needs --confirm).")
@click.option(
    "--confirm",
    multiple=True,
    metavar="HOST",
    help="Type each target host's name to confirm --apply.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_state
def restore(
    state: CliState,
    backup_id: str,
    scope: tuple[str, ...],
    target_host: str | None,
    target_dir: Path | None,
    swap: bool,
    namespaces: tuple[str, ...],
    ns_from: str | None,
    ns_to: str | None,
    no_drop: bool,
    dry_run: bool,
    apply: bool,
    confirm: tuple[str, ...],
    as_json: bool,
) -> None:
    """Verify what a restore will use, then (with --apply) stream it back to its hosts."""
    if dry_run == apply:
        raise UsageError("choose one of --dry-run (check only) or --apply --confirm HOST")
    if (ns_from is None) != (ns_to is None):
        raise UsageError("--ns-from and --ns-to go together")
    if dry_run and confirm:
        raise UsageError("--confirm goes with --apply, not --dry-run")
    request = RestoreRequest(
        backup_id=backup_id,
        scope=scope,
        target_host=target_host,
        options=RestoreOptions(
            target_dir=target_dir,
            swap=swap,
            namespaces=namespaces,
            ns_from=ns_from,
            ns_to=ns_to,
            drop=not no_drop,
        ),
        apply=apply,
        confirm=confirm,
    )
    config = state.config()
    with make_renderer(as_json) as renderer:
        report = run_async(run_restore(config, state.repository(), request, renderer.emit))
    summary = {
        "backup": report.backup_id,
        "sources": [step.source for step in report.steps],
        "targets": list(report.targets),
        "applied": report.applied,
    }
    if as_json:
        print_json(summary)
    elif report.applied:
        click.echo(f"restored {', '.join(summary['sources'])} from {report.backup_id}")
    else:
        click.echo(
            f"dry run: checks passed for {', '.join(summary['sources'])} from "
            f"{report.backup_id} onto {', '.join(report.targets)}; nothing was changed"
        )

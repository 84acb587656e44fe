"""``lifeboat copy``: send backups to an off-host remote (``[remotes.NAME]``)."""

from __future__ import annotations

import click

from engine.errors import UsageError
from engine.offsite.copy import CopyOutcome, run_copy
from tui.cli.common import CliState, pass_state, print_json, run_async
from tui.cli.complete import backup_ids
from tui.cli.progress import make_renderer
from tui.format import human_size


@click.command()
@click.argument("backup_ids", metavar="[ID]...", nargs=-1, shell_complete=backup_ids)
@click.option(
    "--to", "remote", required=True, metavar="NAME", help="The [remotes.NAME] to copy to."
)
@click.option("--all", "copy_all", is_flag=True, help="Every backup in the repository.")
@click.option("--missing", is_flag=True, help="Every backup the remote holds no whole copy of.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_state
def copy(
    state: CliState,
    backup_ids: tuple[str, ...],
    remote: str,
    copy_all: bool,
    missing: bool,
    as_json: bool,
) -> None:
    """Copy backups to a remote, the manifest last; files it holds whole already are not sent
    again, so an interrupted copy is finished by running it again."""
    if sum((bool(backup_ids), copy_all, missing)) != 1:
        raise UsageError("say which backups: IDs, --all or --missing")
    config = state.config()
    repo = state.repository()
    ids = repo.backup_ids() if copy_all else [repo.resolve(i) for i in backup_ids]
    with make_renderer(as_json) as renderer:
        outcomes = run_async(
            run_copy(config, repo, remote, sorted(ids), renderer.emit, missing=missing)
        )
    if as_json:
        print_json([outcome.__dict__ for outcome in outcomes])
        return
    if not outcomes:
        click.echo(f"nothing to copy: {remote} holds every backup")
    for outcome in outcomes:
        click.echo(said(outcome, remote))


def said(outcome: CopyOutcome, remote: str) -> str:
    if outcome.already:
        return f"{outcome.backup_id}: {remote} holds it already"
    kept = f"; {len(outcome.kept)} already there" if outcome.kept else ""
    return (
        f"{outcome.backup_id}: copied to {remote}: {len(outcome.sent)} file(s), "
        f"{human_size(outcome.bytes_sent)} sent{kept}"
    )

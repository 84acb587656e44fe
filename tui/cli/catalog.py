"""``lifeboat catalog``: the optional MongoDB catalog shared by several consoles.

``catalog sync`` rebuilds this repository's part of the catalog from the repository (the source
of truth), e.g. after the catalog was down or lost. ``catalog search TEXT`` lists the backups
the catalog finds by label, host, Mongo namespace, id or scope.
"""

from __future__ import annotations

from dataclasses import asdict

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engine.errors import ManifestError, UsageError
from engine.scaleout.catalog import Catalog, open_catalog, search, sync
from tui.cli.common import CliState, pass_state, print_json
from tui.format import human_size

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group()
def catalog() -> None:
    """The shared MongoDB catalog of backups, checklist runs and drills ([catalog])."""


def _opened(state: CliState) -> Catalog:
    opened = open_catalog(state.config())
    if opened is None:
        raise UsageError("no [catalog] is configured; add [catalog] mongo_uri = ... (see README)")
    return opened


@catalog.command("sync")
@json_option
@pass_state
def catalog_sync(state: CliState, as_json: bool) -> None:
    """Rebuild this repository's documents in the catalog from the repository."""
    repo = state.repository()
    with _opened(state) as opened:
        report = sync(opened, repo)
    for problem in report.problems:
        click.echo(f"lifeboat: warning: {problem} (left out of the catalog)", err=True)
    if as_json:
        print_json({name: asdict(counts) for name, counts in report.collections.items()})
        return
    for name, counts in report.collections.items():
        click.echo(f"{name}: {counts.indexed} indexed, {counts.removed} removed")


@catalog.command("search")
@click.argument("text")
@json_option
@pass_state
def catalog_search(state: CliState, text: str, as_json: bool) -> None:
    """Backups whose label, host, Mongo namespace, id or scope holds every word of TEXT."""
    repo = state.repository()
    with _opened(state) as opened:
        ids = search(opened, repo, text)
    problems: list[ManifestError] = []
    manifests = list(repo.iter_backups(ids, problems))
    for problem in problems:
        click.echo(f"lifeboat: warning: {problem}", err=True)
    missing = len(ids) - len(manifests) - len(problems)
    if missing:
        click.echo(
            f"lifeboat: warning: the catalog lists {missing} backup(s) the repository no longer "
            "holds; run `lifeboat catalog sync`",
            err=True,
        )
    if as_json:
        print_json([m.to_data() for m in manifests])
        return
    if not manifests:
        click.echo(f"no backup matches {text!r}")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("id", "created", "label", "hosts", "size"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for m in manifests:
        hosts = ",".join(dict.fromkeys(a.host for a in m.artifacts))
        created = f"{m.created_at:%Y-%m-%d %H:%M}Z"
        table.add_row(m.id, created, escape(m.label or ""), hosts, human_size(m.size))
    Console().print(table)

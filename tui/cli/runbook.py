"""``lifeboat runbook check FILE``: validate a restore decision tree before using it."""

from __future__ import annotations

from pathlib import Path

import click

from engine.errors import ConfigError
from engine.restore.tree import check_tree_file
from tui.cli.common import CliState, pass_state


@click.group()
def runbook() -> None:
    """Work with runbooks (restore decision trees as TOML)."""


@runbook.command("check")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@pass_state
def runbook_check(state: CliState, path: Path) -> None:
    """Validate a tree file: references, cycles, reachability, source names."""
    try:
        sources = tuple(state.config().sources)
        against = "the configured sources"
    except ConfigError:  # no usable config: the tree's shape can still be checked
        sources = None
        against = "no config (source names not checked)"
    tree = check_tree_file(path, sources)
    click.echo(
        f"{path}: OK — tree {tree.name!r}, {len(tree.nodes)} nodes, checked against {against}"
    )

"""Shell completion: ``lifeboat completion bash|zsh|fish`` prints click's script for the shell,
and the arguments that name a backup, a source or a checklist run complete from the
configured repository. A completion that cannot read the config or the repository offers
nothing rather than an error: the shell is no place for one."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import click
from click.shell_completion import CompletionItem, get_completion_class

from engine.config.model import Config

SHELLS = ("bash", "zsh", "fish")


def _config(ctx: click.Context) -> Config | None:
    from engine.config.load import discover_config_path, load_config

    with contextlib.suppress(Exception):  # a broken config: no suggestions, no traceback
        return load_config(discover_config_path(ctx.find_root().params.get("config_path")))
    return None


def _matching(names: list[str], incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


def _from_repository(
    ctx: click.Context, incomplete: str, names: Callable[[Config], list[str]]
) -> list[CompletionItem]:
    config = _config(ctx)
    if config is None:
        return []
    with contextlib.suppress(Exception):  # an unreadable repository: no suggestions
        return _matching(names(config), incomplete)
    return []


def backup_ids(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The repository's backup ids, newest first (their directory names: no manifest read)."""
    from engine.repo.repository import Repository

    def ids(config: Config) -> list[str]:
        return Repository.open(config.repository.path, create=False).backup_ids()

    return _from_repository(ctx, incomplete, ids)


def source_names(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    return _from_repository(ctx, incomplete, lambda config: sorted(config.sources))


def checklist_runs(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    from engine.checklist.run import run_ids

    return _from_repository(ctx, incomplete, lambda config: run_ids(config.repository.path))


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script.

    E.g. `lifeboat completion bash > /etc/bash_completion.d/lifeboat` (zsh: into a directory on
    $fpath as _lifeboat; fish: ~/.config/fish/completions/lifeboat.fish)."""
    root = ctx.find_root().command
    script = get_completion_class(shell)
    assert script is not None  # one of SHELLS: click has each
    click.echo(script(root, {}, "lifeboat", "_LIFEBOAT_COMPLETE").source())

"""What every CLI command shares: the config/repository state, confirmations, async running."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from engine.crypto import IDENTITY_VARIABLE
from engine.errors import UsageError
from engine.interrupts import cancel_on_signals

if TYPE_CHECKING:
    from engine.config.model import Config
    from engine.repo.content import Keyring
    from engine.repo.repository import Repository

# Every command imports this module, `lifeboat --help` too: the config models, the
# repository and the crypto load when a command first needs them (issue 20, start-up).
T = TypeVar("T")


@dataclass
class CliState:
    """What the group options give every command."""

    config_path: Path | None
    mouse: bool = True
    _config: Config | None = None

    def config(self) -> Config:
        """The config, loaded once; from then on every audit record this process writes
        updates the audit head's anchors (etcd, the catalog) the config names."""
        from engine.config.load import discover_config_path, load_config
        from engine.scaleout.anchors import anchor_audit_log

        if self._config is None:
            self._config = load_config(discover_config_path(self.config_path))
            anchor_audit_log(self._config)
        return self._config

    def repository(self, *, create: bool = True) -> Repository:
        """The repository; after each write to it the [catalog], if any, is brought up to date,
        and a warning on stderr says when it does not answer (the write itself stands)."""
        from engine.repo.repository import Repository
        from engine.scaleout.catalog import keep_current

        repo = Repository.open(self.config().repository.path, create=create)
        return keep_current(repo, self.config(), warn)


pass_state = click.make_pass_decorator(CliState)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; Ctrl-C, a hang-up (SIGHUP) or SIGTERM cancels it (so its cleanup
    runs) and then interrupts (``KeyboardInterrupt``; ``Interrupted`` for the last two)."""
    return asyncio.run(cancel_on_signals(coro))


def warn(text: str) -> None:
    """A warning on stderr: the command goes on."""
    click.echo(f"lifeboat: warning: {text}", err=True)


def print_json(data: object) -> None:
    click.echo(json.dumps(data, default=str))


def require_confirmation(given: str | None, expected: str, what: str) -> None:
    if given != expected:
        raise UsageError(
            f"{what}: confirm by typing its name exactly: --confirm {expected}"
            + (f" (got {given!r})" if given else "")
        )


def identity_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--identity FILE``: the age identity that opens encrypted backups."""
    return click.option(
        "--identity",
        metavar="FILE",
        help=f"age identity file that opens encrypted backups (else ${IDENTITY_VARIABLE}, "
        "else it is asked for on a terminal).",
    )(function)


def keyring_for(identity: str | None, *, encrypted_to: Sequence[str] = ()) -> Keyring:
    """The identities given: ``--identity``, else ``$LIFEBOAT_AGE_IDENTITY``, else, when
    something is ``encrypted_to`` recipients and stdin is a terminal, typed at a prompt (hidden)."""
    from engine.crypto.identities import identities_from_environment, read_identities
    from engine.repo.content import Keyring

    terminal = sys.stdin.isatty()
    ask = _ask_passphrase if terminal else None
    if identity is not None:
        found = read_identities(identity, ask)
    else:
        found = identities_from_environment(ask)
    if not found and encrypted_to and terminal:
        click.echo(f"the backup is encrypted to {', '.join(encrypted_to)}", err=True)
        value = click.prompt(
            "its age identity: a file's path, or paste the AGE-SECRET-KEY-1... (hidden)",
            hide_input=True,
            err=True,
        )
        found = read_identities(value, ask)
    return Keyring(found)


def _ask_passphrase() -> str:
    return str(click.prompt("passphrase of the identity file", hide_input=True, err=True))


class RunByDefaultGroup(click.Group):
    """A group whose hidden ``run`` command takes anything that is not a subcommand:
    ``restore plan ...`` is a subcommand, ``restore ID ...`` is ``restore run ID ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)

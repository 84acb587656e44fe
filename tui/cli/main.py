"""The ``lifeboat`` command line: the same engine calls the console makes, scriptable.

Exit codes: 0 success; 1 the operation ran and failed (a source failed, verify found
damage, a restore was refused); 2 usage or config errors; 128 + the signal when interrupted:
130 Ctrl-C, 129 a hang-up (SIGHUP), 143 SIGTERM, each a cancel whose cleanup ran. Errors are
one message each, never a traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path
from typing import ClassVar

import click

from engine.errors import LifeboatError, UsageError
from engine.interrupts import Interrupted, exit_status
from tui.cli.common import CliState, keyring_for, pass_state, print_json, run_async
from tui.console.start import run_console

EXIT_FAILED = 1
EXIT_USAGE = 2


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs, so that neither starting the
    console nor ``lifeboat --help`` pays for every engine dependency up front: the help
    lists each command by the first line of its docstring, kept here (a test keeps the two
    the same)."""

    LAZY: ClassVar[dict[str, tuple[str, str]]] = {
        "backup": ("tui.cli.backup:backup", "Create, inspect, verify and remove backups."),
        "restore": (
            "tui.cli.restore:restore",
            "Restore a backup: `restore ID --dry-run|--apply`, `restore plan`, `restore --wizard`.",
        ),
        "demo": (
            "tui.cli.demo:demo",
            "Open the console on a demo sandbox: an SSH host on 127.0.0.1, sample data, backups.",
        ),
        "runbook": (
            "tui.cli.runbook:runbook",
            "Work with runbooks (restore decision trees as TOML).",
        ),
        "audit": (
            "tui.cli.audit:audit",
            "Check and read the audit log (restores, deletes, prunes, sign-offs, drills).",
        ),
        "checklist": (
            "tui.cli.checklist:checklist",
            "Validate a restore (or a backup) with a checklist and sign it off.",
        ),
        "drill": (
            "tui.cli.drill:drill",
            "DR drills: seed markers, back up, destroy, restore, check, time it.",
        ),
        "key": (
            "tui.cli.key:key",
            "Age keys for encrypted backups (the identity belongs off the bastion).",
        ),
        "copy": (
            "tui.cli.copy:copy",
            "Copy backups to a remote, the manifest last; files it holds whole already are "
            "not sent",
        ),
        "catalog": (
            "tui.cli.catalog:catalog",
            "The shared MongoDB catalog of backups, checklist runs and drills ([catalog]).",
        ),
        "completion": ("tui.cli.complete:completion", "Print the shell completion script."),
        "notify": ("tui.cli.notify:notify", "Alerts to the [notify] channels (apprise URLs)."),
        "schedule": ("tui.cli.schedule:schedule", "Configured schedules and their next runs."),
        "scheduler": ("tui.cli.schedule:scheduler", "The scheduler daemon."),
        "status": (
            "tui.cli.status:status",
            "RPO/RTO per tier, overdue schedules and lock holders; exits 1 on a breach.",
        ),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY:
            module, _, name = self.LAZY[cmd_name][0].partition(":")
            command: click.Command = getattr(importlib.import_module(module), name)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Click's list of commands, without importing the lazy ones."""
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        rows = []
        for name in self.list_commands(ctx):
            if name in self.LAZY:
                summary = click.Command(name, help=self.LAZY[name][1])  # shortened as click does
                rows.append((name, summary.get_short_help_str(limit)))
            elif not self.commands[name].hidden:
                rows.append((name, self.commands[name].get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    invoke_without_command=True,
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Config file (default: $LIFEBOAT_CONFIG, ./lifeboat.toml, then the user config dir).",
)
@click.option(
    "--no-mouse", is_flag=True, help="Console: no mouse reporting (keeps text selectable)."
)
@click.version_option(package_name="lifeboat")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, no_mouse: bool) -> None:
    """Lifeboat: backups, restores and DR drills over SSH.

    Without a command, opens the console on the configured repository.
    """
    ctx.obj = CliState(config_path, mouse=not no_mouse)
    if ctx.invoked_subcommand is None:
        keyring = keyring_for(None)  # $LIFEBOAT_AGE_IDENTITY; else the console asks when needed
        run_async(run_console(ctx.obj.config(), mouse=ctx.obj.mouse, keyring=keyring))


@cli.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("check")
@pass_state
def config_check(state: CliState) -> None:
    """Validate the config file and say what it defines."""
    cfg = state.config()
    click.echo(
        f"{cfg.path}: OK — {len(cfg.hosts)} host(s), {len(cfg.sources)} source(s), "
        f"repository {cfg.repository.path}"
    )


@cli.group()
def repo() -> None:
    """Manage the repository."""


@repo.command("init")
@pass_state
def repo_init(state: CliState) -> None:
    """Create the repository (it is also created on first use)."""
    repository = state.repository(create=True)
    click.echo(f"repository ready at {repository.path}")


@repo.command("clean")
@click.option("--dry-run", is_flag=True, help="Only show what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_state
def repo_clean(state: CliState, dry_run: bool, as_json: bool) -> None:
    """Remove what killed backups and deletes left (.staging, .trash), under the lock."""
    from engine.repo import leftovers
    from engine.sizes import human_size

    found = leftovers.clean(
        state.repository(create=False), state.config().operator, dry_run=dry_run
    )
    if as_json:
        entries = [{"path": leftover.name, "bytes": leftover.bytes} for leftover in found]
        print_json({"dry_run": dry_run, "leftovers": entries})
        return
    action = "would remove" if dry_run else "removed"
    for leftover in found:
        click.echo(f"{action} {leftover.name} ({human_size(leftover.bytes)})")
    if not found:
        click.echo("nothing to clean: no killed backup or delete left anything behind")
    else:
        click.echo(f"{'would free' if dry_run else 'freed'} {leftovers.total(found)}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: map errors to one message and an exit code."""
    try:
        result = cli.main(args=argv, prog_name="lifeboat", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt, Interrupted) as interrupt:
        why = f" by {interrupt.name}" if isinstance(interrupt, Interrupted) else ""
        with contextlib.suppress(OSError):  # a hung-up terminal takes no more output
            click.echo(f"lifeboat: interrupted{why}; nothing partial was kept", err=True)
        sys.exit(exit_status(interrupt))
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except UsageError as exc:
        _print_error(exc)
        sys.exit(EXIT_USAGE)
    except LifeboatError as exc:
        _print_error(exc)
        sys.exit(EXIT_FAILED)
    sys.exit(result if isinstance(result, int) else 0)


def _print_error(exc: LifeboatError) -> None:
    """One ``lifeboat: error:`` line per problem; an indented line belongs to the problem
    above it (a list of choices) and is printed as it is."""
    for line in str(exc).splitlines() or [type(exc).__name__]:
        click.echo(line if line.startswith(" ") else f"lifeboat: error: {line}", err=True)

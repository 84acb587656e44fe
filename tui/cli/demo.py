"""``lifeboat demo``: a self-contained sandbox to see Lifeboat work, no setup needed."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import click

from engine.config.load import load_config
from engine.config.model import Config
from engine.demo.sandbox import Sandbox, default_root, open_sandbox
from engine.drill.history import DrillRecord
from engine.drill.run import DrillRequest, plan_drill, run_drill
from engine.jobs import BackupRequest, run_backup, run_verify
from engine.repo.content import Keyring
from engine.repo.manifest import Manifest
from engine.repo.repository import Repository
from engine.schedule.daemon import Scheduler, default_instance
from engine.schedule.ticks import local_claimer
from tui.cli.common import CliState, run_async
from tui.cli.drill import DrillFailedError, summary
from tui.cli.progress import make_renderer
from tui.cli.schedule import json_log
from tui.console.start import require_terminal, run_console


@click.command()
@click.pass_context
@click.option("--no-tui", is_flag=True, help="Run a backup and a verify, print them, and exit.")
@click.option(
    "--drill", "drill", is_flag=True, help="Run a DR drill in the sandbox, print it, and exit."
)
@click.option(
    "--dir",
    "root",
    type=click.Path(path_type=Path, file_okay=False),
    help=f"Sandbox directory (default: {default_root()}).",
)
def demo(ctx: click.Context, no_tui: bool, drill: bool, root: Path | None) -> None:
    """Open the console on a demo sandbox: an SSH host on 127.0.0.1, sample data, backups."""
    mouse = ctx.obj.mouse if isinstance(ctx.obj, CliState) else True
    if not (no_tui or drill):
        require_terminal()
    record = run_async(_demo(root, no_tui, drill, mouse))
    if record is not None and not record.passed:
        raise DrillFailedError(f"the demo drill {record.id} FAILED")


async def _demo(root: Path | None, no_tui: bool, drill: bool, mouse: bool) -> DrillRecord | None:
    async with open_sandbox(root) as sandbox:
        config = load_config(sandbox.config_path)
        repo = Repository.open(config.repository.path)
        keyring = sandbox.keyring()  # its backups are encrypted (README "Encryption at rest")
        click.echo(f"sandbox at {sandbox.root}; SSH host 'demo' on 127.0.0.1:{sandbox.server.port}")
        for why in sandbox.skipped:
            click.echo(f"without {why}")
        if drill:
            return await _drill(config, repo, keyring)
        if no_tui:
            manifest = await _backup_and_verify(config, repo, "demo", keyring)
            _explain(sandbox, manifest.id)
            return None
        if next(repo.iter_backups(), None) is None:  # a first start: real backups to look at
            await _backup_and_verify(config, repo, "first demo backup", keyring)
            await _backup_and_verify(config, repo, "second demo backup", keyring)
        async with _scheduler(config, repo, sandbox.root / "scheduler.log"):
            await run_console(config, mouse=mouse, keyring=keyring)
        newest = next(repo.iter_backups(), None)
        click.echo(second_terminal(sandbox, newest.id if newest else None))
        await _until_ctrl_c()
        click.echo("stopping the demo's SSH host and databases…")
    click.echo("the demo's SSH host is stopped")
    return None


def second_terminal(sandbox: Sandbox, backup_id: str | None) -> str:
    """What to try from a second terminal while the demo keeps its SSH host (printed once the
    console closed: printed before it, the console's screen would hide it)."""
    lines = [
        f"\nthe console is closed; the SSH host 'demo' (127.0.0.1:{sandbox.server.port}) keeps",
        "running until Ctrl-C. From a second terminal, try:",
        *_setup(sandbox),
        "  lifeboat status",
        "  lifeboat backup create --label second-terminal",
        "  lifeboat backup list",
    ]
    if backup_id:
        lines.append(f"  lifeboat restore {backup_id} --dry-run")
    lines += ["  lifeboat                 # the console again", "Ctrl-C here stops the SSH host."]
    return "\n".join(lines)


def _setup(sandbox: Sandbox) -> list[str]:
    """The lines that point a shell's ``lifeboat`` at the sandbox: its config and, when this
    ``lifeboat`` is not the one on PATH, its directory."""
    lines = [
        f"  export LIFEBOAT_CONFIG={shlex.quote(str(sandbox.config_path))}",
        f"  export LIFEBOAT_AGE_IDENTITY={shlex.quote(str(sandbox.identity))}  # opens its backups",
    ]
    invoked = Path(sys.argv[0])
    on_path = shutil.which("lifeboat")
    if invoked.name == "lifeboat" and not (
        on_path and Path(on_path).resolve() == invoked.resolve()
    ):
        directory = shlex.quote(str(invoked.absolute().parent))
        lines.insert(0, f'  export PATH={directory}:"$PATH"')
    return lines


async def _until_ctrl_c() -> None:
    """Wait for Ctrl-C (SIGINT), which ends the demo as asked: not an interruption (a hang-up
    or SIGTERM still is one, 129 or 143)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGINT)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        await stop.wait()
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, previous)  # asyncio.run's: a second Ctrl-C cancels


@asynccontextmanager
async def _scheduler(config: Config, repo: Repository, log_path: Path) -> AsyncIterator[None]:
    """The sandbox's schedules, run while the console is open; the log goes to ``log_path``."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as stream:
        instance = default_instance()
        daemon = Scheduler(
            config, repo, local_claimer(repo, config.operator), json_log(instance, stream), instance
        )
        task = asyncio.create_task(daemon.run())
        # The console's first status would call schedules no scheduler has seen overdue; a
        # scheduler that fails before that says so below, when it is awaited.
        registered = asyncio.create_task(daemon.registered.wait())
        await asyncio.wait((task, registered), return_when=asyncio.FIRST_COMPLETED)
        registered.cancel()
        try:
            yield
        finally:
            daemon.stop(cancel=True)
            await task


async def _drill(config: Config, repo: Repository, keyring: Keyring) -> DrillRecord:
    """The sandbox's drill, confirmed on the operator's behalf: the sandbox is made for it."""
    plan = plan_drill(config, DrillRequest(keyring=keyring))
    click.echo(f"drill: {plan.scenario}")
    with make_renderer(False) as renderer:
        request = DrillRequest(confirm=plan.confirm_names, keyring=keyring)
        record = await run_drill(config, repo, request, renderer.emit)
    click.echo(summary(record))
    return record


async def _backup_and_verify(
    config: Config, repo: Repository, label: str, keyring: Keyring
) -> Manifest:
    with make_renderer(False) as renderer:
        manifest = await run_backup(config, repo, BackupRequest(label=label), renderer.emit)
    click.echo(f"backup {manifest.id}: {len(manifest.artifacts)} artifact(s)")
    with make_renderer(False) as renderer:
        result = await run_verify(repo, manifest.id, renderer.emit, keyring=keyring)
    click.echo(f"verify {manifest.id}: {'OK' if result.ok else 'FAILED'}")
    return manifest


def _explain(sandbox: Sandbox, backup_id: str) -> None:
    """After ``--no-tui``: what works without the SSH host, which stopped with the demo."""
    lines = [
        "\nthe SSH host stopped with the demo; these work without it, from any terminal:",
        *_setup(sandbox),
        "  lifeboat status",
        f"  lifeboat backup show {backup_id}",
        "  lifeboat backup verify --all",
        f"and `lifeboat demo --dir {shlex.quote(str(sandbox.root))}` opens the console and keeps",
        "the SSH host running for the rest, until Ctrl-C.",
    ]
    click.echo("\n".join(lines))

"""``lifeboat demo``: a self-contained sandbox to see Lifeboat work, no setup needed."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click

from engine.config import load_config
from engine.demo.sandbox import Sandbox, default_root, open_sandbox
from engine.jobs import BackupRequest, run_backup, run_verify
from engine.repository import Repository
from tui.commands.common import run_async
from tui.progress import make_renderer


@click.command()
@click.option("--no-tui", is_flag=True, help="Run a backup and a verify, print them, and exit.")
@click.option(
    "--dir",
    "root",
    type=click.Path(path_type=Path, file_okay=False),
    help=f"Sandbox directory (default: {default_root()}).",
)
def demo(no_tui: bool, root: Path | None) -> None:
    """Open a demo sandbox: an SSH host on 127.0.0.1 with sample data, and a repository."""
    run_async(_demo(root, no_tui))


async def _demo(root: Path | None, no_tui: bool) -> None:
    async with open_sandbox(root) as sandbox:
        config = load_config(sandbox.config_path)
        repo = Repository.open(config.repository.path)
        click.echo(f"sandbox at {sandbox.root}; SSH host 'demo' on 127.0.0.1:{sandbox.server.port}")
        with make_renderer(False) as renderer:
            manifest = await run_backup(
                config, repo, BackupRequest(label="demo", trigger="manual"), renderer.emit
            )
        click.echo(f"backup {manifest.id}: {len(manifest.artifacts)} artifact(s)")
        with make_renderer(False) as renderer:
            result = await run_verify(repo, manifest.id, renderer.emit)
        click.echo(f"verify {manifest.id}: {'OK' if result.ok else 'FAILED'}")
        _explain(sandbox, manifest.id)
        if not no_tui:
            click.echo("the demo SSH host stays up until you press Ctrl-C")
            await _until_interrupted()


async def _until_interrupted() -> None:
    """Wait for Ctrl-C (or SIGTERM): the normal way to leave the demo, not an error."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    click.echo("demo stopped")


def _explain(sandbox: Sandbox, backup_id: str) -> None:
    cfg = sandbox.config_path
    click.echo(
        "\ntry, while `lifeboat demo` runs (the SSH host lives only that long):\n"
        f"  lifeboat --config {cfg} backup create --label mine\n"
        f"  lifeboat --config {cfg} restore {backup_id} --scope app-config "
        f"--target-dir /tmp/restored --dry-run\n"
        "and at any time:\n"
        f"  lifeboat --config {cfg} backup list\n"
        f"  lifeboat --config {cfg} backup verify --all"
    )

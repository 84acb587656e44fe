"""The console on a fresh ``lifeboat demo`` sandbox, for the incident walkthroughs: the same
sandbox (SSH host, etcd, Mongo, two verified backups) an operator gets, and a count of the
keys the operator presses."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import EventLog
from textual.pilot import Pilot

from engine.config.load import load_config
from engine.config.model import Config
from engine.demo.sandbox import Sandbox, open_sandbox
from engine.jobs import BackupRequest, run_backup, run_verify
from engine.repo.repository import Repository
from tui.console.app import LifeboatApp


@dataclass
class Demo:
    sandbox: Sandbox
    config: Config
    repo: Repository
    app: LifeboatApp


@asynccontextmanager
async def demo_console(root: Path) -> AsyncIterator[Demo]:
    """A fresh sandbox with its databases and the two verified backups ``lifeboat demo``
    takes at its first start, and a console on it (not yet running)."""
    async with open_sandbox(root) as sandbox:
        config = load_config(sandbox.config_path)
        missing = {"demo-etcd", "demo-mongo"} - set(config.sources)
        if missing:
            pytest.skip(f"the demo runs without {', '.join(sorted(missing))} here")
        repo = Repository.open(config.repository.path)
        keyring = sandbox.keyring()  # as `lifeboat demo` hands it to its console
        for label in ("first demo backup", "second demo backup"):
            manifest = await run_backup(config, repo, BackupRequest(label=label), EventLog().emit)
            assert manifest.encrypted
            assert (await run_verify(repo, manifest.id, EventLog().emit, keyring=keyring)).ok
        app = LifeboatApp(config, repo, settings=root / "console.json", keyring=keyring)
        yield Demo(sandbox, config, repo, app)


def kill_etcd(demo: Demo) -> None:
    """Kill the demo's only etcd member (-9): quorum is lost."""
    pid_file = demo.sandbox.root / "services" / "etcd.pid"
    os.kill(int(pid_file.read_text()), signal.SIGKILL)


def answers(address: str) -> bool:
    """Whether something accepts connections at ``host:port``."""
    host, port = address.rsplit(":", 1)
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, int(port))) == 0


class Keys:
    """Presses keys through Pilot and counts them: each key once, typed text per character."""

    def __init__(self, pilot: Pilot[object]) -> None:
        self.pilot = pilot
        self.count = 0

    async def press(self, *keys: str) -> None:
        self.count += len(keys)
        await self.pilot.press(*keys)

    async def type(self, text: str) -> None:
        await self.press(*text)

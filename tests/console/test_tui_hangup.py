"""A hang-up (SIGHUP) or SIGTERM of the console: every job is cancelled and cleaned up, then
the console exits with 128 + the signal; `tests/cli/test_hangup.py` covers the CLI."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from consoles import console
from helpers import command_source, make_config
from sshd import SSHTestServer
from timing import pilot_until

from engine import interrupts
from engine.events import JobFinished
from engine.repo.repository import Repository
from tui.console.screens.modals import ConfirmModal


@pytest.fixture(autouse=True)
def _fresh_stop_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """The signal noted here must not become the reason of later tests' cancels."""
    monkeypatch.setattr(interrupts, "_stopping_for", [])


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM], ids=["HUP", "TERM"])
async def test_a_signal_cancels_the_running_backup_then_exits(
    asyncssh_server: SSHTestServer,
    tmp_path: Path,
    sig: signal.Signals,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = make_config(
        asyncssh_server,
        tmp_path / "repo",
        command_source("db", ["cat", "/dev/zero"]) + command_source("logs", ["cat", "/dev/zero"]),
        bulk_transport="asyncssh",
    )
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        key = app.start_backup()  # one job at a time: a backup holds the repository's lock

        def flowing() -> bool:
            sources = app.board.jobs[key].sources.values()
            return len(sources) == 2 and all(source.done > 1_000_000 for source in sources)

        await pilot_until(pilot, flowing, "both sources to stream")
        repo = Repository.open(config.repository.path)
        at_exit: list[object] = []  # the job and staging when the console exits: both done
        exit_now = app.exit

        def exit_noting(*args: Any, **kwargs: Any) -> None:
            at_exit.extend([app.board.jobs[key].finished, list(repo.staging_dir.iterdir())])
            exit_now(*args, **kwargs)

        monkeypatch.setattr(app, "exit", exit_noting)
        await pilot.press("q")  # a dialog up changes nothing
        assert isinstance(app.screen, ConfirmModal)
        with interrupts.on_stop_signals(app.stop_for_signal):  # as `lifeboat` runs it
            os.kill(os.getpid(), sig)
            await pilot_until(pilot, lambda: not app.is_running, "the console to exit")
        assert app.return_code == 128 + sig
        finished, staging = at_exit
        assert isinstance(finished, JobFinished)
        assert finished.cancelled
        assert staging == []
    assert repo.list_backups() == ([], [])
    assert list(repo.staging_dir.iterdir()) == []
    audit = [json.loads(line) for line in (repo.path / "audit.jsonl").read_text().splitlines()]
    (cancelled,) = [entry for entry in audit if entry["action"] == "backup.cancelled"]
    assert cancelled["sources"] == ["db", "logs"]
    assert cancelled["reason"] == sig.name

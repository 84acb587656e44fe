"""`lifeboat demo` in a terminal: `q` closes the console, the demo then prints what to try from
a second terminal and keeps its SSH host running for it until Ctrl-C (README, issue 16 item 11)."""

from __future__ import annotations

import os
import shlex
import signal
from pathlib import Path

import pytest
from cli_run import LIFEBOAT, lifeboat
from terminal import Terminal


async def test_q_closes_the_console_and_the_demo_keeps_its_host_until_ctrl_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "sandbox"
    terminal = await Terminal.start(LIFEBOAT, "demo", "--dir", str(root))
    try:
        await terminal.until(lambda text: "Quit" in text, "the console's footer")
        os.write(terminal.master, b"q")
        text = await terminal.until(lambda t: "Ctrl-C here stops" in t, "the commands")
        config = root / "lifeboat.toml"
        assert "the console is closed; the SSH host 'demo' (127.0.0.1:" in text
        said = printed(text)
        assert f"export LIFEBOAT_CONFIG={config}" in said, said
        assert ["status"] in commands(said)
        assert ["backup", "list"] in commands(said)
        assert ["backup", "create", "--label", "second-terminal"] in commands(said)
        (restore,) = [argv for argv in commands(said) if argv[:1] == ["restore"]]
        # The backups are encrypted: the printed setup names what opens them.
        identity = root / "identity.txt"
        assert any(line.startswith(f"export LIFEBOAT_AGE_IDENTITY={identity} ") for line in said)
        monkeypatch.setenv("LIFEBOAT_AGE_IDENTITY", str(identity))

        # From a second terminal, the host is still there: a backup and a dry run reach it.
        made = await lifeboat("backup", "create", "--scope", "app-config", config=config)
        assert made.rc == 0, made.stderr
        checked = await lifeboat(*restore, config=config)
        assert checked.rc == 0, checked.stdout + checked.stderr
        assert terminal.proc.returncode is None

        terminal.proc.send_signal(signal.SIGINT)  # Ctrl-C: the demo ends, as asked
        assert await terminal.ended() == 0
        assert "the demo's SSH host is stopped" in terminal.text
    finally:
        terminal.close()


def printed(text: str) -> list[str]:
    """The indented lines the demo printed last (the commands), as they read."""
    tail = text.rsplit("From a second terminal", 1)[-1].rsplit("from any terminal:", 1)[-1]
    return [line.strip() for line in tail.splitlines() if line.startswith("  ")]


def commands(lines: list[str]) -> list[list[str]]:
    """The ``lifeboat`` command lines among ``lines``, without the program and comments."""
    return [shlex.split(line, comments=True)[1:] for line in lines if line.startswith("lifeboat ")]


async def test_the_demo_without_the_console_prints_what_works_after_it(tmp_path: Path) -> None:
    root = tmp_path / "sandbox"
    run = await lifeboat("demo", "--no-tui", "--dir", str(root))
    assert run.rc == 0, run.stderr
    config = root / "lifeboat.toml"
    said = printed(run.stdout)
    assert f"export LIFEBOAT_CONFIG={config}" in said, run.stdout
    for argv in commands(said):  # each works with the host stopped
        assert argv[0] in ("status", "backup"), argv
        done = await lifeboat(*argv, config=config)
        assert done.rc in (0, 1 if argv == ["status"] else 0), done.stdout + done.stderr
    assert ["backup", "verify", "--all"] in commands(said)
    assert f"`lifeboat demo --dir {root}` opens the console" in run.stdout

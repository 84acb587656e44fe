"""A hang-up (SIGHUP: the terminal or its SSH session went away) or a SIGTERM is a cancel.

The real ``lifeboat backup create`` is signalled while bytes flow into staging: it must exit
128 + the signal, with its ``ssh`` child and the remote command gone within seconds, no
staging left, and ``backup.cancelled`` in the audit log naming the signal.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from cli_run import LIFEBOAT, with_signals, write_config
from helpers import command_source, config_text
from processes import processes_mentioning
from sshd import SSHTestServer, descendants
from terminal import Terminal
from timing import DEADLINE, until

STOPPED_WITHIN = 5.0  # seconds from the signal to no remote command and no ssh child (issue 16)


class Backup:
    """A running ``lifeboat backup create --json`` of the ``endless`` source."""

    def __init__(self, proc: asyncio.subprocess.Process, repo: Path) -> None:
        self.proc = proc
        self.repo = repo

    @classmethod
    async def start(
        cls, server: SSHTestServer, tmp_path: Path, command: list[str], **host: object
    ) -> Backup:
        repo = tmp_path / "repo"
        text = config_text(server, repo, command_source("endless", command), **host)
        config = write_config(tmp_path / "c.toml", text)
        argv = [LIFEBOAT, "--config", str(config), "backup", "create", "--json"]
        return cls(await _spawn(argv), repo)

    async def event(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), DEADLINE)
        assert line, "lifeboat ended before the moment to signal it"
        event: dict[str, Any] = json.loads(line)
        return event

    async def flowing(self, beyond: int = 10**6) -> int:
        """Wait until over ``beyond`` bytes went into staging; the bytes done then."""
        while True:
            event = await self.event()
            if event["event"] == "Progress" and event["done"] > beyond:
                staged = list((self.repo / ".staging").iterdir())
                assert staged, "no staging directory while bytes flow"
                return int(event["done"])

    async def ended(self) -> tuple[int, str]:
        _, err = await asyncio.wait_for(self.proc.communicate(), DEADLINE)
        assert self.proc.returncode is not None
        return self.proc.returncode, err.decode()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.communicate()

    def audit(self) -> list[dict[str, Any]]:
        lines = (self.repo / "audit.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]


async def _spawn(argv: list[str], ignored: tuple[int, ...] = ()) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *with_signals(argv, ignored=ignored),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, "LIFEBOAT_CONFIG": ""},
    )


SIGNALS = pytest.mark.parametrize(
    "sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT], ids=["HUP", "TERM", "INT"]
)


@SIGNALS
async def test_a_signal_mid_backup_cancels_it_and_leaves_nothing_running(
    ssh_server: SSHTestServer,
    tmp_path: Path,
    endless: tuple[list[str], str],
    sig: signal.Signals,
) -> None:
    """Through an ``ssh`` child (bulk_transport auto), against each server; Ctrl-C (SIGINT)
    takes the same path."""
    await signal_backup(ssh_server, tmp_path, endless, sig, "auto")


async def test_a_hangup_mid_asyncssh_transfer_ends_the_remote_command(
    openssh_server: SSHTestServer, tmp_path: Path, endless: tuple[list[str], str]
) -> None:
    """No ssh child: the engine's own channel carries the bytes, and sshd runs the command."""
    await signal_backup(openssh_server, tmp_path, endless, signal.SIGHUP, "asyncssh")


async def signal_backup(
    server: SSHTestServer,
    tmp_path: Path,
    endless: tuple[list[str], str],
    sig: signal.Signals,
    transport: str,
) -> None:
    command, token = endless
    backup = await Backup.start(server, tmp_path, command, bulk_transport=transport)
    try:
        await backup.flowing()
        assert processes_mentioning(token), "the remote command is not running"
        children = descendants(backup.proc.pid)
        loop = asyncio.get_running_loop()
        signalled = loop.time()
        backup.proc.send_signal(sig)
        returncode, err = await backup.ended()
        await until(lambda: not processes_mentioning(token), "the remote command and ssh to end")
        await until(lambda: not any(_live(pid) for pid in children), "lifeboat's children to end")
        took = loop.time() - signalled
    finally:
        await backup.stop()

    assert returncode == 128 + sig, err
    said = "" if sig == signal.SIGINT else f" by {sig.name}"  # Ctrl-C needs no name
    assert f"interrupted{said}; nothing partial was kept" in err
    assert took < STOPPED_WITHIN, f"stopping took {took:.1f} s"
    assert list((backup.repo / ".staging").iterdir()) == []
    assert list((backup.repo / "backups").iterdir()) == []
    assert not (backup.repo / ".failed").exists()
    (cancelled,) = [e for e in backup.audit() if e["action"] == "backup.cancelled"]
    assert cancelled["reason"] == sig.name
    assert cancelled["sources"] == ["endless"]
    assert cancelled["operator"] == "tester"


def _live(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] != b"Z"


async def test_under_nohup_a_hangup_changes_nothing(
    asyncssh_server: SSHTestServer, tmp_path: Path, endless: tuple[list[str], str]
) -> None:
    """A SIGHUP ignored on start (``nohup lifeboat ...``) stays ignored: the backup goes on
    (more bytes arrive after it), and a SIGTERM still cancels it."""
    command, _ = endless
    repo = tmp_path / "repo"
    config = write_config(
        tmp_path / "c.toml", config_text(asyncssh_server, repo, command_source("endless", command))
    )
    argv = [LIFEBOAT, "--config", str(config), "backup", "create", "--json"]
    backup = Backup(await _spawn(argv, ignored=(signal.SIGHUP,)), repo)
    try:
        done = await backup.flowing()
        backup.proc.send_signal(signal.SIGHUP)
        await backup.flowing(beyond=done + 10**6)
        backup.proc.send_signal(signal.SIGTERM)
        returncode, err = await backup.ended()
    finally:
        await backup.stop()
    assert returncode == 128 + signal.SIGTERM, err
    (cancelled,) = [e for e in backup.audit() if e["action"] == "backup.cancelled"]
    assert cancelled["reason"] == "SIGTERM"


def write_calls(pid: int) -> int:
    """How many write system calls ``pid`` made, failed ones included (/proc/PID/io)."""
    fields = dict(
        line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines() if line
    )
    return int(fields["syscw"])


async def test_the_console_exits_after_its_terminal_is_gone(tmp_path: Path) -> None:
    """The terminal goes away (the pty closes: every write fails with EIO) with the wizard's
    text box open, whose cursor blinks; then the hang-up arrives. Textual's writer thread died
    of the first failed write and the console hung, unable to exit, with the demo's etcd left
    running; now its output is dropped, and the hang-up ends it with 129."""
    repo = tmp_path / "repo"
    config = write_config(
        tmp_path / "lifeboat.toml",
        f'operator = "tester"\n[repository]\npath = "{repo}"\n'
        '[hosts.h1]\naddress = "127.0.0.1"\nport = 1\n'
        '[sources.mongo]\nkind = "mongo"\nhost = "h1"\nuri = "mongodb://127.0.0.1:1/"\n',
    )
    terminal = await Terminal.start(LIFEBOAT, "--config", str(config))
    try:
        await terminal.until(lambda text: "Quit" in text, "the dashboard's footer")
        os.write(terminal.master, b"r")
        await terminal.until(lambda text: "What went wrong?" in text, "the wizard")
        os.write(terminal.master, b"\x1b[B" * 6 + b"\r")  # a module was removed: which?
        await terminal.until(lambda text: "Which namespaces" in text, "the wizard's text box")
        pid = terminal.proc.pid
        terminal.hang_up()
        before = write_calls(pid)
        # It goes on drawing (a blinking cursor) into the void, which the old writer could not.
        await until(lambda: write_calls(pid) >= before + 3, "writes after the terminal went")
        terminal.proc.send_signal(signal.SIGHUP)
        assert await asyncio.wait_for(terminal.proc.wait(), DEADLINE) == 128 + signal.SIGHUP
    finally:
        terminal.close()

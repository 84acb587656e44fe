"""kill -9 of the real ``lifeboat`` process mid-transfer: nothing outlives it, nothing hides.

A killed backup must take its ``ssh`` child and the remote command with it, and the staging
directory it leaves is reported by ``status``/``backup list`` and removed by the next writer.
A killed restore leaves a record that ``status`` reports (exit 1) until it is resolved.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cli_run import LIFEBOAT, lifeboat, with_signals, write_config
from helpers import command_source, config_text, stored_backup
from processes import alive, processes_mentioning
from sshd import SSHTestServer, descendants
from timing import DEADLINE, until

from engine.remote.commands import ends_with_channel
from engine.repo.manifest import utc_now
from engine.repo.repository import Repository
from engine.restore import journal


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def flowing(source: str) -> Callable[[dict[str, Any]], bool]:
    """Whether an event says over a megabyte of ``source`` went through."""
    return lambda e: e["event"] == "Progress" and e["source"] == source and e["done"] > 10**6


async def start_and_kill(
    argv: list[str], ready: Callable[[dict[str, Any]], bool], token: str
) -> set[int]:
    """Run ``argv`` (JSON events on stdout), SIGKILL it once an event is ``ready`` (the remote
    command, found by ``token``, running) and return the pids of its descendants then."""
    children, returncode, _ = await start_and_signal(argv, ready, token, signal.SIGKILL)
    assert returncode == -signal.SIGKILL
    return children


async def start_and_signal(
    argv: list[str], ready: Callable[[dict[str, Any]], bool], token: str, sig: int
) -> tuple[set[int], int, str]:
    """``start_and_kill`` with any signal: its descendants, exit status and stderr."""
    proc = await asyncio.create_subprocess_exec(
        *with_signals(argv),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "LIFEBOAT_CONFIG": ""},
    )
    assert proc.stdout is not None
    try:
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), DEADLINE)
            assert line, "lifeboat ended before the moment to signal it"
            if ready(json.loads(line)):
                break
        assert processes_mentioning(token), "the remote command is not running"
        children = descendants(proc.pid)
        proc.send_signal(sig)
        _, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return children, proc.returncode, err.decode()


async def test_kill9_backup_leaves_no_process_and_its_staging_is_reported_then_cleaned(
    ssh_server: SSHTestServer, tmp_path: Path, endless: tuple[list[str], str]
) -> None:
    """Through an ``ssh`` child (bulk_transport auto), against each server."""
    await kill9_backup(ssh_server, tmp_path, endless, "auto")


async def test_kill9_of_an_asyncssh_transfer_leaves_no_remote_command(
    openssh_server: SSHTestServer, tmp_path: Path, endless: tuple[list[str], str]
) -> None:
    """No child: sshd sees the connection drop, and the command must not run on."""
    await kill9_backup(openssh_server, tmp_path, endless, "asyncssh")


async def kill9_backup(
    ssh_server: SSHTestServer, tmp_path: Path, endless: tuple[list[str], str], transport: str
) -> None:
    command, token = endless
    sources = command_source("endless", command) + command_source("quick", ["echo", "hello"])
    repo = tmp_path / "repo"
    text = config_text(ssh_server, repo, sources, bulk_transport=transport)
    config = write_config(tmp_path / "c.toml", text)
    argv = [LIFEBOAT, "--config", str(config), "backup", "create", "--scope", "endless", "--json"]
    children = await start_and_kill(argv, flowing("endless"), token)

    await until(lambda: not processes_mentioning(token), "the remote command and ssh to end")
    await until(lambda: not any(alive(pid) for pid in children), "lifeboat's children to end")

    (dead,) = (repo / ".staging").iterdir()
    status = await lifeboat("status", config=config)
    assert status.rc == 1, status
    assert f".staging/{dead.name}" in status.stdout
    assert "lifeboat repo clean" in status.stdout
    listing = await lifeboat("backup", "list", config=config)
    assert listing.rc == 0
    assert f".staging/{dead.name}" in listing.stderr

    done = await lifeboat("backup", "create", "--scope", "quick", config=config)
    assert done.rc == 0, done
    assert f"removed .staging/{dead.name}" in done.stderr
    assert list((repo / ".staging").iterdir()) == []
    status = await lifeboat("status", "--json", config=config)
    assert json.loads(status.stdout)["leftovers"] == []


async def test_kill9_restore_is_reported_until_a_restore_of_its_target_succeeds(
    openssh_server: SSHTestServer, tmp_path: Path, endless: tuple[list[str], str]
) -> None:
    _, token = endless  # the restore reads slowly and ends at EOF, as tar does
    slow = ["sh", "-c", f'while [ "$(head -c 65536 | wc -c)" -gt 0 ]; do sleep {token}; done']
    repo_path = tmp_path / "repo"
    good = stored_backup(Repository.open(repo_path), utc_now(), {"db": os.urandom(3_000_000)})
    sources = command_source("db", ["echo", "the state before"], slow)
    config = write_config(tmp_path / "c.toml", config_text(openssh_server, repo_path, sources))
    argv = [LIFEBOAT, "--config", str(config), "restore", good.id, "--apply", "--confirm", "h1"]
    children = await start_and_kill([*argv, "--json"], flowing("db"), token)

    await until(lambda: not processes_mentioning(token), "the remote restore and ssh to end")
    await until(lambda: not any(alive(pid) for pid in children), "lifeboat's children to end")
    audit = [json.loads(line) for line in (repo_path / "audit.jsonl").read_text().splitlines()]
    (start,) = [entry for entry in audit if entry["action"] == "restore.start"]
    assert not [entry for entry in audit if entry["action"] == "restore.finish"]
    safety = start["safety_backup"]
    assert safety is not None

    status = await lifeboat("status", config=config)
    assert status.rc == 1, status
    (problem,) = [line for line in status.stdout.splitlines() if "interrupted" in line]
    assert f"restore {start['run']} of backup {good.id} onto h1 was interrupted part way" in problem
    started = re.search(r"started (\S+) by tester", problem)
    assert started, problem
    assert abs(parse_time(started[1]) - parse_time(start["ts"])) < timedelta(seconds=5)
    assert f"the state before it is in backup {safety}" in problem
    dry = await lifeboat("restore", good.id, "--dry-run", config=config)
    assert dry.rc == 0, dry
    assert re.search(rf"warn +unfinished restore +restore {start['run']} ", dry.stdout), dry

    fast = command_source("db", ["echo", "the state before"], ["sh", "-c", "cat >/dev/null"])
    write_config(config, config_text(openssh_server, repo_path, fast))
    done = await lifeboat(*argv[3:], "--skip-safety-backup", "--reason", "undo", config=config)
    assert done.rc == 0, done
    status = await lifeboat("status", "--json", config=config)
    assert status.rc == 0, status
    assert json.loads(status.stdout)["unfinished_restores"] == []


def test_the_remote_wrapper_keeps_status_and_signal_and_ends_with_its_stdin() -> None:
    """``ends_with_channel`` run by a local ``sh`` in its own session, as sshd runs it."""

    def run(command: str, *, close_stdin: bool = False) -> int:
        proc = subprocess.Popen(
            ["sh", "-c", ends_with_channel(command)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert proc.stdin is not None
        if close_stdin:
            proc.stdin.close()  # the client went away
        try:
            return proc.wait(timeout=DEADLINE)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            if proc.stdin is not None and not proc.stdin.closed:
                proc.stdin.close()

    assert run("exit 3") == 3
    assert run("kill -s TERM $$") == -signal.SIGTERM
    assert run("cat; exit 4") == 4  # the command's stdin is /dev/null: it never waits on it
    assert run("sleep 600; exit 5", close_stdin=True) == -signal.SIGKILL


async def test_ctrl_c_mid_restore_says_it_stopped_part_way_and_stays_on_record(
    asyncssh_server: SSHTestServer, tmp_path: Path, endless: tuple[list[str], str]
) -> None:
    _, token = endless
    slow = ["sh", "-c", f'while [ "$(head -c 65536 | wc -c)" -gt 0 ]; do sleep {token}; done']
    repo_path = tmp_path / "repo"
    good = stored_backup(Repository.open(repo_path), utc_now(), {"db": os.urandom(3_000_000)})
    sources = command_source("db", ["echo", "the state before"], slow)
    config = write_config(tmp_path / "c.toml", config_text(asyncssh_server, repo_path, sources))
    argv = [LIFEBOAT, "--config", str(config), "restore", good.id, "--apply", "--confirm", "h1"]
    _, returncode, err = await start_and_signal(
        [*argv, "--json"], flowing("db"), token, signal.SIGINT
    )

    assert returncode == 130, err
    assert "nothing partial was kept" not in err
    assert "stopped part way and stays on record: `lifeboat status` names it" in err
    (record,) = journal.unfinished(repo_path)
    assert record.outcome == "cancelled"
    status = await lifeboat("status", config=config)
    assert status.rc == 1
    (problem,) = [line for line in status.stdout.splitlines() if "cancelled" in line]
    assert f"restore {record.run} of backup {good.id} onto h1 was cancelled" in problem
    assert f"the state before it is in backup {record.safety_backup}" in problem

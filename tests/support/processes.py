"""Processes a test must see gone: found by a token in their command line, in /proc."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest


def processes_mentioning(token: str) -> set[int]:
    """Live (not zombie) processes whose command line contains ``token``."""
    found = set()
    for pid in _live_pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in cmdline:
            found.add(pid)
    return found


def _live_pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and alive(int(entry.name)):
            yield int(entry.name)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] != b"Z"


@pytest.fixture
def endless() -> Iterator[tuple[list[str], str]]:
    """A remote command that never ends, even when its stdout is gone (a failing ``head``
    does not stop the loop), and a token that finds it (and the ``ssh`` carrying it) in /proc:
    its ``sleep`` interval, unique to the test. Whatever still runs afterwards is killed."""
    token = f"0.01{secrets.randbelow(10**8):08d}"
    yield ["sh", "-c", f"while :; do head -c 65536 /dev/zero; sleep {token}; done"], token
    for pid in processes_mentioning(token):  # a failed test must not leave it running
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

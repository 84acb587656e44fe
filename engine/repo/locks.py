"""Process locks on files (``flock``): they die with their process, so they cannot go stale.

The file holds who took the lock (pid, host, operation, operator, since), so a refusal can
name the holder. Used for the repository's write lock and for the per-target restore locks.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.repo.manifest import iso_z, utc_now

UNREADABLE = "another process (its details are not readable)"


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    operation: str
    operator: str
    since: str

    def describe(self) -> str:
        return (
            f"pid {self.pid} on {self.host} ({self.operation} by {self.operator}) "
            f"since {self.since}"
        )


UNKNOWN = LockHolder(pid=0, host="", operation="", operator="", since="")  # details unreadable


class LockBusy(Exception):  # noqa: N818 (a state, not an error the operator sees)
    """The lock is held; ``holder`` says by whom."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


@contextmanager
def hold(path: Path, operation: str, operator: str) -> Iterator[None]:
    """Hold the lock at ``path`` or raise ``LockBusy`` at once, naming the holder."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockBusy(_describe(fd)) from None
        holder = LockHolder(
            pid=os.getpid(),
            host=socket.gethostname(),
            operation=operation,
            operator=operator,
            since=iso_z(utc_now()),
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(holder)).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def holder_of(path: Path) -> str | None:
    """Who holds the lock at ``path`` (a description), or None when it is free."""
    held = current_holder(path)
    return None if held is None else _text(held)


def current_holder(path: Path) -> LockHolder | None:
    """The holder of the lock at ``path``: None when it is free, ``UNKNOWN`` when it is held
    but its details are not readable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _describe(fd: int) -> str:
    return _text(_read_holder(fd))


def _text(holder: LockHolder) -> str:
    return UNREADABLE if holder is UNKNOWN else holder.describe()


def _read_holder(fd: int) -> LockHolder:
    raw = os.pread(fd, 4096, 0)
    try:
        return LockHolder(**json.loads(raw))
    except (ValueError, TypeError, RecursionError):
        return UNKNOWN

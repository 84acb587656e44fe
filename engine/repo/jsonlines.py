"""The repository's append-only JSON-lines logs: the audit log, drill history, verify outcomes.

An append writes one JSON value and its newline whole (a single ``write`` on a file opened
``O_APPEND``, continued if the kernel takes only part) and fsyncs it before returning. A log
is created 0600 in a 0700 directory, and its new name is made durable, as everything in a
repository is. A line cut short by a crash is ended before the next one is written, so
that one line stays whole.

The reader never raises over a log's contents: a line that is cut short, is not JSON, is not
a JSON object or is not a record of the log's kind is skipped and reported to ``on_bad``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from engine.repo.atomic import FILE_MODE, fsync_dir, make_private_dir

T = TypeVar("T")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BadLine:
    """A line of a log that holds no record, and why."""

    path: Path
    number: int  # 1-based
    problem: str

    def __str__(self) -> str:
        return f"{self.path.name} line {self.number}: {self.problem}; skipped"


def log_bad(bad: BadLine) -> None:
    """The default report of a skipped line: a warning in the log."""
    _log.warning("%s", bad)


@contextmanager
def opened(path: Path) -> Iterator[int]:
    """A descriptor to append to (and read) the log at ``path``, closed on exit. A missing
    log is created 0600, its directory made 0700, and the new name fsynced."""
    created = False
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
    except FileNotFoundError:
        make_private_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
        created = True
    try:
        if created:
            fsync_dir(path.parent)
        yield fd
    finally:
        os.close(fd)


def write_line(fd: int, line: bytes) -> None:
    """Append ``line`` (one JSON value, without its newline) and a newline, and fsync. A last
    line left without its newline by a crash is ended first, so that ``line`` reads whole."""
    if b"\n" in line:
        raise ValueError("a JSON line cannot hold a newline")
    size = os.fstat(fd).st_size
    torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
    view = memoryview(b"\n" + line + b"\n" if torn else line + b"\n")
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def append(path: Path, record: Mapping[str, Any], *, sort_keys: bool = False) -> None:
    """Append ``record`` to the log at ``path`` as one line of ``json.dumps``."""
    with opened(path) as fd:
        write_line(fd, json.dumps(record, sort_keys=sort_keys).encode())


def read(
    path: Path,
    parse: Callable[[dict[str, Any]], T],
    *,
    on_bad: Callable[[BadLine], object] = log_bad,
) -> Iterator[T]:
    """The records of the log at ``path``, oldest first (none when there is no log).

    ``parse`` turns one JSON object into a record, raising ``LookupError``, ``TypeError`` or
    ``ValueError`` when it is not one. Blank lines are passed over; every other line that
    gives no record is skipped and handed to ``on_bad``.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except (ValueError, RecursionError):
                torn = not raw.endswith(b"\n")
                problem = "cut short (a write stopped by a crash)" if torn else "not JSON"
                on_bad(BadLine(path, number, problem))
                continue
            if not isinstance(value, dict):
                on_bad(BadLine(path, number, "not a JSON object"))
                continue
            try:
                record = parse(value)
            except (LookupError, TypeError, ValueError) as exc:
                on_bad(BadLine(path, number, f"not a record of this log ({exc!r})"))
                continue
            yield record

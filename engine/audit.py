"""The repository's append-only, hash-chained audit log: one JSON line per notable step.

Each record is canonical JSON (sorted keys, no spaces) carrying ``prev``, the sha256 of the
line before it (64 zeros for the first). ``audit.head`` holds the number of lines and the
sha256 of the last one, rewritten atomically with every append, so that cutting lines off
the end is detected as well as edits, deletions and reorderings in the middle.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.atomic import atomic_write
from engine.manifest import iso_z, utc_now

AUDIT_FILE = "audit.jsonl"
HEAD_FILE = "audit.head"
GENESIS = "0" * 64


def canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def _last_line(fd: int) -> bytes | None:
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    window = min(size, 64 * 1024)
    tail = os.pread(fd, window, size - window).rstrip(b"\n")
    return tail.rsplit(b"\n", 1)[-1]


def _line_count(repo_path: Path, fd: int) -> int:
    """How many lines the log has: from the head file, or counted (a log from before it)."""
    head = read_head(repo_path)
    if head is not None:
        return head[0]
    count = 0
    offset = 0
    while chunk := os.pread(fd, 1024 * 1024, offset):
        count += chunk.count(b"\n")
        offset += len(chunk)
    return count


def record(repo_path: Path, operator: str, action: str, **details: Any) -> dict[str, Any]:
    """Append one record (who, when, what) and return it."""
    path = repo_path / AUDIT_FILE
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        last = _last_line(fd)
        lines = _line_count(repo_path, fd) if last is not None else 0
        entry = {
            "ts": iso_z(utc_now()),
            "operator": operator,
            "host": socket.gethostname(),
            "action": action,
            **details,
            "prev": hashlib.sha256(last).hexdigest() if last else GENESIS,
        }
        line = canonical(entry)
        os.write(fd, line + b"\n")
        os.fsync(fd)
        head = {"lines": lines + 1, "sha256": hashlib.sha256(line).hexdigest()}
        atomic_write(repo_path / HEAD_FILE, canonical(head) + b"\n")
    finally:
        os.close(fd)
    return entry


def read_head(repo_path: Path) -> tuple[int, str] | None:
    try:
        head = json.loads((repo_path / HEAD_FILE).read_text())
        return int(head["lines"]), str(head["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class Verdict:
    """``ok``, or the first bad line (1-based) and what is wrong there."""

    lines: int
    bad_line: int | None = None
    problem: str = ""
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.bad_line is None


def verify(repo_path: Path) -> Verdict:
    """Walk the chain; the first line that does not follow from the one before is named."""
    path = repo_path / AUDIT_FILE
    if not path.exists():
        return Verdict(0, note="no audit log yet")
    previous = GENESIS
    count = 0
    with path.open("rb") as handle:
        for count, raw in enumerate(handle, 1):  # noqa: B007 (count is used after the loop)
            line = raw.rstrip(b"\n")
            problem = _line_problem(line, previous)
            if problem:
                return Verdict(count, count, problem)
            previous = hashlib.sha256(line).hexdigest()
    head = read_head(repo_path)
    if head is None:
        return Verdict(count, note=f"no {HEAD_FILE}: lines cut off the end cannot be detected")
    lines, last = head
    if count < lines:
        return Verdict(
            count,
            count + 1,
            f"missing: the log ends after line {count} but {HEAD_FILE} says it has {lines} "
            "lines; the end was cut off",
        )
    if count > lines:
        return Verdict(
            count,
            lines + 1,
            f"line {lines + 1} and after are not in {HEAD_FILE} (it says {lines} lines): "
            "appended by hand, or Lifeboat stopped between writing the line and the head",
        )
    if count and last != previous:
        return Verdict(count, count, f"line {count} is not the last line Lifeboat wrote")
    return Verdict(count)


def _line_problem(line: bytes, previous: str) -> str:
    try:
        entry = json.loads(line)
    except ValueError:
        return "not a JSON record: the line was edited or damaged"
    if not isinstance(entry, dict) or canonical(entry) != line:
        return "not written by Lifeboat (not canonical JSON): the line was edited"
    if entry.get("prev") != previous:
        return (
            "its prev hash does not match the line before: a line before it was edited, "
            "removed or moved"
        )
    return ""


def entries(repo_path: Path, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """The records, oldest first (``since``: only those at or after it); unreadable lines
    are skipped here; ``verify`` is what reports them."""
    path = repo_path / AUDIT_FILE
    if not path.exists():
        return
    with path.open("rb") as handle:
        for raw in handle:
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if since is None or _at(entry) >= since:
                yield entry


def _at(entry: dict[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(entry.get("ts", "")).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=utc_now().tzinfo)

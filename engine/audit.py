"""The repository's append-only audit log: one JSON line per destructive or notable step.

Each record carries the sha256 of the previous line (``prev``), so later edits, deletions or
reorderings break the chain (a verifier comes with the checklist work).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
from pathlib import Path
from typing import Any

from engine.manifest import utc_now

AUDIT_FILE = "audit.jsonl"
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


def record(repo_path: Path, operator: str, action: str, **details: Any) -> dict[str, Any]:
    """Append one record (who, when, what) and return it."""
    path = repo_path / AUDIT_FILE
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        last = _last_line(fd)
        entry = {
            "ts": utc_now().isoformat().replace("+00:00", "Z"),
            "operator": operator,
            "host": socket.gethostname(),
            "action": action,
            **details,
            "prev": hashlib.sha256(last).hexdigest() if last else GENESIS,
        }
        os.write(fd, canonical(entry) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return entry

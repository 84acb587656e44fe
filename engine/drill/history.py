"""The drill history: one JSON line per drill in the repository's ``drills.jsonl``."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DRILLS_FILE = "drills.jsonl"


@dataclass
class DrillRecord:
    id: str
    started: str
    operator: str
    sources: list[str]
    target: str | None
    scenario: str  # what was recovered, and where: "restore demo-mongo, demo-etcd in place"
    finished: str | None = None
    backup_id: str | None = None
    backup_seconds: float | None = None
    verify_seconds: float | None = None
    restore_seconds: float | None = None  # the measured RTO: restore until the data answers
    checklist: str | None = None
    checklist_run: str | None = None
    checklist_failed: list[str] = field(default_factory=list)
    markers: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    verdict: str = "failed"  # "passed" or "failed"

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def timings(self) -> str:
        """``backup Ns, restore Ms`` (what is known of it)."""
        measured = {"backup": self.backup_seconds, "restore": self.restore_seconds}
        parts = [f"{what} {secs:.1f}s" for what, secs in measured.items() if secs is not None]
        return ", ".join(parts) or "no timings (stopped before the backup)"


def append(repo_path: Path, record: DrillRecord) -> None:
    line = json.dumps(record.to_dict(), sort_keys=True).encode() + b"\n"
    fd = os.open(repo_path / DRILLS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def load(repo_path: Path) -> list[DrillRecord]:
    """Every recorded drill, newest first; a line that does not read is skipped."""
    try:
        lines = (repo_path / DRILLS_FILE).read_text().splitlines()
    except FileNotFoundError:
        return []
    known = set(DrillRecord.__dataclass_fields__)
    records = []
    for line in lines:
        try:
            data = json.loads(line)
            records.append(DrillRecord(**{k: v for k, v in data.items() if k in known}))
        except (ValueError, TypeError):
            continue
    return sorted(records, key=lambda record: record.started, reverse=True)

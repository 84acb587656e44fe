"""The drill history: one JSON line per drill in the repository's ``drills.jsonl``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from engine.repo import jsonlines

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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DrillRecord:
        """The record of a history line (keys it does not know are left out); raises
        ``ValueError`` when a field is missing or of the wrong type."""
        known = {f.name for f in fields(cls)}
        return _RECORD.validate_python({k: v for k, v in data.items() if k in known})

    def timings(self) -> str:
        """``backup Ns, restore Ms`` (what is known of it)."""
        measured = {"backup": self.backup_seconds, "restore": self.restore_seconds}
        parts = [f"{what} {secs:.1f}s" for what, secs in measured.items() if secs is not None]
        return ", ".join(parts) or "no timings (stopped before the backup)"


# A history line is untrusted input: its fields are type-checked before any use.
_RECORD = TypeAdapter(DrillRecord)


def append(repo_path: Path, record: DrillRecord) -> None:
    jsonlines.append(repo_path / DRILLS_FILE, record.to_dict(), sort_keys=True)


def load(repo_path: Path) -> list[DrillRecord]:
    """Every recorded drill, newest first; a line that does not read is skipped (and logged)."""
    records = jsonlines.read(repo_path / DRILLS_FILE, DrillRecord.from_dict)
    return sorted(records, key=lambda record: record.started, reverse=True)

"""One check's verdict, shared by the restore validator (and, later, checklists).

A check says ok, warning or fail, and its detail names what was found and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    """One verdict: ``name`` says what was checked (``disk db1``), ``detail`` what was found."""

    name: str
    status: Status
    detail: str
    down: str | None = None  # a restore's source whose datastore does not answer at all

    @classmethod
    def ok(cls, name: str, detail: str) -> Check:
        return cls(name, Status.OK, detail)

    @classmethod
    def warning(cls, name: str, detail: str, *, down: str | None = None) -> Check:
        return cls(name, Status.WARNING, detail, down)

    @classmethod
    def fail(cls, name: str, detail: str) -> Check:
        return cls(name, Status.FAIL, detail)


def down_sources(checks: list[Check]) -> dict[str, str]:
    """The sources the checks found not answering at all, each with what was found: there
    is no current state to read from them (a safety backup skips them)."""
    return {check.down: check.detail for check in checks if check.down is not None}


def compare_versions(what: str, recorded: str, found: str) -> Check:
    """Same major.minor is required; a different patch level only warns."""
    name = f"version {what}"
    if not recorded:
        return Check.warning(
            name, f"the backup did not record a server version; target runs {found}"
        )
    if recorded == found:
        return Check.ok(name, f"{found}, as when backed up")
    old, new = _major_minor(recorded), _major_minor(found)
    if old is None or new is None:
        return Check.warning(
            name, f"backed up from {recorded}, target runs {found}; cannot compare these versions"
        )
    if old != new:
        return Check.fail(
            name,
            f"backed up from {recorded}, target runs {found}: data from another major.minor "
            "version may not load (schema and format change between them); restore into a "
            f"server running {'.'.join(map(str, old))}.x",
        )
    return Check.warning(
        name,
        f"backed up from {recorded}, target runs {found} (same {old[0]}.{old[1]}, other patch)",
    )


def _major_minor(version: str) -> tuple[int, int] | None:
    parts = version.lstrip("v").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None

"""The status as Prometheus metrics (the text exposition format, version 0.0.4).

Names follow Prometheus' conventions: a ``lifeboat_`` prefix, base units in the name
(``_seconds``, ``_bytes``), points in time as ``_timestamp_seconds`` (Unix time), yes/no as 0/1
gauges. A value that does not exist (a tier never backed up, never drilled) is left out rather
than given a made-up number; the ``_rpo_breached`` gauges still say 1 for it. ``lifeboat status
--format prometheus`` prints them, and the scheduler keeps ``[metrics] textfile`` up to date for
node_exporter's textfile collector (written to a temporary file, then renamed over it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from engine.repo.atomic import atomic_write
from engine.status import RpoState, SourceLast, StatusReport

TEXTFILE_MODE = 0o644  # node_exporter runs as a user of its own: metrics hold no secret

Labels = tuple[tuple[str, str], ...]


@dataclass
class Family:
    """One metric and its samples."""

    name: str
    help: str
    kind: str = "gauge"
    samples: list[tuple[Labels, float]] = field(default_factory=list)

    def add(self, value: float | None, **labels: str) -> None:
        if value is not None:
            self.samples.append((tuple(labels.items()), float(value)))

    def lines(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        for labels, value in self.samples:
            shown = ",".join(f'{key}="{_escaped(text)}"' for key, text in labels)
            lines.append(f"{self.name}{{{shown}}} {_number(value)}" if shown else
                         f"{self.name} {_number(value)}")  # fmt: skip
        return lines


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if value.is_integer() else repr(value)


def _time(moment: datetime | str | None) -> float | None:
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return moment.timestamp()


def _flag(value: bool | None) -> float | None:
    return None if value is None else float(value)


def families(report: StatusReport, sources: Mapping[str, SourceLast]) -> list[Family]:
    """Every metric of ``report``; ``sources`` holds each source's newest backup."""
    tier = _tier_families(report)
    source_bytes = Family(
        "lifeboat_source_last_backup_bytes", "Bytes of the source in its newest backup."
    )
    source_seconds = Family(
        "lifeboat_source_last_backup_duration_seconds",
        "How long the source took in its newest backup, connect to last byte (a backup that"
        " recorded no time per source: the whole backup, start to commit).",
    )
    source_time = Family(
        "lifeboat_source_last_backup_timestamp_seconds",
        "When the newest backup holding the source finished (Unix time).",
    )
    for name, last in sorted(sources.items()):
        source_bytes.add(last.bytes, source=name)
        source_seconds.add(last.seconds, source=name)
        source_time.add(last.finished, source=name)
    return [
        *_overall(report),
        *tier,
        source_bytes,
        source_seconds,
        source_time,
        *_schedule_families(report),
        *_lock_families(report),
    ]


def _overall(report: StatusReport) -> list[Family]:
    healthy = Family("lifeboat_healthy", "1 when no tier, schedule or backup has a problem.")
    healthy.add(_flag(report.healthy))
    problems = Family("lifeboat_problems", "How many problems `lifeboat status` lists.")
    problems.add(len(report.problems))
    damaged = Family("lifeboat_damaged_backups", "Backups found damaged (unreadable, unsound).")
    damaged.add(len(report.damaged))
    restores = Family(
        "lifeboat_unfinished_restores", "Restores that did not succeed and are not resolved."
    )
    restores.add(len(report.restores))
    left = Family("lifeboat_leftover_bytes", "Bytes that killed jobs left in the repository.")
    left.add(sum(leftover.bytes for leftover in report.leftovers))
    at = Family("lifeboat_status_timestamp_seconds", "When this status was gathered (Unix time).")
    at.add(_time(report.at))
    return [healthy, problems, damaged, restores, left, at]


def _tier_families(report: StatusReport) -> list[Family]:
    rpo = Family("lifeboat_tier_rpo_seconds", "The tier's recovery point objective.")
    age = Family("lifeboat_tier_last_backup_age_seconds", "Age of the tier's newest backup.")
    last = Family(
        "lifeboat_tier_last_backup_timestamp_seconds",
        "When the tier's newest backup finished (Unix time).",
    )
    breached = Family(
        "lifeboat_tier_rpo_breached", "1 when the tier's newest backup is older than its RPO."
    )
    size = Family("lifeboat_tier_last_backup_bytes", "Bytes of the tier's newest backup.")
    off_rpo = Family("lifeboat_tier_offsite_rpo_seconds", "The tier's off-host RPO.")
    off_age = Family(
        "lifeboat_tier_offsite_copy_age_seconds", "Age of the tier's newest off-host copy."
    )
    off_breached = Family(
        "lifeboat_tier_offsite_rpo_breached",
        "1 when the tier's newest off-host copy is older than its off-host RPO.",
    )
    verified = Family(
        "lifeboat_tier_last_verify_timestamp_seconds",
        "When the tier's newest backup was last verified (Unix time).",
    )
    verify_ok = Family(
        "lifeboat_tier_last_verify_ok", "1 when the last verify of the tier's newest backup passed."
    )
    rto = Family("lifeboat_tier_rto_seconds", "The tier's recovery time objective.")
    drilled = Family(
        "lifeboat_tier_last_drill_timestamp_seconds",
        "When the tier's newest drill finished (Unix time).",
    )
    drill_ok = Family("lifeboat_tier_last_drill_passed", "1 when the tier's newest drill passed.")
    restore = Family(
        "lifeboat_tier_last_drill_restore_seconds",
        "The restore time the tier's newest drill measured (its RTO in practice).",
    )
    for status in report.tiers:
        tier = status.name
        rpo.add(status.tier.rpo.total_seconds(), tier=tier)
        age.add(status.age.total_seconds() if status.age is not None else None, tier=tier)
        last.add(_time(status.last.finished_at) if status.last else None, tier=tier)
        breached.add(_flag(status.state is RpoState.BREACH), tier=tier)
        size.add(status.size if status.last else None, tier=tier)
        if status.offsite is not None:
            off_rpo.add(status.offsite_rpo.total_seconds(), tier=tier)
            off = status.offsite.age
            off_age.add(off.total_seconds() if off is not None else None, tier=tier)
            off_breached.add(_flag(status.offsite.state is RpoState.BREACH), tier=tier)
        if status.last_verify is not None:
            verified.add(_time(status.last_verify.at), tier=tier)
            verify_ok.add(_flag(status.last_verify.ok), tier=tier)
        rto.add(status.tier.rto.total_seconds(), tier=tier)
        drill = status.last_drill
        if drill is not None:
            drilled.add(_time(drill.finished or drill.started), tier=tier)
            drill_ok.add(_flag(drill.passed), tier=tier)
            restore.add(drill.restore_seconds, tier=tier)
    return [rpo, age, last, breached, size, off_rpo, off_age, off_breached, verified, verify_ok,
            rto, drilled, drill_ok, restore]  # fmt: skip


def _schedule_families(report: StatusReport) -> list[Family]:
    overdue = Family("lifeboat_schedule_overdue", "1 when a tick of the schedule has no backup.")
    success = Family(
        "lifeboat_schedule_last_run_success", "1 when the schedule's last run made its backup."
    )
    last = Family(
        "lifeboat_schedule_last_run_timestamp_seconds",
        "The tick of the schedule's last run (Unix time).",
    )
    following = Family(
        "lifeboat_schedule_next_run_timestamp_seconds",
        "The schedule's next tick (Unix time).",
    )
    for status in report.schedules:
        name = status.name
        overdue.add(_flag(status.overdue), schedule=name)
        state = status.state
        if state is not None and state.last_outcome is not None:
            success.add(_flag(state.last_outcome == "ok"), schedule=name)
            last.add(_time(state.last_fire), schedule=name)
        following.add(_time(status.next_runs[0]) if status.next_runs else None, schedule=name)
    return [overdue, success, last, following]


def _lock_families(report: StatusReport) -> list[Family]:
    held = Family("lifeboat_locks_held", "Locks held now, by what they guard.")
    counts = dict.fromkeys(("repository", "restore", "schedule", "drill"), 0)
    for lock in report.locks:
        counts[lock.kind] = counts.get(lock.kind, 0) + 1
    for kind, count in sorted(counts.items()):
        held.add(count, kind=kind)
    return [held]


def render(report: StatusReport, sources: Mapping[str, SourceLast]) -> str:
    """The exposition text (a metric without a value is left out)."""
    shown = [family for family in families(report, sources) if family.samples]
    return "\n".join(line for family in shown for line in family.lines()) + "\n"


def write_textfile(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text.encode(), mode=TEXTFILE_MODE)

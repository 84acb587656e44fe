"""Where each tier stands: the age of its newest complete backup against its RPO.

A backup covers a tier when it holds an artifact of every source of the tier; a drill
covers it when it restored every source of the tier, and its restore time is the tier's
measured RTO. The same numbers serve the console's dashboard and (later) ``lifeboat status``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from engine.config import Config, TierConfig
from engine.drill.history import DrillRecord
from engine.manifest import Manifest, utc_now
from engine.repository import VerifyRecord

WARNING_FRACTION = 0.8


class RpoState(Enum):
    OK = "ok"
    WARNING = "warning"
    BREACH = "breach"


@dataclass(frozen=True)
class TierStatus:
    name: str
    tier: TierConfig
    last: Manifest | None  # newest backup that covers every source of the tier
    age: timedelta | None
    state: RpoState
    last_verify: VerifyRecord | None
    last_drill: DrillRecord | None = None  # newest drill that restored every source of the tier

    @property
    def rto_met(self) -> bool | None:
        """Whether the last drill passed within the tier's RTO (None: never drilled)."""
        drill = self.last_drill
        if drill is None:
            return None
        seconds = drill.restore_seconds
        return drill.passed and seconds is not None and seconds <= self.tier.rto.total_seconds()

    @property
    def size(self) -> int:
        if self.last is None:
            return 0
        return sum(a.size for a in self.last.artifacts if a.source in self.tier.sources)


def covers(manifest: Manifest, tier: TierConfig) -> bool:
    return all(manifest.artifact(source) is not None for source in tier.sources)


def rpo_state(age: timedelta | None, rpo: timedelta) -> RpoState:
    if age is None or age > rpo:
        return RpoState.BREACH
    if age > rpo * WARNING_FRACTION:
        return RpoState.WARNING
    return RpoState.OK


def tier_statuses(
    config: Config,
    manifests: Iterable[Manifest],
    verifications: dict[str, VerifyRecord],
    now: datetime | None = None,
    drills: Sequence[DrillRecord] = (),
) -> list[TierStatus]:
    """One status per configured tier; ``manifests`` newest first, read only as far as needed
    (a lazy ``Repository.iter_backups()`` stops once every tier is covered); ``drills``
    newest first."""
    moment = now or utc_now()
    newest: dict[str, Manifest] = {}
    for manifest in manifests:
        if len(newest) == len(config.tiers):
            break
        for name, tier in config.tiers.items():
            if name not in newest and covers(manifest, tier):
                newest[name] = manifest
    statuses = []
    for name, tier in config.tiers.items():
        last = newest.get(name)
        age = moment - last.finished_at if last else None
        statuses.append(
            TierStatus(
                name=name,
                tier=tier,
                last=last,
                age=age,
                state=rpo_state(age, tier.rpo),
                last_verify=verifications.get(last.id) if last else None,
                last_drill=next((d for d in drills if set(tier.sources) <= set(d.sources)), None),
            )
        )
    return statuses

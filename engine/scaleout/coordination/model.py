"""What a coordination lock holds, where it lives in etcd, and the error for its failures."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from urllib.parse import quote

from engine.errors import LifeboatError


class CoordinationError(LifeboatError):
    """etcd coordination could not be set up, or a request to etcd failed."""


def iso_utc(moment: datetime) -> str:
    """``moment`` in UTC to the second, fixed width (``2026-11-21T02:00:00Z``), so ISO strings
    order like the times they name; etcd compares the done marker as a string."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment} has no time zone; coordination needs aware times")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Keys:
    """The key layout under ``/lifeboat/<repo_id>/``; names are percent-encoded, so a name
    with a ``/`` cannot pose as another key."""

    prefix: str

    @classmethod
    def of_repository(cls, repo_id: str) -> Keys:
        return cls(f"/lifeboat/{quote(repo_id, safe='')}/")

    def schedule(self, name: str) -> str:
        return f"{self.prefix}schedules/{quote(name, safe='')}/"

    def running(self, name: str) -> str:
        return f"{self.schedule(name)}running"

    def tick(self, name: str, fire: str) -> str:
        return f"{self.schedule(name)}ticks/{fire}"

    def done(self, name: str) -> str:
        return f"{self.schedule(name)}done"

    def restore(self, target: str) -> str:
        return f"{self.prefix}restore/{quote(target, safe='')}"

    @property
    def audit_head(self) -> str:
        """The repository's audit head, anchored here (``engine.repo.audit``)."""
        return f"{self.prefix}audit/head"

    def is_lock(self, key: str) -> bool:
        """Whether ``key`` is a lock ``holders`` reports: a schedule's running key or a
        restore key (not tick claims, which duplicate running, nor done markers)."""
        if key.startswith(f"{self.prefix}restore/"):
            return True
        return key.startswith(f"{self.prefix}schedules/") and key.endswith("/running")


@dataclass(frozen=True)
class LockInfo:
    """Who holds a lock: the JSON value of its key, plus the key."""

    key: str
    kind: str  # "schedule" | "restore"
    name: str  # schedule name or restore target
    instance: str
    host: str
    pid: int
    since: str  # ISO UTC
    fire: str | None = None  # schedule ticks: the fire time (ISO UTC)
    operator: str | None = None  # restores: who asked for it

    def describe(self) -> str:
        """``scheduler-a (pid 123 on box) since 2026-11-21T02:00:05Z``."""
        by = f", operator {self.operator}" if self.operator else ""
        return f"{self.instance} (pid {self.pid} on {self.host}{by}) since {self.since}"

    def to_json(self) -> str:
        data = asdict(self)
        del data["key"]
        return json.dumps({k: v for k, v in data.items() if v is not None}, sort_keys=True)

    @classmethod
    def from_json(cls, key: str, value: bytes) -> LockInfo:
        """Read a lock's value; fields a newer Lifeboat added are ignored."""
        try:
            data = json.loads(value)
            known = {f.name for f in fields(cls)} - {"key"}
            return cls(key=key, **{k: v for k, v in data.items() if k in known})
        except (ValueError, TypeError, AttributeError) as exc:
            raise CoordinationError(
                f"coordination: the lock at {key} holds an unreadable value ({exc}); "
                "delete the key if no Lifeboat holds it"
            ) from None

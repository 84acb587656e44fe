"""Prune: retention policies decide which backups stay; only the others are removed.

A backup made by a schedule with its own ``retention`` is governed by that policy (periods in
the schedule's time zone); every other backup by the global ``[retention]`` (periods in UTC).
Rules OR together, with restic's semantics. Whatever the rules say, pinned backups, the newest
verified backup of each source and the backups passed drills restored are never removed.

Only directories that are backups (an id-shaped name with a manifest) are ever considered;
anything else under ``backups/`` is left alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from fnmatch import fnmatchcase

from engine.config.model import Config
from engine.config.schedules import RetentionConfig
from engine.drill import history
from engine.durations import format_duration
from engine.errors import UsageError
from engine.repo import audit, leftovers
from engine.repo.leftovers import Leftover
from engine.repo.manifest import Manifest
from engine.repo.repository import Repository

NO_POLICY = (
    "no retention policy is configured; add [retention] keep_daily = 7 "
    "(see README, Retention) or pass --keep N"
)


@dataclass(frozen=True)
class Decision:
    """Whether one backup stays, and why (or why not), in words for the operator."""

    manifest: Manifest
    keep: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class PrunePlan:
    """One decision per backup, newest first (and what killed writers left, removed first)."""

    decisions: tuple[Decision, ...]
    leftovers: tuple[Leftover, ...] = ()

    @property
    def keep(self) -> tuple[Manifest, ...]:
        return tuple(d.manifest for d in self.decisions if d.keep)

    @property
    def remove(self) -> tuple[Manifest, ...]:
        return tuple(d.manifest for d in self.decisions if not d.keep)


@dataclass(frozen=True)
class _Policy:
    """The policy governing one group of backups."""

    name: str  # for reasons: "schedule nightly" or "[retention]"
    table: str  # the config table its rules live in
    rules: RetentionConfig
    zone: tzinfo


def _hour(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H}:00"


def _day(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d}"


def _week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def _month(moment: datetime) -> str:
    return f"{moment:%Y-%m}"


_PERIODS: tuple[tuple[str, str, Callable[[datetime], str]], ...] = (
    ("keep_hourly", "hourly", _hour),
    ("keep_daily", "daily", _day),
    ("keep_weekly", "weekly", _week),
    ("keep_monthly", "monthly", _month),
)


def plan_prune(
    config: Config,
    manifests: Sequence[Manifest],
    verified: Collection[str],
    drilled: Sequence[str],
    keep_last: int | None = None,
) -> PrunePlan:
    """Decide, without touching anything, which backups stay.

    ``verified``: ids of backups whose latest verify passed. ``drilled``: ids of backups
    restored by passed drills, newest drill first. ``keep_last`` (``--keep N``) replaces the
    rules of every group with "keep the N newest"; pins and protections still apply.
    """
    if keep_last is not None and keep_last < 1:
        raise UsageError(f"--keep must be at least 1, got {keep_last}")
    ordered = sorted(manifests, key=lambda m: (_utc(m.created_at), m.id), reverse=True)
    protected = _protections(ordered, verified, drilled)
    decisions: dict[str, Decision] = {}
    for policy, members in _groups(config, ordered).values():
        pins = (*config.retention.pin, *policy.rules.pin)
        for decision in _decide_group(policy, members, protected, keep_last, pins):
            decisions[decision.manifest.id] = decision
    return PrunePlan(tuple(decisions[m.id] for m in ordered))


def plan_copies(
    name: str, table: str, rules: RetentionConfig, manifests: Sequence[Manifest]
) -> PrunePlan:
    """Which of a remote's copies its own policy ``rules`` (``[table]``, periods in UTC)
    keeps, with the same reasons as a local prune; ``name`` names the policy in them."""
    ordered = sorted(manifests, key=lambda m: (_utc(m.created_at), m.id), reverse=True)
    policy = _Policy(name, table, rules, UTC)
    return PrunePlan(tuple(_decide_group(policy, ordered, {}, None, rules.pin)))


def prune(
    config: Config,
    repo: Repository,
    operator: str,
    *,
    dry_run: bool,
    keep_last: int | None = None,
) -> PrunePlan:
    """Plan, and unless ``dry_run`` remove what the plan removes, under the write lock."""
    if keep_last is None and not _any_rules(config):
        raise UsageError(NO_POLICY)
    if dry_run:
        return _plan_repository(config, repo, keep_last)
    with repo.lock("prune", operator):
        removed = tuple(leftovers.remove(repo, operator))
        plan = replace(_plan_repository(config, repo, keep_last), leftovers=removed)
        for decision in plan.decisions:
            if not decision.keep:
                backup_id = decision.manifest.id
                repo.delete(backup_id)
                reasons = list(decision.reasons)
                audit.record(repo.path, operator, "backup.prune", backup=backup_id, reasons=reasons)
        return plan


def delete_backup(repo: Repository, backup_id: str, operator: str) -> None:
    """Delete one backup under the write lock and record it in the audit log."""
    with repo.lock("delete", operator):
        repo.delete(backup_id)
        audit.record(repo.path, operator, "backup.delete", backup=backup_id)


def _plan_repository(config: Config, repo: Repository, keep_last: int | None) -> PrunePlan:
    """Plan over the repository's readable backups, its verify results and drill history."""
    verified = {backup_id for backup_id, record in repo.verifications().items() if record.ok}
    drilled = [d.backup_id for d in history.load(repo.path) if d.passed and d.backup_id]
    return plan_prune(config, repo.list_backups()[0], verified, drilled, keep_last)


def _any_rules(config: Config) -> bool:
    schedules = (s.retention for s in config.schedules.values())
    return any(p.has_rules for p in (config.retention, *schedules) if p is not None)


def _utc(moment: datetime) -> datetime:
    """Manifest times are UTC; one written without an offset is read as UTC too."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _policy_for(config: Config, trigger: str) -> _Policy:
    """The schedule's own policy for its backups, else the global one."""
    name = trigger.removeprefix("schedule:") if trigger.startswith("schedule:") else ""
    schedule = config.schedules.get(name)
    if schedule is None or schedule.retention is None:
        return _Policy("[retention]", "retention", config.retention, UTC)
    table = f"schedules.{name}.retention"
    return _Policy(f"schedule {name}", table, schedule.retention, schedule.zone)


def _groups(
    config: Config, ordered: Iterable[Manifest]
) -> dict[str, tuple[_Policy, list[Manifest]]]:
    """Backups by the policy governing them, each group newest first."""
    groups: dict[str, tuple[_Policy, list[Manifest]]] = {}
    for manifest in ordered:
        policy = _policy_for(config, manifest.trigger)
        groups.setdefault(policy.name, (policy, []))[1].append(manifest)
    return groups


def _decide_group(
    policy: _Policy,
    members: Sequence[Manifest],
    protected: Mapping[str, Sequence[str]],
    keep_last: int | None,
    pins: Sequence[str],
) -> Iterator[Decision]:
    """One decision per member of a group (newest first)."""
    rules = policy.rules if keep_last is None else RetentionConfig(keep_last=keep_last)
    kept = _kept_by_rules(rules, members, policy.zone)
    pins = tuple(dict.fromkeys(pins))
    for manifest in members:
        reasons = [*kept[manifest.id], *_pinned(manifest, pins), *protected.get(manifest.id, ())]
        if not rules.has_rules:
            reasons.append(_no_rule(policy, manifest))
        if reasons:
            yield Decision(manifest, True, tuple(reasons))
        else:
            yield Decision(manifest, False, (_unkept(policy, keep_last),))


def _no_rule(policy: _Policy, manifest: Manifest) -> str:
    kind = manifest.trigger.replace(":", " ")
    return f"no retention rule for {kind} backups; add [{policy.table}] keep_daily = 7"


def _unkept(policy: _Policy, keep_last: int | None) -> str:
    if keep_last is None:
        return f"no rule of {policy.name} keeps it"
    return f"not among the last {keep_last} of {policy.name} (--keep)"


def _kept_by_rules(
    rules: RetentionConfig, members: Sequence[Manifest], zone: tzinfo
) -> defaultdict[str, list[str]]:
    """Backup id -> the reasons the keep_* rules keep it, for one group (newest first)."""
    kept: defaultdict[str, list[str]] = defaultdict(list)
    if rules.keep_last is not None:
        for manifest in members[: rules.keep_last]:
            kept[manifest.id].append(f"last {rules.keep_last}")
    for field, word, period in _PERIODS:
        count = getattr(rules, field)
        if count is not None:
            for manifest, label in _newest_per_period(members, count, zone, period):
                kept[manifest.id].append(f"{word} {label}")
    if rules.keep_within is not None and members:
        since = _utc(members[0].created_at) - rules.keep_within
        reason = f"within {format_duration(rules.keep_within)} of newest"
        for manifest in members:
            if _utc(manifest.created_at) >= since:
                kept[manifest.id].append(reason)
    return kept


def _newest_per_period(
    members: Sequence[Manifest], count: int, zone: tzinfo, period: Callable[[datetime], str]
) -> Iterator[tuple[Manifest, str]]:
    """The newest backup of each of the ``count`` latest periods that have backups."""
    seen: set[str] = set()
    for manifest in members:
        label = period(_utc(manifest.created_at).astimezone(zone))
        if label not in seen:
            if len(seen) == count:
                return
            seen.add(label)
            yield manifest, label


def _pinned(manifest: Manifest, pins: Iterable[str]) -> list[str]:
    label = manifest.label
    match = next((glob for glob in pins if label is not None and fnmatchcase(label, glob)), None)
    return [] if match is None else [f"pinned ({match})"]


def _protections(
    ordered: Sequence[Manifest], verified: Collection[str], drilled: Sequence[str]
) -> defaultdict[str, list[str]]:
    """Backup id -> why it is never removed: newest verified per source, drilled backups."""
    protected: defaultdict[str, list[str]] = defaultdict(list)
    for manifest, sources in _first_per_source(m for m in ordered if m.id in verified):
        protected[manifest.id].append(f"newest verified backup of {', '.join(sources)}")
    by_id = {m.id: m for m in ordered}
    restored = [by_id[backup_id] for backup_id in dict.fromkeys(drilled) if backup_id in by_id]
    if restored:
        protected[restored[0].id].append("restored by the newest passed drill")
    for manifest, sources in _first_per_source(restored[1:], _sources(restored[:1])):
        protected[manifest.id].append(f"newest drilled backup of {', '.join(sources)}")
    return protected


def _sources(manifests: Iterable[Manifest]) -> set[str]:
    return {a.source for m in manifests for a in m.artifacts}


def _first_per_source(
    candidates: Iterable[Manifest], covered: set[str] | None = None
) -> Iterator[tuple[Manifest, list[str]]]:
    """Each candidate that is the first to hold some source not yet covered, with those."""
    seen = set(covered or ())
    for manifest in candidates:
        new = sorted(_sources([manifest]) - seen)
        if new:
            seen.update(new)
            yield manifest, new

"""From a decision tree's outcome to a recommended restore: sources, globs, backup, notes.

The recommendation is a starting point the operator edits; ``choose_backup`` picks the
newest verified backup that covers every source, says why in one sentence, and warns when it
is older than a tier's RPO. It never picks a safety backup taken before an earlier restore
(that holds the broken state) nor a drill's backup (that holds the drill's marker files);
the operator may still choose either by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from engine.config.model import Config
from engine.durations import format_duration
from engine.errors import UsageError
from engine.repo.manifest import Manifest
from engine.repo.repository import Repository, VerifyRecord

if TYPE_CHECKING:
    from engine.restore.tree import Walk

SAFETY_TRIGGER = "pre-restore"
DRILL_TRIGGER = "drill"  # engine/drill/run.py's backups
NEVER_DEFAULT = {  # triggers never chosen by default, and what an operator calls them
    DRILL_TRIGGER: "drill backups",
    SAFETY_TRIGGER: "safety backups taken before a restore",
}


class Listed(Protocol):
    """What choosing a backup reads of one: a manifest, or a front end's index row of one."""

    @property
    def id(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...

    @property
    def trigger(self) -> str: ...

    @property
    def scope(self) -> tuple[str, ...]: ...

    @property
    def encrypted_to(self) -> tuple[str, ...]: ...


B = TypeVar("B", bound=Listed)


@dataclass(frozen=True)
class Recommendation:
    """What an outcome recommends for this config."""

    title: str
    text: str
    sources: tuple[str, ...]
    namespaces: tuple[str, ...]
    alternate_target: bool
    notes: tuple[str, ...]
    checklist: str


@dataclass(frozen=True)
class DefaultBackup(Generic[B]):
    manifest: B | None  # None: no default, the operator must pick one (or take one)
    verified: bool
    warnings: tuple[str, ...]
    reason: str = ""  # why ``manifest`` is the default (or why there is none), one sentence


def recommend(config: Config, walk: Walk) -> Recommendation:
    """The plan an outcome stands for; ``UsageError`` when no configured source fits it."""
    from engine.restore.tree import OutcomeNode  # its models are built when a tree is read

    outcome = walk.ending
    if not isinstance(outcome, OutcomeNode):
        raise UsageError("this answer ends in advice, not a restore")
    sources = [name for name in outcome.sources if name in config.sources]
    sources += [
        name
        for name, source in config.sources.items()
        if source.kind in outcome.kinds and name not in sources
    ]
    if not sources:
        wanted = ", ".join([*outcome.sources, *(f"any {kind} source" for kind in outcome.kinds)])
        raise UsageError(
            f"{outcome.title}: the config has no {wanted}; add the source, or restore by id "
            "with `lifeboat restore ID --scope SOURCE`"
        )
    namespaces = outcome.namespaces
    if outcome.namespaces_from is not None:
        typed = walk.answers.get(outcome.namespaces_from, "")
        namespaces = tuple(typed.replace(",", " ").split())
        if not namespaces:
            raise UsageError(
                f"{outcome.title} needs namespace globs: answer {outcome.namespaces_from}="
                "'db.collection db.prefix_*'"
            )
    return Recommendation(
        title=outcome.title,
        text=outcome.text,
        sources=tuple(sources),
        namespaces=namespaces,
        alternate_target=outcome.target == "alternate",
        notes=outcome.notes,
        checklist=outcome.checklist,
    )


def covers(backup: Listed, sources: tuple[str, ...]) -> bool:
    """Whether ``backup`` holds every one of ``sources`` (a manifest's scope names exactly
    the sources it has an artifact of)."""
    return set(sources).issubset(backup.scope)


def candidates(repo: Repository, sources: tuple[str, ...]) -> list[Manifest]:
    """Backups holding every source, newest first (safety backups included, for a choice)."""
    manifests, _unreadable = repo.list_backups()
    return [manifest for manifest in manifests if covers(manifest, sources)]


def choose_backup(
    config: Config, repo: Repository, sources: tuple[str, ...], now: datetime
) -> DefaultBackup[Manifest]:
    """The newest verified backup covering ``sources`` (else the newest unverified one), never
    a safety or a drill backup."""
    return choose_among(config, candidates(repo, sources), repo.verifications(), sources, now)


def choose_among(
    config: Config,
    backups: Sequence[B],
    verifications: Mapping[str, VerifyRecord],
    sources: tuple[str, ...],
    now: datetime,
) -> DefaultBackup[B]:
    """``choose_backup`` among ``backups`` listed already (newest first), for a front end that
    keeps an index of them."""
    holding = [m for m in backups if covers(m, sources)]
    found = [m for m in holding if m.trigger not in NEVER_DEFAULT]
    names = ", ".join(sources)
    if not found:
        if not holding:
            return DefaultBackup(None, False, (), f"no backup holds all of {names}; take one first")
        kinds = " and ".join(dict.fromkeys(NEVER_DEFAULT[m.trigger] for m in holding))
        return DefaultBackup(
            None,
            False,
            (),
            f"no default: only {kinds} hold {names}, and those are never the default; "
            "pick one by hand if you mean to restore it",
        )

    def ok(backup: Listed) -> bool:
        return (v := verifications.get(backup.id)) is not None and v.ok

    verified = [m for m in found if ok(m)]
    manifest = verified[0] if verified else found[0]
    # What the rule passed over that would have won: newer, or verified when this one is not.
    skipped = dict.fromkeys(
        NEVER_DEFAULT[m.trigger]
        for m in holding
        if m.trigger in NEVER_DEFAULT
        and (m.created_at > manifest.created_at or (ok(m) and not verified))
    )
    passed_over = f" ({' and '.join(skipped)} are never the default)" if skipped else ""
    if verified:
        reason = f"the newest verified backup holding {names}{passed_over}"
    else:
        reason = f"the newest backup holding {names}{passed_over}; it is not verified"
    warnings = (
        []
        if verified
        else [
            f"no backup of {names} has been verified; the validator checks its "
            "checksums before anything is written"
        ]
    )
    warnings += age_warnings(config, manifest, sources, now)
    return DefaultBackup(manifest, bool(verified), tuple(warnings), reason)


def age_warnings(
    config: Config, manifest: Listed, sources: tuple[str, ...], now: datetime
) -> list[str]:
    age = now - manifest.created_at
    return [
        f"{manifest.id} is {format_duration(age)} old, beyond tier {name}'s RPO of "
        f"{format_duration(tier.rpo)}"
        for name, tier in config.tiers.items()
        if set(sources) & set(tier.sources) and age > tier.rpo
    ]

"""The guided restore's state, apart from its screen: answers, the plan as edited, choices.

The screen shows one step at a time and edits this; ``request`` turns it into the engine's
``RestoreRequest``. Nothing here touches a host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from engine.config.model import Config
from engine.repo.manifest import Manifest
from engine.repo.repository import Repository
from engine.restore.plan import RestoreRequest
from engine.restore.scenario import (
    DefaultBackup,
    Recommendation,
    candidates,
    choose_backup,
    covers,
    recommend,
)
from engine.restore.tree import Tree, Walk, walk
from engine.sources import RestoreOptions

STEPS = (
    ("scenario", "Scenario"),
    ("plan", "Plan"),
    ("backup", "Backup"),
    ("target", "Target"),
    ("checks", "Checks"),
    ("confirm", "Confirm"),
    ("safety", "Safety"),
    ("restore", "Restore"),
    ("done", "Done"),
)


@dataclass
class WizardState:
    config: Config
    repo: Repository
    tree: Tree
    fixed_backup: Manifest | None = None  # chosen in the browser: the backup step is skipped
    answers: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # answered keys, to step back one by one
    remembered: dict[str, str] = field(default_factory=dict)  # answers stepped back over
    recommendation: Recommendation | None = None
    sources: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    backup: Manifest | None = None
    choice: DefaultBackup | None = None
    target: str | None = None  # None: the sources' own hosts
    target_chosen: bool = False  # the operator picked ``target`` (kept when stepping back)
    safety_backup: bool = True
    skip_reason: str = ""

    def __post_init__(self) -> None:
        self.backup = self.fixed_backup

    @property
    def steps(self) -> tuple[tuple[str, str], ...]:
        if self.fixed_backup is None:
            return STEPS
        return tuple(step for step in STEPS if step[0] != "backup")

    def walk(self) -> Walk:
        return walk(self.tree, self.answers)

    def answer(self, key: str, value: str) -> None:
        self.answers[key] = value
        self.order.append(key)

    def unanswer(self) -> bool:
        """Forget the last answer; False when there was none."""
        if not self.order:
            return False
        key = self.order.pop()
        self.remembered[key] = self.answers.pop(key)
        return True

    def take_recommendation(self, now: datetime) -> Recommendation:
        """Adopt the outcome's plan (raises UsageError when the config cannot follow it)."""
        recommendation = recommend(self.config, self.walk())
        self.recommendation = recommendation
        self.sources = recommendation.sources
        if self.fixed_backup is not None:
            self.sources = tuple(s for s in self.sources if self.fixed_backup.artifact(s))
        self.namespaces = recommendation.namespaces
        self.target, self.target_chosen = None, False
        self.backup = self.fixed_backup
        self.choose_default_backup(now)
        return recommendation

    def choose_default_backup(self, now: datetime) -> None:
        """The recommended backup, unless the one already chosen still holds every source."""
        if self.fixed_backup is not None:
            return
        if self.backup is not None and covers(self.backup, self.sources):
            return
        self.choice = choose_backup(self.config, self.repo, self.sources, now)
        self.backup = self.choice.manifest

    def backups(self) -> list[Manifest]:
        return candidates(self.repo, self.sources)

    def targets(self) -> list[tuple[str | None, str]]:
        """The original hosts, then each configured target that covers every chosen source."""
        hosts = sorted({self.config.sources[name].host for name in self.sources})
        found: list[tuple[str | None, str]] = [(None, f"original hosts: {', '.join(hosts)}")]
        for name, target in self.config.targets.items():
            if all(source in target.sources for source in self.sources):
                found.append((name, f"{name}: {target.description or 'alternate target'}"))
        return found

    def has_mongo(self) -> bool:
        return any(self.config.sources[name].kind == "mongo" for name in self.sources)

    def request(self, *, apply: bool = False, confirm: tuple[str, ...] = ()) -> RestoreRequest:
        assert self.backup is not None
        return RestoreRequest(
            backup_id=self.backup.id,
            scope=self.sources,
            target=self.target,
            options=RestoreOptions(namespaces=self.namespaces if self.has_mongo() else ()),
            apply=apply,
            confirm=confirm,
            safety_backup=self.safety_backup,
            skip_reason=self.skip_reason or None,
        )

"""The guided restore as a plain state machine: the steps, the transitions between them, and
what the operator answered, edited and chose on the way.

The screen (tui/console/screens/wizard.py) renders the current step and forwards the
operator's keys to a transition, which returns where the wizard is now: ``Moved`` to a step
(shown afresh), ``Stayed`` where it was (and why), or ``Closed``. ``request`` turns the state
into the engine's ``RestoreRequest``. Nothing here touches a host or Textual, and nothing here
reads a manifest: backups are chosen among the console's index of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING

from engine.checks import down_sources
from engine.config.model import Config
from engine.config.sources import EtcdSourceConfig
from engine.errors import UsageError
from engine.repo.content import NO_KEYS, Keyring
from engine.restore.plan import SAFETY, RestoreRequest
from engine.restore.scenario import (
    NEVER_DEFAULT,
    DefaultBackup,
    Listed,
    Recommendation,
    choose_among,
    covers,
    recommend,
)
from engine.restore.tree import AdviceNode, InputNode, QuestionNode, Tree, Walk, walk
from engine.sources import RestoreOptions
from tui import format as fmt
from tui.console.backup_index import BackupIndex, BackupRow

if TYPE_CHECKING:
    from engine.restore.run import RestoreReport
    from tui.console.jobs import JobState

GLOB_KINDS = RestoreOptions.FLAGS["--ns/--ns-from/--ns-to"]  # kinds a restore narrows by globs
SAFETY_SUFFIX = " (safety backup)"  # how a restore names the sources of its safety backup
NEEDS_REASON = "say why the safety backup is skipped"
NO_BACKUP = "no backup holds all of these sources: go back and choose fewer"
NO_ALTERNATE = (
    "this plan restores to another cluster and leaves this one alone: choose a target from "
    "[targets] (add one to the config), or go back and choose another scenario"
)


class Step(Enum):
    """The wizard's steps in order; the value is the step bar's label."""

    SCENARIO = "Scenario"
    PLAN = "Plan"
    BACKUP = "Backup"
    TARGET = "Target"
    CHECKS = "Checks"
    CONFIRM = "Confirm"
    SAFETY = "Safety"
    RESTORE = "Restore"
    DONE = "Done"


RUNNING = (Step.SAFETY, Step.RESTORE)  # the restore is writing: no way back, no Esc


@dataclass(frozen=True)
class Moved:
    """The wizard is on ``step`` now, to be shown afresh (with ``problem``, if any)."""

    step: Step
    problem: str = ""


@dataclass(frozen=True)
class Stayed:
    """The wizard stays on its step as the operator left it; ``problem`` says why."""

    problem: str = ""


@dataclass(frozen=True)
class Closed:
    """The wizard is over."""


@dataclass
class WizardState:
    config: Config
    backups: BackupIndex  # chosen among; never read here, only looked at
    tree: Tree
    fixed_backup: Listed | None = None  # chosen in the browser: the backup step is skipped
    now: Callable[[], datetime] = field(default=lambda: fmt.current_time())
    step: Step = Step.SCENARIO
    answers: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # answered keys, to step back one by one
    remembered: dict[str, str] = field(default_factory=dict)  # answers stepped back over
    recommendation: Recommendation | None = None
    sources: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    listed: list[BackupRow] | None = None  # the backup step's choices (None: still reading)
    backup: Listed | None = None
    choice: DefaultBackup[BackupRow] | None = None
    unusual_backup: str | None = None  # a drill's or safety backup chosen once: again to use
    target: str | None = None  # None: the sources' own hosts
    target_chosen: bool = False  # the operator picked ``target`` (kept when stepping back)
    checks_passed: bool = False
    report: RestoreReport | None = None  # the checks' report, once they passed
    safety_backup: bool = True
    skip_reason: str = ""
    swap: bool = False  # etcd: bring the restored data live (stop, swap the dir, start)
    failed_at: Step | None = None  # where the restore failed: Back returns to fix it
    keyring: Keyring = NO_KEYS  # the identities given this session (encrypted backups)
    awaited: str | None = None  # a backup being fetched from a remote: listed once it is here

    def __post_init__(self) -> None:
        self.backup = self.fixed_backup

    @property
    def steps(self) -> tuple[Step, ...]:
        if self.fixed_backup is None:
            return tuple(Step)
        return tuple(step for step in Step if step is not Step.BACKUP)

    # -- scenario --------------------------------------------------------------------------

    def walk(self) -> Walk:
        return walk(self.tree, self.answers)

    def start(self) -> Moved:
        """Where the answers so far lead (none at first: the first question)."""
        walked = self.walk()
        if walked.pending is not None or isinstance(walked.ending, AdviceNode):
            return self._move(Step.SCENARIO)
        try:
            self._adopt_recommendation()
        except UsageError as exc:
            self._unanswer()
            return self._move(Step.SCENARIO, str(exc))
        return self._move(Step.PLAN)

    @property
    def asking(self) -> QuestionNode | InputNode | None:
        return self.walk().pending

    @property
    def advice(self) -> AdviceNode | None:
        """The advice the answers end in, instead of a restore."""
        ending = self.walk().ending
        return ending if isinstance(ending, AdviceNode) else None

    def answer(self, value: str) -> Moved | Stayed:
        """Answer the question asked now: a choice's value, or typed text."""
        node = self.asking
        if node is None:
            return Stayed()
        if isinstance(node, InputNode):
            value = value.strip()
            if not value:
                return Stayed("type an answer first")
        elif value not in {choice.value for choice in node.choices}:
            return Stayed(f"{value!r} is not one of the choices")
        self.answers[node.key] = value
        self.order.append(node.key)
        return self.start()

    def _unanswer(self) -> bool:
        """Forget the last answer (remembered, to offer it again); False when there was none."""
        if not self.order:
            return False
        key = self.order.pop()
        self.remembered[key] = self.answers.pop(key)
        return True

    def _adopt_recommendation(self) -> None:
        """Start over from the outcome's plan (UsageError when the config cannot follow it)."""
        recommendation = recommend(self.config, self.walk())
        self.recommendation = recommendation
        self.sources = recommendation.sources
        if self.fixed_backup is not None:
            self.sources = tuple(s for s in self.sources if s in self.fixed_backup.scope)
        self.namespaces = recommendation.namespaces
        self.target, self.target_chosen = None, False
        self.backup, self.choice = self.fixed_backup, None

    # -- plan ------------------------------------------------------------------------------

    def offered_sources(self) -> list[str]:
        """The sources the plan may restore: every configured one the backup (if fixed) holds."""
        fixed = self.fixed_backup
        return [name for name in self.config.sources if fixed is None or name in fixed.scope]

    def selects_by_glob(self, sources: Sequence[str] | None = None) -> bool:
        """Whether ``sources`` (default: the chosen ones) include one a restore narrows by
        globs (Mongo namespaces, PostgreSQL tables)."""
        chosen = self.sources if sources is None else sources
        return any(self.config.sources[name].kind in GLOB_KINDS for name in chosen)

    def choose_plan(self, sources: Sequence[str], globs: str) -> Moved | Stayed:
        """Restore ``sources``, Mongo and PostgreSQL ones limited to ``globs`` (none: all)."""
        if not sources:
            return Stayed("choose at least one source")
        self.sources = tuple(sources)
        self.namespaces = tuple(globs.replace(",", " ").split())
        if self.fixed_backup is not None:
            return self._to_target()
        return self._to_backups()

    # -- backup ----------------------------------------------------------------------------

    def _to_backups(self) -> Moved:
        """The backups holding every source, the chosen one kept while it still holds them
        all, else the default (newest verified, never a drill's; ``choice`` says why). Waits
        (``listed`` None) for the index."""
        self.step = Step.BACKUP
        if not self.backups.settled:
            self.listed = None
            return Moved(Step.BACKUP)
        self.listed = self.backups.covering(self.sources)
        verifications = self.backups.verifications
        self.choice = choose_among(
            self.config, self.listed, verifications, self.sources, self.now()
        )
        if self.backup is None or not covers(self.backup, self.sources):
            self.backup = self.choice.manifest
        if self.backups.failure is not None:  # list what was read, and say what was not
            return Moved(
                Step.BACKUP, f"{self.backups.failure}; only the backups read before are listed"
            )
        return Moved(Step.BACKUP, "" if self.listed else NO_BACKUP)

    def backups_indexed(self) -> Moved | None:
        """The index was read further: the backup step, if it waits for it (or for a backup
        fetched from a remote, then highlighted), lists them now."""
        if self.step is not Step.BACKUP or not self.backups.settled:
            return None
        if self.listed is None:
            return self._to_backups()
        if self.awaited is not None and self.awaited in self.backups.order:
            moved = self._to_backups()
            self.highlight_backup(self.awaited)
            self.awaited = None
            return moved
        return None

    def highlight_backup(self, backup_id: str) -> None:
        """Keep the backup under the cursor, for when the operator steps back and returns."""
        self.backup = next((row for row in self.listed or () if row.id == backup_id), self.backup)

    def choose_backup(self, backup_id: str | None) -> Moved | Stayed:
        """Restore from ``backup_id``; one never chosen by default (a drill's, a safety
        backup) only when chosen twice in a row, after being told what it is."""
        chosen = next((row for row in self.listed or () if row.id == backup_id), None)
        if chosen is None:
            return Stayed("choose a backup")
        kind = NEVER_DEFAULT.get(chosen.trigger)
        if kind is not None and self.unusual_backup != chosen.id:
            self.unusual_backup = chosen.id
            return Stayed(
                f"{chosen.id} is one of the {kind}, never the default; choose it again to "
                "restore it anyway"
            )
        self.backup = chosen
        return self._to_target()

    # -- target ----------------------------------------------------------------------------

    def targets(self) -> list[tuple[str | None, str]]:
        """The original hosts, then each configured target that covers every chosen source."""
        hosts = sorted({self.config.sources[name].host for name in self.sources})
        found: list[tuple[str | None, str]] = [(None, f"original hosts: {', '.join(hosts)}")]
        for name, target in self.config.targets.items():
            if all(source in target.sources for source in self.sources):
                found.append((name, f"{name}: {target.description or 'alternate target'}"))
        return found

    @property
    def wants_alternate(self) -> bool:
        return bool(self.recommendation and self.recommendation.alternate_target)

    def proposed_target(self) -> int:
        """Which of ``targets`` to offer first: the one chosen before, else the plan's kind."""
        names = [name for name, _ in self.targets()]
        if self.target_chosen and self.target in names:
            return names.index(self.target)
        return 1 if self.wants_alternate and len(names) > 1 else 0

    def _to_target(self) -> Moved:
        alone = self.wants_alternate and len(self.targets()) == 1
        return self._move(Step.TARGET, NO_ALTERNATE if alone else "")

    def choose_target(self, target: str | None) -> Moved | Stayed:
        """Restore onto ``target`` (None: the sources' own hosts), then run the checks."""
        if target is None and self.wants_alternate:
            return Stayed(NO_ALTERNATE)
        self.target, self.target_chosen = target, True
        return self._to_checks()

    # -- checks and confirm ----------------------------------------------------------------

    def _to_checks(self) -> Moved:
        """The checks (the engine's dry run of ``request()``) start afresh."""
        self.checks_passed, self.report = False, None
        return self._move(Step.CHECKS)

    def checks_finished(self, passed: bool, report: RestoreReport | None) -> None:
        """The dry run ended; its report comes with (or just after) a pass."""
        self.checks_passed = passed
        self.report = report if passed else None

    def to_confirm(self) -> Moved | Stayed:
        if not self.checks_passed:
            return Stayed()
        if self.report is None:
            return Stayed("the checks' report is not in yet; wait a moment")
        return self._move(Step.CONFIRM)

    @property
    def down(self) -> dict[str, str]:
        """The chosen sources the checks found not answering at all (a safety backup has
        nothing to read from them), with what was found."""
        return down_sources(self.report.checks) if self.report else {}

    def swappable(self) -> list[str]:
        """The etcd sources the restore can bring live on the restored data (stop, swap the
        data directory, start): all of the plan's, when each has its commands configured."""
        steps = self.report.plan.steps if self.report else []
        configs = {step.source: step.config for step in steps}
        etcd = {name: c for name, c in configs.items() if isinstance(c, EtcdSourceConfig)}
        return list(etcd) if all(c.stop and c.start for c in etcd.values()) else []

    @property
    def confirm_names(self) -> tuple[str, ...]:
        """What the operator types to confirm: the target's name, or each target host's."""
        return self.report.plan.confirm_names if self.report else ()

    def confirm(
        self, typed: str, safety_backup: bool, skip_reason: str, swap: bool = False
    ) -> Moved | Stayed:
        """Start the restore once the names are typed (and a skipped safety backup has a
        reason): the screen starts ``request(apply=True, ...)`` on the step this returns."""
        names = self.confirm_names
        if sorted(typed.split()) != sorted(names):
            return Stayed(f"type {' '.join(names)} exactly to confirm")
        skip_reason = skip_reason.strip()
        if not safety_backup and not skip_reason:
            return Stayed(NEEDS_REASON)
        self.safety_backup, self.skip_reason = safety_backup, skip_reason
        self.swap = swap and bool(self.swappable())
        self.failed_at = None
        return self._move(Step.SAFETY if safety_backup else Step.RESTORE)

    # -- the restore -------------------------------------------------------------------------

    def restore_changed(self, job: JobState) -> Moved:
        """The restore job moved on: past its safety backup, to its end, or just further."""
        finished = job.finished
        if finished is not None:
            if finished.cancelled and self.step in RUNNING:
                self.failed_at = self.step
            elif not finished.ok:  # only the safety backup's own failure restored nothing
                safety = any(failure.source == SAFETY for failure in finished.errors)
                self.failed_at = Step.SAFETY if safety else Step.RESTORE
            return self._move(Step.DONE)
        restoring = any(
            not name.endswith(SAFETY_SUFFIX) and name not in ("restore", "verify")
            for name in job.sources
        )
        if self.step is Step.SAFETY and restoring:
            return self._move(Step.RESTORE)
        return Moved(self.step)

    @property
    def checklist(self) -> str:
        """The checklist that validates the result."""
        return self.recommendation.checklist if self.recommendation else "post-restore"

    def restored(self, report: RestoreReport | None) -> dict[str, object]:
        """What the restore did, for the checklist run that validates it."""
        return {
            "sources": list(self.sources),
            "namespaces": list(self.namespaces) if self.selects_by_glob() else [],
            "target": self.target,
            "hosts": list(report.plan.hosts) if report is not None else [],
            "safety_backup": report.safety_backup if report is not None else None,
        }

    # -- back and away -----------------------------------------------------------------------

    def back(self) -> Moved | Stayed:
        """One step back, the edits kept (an answer is forgotten but offered again)."""
        if self.step is Step.SCENARIO:
            return self.start() if self._unanswer() else Stayed()
        if self.step is Step.PLAN:
            self._unanswer()
            return self.start()
        if self.step is Step.BACKUP:
            return self._move(Step.PLAN)
        if self.step is Step.TARGET:
            return self._move(Step.PLAN) if self.fixed_backup else self._to_backups()
        if self.step is Step.CHECKS:
            return self._to_target()
        if self.step is Step.CONFIRM:
            return self._to_checks()
        if self.step is Step.DONE and self.failed_at is Step.SAFETY:
            return self._move(Step.CONFIRM)  # nothing was restored: retry, or skip it
        if self.step is Step.DONE and self.failed_at is Step.RESTORE:
            return self._to_checks()  # part restored: check the target again, then retry
        return Stayed()

    @property
    def back_offered(self) -> bool:
        """Whether Back leads anywhere from here (after a failed restore, to what fixes it)."""
        if self.step is Step.DONE:
            return self.failed_at is not None
        return self.step not in RUNNING

    def close(self) -> Closed | Stayed:
        """Esc, or Close after advice or the restore: anywhere but while the restore runs."""
        if self.step in RUNNING:
            return Stayed("the restore is running; it is not stopped half way from here")
        return Closed()

    def _move(self, step: Step, problem: str = "") -> Moved:
        self.step = step
        return Moved(step, problem)

    def request(self, *, apply: bool = False, confirm: tuple[str, ...] = ()) -> RestoreRequest:
        assert self.backup is not None
        return RestoreRequest(
            backup_id=self.backup.id,
            scope=self.sources,
            target=self.target,
            options=RestoreOptions(
                namespaces=self.namespaces if self.selects_by_glob() else (),
                swap=self.swap and apply,
            ),
            apply=apply,
            confirm=confirm,
            safety_backup=self.safety_backup,
            skip_reason=self.skip_reason or None,
            keyring=self.keyring,
        )

    @property
    def identity_wanted(self) -> tuple[str, ...]:
        """The recipients of the chosen backup when no identity given opens it (else none)."""
        recipients = self.backup.encrypted_to if self.backup is not None else ()
        return () if not recipients or self.keyring.opens(recipients) else recipients

"""The guided restore's state machine without Textual: its steps and transitions on the
built-in restore tree, choosing among a real repository's index of backups."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import stored_backup

from engine.config.load import parse_config
from engine.config.model import Config
from engine.events import JobFinished, SourceFailed
from engine.repo.manifest import Manifest
from engine.repo.repository import Repository, VerifyRecord
from engine.restore.plan import build_plan
from engine.restore.run import RestoreReport
from engine.restore.tree import BUILT_IN, load_trees
from tui.console.backup_index import BackupIndex, read_chunks
from tui.console.jobs import JobState, SourceState
from tui.console.wizard_state import (
    NEEDS_REASON,
    NO_ALTERNATE,
    NO_BACKUP,
    Closed,
    Moved,
    Stayed,
    Step,
    WizardState,
)

NOW = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
MONGO = '[sources.mongo]\nkind = "mongo"\nhost = "h1"\nuri = "mongodb://127.0.0.1:1/"\n'
FILES = '[sources.config]\nkind = "files"\nhost = "h1"\npaths = ["/etc/app"]\n'
COMMAND = '[sources.db]\nkind = "command"\nhost = "h1"\nbackup = ["x"]\nrestore = ["y"]\n'
STAGING = (
    '[hosts.staging1]\naddress = "127.0.0.1"\nport = 1\n'
    '[targets.staging]\ndescription = "the staging cluster"\n'
    '[targets.staging.sources.mongo]\nhost = "staging1"\nuri = "mongodb://127.0.0.1:1/"\n'
)


def config_with(tmp_path: Path, sources: str) -> Config:
    return parse_config(
        f'operator = "tester"\n[repository]\npath = {json.dumps(str(tmp_path / "repo"))}\n'
        '[hosts.h1]\naddress = "127.0.0.1"\nport = 1\n'
        + sources
        + (
            '[tiers.data]\nrpo = "1h"\nrto = "15m"\nsources = ["mongo"]\n'
            if MONGO in sources
            else ""
        )
    )


def indexed(repo: Repository) -> BackupIndex:
    """The index as the console reads it: listed, then read chunk by chunk."""
    index = BackupIndex(repo)
    for chunk in read_chunks(repo, index.begin(), 2):
        index.add(chunk)
    return index


def wizard(config: Config, index: BackupIndex, fixed: Manifest | None = None) -> WizardState:
    tree = load_trees(config.runbooks.paths, config.sources)[BUILT_IN]
    return WizardState(config, index, tree, fixed, now=lambda: NOW)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return config_with(tmp_path, MONGO + FILES + STAGING)


@pytest.fixture
def repo(config: Config) -> Repository:
    return Repository.open(config.repository.path)


def mongo_backup(repo: Repository, hours_ago: float, label: str, **kind: str) -> Manifest:
    contents = {"mongo": b"m" * 10, "config": b"c"}
    moment = NOW - timedelta(hours=hours_ago)
    return stored_backup(repo, moment, contents, label, mongo=("mongo",), **kind)


def test_the_steps_and_the_first_question(config: Config, repo: Repository) -> None:
    state = wizard(config, indexed(repo))
    assert state.steps == tuple(Step)
    assert state.start() == Moved(Step.SCENARIO)
    assert state.asking is not None
    assert state.asking.key == "scenario"
    assert state.back() == Stayed()  # nothing before the first question
    assert state.close() == Closed()
    backup = mongo_backup(repo, 1, "fixed")
    assert Step.BACKUP not in wizard(config, indexed(repo), backup).steps


def test_answers_lead_to_a_plan_and_back(config: Config, repo: Repository) -> None:
    state = wizard(config, indexed(repo))
    state.start()
    assert state.answer("no-such-thing") == Stayed("'no-such-thing' is not one of the choices")
    assert state.answer("module-removed") == Moved(Step.SCENARIO)
    assert state.answer("   ") == Stayed("type an answer first")
    assert state.answer(" app.mod_x_* ") == Moved(Step.PLAN)
    assert state.recommendation is not None
    assert (state.sources, state.namespaces) == (("mongo",), ("app.mod_x_*",))
    assert state.offered_sources() == ["mongo", "config"]
    assert state.back() == Moved(Step.SCENARIO)  # the typed answer is forgotten, offered again
    assert state.answers == {"scenario": "module-removed"}
    assert state.remembered == {"globs": "app.mod_x_*"}
    assert state.back() == Moved(Step.SCENARIO)
    assert state.answers == {}


def test_advice_ends_the_wizard_without_a_restore(config: Config, repo: Repository) -> None:
    state = wizard(config, indexed(repo))
    state.start()
    assert state.answer("controller-died") == Moved(Step.SCENARIO)
    assert state.advice is not None
    assert state.recommendation is None
    assert state.back() == Moved(Step.SCENARIO)
    assert state.advice is None


def test_an_outcome_the_config_cannot_follow_asks_again(tmp_path: Path) -> None:
    config = config_with(tmp_path, FILES)  # no etcd source
    state = wizard(config, indexed(Repository.open(config.repository.path)))
    state.start()
    moved = state.answer("etcd-quorum-lost")
    assert isinstance(moved, Moved)
    assert moved.step is Step.SCENARIO
    assert "etcd" in moved.problem
    assert state.answers == {}


def test_the_plan_defaults_to_the_newest_verified_backup(config: Config, repo: Repository) -> None:
    old = mongo_backup(repo, 30, "old")
    verified = mongo_backup(repo, 3, "verified")
    newest = mongo_backup(repo, 2, "newest")
    mongo_backup(repo, 1, "safety", trigger="pre-restore")
    repo.record_verify(VerifyRecord(verified.id, "2026-11-21T12:00:00Z", True))
    state = wizard(config, indexed(repo))
    state.start()
    state.answer("mongo-lost")
    assert state.choose_plan([], "") == Stayed("choose at least one source")
    assert state.choose_plan(["mongo"], "app.a, app.b") == Moved(Step.BACKUP)
    assert state.namespaces == ("app.a", "app.b")
    assert state.listed is not None
    assert [row.label for row in state.listed] == ["safety", "newest", "verified", "old"]
    assert state.backup is not None
    assert state.backup.id == verified.id
    assert state.choice is not None
    assert state.choice.warnings == (f"{verified.id} is 3h old, beyond tier data's RPO of 1h",)
    assert state.choice.reason == (
        "the newest verified backup holding mongo (safety backups taken before a restore are "
        "never the default)"
    )
    state.highlight_backup(old.id)  # the cursor moved: kept when stepping back
    assert state.back() == Moved(Step.PLAN)
    assert state.choose_plan(["mongo"], "") == Moved(Step.BACKUP)
    assert state.backup.id == old.id
    assert state.choose_backup("no-such-id") == Stayed("choose a backup")
    assert state.choose_backup(newest.id) == Moved(Step.TARGET)
    assert state.backup.id == newest.id


def test_a_drill_or_safety_backup_is_restored_only_when_chosen_twice(
    config: Config, repo: Repository
) -> None:
    drill = mongo_backup(repo, 2, "drill", trigger="drill")
    safety = mongo_backup(repo, 1, "safety", trigger="pre-restore")
    state = wizard(config, indexed(repo))
    state.start()
    state.answer("mongo-lost")
    assert state.choose_plan(["mongo"], "") == Moved(Step.BACKUP)
    assert state.choice is not None
    assert state.choice.manifest is None  # neither is ever the default
    told = state.choose_backup(drill.id)
    assert told == Stayed(
        f"{drill.id} is one of the drill backups, never the default; choose it again to "
        "restore it anyway"
    )
    assert isinstance(state.choose_backup(safety.id), Stayed)  # another one: told again
    assert state.choose_backup(safety.id) == Moved(Step.TARGET)
    assert state.backup is not None
    assert state.backup.id == safety.id


def test_the_backups_come_from_the_index_not_the_manifests(
    config: Config, repo: Repository
) -> None:
    backup = mongo_backup(repo, 1, "indexed")
    index = indexed(repo)
    (repo.backup_dir(backup.id) / "manifest.json").write_text("spoiled after indexing")
    state = wizard(config, index)
    state.start()
    state.answer("mongo-lost")
    assert state.choose_plan(["mongo"], "") == Moved(Step.BACKUP)
    assert state.backup is not None
    assert state.backup.id == backup.id


def test_the_backup_step_waits_for_the_index(config: Config, repo: Repository) -> None:
    backup = mongo_backup(repo, 1, "one")
    index = BackupIndex(repo)
    fresh = index.begin()  # listed, not read yet
    state = wizard(config, index)
    state.start()
    state.answer("mongo-lost")
    assert state.choose_plan(["mongo"], "") == Moved(Step.BACKUP)
    assert state.listed is None
    assert state.backups_indexed() is None  # still reading
    for chunk in read_chunks(repo, fresh, 10):
        index.add(chunk)
    assert state.backups_indexed() == Moved(Step.BACKUP)
    assert state.backup is not None
    assert state.backup.id == backup.id
    assert state.backups_indexed() is None  # listed already


def test_a_failed_index_read_ends_the_wait_and_says_so(config: Config, repo: Repository) -> None:
    mongo_backup(repo, 2, "older")
    newest = mongo_backup(repo, 1, "newest")
    index = BackupIndex(repo)
    fresh = index.begin()
    state = wizard(config, index)
    state.start()
    state.answer("mongo-lost")
    state.choose_plan(["mongo"], "")
    index.add(next(read_chunks(repo, fresh, 1)))  # the newest read, then the reader failed
    assert state.backups_indexed() is None  # still waiting for the rest
    index.failure = "reading the backups failed: disk I/O error"
    moved = state.backups_indexed()
    assert moved == Moved(
        Step.BACKUP,
        "reading the backups failed: disk I/O error; only the backups read before are listed",
    )
    assert [row.id for row in state.listed or ()] == [newest.id]
    index.begin()  # a new refresh starts afresh
    assert index.failure is None


def test_no_backup_holds_the_sources(config: Config, repo: Repository) -> None:
    stored_backup(repo, NOW, {"config": b"c"}, "config only")
    state = wizard(config, indexed(repo))
    state.start()
    state.answer("mongo-lost")
    assert state.choose_plan(["mongo"], "") == Moved(Step.BACKUP, NO_BACKUP)
    assert state.backup is None
    assert state.choose_backup(None) == Stayed("choose a backup")


def test_a_plan_for_another_cluster_needs_a_target(tmp_path: Path) -> None:
    config = config_with(tmp_path, MONGO)  # no [targets]
    repo = Repository.open(config.repository.path)
    stored_backup(repo, NOW, {"mongo": b"m"}, "one", mongo=("mongo",))
    state = wizard(config, indexed(repo))
    state.start()
    state.answer("migrate")
    state.choose_plan(["mongo"], "")
    assert state.choose_backup(state.backup.id if state.backup else None) == Moved(
        Step.TARGET, NO_ALTERNATE
    )
    assert state.choose_target(None) == Stayed(NO_ALTERNATE)


def test_targets_the_chosen_one_kept(config: Config, repo: Repository) -> None:
    mongo_backup(repo, 1, "one")
    state = wizard(config, indexed(repo))
    state.start()
    state.answer("mongo-lost")
    state.choose_plan(["mongo"], "")
    state.choose_backup(state.backup.id if state.backup else None)
    assert [name for name, _ in state.targets()] == [None, "staging"]
    assert state.proposed_target() == 0  # in place, unless the plan says otherwise
    assert state.choose_target("staging") == Moved(Step.CHECKS)
    assert state.back() == Moved(Step.TARGET)
    assert state.proposed_target() == 1
    assert state.back() == Moved(Step.BACKUP)
    assert state.request().target == "staging"


def passed_checks(state: WizardState, repo: Repository) -> RestoreReport:
    assert state.backup is not None
    report = RestoreReport(build_plan(state.config, repo.load(state.backup.id), state.request()))
    assert state.to_confirm() == Stayed()  # the checks are still running
    state.checks_finished(True, None)
    assert state.to_confirm() == Stayed("the checks' report is not in yet; wait a moment")
    state.checks_finished(True, report)
    return report


def test_confirm_needs_the_names_and_a_reason_to_skip_the_safety_backup(tmp_path: Path) -> None:
    config = config_with(tmp_path, COMMAND)
    repo = Repository.open(config.repository.path)
    backup = stored_backup(repo, NOW, {"db": b"dump"}, "nightly")
    state = wizard(config, indexed(repo), backup)  # chosen in the browser
    state.start()
    state.answer("other")
    assert state.choose_plan(["db"], "ignored") == Moved(Step.TARGET)
    assert state.choose_target(None) == Moved(Step.CHECKS)
    state.checks_finished(False, None)
    assert state.to_confirm() == Stayed()  # refused: no way on
    passed_checks(state, repo)
    assert state.to_confirm() == Moved(Step.CONFIRM)
    assert state.confirm_names == ("h1",)
    assert state.confirm("h2", True, "") == Stayed("type h1 exactly to confirm")
    assert state.confirm("h1", False, "  ") == Stayed(NEEDS_REASON)
    assert state.back() == Moved(Step.CHECKS)  # the checks run again
    assert state.report is None
    passed_checks(state, repo)
    state.to_confirm()
    assert state.confirm(" h1 ", False, " disk full ") == Moved(Step.RESTORE)
    request = state.request(apply=True, confirm=state.confirm_names)
    assert (request.backup_id, request.scope, request.target) == (backup.id, ("db",), None)
    assert request.options.namespaces == ()  # globs are for Mongo sources only
    assert (request.safety_backup, request.skip_reason) == (False, "disk full")


def confirmed(config: Config, repo: Repository) -> tuple[WizardState, Manifest, RestoreReport]:
    """A Mongo restore from a backup chosen in the browser, confirmed: its safety backup runs."""
    backup = mongo_backup(repo, 1, "one")
    state = wizard(config, indexed(repo), backup)
    state.start()
    state.answer("mongo-lost")
    state.choose_plan(["mongo"], "")
    state.choose_target(None)
    report = passed_checks(state, repo)
    state.to_confirm()
    assert state.confirm("h1", True, "") == Moved(Step.SAFETY)
    return state, backup, report


def test_the_restore_runs_its_safety_backup_then_restores(config: Config, repo: Repository) -> None:
    state, backup, report = confirmed(config, repo)
    assert state.close() == Stayed("the restore is running; it is not stopped half way from here")
    assert state.back() == Stayed()
    job = JobState("restore-2", "restore", NOW)
    for name in ("restore", "verify", "mongo (safety backup)"):
        job.sources[name] = SourceState()
    assert state.restore_changed(job) == Moved(Step.SAFETY)
    job.sources["mongo"] = SourceState()
    assert state.restore_changed(job) == Moved(Step.RESTORE)
    job.finished = JobFinished(backup.id, ok=True)
    assert state.restore_changed(job) == Moved(Step.DONE)
    assert state.close() == Closed()
    assert state.checklist == "post-restore"
    assert state.restored(report) == {
        "sources": ["mongo"],
        "namespaces": [],
        "target": None,
        "hosts": ["h1"],
        "safety_backup": None,
    }


def test_the_state_machine_does_not_import_textual() -> None:
    code = (
        "import sys, tui.console.wizard_state\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')]"
    )
    root = Path(__file__).parents[2]
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True, cwd=root)


def test_the_index_reads_new_backups_and_forgets_gone_ones(repo: Repository) -> None:
    first = mongo_backup(repo, 3, "first")
    index = indexed(repo)
    second = mongo_backup(repo, 2, "second")
    doomed = mongo_backup(repo, 1, "doomed")
    assert index.begin() == [doomed.id, second.id]  # only what is new is read
    assert not index.complete
    repo.delete(doomed.id)  # deleted while the reader was at it
    for chunk in read_chunks(repo, [doomed.id, second.id], 10):
        index.add(chunk)
    assert index.complete
    assert [row.id for row in index.rows()] == [second.id, first.id]
    repo.delete(first.id)
    assert index.begin() == []
    assert [row.id for row in index.covering(("mongo", "config"))] == [second.id]


@pytest.mark.parametrize(
    ("failure", "back_to"),
    [
        (SourceFailed("safety backup", "mongo: does not answer"), Step.CONFIRM),
        (SourceFailed("mongo", "mongorestore exited 1"), Step.CHECKS),
        (SourceFailed("restore", "the audit log cannot be written"), Step.CHECKS),
    ],
    ids=["safety-backup", "a-source", "after-the-safety-backup"],
)
def test_after_a_failed_restore_back_leads_to_what_fixes_it(
    config: Config, repo: Repository, failure: SourceFailed, back_to: Step
) -> None:
    """Only the safety backup's own failure restored nothing (back to Confirm); any other
    failure, even one before the first source's row, may have written: the checks again."""
    state, backup, _report = confirmed(config, repo)
    assert not state.back_offered
    job = JobState("restore-2", "restore", NOW)
    job.finished = JobFinished(backup.id, ok=False, errors=(failure,))
    assert state.restore_changed(job) == Moved(Step.DONE)
    assert state.back_offered
    assert state.back() == Moved(back_to)

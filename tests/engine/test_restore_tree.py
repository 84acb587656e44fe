"""Restore decision trees: the built-in tree's every path, validation messages, recommendations.

Pure unit tests: trees are files in a temporary directory, configs point at hosts nobody
connects to, and backups are committed through the repository API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import incident_tree, stored_backup

from engine.config.load import parse_config
from engine.config.model import Config
from engine.errors import ConfigError, UsageError
from engine.repo.repository import Repository, VerifyRecord
from engine.restore.scenario import (
    DRILL_TRIGGER,
    SAFETY_TRIGGER,
    candidates,
    choose_backup,
    recommend,
)
from engine.restore.tree import (
    AdviceNode,
    InputNode,
    OutcomeNode,
    QuestionNode,
    Tree,
    check_tree_file,
    load_trees,
    walk,
)

BUILT_IN_FILE = Path(__file__).parent.parent.parent / "runbooks" / "restore.toml"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# One source of each kind, in this order: a kind-based outcome lists them in config order.
SOURCES = """
[sources.cfg]
kind = "files"
host = "h1"
paths = ["/etc/app"]

[sources.db]
kind = "mongo"
host = "h1"
uri = "mongodb://127.0.0.1:27017/"

[sources.kv]
kind = "etcd"
host = "h1"

[sources.dump]
kind = "command"
host = "h1"
backup = ["pg_dump", "-Fc", "app"]

[sources.pg]
kind = "postgres"
host = "h1"
databases = ["shop"]
"""


def config_with(repo: Path, sources: str = SOURCES, extra: str = "") -> Config:
    return parse_config(
        f'operator = "tester"\n[repository]\npath = {json.dumps(str(repo))}\n'
        '[hosts.h1]\naddress = "db1.invalid"\n' + sources + extra
    )


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return config_with(tmp_path / "repo")


@pytest.fixture
def tree(config: Config) -> Tree:
    return load_trees(config.runbooks.paths, config.sources)["restore"]


@dataclass(frozen=True)
class Expected:
    answers: dict[str, str]
    ending: str  # node id
    title: str
    sources: tuple[str, ...] | None = None  # None: advice, no restore
    namespaces: tuple[str, ...] = ()
    alternate: bool = False
    command: str | None = None  # advice: the command it offers


# Every path through the built-in tree, keyed by a readable id.
PATHS = {
    "bastion-lost": Expected(
        {"scenario": "bastion-lost"},
        "bastion-lost",
        "Restore from an off-host copy, on a new bastion",
        command="lifeboat repo init && lifeboat backup list --remote NAME",
    ),
    "controller-died": Expected(
        {"scenario": "controller-died"},
        "failover",
        "No restore: fail over to the healthy peer",
        command="prexorctl cluster failover",
    ),
    "mongo-lost": Expected(
        {"scenario": "mongo-lost"},
        "restore-mongo",
        "Restore MongoDB and the filesystem",
        sources=("cfg", "db"),
    ),
    "cache-lost": Expected(
        {"scenario": "cache-lost"},
        "cache-rebuilds",
        "Usually no restore: the cache rebuilds itself",
        command="systemctl restart prexorcloud-controller",
    ),
    "bad-upgrade-migrated": Expected(
        {"scenario": "bad-upgrade", "migration": "yes"},
        "restore-after-migration",
        "Restore MongoDB and the filesystem from before the upgrade",
        sources=("cfg", "db"),
    ),
    "bad-upgrade-binary-only": Expected(
        {"scenario": "bad-upgrade", "migration": "no"},
        "rollback-binary",
        "No restore: roll back the binary",
        command="apt-get install prexorcloud=<previous version> && "
        "systemctl restart prexorcloud-controller",
    ),
    "bad-config": Expected(
        {"scenario": "bad-config"},
        "restore-config",
        "Restore the configuration files only",
        sources=("cfg",),
    ),
    "module-removed": Expected(
        {"scenario": "module-removed", "globs": "app.module_packages, app.mod_billing_*"},
        "restore-selected",
        "Selective MongoDB restore",
        sources=("db",),
        namespaces=("app.module_packages", "app.mod_billing_*"),
    ),
    "pg-tables": Expected(
        {"scenario": "pg-tables", "tables": "shop.public.orders shop.billing.*"},
        "restore-tables",
        "Selective PostgreSQL restore",
        sources=("pg",),
        namespaces=("shop.public.orders", "shop.billing.*"),
    ),
    "etcd-quorum-lost": Expected(
        {"scenario": "etcd-quorum-lost"},
        "restore-etcd",
        "etcd snapshot restore into fresh data directories",
        sources=("kv",),
    ),
    "migrate": Expected(
        {"scenario": "migrate"},
        "restore-elsewhere",
        "Full restore to an alternate target",
        sources=("cfg", "db", "kv", "dump", "pg"),
        alternate=True,
    ),
    "other": Expected(
        {"scenario": "other"},
        "restore-chosen",
        "Restore the sources you choose, in place",
        sources=("cfg", "db", "kv", "dump", "pg"),
    ),
}


def test_built_in_tree_loads_and_every_scenario_is_covered_here(tree: Tree) -> None:
    assert tree.title == "What went wrong?"
    assert isinstance(tree.nodes[tree.start], QuestionNode)
    scenarios = {choice.value for choice in tree.scenarios()}
    assert scenarios == {e.answers["scenario"] for e in PATHS.values()}
    # The file also passes the stand-alone check (what `lifeboat runbook check` runs).
    assert check_tree_file(BUILT_IN_FILE, ["cfg"]).name == "restore"


@pytest.mark.parametrize("path", list(PATHS), ids=list(PATHS))
def test_each_built_in_path_ends_in_its_plan_or_advice(
    path: str,
    tree: Tree,
    config: Config,
) -> None:
    expected = PATHS[path]
    steps = walk(tree, expected.answers)
    assert steps.pending is None
    assert steps.ending_id == expected.ending
    assert steps.ending is not None
    assert steps.ending.title == expected.title
    assert steps.answers == expected.answers
    assert [node_id for node_id, _node, _answer in steps.steps][0] == tree.start
    if expected.sources is None:
        assert isinstance(steps.ending, AdviceNode)
        assert steps.ending.command == expected.command
        with pytest.raises(UsageError, match="ends in advice, not a restore"):
            recommend(config, steps)
        return
    assert isinstance(steps.ending, OutcomeNode)
    plan = recommend(config, steps)
    assert plan.title == expected.title
    assert plan.sources == expected.sources
    assert plan.namespaces == expected.namespaces
    assert plan.alternate_target is expected.alternate
    assert plan.checklist == "post-restore"
    assert plan.notes == steps.ending.notes
    assert plan.notes  # every built-in outcome says what to watch for


def test_walk_stops_at_the_first_unanswered_question(tree: Tree) -> None:
    nothing = walk(tree, {})
    assert nothing.pending is tree.nodes[tree.start]
    assert nothing.steps == []
    assert nothing.ending is None

    halfway = walk(tree, {"scenario": "bad-upgrade"})
    assert isinstance(halfway.pending, QuestionNode)
    assert halfway.pending.key == "migration"
    assert {c.value for c in halfway.pending.choices} == {"yes", "no"}
    assert halfway.ending is None

    typing = walk(tree, {"scenario": "module-removed"})
    assert isinstance(typing.pending, InputNode)
    assert typing.pending.key == "globs"


def test_a_wrong_answer_is_a_usage_error_listing_the_choices(tree: Tree) -> None:
    with pytest.raises(UsageError) as info:
        walk(tree, {"scenario": "fire"})
    message = str(info.value)
    assert "scenario='fire' is not an answer to 'What went wrong?'" in message
    for choice in tree.scenarios():
        assert f"{choice.value} ({choice.label})" in message

    with pytest.raises(UsageError, match=r"migration='maybe'.*yes \(Yes.*no \(No"):
        walk(tree, {"scenario": "bad-upgrade", "migration": "maybe"})


def test_recommend_needs_globs_when_the_outcome_reads_them(tree: Tree, config: Config) -> None:
    steps = walk(tree, {"scenario": "module-removed", "globs": "  , "})
    with pytest.raises(UsageError, match="needs namespace globs: answer globs="):
        recommend(config, steps)


def test_recommend_refuses_when_no_configured_source_fits(tree: Tree, tmp_path: Path) -> None:
    files_only = config_with(
        tmp_path / "repo", '[sources.cfg]\nkind = "files"\nhost = "h1"\npaths = ["/etc/app"]\n'
    )
    steps = walk(tree, {"scenario": "etcd-quorum-lost"})
    with pytest.raises(UsageError, match="the config has no any etcd source"):
        recommend(files_only, steps)
    # A plan with several kinds keeps the ones the config has.
    assert recommend(files_only, walk(tree, {"scenario": "mongo-lost"})).sources == ("cfg",)


# -- tree files and their mistakes ----------------------------------------------------------

VALID = incident_tree()


def tree_file(tmp_path: Path, text: str, name: str = "tree.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path: Path, sources: tuple[str, ...] | None = ("db",)) -> list[str]:
    with pytest.raises(ConfigError) as info:
        check_tree_file(path, sources)
    return info.value.problems


def test_a_valid_tree_file_checks_out_and_walks(tmp_path: Path) -> None:
    tree = check_tree_file(tree_file(tmp_path, VALID), ("db",))
    assert tree.name == "incident"
    assert list(tree.nodes) == ["first", "ask", "restore", "done"]
    steps = walk(tree, {"scenario": "module", "globs": "app.x"})
    assert steps.ending_id == "restore"


def edit(old: str, new: str) -> str:
    assert old in VALID
    return VALID.replace(old, new, 1)


RELAX_LINE = VALID.splitlines().index('title = "Relax"') + 1  # 1-based, as tomllib counts

MISTAKES = {
    "unknown node": (
        edit('next = "done"', 'next = "nowhere"'),
        "nodes.first.choices[1].next: unknown node 'nowhere'; nodes are: first, ask, restore, done",
    ),
    "cycle": (
        edit('next = "restore"', 'next = "first"'),
        "nodes.first -> nodes.ask -> nodes.first: a cycle; every path must end at an advice or "
        "outcome node",
    ),
    "unreachable": (
        VALID + '\n[nodes.orphan]\nkind = "advice"\ntitle = "O"\ntext = "o"\n',
        "nodes.orphan: unreachable from start 'first'; lead a choice to it or remove it",
    ),
    "unknown source": (
        edit('kinds = ["mongo"]', 'sources = ["ghost"]'),
        "nodes.restore.sources: unknown source 'ghost'; configured sources: db",
    ),
    "unknown kind": (
        edit('kinds = ["mongo"]', 'kinds = ["ftp"]'),
        "nodes.restore.kinds: unknown kind 'ftp'; kinds are: command, etcd, files, mongo",
    ),
    "namespaces_from without input": (
        edit('namespaces_from = "globs"', 'namespaces_from = "modules"'),
        "nodes.restore.namespaces_from: no input node has key 'modules'; add an input node "
        "that asks for it",
    ),
    "unknown key": (
        edit('text = "Restore its namespaces."', 'text = "R"\ncolour = "red"'),
        "nodes.restore.colour: unknown key",
    ),
    "unknown key in a node named like a kind": (
        VALID.replace('"restore"', '"outcome"').replace("[nodes.restore]", "[nodes.outcome]")
        + "\n[nodes.outcome.extra]\nx = 1\n",
        "nodes.outcome.extra: unknown key",
    ),
    "missing field in a choice": (
        edit(
            '{ value = "nothing", label = "Nothing", next = "done" }',
            '{ value = "nothing", label = "Nothing" }',
        ),  # fmt: skip
        "nodes.first.choices[1].next: Field required",
    ),
    "unknown node kind": (
        edit('kind = "advice"', 'kind = "shrug"'),
        "nodes.done: Input tag 'shrug'",
    ),
    "start missing": (
        edit('start = "first"', 'start = "begin"'),
        "start: unknown node 'begin'; nodes are: first, ask, restore, done",
    ),
    "toml syntax": (
        VALID.replace('title = "Relax"', 'title = "Relax'),
        f"(at line {RELAX_LINE}, column 15); fix the TOML syntax",
    ),
}


@pytest.mark.parametrize("mistake", list(MISTAKES), ids=list(MISTAKES))
def test_each_tree_mistake_names_the_file_and_the_node(mistake: str, tmp_path: Path) -> None:
    text, expected = MISTAKES[mistake]
    path = tree_file(tmp_path, text)
    problems = problems_of(path)
    assert any(line.startswith(f"{path}: ") and expected in line for line in problems), problems


def test_every_mistake_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    text = edit('kinds = ["mongo"]', 'sources = ["ghost"]\nkinds = ["ftp"]')
    text = text.replace('next = "done"', 'next = "nowhere"')
    problems = problems_of(tree_file(tmp_path, text))
    assert len(problems) == 3, problems
    assert any("choices[1].next: unknown node 'nowhere'" in line for line in problems)
    assert any("sources: unknown source 'ghost'" in line for line in problems)
    assert any("kinds: unknown kind 'ftp'" in line for line in problems)


def test_source_names_are_only_checked_against_a_config(tmp_path: Path) -> None:
    path = tree_file(tmp_path, edit('kinds = ["mongo"]', 'sources = ["ghost"]'))
    assert check_tree_file(path, None).nodes["restore"].sources == ("ghost",)  # no config
    assert "unknown source 'ghost'" in problems_of(path, ("db",))[0]


def test_load_trees_names_the_bad_extra_file_and_keeps_going(tmp_path: Path) -> None:
    bad = tree_file(tmp_path, edit('kinds = ["mongo"]', 'kinds = ["ftp"]'), "bad.toml")
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as info:
        load_trees([bad, missing], ["db"])
    problems = info.value.problems
    assert len(problems) == 2, problems
    by_file = {line.split(": ", 1)[0]: line for line in problems}
    assert by_file[str(bad)].startswith(f"{bad}: nodes.restore.kinds: unknown kind 'ftp'")
    assert by_file[str(missing)].startswith(f"{missing}: cannot read")
    assert by_file[str(missing)].endswith("fix runbooks.paths")


def test_config_runbooks_paths_replace_the_built_in_tree(tmp_path: Path) -> None:
    replacement = tree_file(
        tmp_path, VALID.replace('name = "incident"', 'name = "restore"'), "restore.toml"
    )
    extra = tree_file(tmp_path, VALID, "incident.toml")
    config = config_with(
        tmp_path / "repo",
        extra=f"[runbooks]\npaths = {json.dumps([str(replacement), str(extra)])}\n",
    )
    assert config.runbooks.paths == (replacement, extra)
    trees = load_trees(config.runbooks.paths, config.sources)
    assert set(trees) == {"restore", "incident"}
    assert trees["restore"].title == "Which incident?"
    assert [c.value for c in trees["restore"].scenarios()] == ["module", "nothing"]
    with pytest.raises(UsageError, match="choose one of: module"):
        walk(trees["restore"], {"scenario": "mongo-lost"})  # the built-in's choice is gone
    plan = recommend(config, walk(trees["restore"], {"scenario": "module", "globs": "app.x_*"}))
    assert plan.sources == ("db",)
    assert plan.namespaces == ("app.x_*",)
    # Without the config's paths, the built-in tree is back.
    assert load_trees()["restore"].title == "What went wrong?"


def test_a_config_file_tree_is_checked_against_the_config_sources(tmp_path: Path) -> None:
    path = tree_file(tmp_path, edit('kinds = ["mongo"]', 'sources = ["db", "cache"]'))
    config = config_with(
        tmp_path / "repo", extra=f"[runbooks]\npaths = {json.dumps([str(path)])}\n"
    )
    with pytest.raises(ConfigError, match=r"nodes\.restore\.sources: unknown source 'cache'"):
        load_trees(config.runbooks.paths, config.sources)


# -- choosing the backup --------------------------------------------------------------------


def verified(repo: Repository, backup_id: str, ok: bool = True) -> None:
    repo.record_verify(VerifyRecord(backup_id, NOW.isoformat(), ok))


def test_choose_backup_prefers_the_newest_verified_one(tmp_path: Path, config: Config) -> None:
    repo = Repository.open(config.repository.path)
    old = stored_backup(repo, NOW - timedelta(hours=6), {"db": b"a", "cfg": b"b"}, "old")
    middle = stored_backup(repo, NOW - timedelta(hours=4), {"db": b"a", "cfg": b"b"}, "mid")
    stored_backup(repo, NOW - timedelta(hours=2), {"db": b"a", "cfg": b"b"}, "newest")
    stored_backup(repo, NOW - timedelta(hours=1), {"db": b"a"}, "db only")
    verified(repo, old.id)
    verified(repo, middle.id)
    choice = choose_backup(config, repo, ("cfg", "db"), NOW)
    assert choice.manifest is not None
    assert choice.manifest.id == middle.id
    assert choice.verified
    assert choice.warnings == ()
    assert choice.reason == "the newest verified backup holding cfg, db"
    # A failed verify does not count.
    verified(repo, middle.id, ok=False)
    assert choose_backup(config, repo, ("cfg", "db"), NOW).manifest.id == old.id  # type: ignore[union-attr]


def test_choose_backup_never_picks_a_safety_backup(tmp_path: Path, config: Config) -> None:
    repo = Repository.open(config.repository.path)
    good = stored_backup(repo, NOW - timedelta(hours=3), {"db": b"good"}, "good")
    safety = stored_backup(
        repo, NOW - timedelta(hours=1), {"db": b"broken"}, "pre-restore", trigger=SAFETY_TRIGGER
    )
    verified(repo, safety.id)
    choice = choose_backup(config, repo, ("db",), NOW)
    assert choice.manifest is not None
    assert choice.manifest.id == good.id
    assert not choice.verified
    assert any("has been verified" in w for w in choice.warnings)
    assert choice.reason == (
        "the newest backup holding db (safety backups taken before a restore are never the "
        "default); it is not verified"
    )


def test_choose_backup_skips_a_newer_drill_backup(tmp_path: Path, config: Config) -> None:
    repo = Repository.open(config.repository.path)
    scheduled = stored_backup(
        repo, NOW - timedelta(hours=5), {"db": b"prod"}, "nightly", trigger="schedule:nightly"
    )
    drill = stored_backup(
        repo, NOW - timedelta(hours=1), {"db": b"markers"}, "drill d1", trigger=DRILL_TRIGGER
    )
    verified(repo, scheduled.id)
    verified(repo, drill.id)
    choice = choose_backup(config, repo, ("db",), NOW)
    assert choice.manifest is not None
    assert choice.manifest.id == scheduled.id
    assert choice.verified
    assert choice.reason == (
        "the newest verified backup holding db (drill backups are never the default)"
    )
    # An older drill backup passed over changes nothing worth saying.
    newer = stored_backup(
        repo, NOW - timedelta(minutes=30), {"db": b"p"}, "n", trigger="schedule:nightly"
    )
    verified(repo, newer.id)
    assert choose_backup(config, repo, ("db",), NOW).reason == (
        "the newest verified backup holding db"
    )


def test_only_drill_backups_leave_no_default(tmp_path: Path, config: Config) -> None:
    repo = Repository.open(config.repository.path)
    drill = stored_backup(repo, NOW - timedelta(hours=1), {"db": b"m"}, "drill", trigger="drill")
    verified(repo, drill.id)
    choice = choose_backup(config, repo, ("db",), NOW)
    assert choice.manifest is None
    assert choice.reason == (
        "no default: only drill backups hold db, and those are never the default; pick one "
        "by hand if you mean to restore it"
    )
    # Chosen by hand, it is still a candidate.
    assert [m.id for m in candidates(repo, ("db",))] == [drill.id]


def test_choose_backup_warns_about_rpo_and_missing_sources(tmp_path: Path) -> None:
    config = config_with(
        tmp_path / "repo",
        extra='[tiers.gold]\nrpo = "24h"\nrto = "1h"\nsources = ["db"]\n'
        '[tiers.bronze]\nrpo = "7d"\nrto = "1d"\nsources = ["db"]\n',
    )
    repo = Repository.open(config.repository.path)
    empty = choose_backup(config, repo, ("db",), NOW)
    assert empty.warnings == ()
    assert empty.reason == "no backup holds all of db; take one first"
    stale = stored_backup(repo, NOW - timedelta(days=3, hours=2), {"db": b"x"})
    verified(repo, stale.id)
    choice = choose_backup(config, repo, ("db",), NOW)
    assert choice.manifest is not None
    assert choice.manifest.id == stale.id
    assert choice.warnings == (f"{stale.id} is 3d 2h old, beyond tier gold's RPO of 1d",)
    none = choose_backup(config, repo, ("db", "kv"), NOW)
    assert none.manifest is None
    assert none.reason == "no backup holds all of db, kv; take one first"

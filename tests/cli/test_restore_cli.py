"""``lifeboat restore`` and ``lifeboat runbook`` through the real CLI entry point.

The CLI runs its own event loop (``asyncio.run``), so these tests are synchronous, and the
ones that reach a host use the system sshd, which does not live on a test's event loop.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import config_text, files_source, incident_tree, stored_backup, tree_snapshot
from sshd import SSHTestServer

from engine.repo.manifest import utc_now
from engine.repo.repository import Repository, VerifyRecord
from tui.cli.main import main

TREE = incident_tree('sources = ["db"]', "app.mod_x_*")


@dataclass
class Run:
    rc: int
    out: str
    err: str


Cli = Callable[..., Run]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    """``cli(*argv)`` runs ``lifeboat`` in this process and returns its exit code and output."""
    monkeypatch.delenv("LIFEBOAT_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # no per-user config
    monkeypatch.chdir(tmp_path)  # no ./lifeboat.toml

    def run(*argv: str) -> Run:
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(list(argv))
        out, err = capsys.readouterr()
        return Run(int(info.value.code or 0), out, err)

    return run


# -- plans: no host is contacted ------------------------------------------------------------

OFFLINE_SOURCES = (
    '[sources.cfg]\nkind = "files"\nhost = "h1"\npaths = ["/etc/app"]\n'
    '[sources.db]\nkind = "mongo"\nhost = "h1"\nuri = "mongodb://127.0.0.1:27017/"\n'
)


def offline_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "lifeboat.conf"
    path.write_text(
        f'operator = "tester"\n[repository]\npath = {json.dumps(str(tmp_path / "repo"))}\n'
        '[hosts.h1]\naddress = "db1.invalid"\n' + OFFLINE_SOURCES + extra
    )
    return path


def test_restore_plan_prints_the_plan_and_the_next_command(cli: Cli, tmp_path: Path) -> None:
    config = offline_config(tmp_path)
    repo = Repository.open(tmp_path / "repo")
    good = stored_backup(repo, utc_now() - timedelta(hours=2), {"cfg": b"c", "db": b"d"}, "a")
    repo.record_verify(VerifyRecord(good.id, utc_now().isoformat(), True))

    run = cli("--config", str(config), "restore", "plan", "--scenario", "mongo-lost")
    assert run.rc == 0, run.err
    lines = run.out.splitlines()
    assert lines[0] == "Plan: Restore MongoDB and the filesystem"
    assert "Sources:    cfg, db" in lines
    assert "Target:     the original hosts" in lines
    assert f"Backup:     {good.id} (verified)" in lines
    assert "Afterwards: checklist post-restore" in lines
    assert lines[-1] == f"Next:       lifeboat restore {good.id} --scope cfg --scope db --dry-run"

    run = cli(
        "--config", str(config), "restore", "plan", "--scenario", "module-removed",
        "--answer", "globs=app.mod_billing_* app.module_packages", "--json",
    )  # fmt: skip
    assert run.rc == 0, run.err
    plan = json.loads(run.out)
    assert plan["plan"] == "Selective MongoDB restore"
    assert plan["sources"] == ["db"]
    assert plan["namespaces"] == ["app.mod_billing_*", "app.module_packages"]
    assert plan["backup"] == good.id
    assert plan["next"] == (
        f"lifeboat restore {good.id} --scope db --ns 'app.mod_billing_*' "
        "--ns app.module_packages --dry-run"
    )


def test_restore_plan_never_defaults_to_a_drill_backup(cli: Cli, tmp_path: Path) -> None:
    config = offline_config(tmp_path)
    repo = Repository.open(tmp_path / "repo")
    nightly = stored_backup(
        repo, utc_now() - timedelta(hours=5), {"cfg": b"c", "db": b"d"}, "nightly",
        trigger="schedule:nightly",
    )  # fmt: skip
    drill = stored_backup(
        repo, utc_now() - timedelta(hours=1), {"cfg": b"marker", "db": b"marker"}, "drill d1",
        trigger="drill",
    )  # fmt: skip
    for backup in (nightly, drill):
        repo.record_verify(VerifyRecord(backup.id, utc_now().isoformat(), True))

    run = cli("--config", str(config), "restore", "plan", "--scenario", "mongo-lost")
    assert run.rc == 0, run.err
    lines = run.out.splitlines()
    backup_at = lines.index(f"Backup:     {nightly.id} (verified)")
    assert lines[backup_at + 1] == (
        "  why: the newest verified backup holding cfg, db (drill backups are never the default)"
    )
    assert (
        lines[-1] == f"Next:       lifeboat restore {nightly.id} --scope cfg --scope db --dry-run"
    )

    run = cli("--config", str(config), "restore", "plan", "--scenario", "mongo-lost", "--json")
    assert run.rc == 0, run.err
    plan = json.loads(run.out)
    assert plan["backup"] == nightly.id
    assert plan["reason"] == (
        "the newest verified backup holding cfg, db (drill backups are never the default)"
    )

    # Only the drill's backup holds the sources: no default, and the plan says so.
    shutil.rmtree(repo.backup_dir(nightly.id))
    run = cli("--config", str(config), "restore", "plan", "--scenario", "mongo-lost", "--json")
    assert run.rc == 0, run.err
    plan = json.loads(run.out)
    assert plan["backup"] is None
    assert plan["reason"].startswith("no default: only drill backups hold cfg, db")
    assert plan["next"].startswith("lifeboat restore ID ")


def test_restore_plan_prints_advice_when_no_restore_fits(cli: Cli, tmp_path: Path) -> None:
    config = offline_config(tmp_path)
    run = cli("--config", str(config), "restore", "plan", "--scenario", "controller-died")
    assert run.rc == 0, run.err
    assert run.out.splitlines()[0] == "Advice: No restore: fail over to the healthy peer"
    assert "Run: prexorctl cluster failover" in run.out.splitlines()
    assert "  - Check the peer first: prexorctl status must show it healthy and leading." in run.out
    assert "Next:" not in run.out


def test_restore_plan_without_an_answer_exits_2_listing_the_choices(
    cli: Cli, tmp_path: Path
) -> None:
    config = offline_config(tmp_path)
    run = cli("--config", str(config), "restore", "plan")
    assert run.rc == 2
    assert run.out == ""
    assert "lifeboat: error: What went wrong? Choose --scenario NAME:" in run.err
    assert run.err.count("error:") == 1  # one usage line, then the list
    for value in ("controller-died", "mongo-lost", "module-removed", "migrate"):
        assert re.search(rf"^  {value} +\S", run.err, re.M), value

    run = cli("--config", str(config), "restore", "plan", "--scenario", "bad-upgrade")
    assert run.rc == 2
    assert "Answer with --answer migration=VALUE:" in run.err
    assert re.search(r"^  yes +Yes: the database schema changed", run.err, re.M)
    assert re.search(r"^  no +No: only the binary changed", run.err, re.M)

    run = cli("--config", str(config), "restore", "plan", "--scenario", "module-removed")
    assert run.rc == 2
    assert "e.g. --answer globs='app.module_packages app.mod_billing_*'" in run.err

    run = cli("--config", str(config), "restore", "plan", "--scenario", "fire")
    assert run.rc == 2
    assert "scenario='fire' is not an answer to 'What went wrong?'; choose one of:" in run.err

    run = cli("--config", str(config), "restore", "plan", "--scenario", "x", "--answer", "oops")
    assert run.rc == 2
    assert "--answer 'oops': write KEY=VALUE" in run.err


def test_restore_plan_walks_the_configured_tree(cli: Cli, tmp_path: Path) -> None:
    tree = tmp_path / "restore.toml"
    tree.write_text(TREE.replace('name = "incident"', 'name = "restore"'))
    config = offline_config(tmp_path, f"[runbooks]\npaths = [{json.dumps(str(tree))}]\n")
    run = cli("--config", str(config), "restore", "plan")
    assert run.rc == 2
    assert "Which incident? Choose --scenario NAME:" in run.err
    assert re.search(r"^  module +A module was removed", run.err, re.M)
    assert "mongo-lost" not in run.err

    run = cli(
        "--config", str(config), "restore", "plan", "--scenario", "module", "--answer",
        "globs=app.mod_x_*",
    )  # fmt: skip
    assert run.rc == 0, run.err
    assert run.out.splitlines()[0] == "Plan: Put the module back"
    assert "Backup:     none" in run.out
    assert "  why: no backup holds all of db; take one first" in run.out

    tree.write_text(TREE.replace('sources = ["db"]', 'sources = ["cache"]'))
    run = cli("--config", str(config), "restore", "plan", "--scenario", "module")
    assert run.rc == 2
    assert f"lifeboat: error: {tree}: nodes.restore.sources: unknown source 'cache'" in run.err


# -- runbook check --------------------------------------------------------------------------


def test_runbook_check_accepts_a_good_file_and_names_the_problem_in_a_bad_one(
    cli: Cli,
    tmp_path: Path,
) -> None:
    config = offline_config(tmp_path)
    good = tmp_path / "good.toml"
    good.write_text(TREE)
    run = cli("--config", str(config), "runbook", "check", str(good))
    assert run.rc == 0, run.err
    assert run.out.strip() == (
        f"{good}: OK — tree 'incident', 4 nodes, checked against the configured sources"
    )

    bad = tmp_path / "bad.toml"
    bad.write_text(TREE.replace('next = "done"', 'next = "gone"'))
    run = cli("--config", str(config), "runbook", "check", str(bad))
    assert run.rc == 2
    assert run.out == ""
    assert run.err.strip() == (
        f"lifeboat: error: {bad}: nodes.first.choices[1].next: unknown node 'gone'; nodes are: "
        "first, ask, restore, done"
    )

    unknown = tmp_path / "unknown.toml"
    unknown.write_text(TREE.replace('sources = ["db"]', 'sources = ["cache"]'))
    run = cli("--config", str(config), "runbook", "check", str(unknown))
    assert run.rc == 2
    assert "nodes.restore.sources: unknown source 'cache'; configured sources: cfg, db" in run.err
    # Without a config, only the tree's shape is checked.
    run = cli("runbook", "check", str(unknown))
    assert run.rc == 0, run.err
    assert "checked against no config (source names not checked)" in run.out


# -- restore by id, through the system sshd -------------------------------------------------


def write_files(root: Path) -> None:
    (root / "etc" / "app").mkdir(parents=True)
    (root / "etc" / "app" / "app.toml").write_text("listen = 8080\n")
    (root / "certs").mkdir()
    (root / "certs" / "ca.pem").write_bytes(os.urandom(1024))


def break_files(root: Path) -> None:
    (root / "etc" / "app" / "app.toml").write_text("listen = broken\n")
    (root / "certs" / "ca.pem").write_bytes(b"not a certificate")


def backed_up(cli: Cli, server: SSHTestServer, tmp_path: Path) -> tuple[Path, Path, str]:
    data = tmp_path / "data"
    write_files(data)
    config = tmp_path / "lifeboat.conf"
    sources = files_source("cfg", data / "etc", data / "certs")
    config.write_text(config_text(server, tmp_path / "repo", sources))
    run = cli("--config", str(config), "backup", "create")
    assert run.rc == 0, run.err
    match = re.fullmatch(r"backup (\S+) complete: .*\n", run.out)
    assert match, run.out
    return config, data, match[1]


def test_restore_dry_run_prints_the_checks_and_exits_1_on_a_failure(
    cli: Cli,
    openssh_server: SSHTestServer,
    tmp_path: Path,
) -> None:
    config, data, backup_id = backed_up(cli, openssh_server, tmp_path)
    break_files(data)
    broken = tree_snapshot(data)

    run = cli("--config", str(config), "restore", backup_id, "--dry-run")
    assert run.rc == 0, run.err
    table = run.out.splitlines()
    assert re.fullmatch(rf"ok +backup +{backup_id}, taken .*", table[0])
    for name in ("checksums", "ssh h1", "writable h1", "disk h1", "lock h1"):
        assert any(re.match(rf"ok +{name} ", line) for line in table), name
    assert not any(line.startswith(("FAIL", "warn")) for line in table)
    said = " ".join(run.out.split())  # what the restore does, wrapped
    assert f"cfg on h1: each backed-up file in {data / 'etc'}, {data / 'certs'}" in said
    assert "files there that the backup lacks are left alone" in said
    assert table[-1].startswith(f"dry run: every check passed for cfg from {backup_id} onto h1")
    assert table[-1].endswith("Apply with: --apply --confirm h1")
    assert tree_snapshot(data) == broken

    run = cli("--config", str(config), "restore", backup_id, "--dry-run", "--json")
    assert run.rc == 0, run.err
    summary = [json.loads(line) for line in run.out.splitlines()][-1]
    assert summary["backup"] == backup_id
    assert summary["applied"] is False
    assert {c["status"] for c in summary["checks"]} == {"ok"}
    assert summary["effects"]["cfg"].startswith("each backed-up file in ")

    repo = Repository.open(tmp_path / "repo")
    (artifact,) = repo.load(backup_id).artifacts
    archive = repo.backup_dir(backup_id) / artifact.files[0].path
    raw = bytearray(archive.read_bytes())
    raw[-5] ^= 0xFF
    archive.write_bytes(bytes(raw))
    run = cli("--config", str(config), "restore", backup_id, "--dry-run")
    assert run.rc == 1
    assert re.search(rf"^FAIL +checksums +{re.escape(artifact.files[0].path)} ", run.out, re.M)
    assert "dry run: every check passed" not in run.out
    assert "lifeboat: error: restore refused, nothing was changed:" in run.err
    assert tree_snapshot(data) == broken


def test_restore_apply_confirms_restores_and_names_the_safety_backup(
    cli: Cli,
    openssh_server: SSHTestServer,
    tmp_path: Path,
) -> None:
    config, data, backup_id = backed_up(cli, openssh_server, tmp_path)
    original = tree_snapshot(data)
    break_files(data)
    broken = tree_snapshot(data)
    base = ("--config", str(config), "restore", backup_id)

    run = cli(*base, "--apply", "--confirm", "h1", "--skip-safety-backup")
    assert run.rc == 2
    assert "skipping the safety backup needs a reason: --reason TEXT" in run.err
    run = cli(*base, "--apply", "--confirm", "db9")
    assert run.rc == 2
    assert "confirm by typing each target host's name: --confirm h1" in run.err
    run = cli(*base, "--apply")
    assert run.rc == 2
    run = cli(*base, "--dry-run", "--apply")
    assert run.rc == 2
    assert "choose one of --dry-run (check only) or --apply --confirm NAME" in run.err
    assert tree_snapshot(data) == broken
    assert not (tmp_path / "repo" / "audit.jsonl").exists()

    run = cli(*base, "--apply", "--confirm", "h1")
    assert run.rc == 0, run.err
    match = re.search(
        rf"^restored cfg from {backup_id} onto h1; the state before is in backup (\S+)$",
        run.out,
        re.M,
    )
    assert match, run.out
    assert tree_snapshot(data) == original
    repo = Repository.open(tmp_path / "repo")
    safety = repo.load(match[1])
    assert safety.trigger == "pre-restore"
    assert safety.label == f"pre-restore-{backup_id}"

    # Undo it from the CLI, skipping the safety backup this time, with a reason.
    run = cli(
        "--config", str(config), "restore", safety.id, "--apply", "--confirm", "h1",
        "--skip-safety-backup", "--reason", "undoing a test restore",
    )  # fmt: skip
    assert run.rc == 0, run.err
    assert re.search(rf"^restored cfg from {safety.id} onto h1$", run.out, re.M)
    assert tree_snapshot(data) == broken
    records = [json.loads(line) for line in (repo.path / "audit.jsonl").read_text().splitlines()]
    skipped = [r for r in records if r["action"] == "restore.safety-backup"][-1]
    assert skipped["reason"] == "undoing a test restore"

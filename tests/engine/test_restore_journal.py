"""A restore that did not succeed stays on record: status, the validator and the dashboard
show it, with the safety backup that holds the state before, until it is resolved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from consoles import console, status_shown
from helpers import EventLog, command_source, config_text, stored_backup
from sshd import SSHTestServer

from engine.config.load import parse_config
from engine.config.model import Config
from engine.errors import LifeboatError, RepositoryError, UsageError
from engine.jobs import JobFailedError
from engine.repo.manifest import utc_now
from engine.repo.repository import Repository
from engine.restore import journal
from engine.restore.run import RestoreRequest, run_restore
from engine.status import gather
from tui.console.widgets.schedule_strip import ScheduleStrip

FAILING = ["sh", "-c", "cat >/dev/null; echo 'disk on fire' >&2; exit 3"]
WORKING = ["sh", "-c", "cat >/dev/null"]


def db_config(server: SSHTestServer, repo: Path, restore: list[str]) -> Config:
    sources = command_source("db", ["echo", "the state before"], restore)
    return parse_config(config_text(server, repo, sources))


def audit_actions(repo: Repository) -> list[dict[str, object]]:
    lines = (repo.path / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


async def test_a_failed_restore_names_its_safety_backup_and_stays_until_one_succeeds(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    config = db_config(asyncssh_server, tmp_path / "repo", FAILING)
    repo = Repository.open(config.repository.path)
    good = stored_backup(repo, utc_now(), {"db": b"restore me" * 1000})
    request = RestoreRequest(good.id, apply=True, confirm=("h1",))

    with pytest.raises(JobFailedError) as failure:
        await run_restore(config, repo, request, EventLog().emit)
    (record,) = journal.unfinished(repo.path)
    assert record.outcome == "failed"
    assert "disk on fire" in record.error
    assert record.safety_backup is not None
    assert repo.load(record.safety_backup).trigger == "pre-restore"
    assert f"the state before it is in backup {record.safety_backup}" in str(failure.value)

    report = gather(config, repo)
    assert not report.healthy
    assert f"restore {record.run} of backup {good.id} onto h1 failed part way" in "\n".join(
        report.problems
    )
    dry = await run_restore(config, repo, RestoreRequest(good.id), EventLog().emit)
    (warning,) = [check for check in dry.checks if check.name == "unfinished restore"]
    assert warning.status.value == "warning"
    assert record.run in warning.detail
    assert "clears it when it succeeds" in warning.detail

    fixed = db_config(asyncssh_server, tmp_path / "repo", WORKING)
    await run_restore(fixed, repo, request, EventLog().emit)
    assert journal.unfinished(repo.path) == []
    assert gather(fixed, repo).healthy
    finish = [e for e in audit_actions(repo) if e["action"] == "restore.finish"][-1]
    assert finish["result"] == "ok"
    assert finish["cleared"] == [record.run]


async def test_a_restore_that_cannot_be_recorded_does_not_start(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    touched = tmp_path / "touched"
    config = db_config(asyncssh_server, tmp_path / "repo", ["touch", str(touched)])
    repo = Repository.open(config.repository.path)
    good = stored_backup(repo, utc_now(), {"db": b"restore me"})
    (repo.path / journal.DIRECTORY).write_text("a file where the records go")
    request = RestoreRequest(good.id, apply=True, confirm=("h1",))

    with pytest.raises(RepositoryError, match="cannot record the restore .* nothing was restored"):
        await run_restore(config, repo, request, EventLog().emit)
    assert not touched.exists()


def open_record(repo_path: Path, steps: tuple[tuple[str, str], ...]) -> journal.RunningRestore:
    return journal.begin(
        repo_path,
        backup="20261121T150000Z-7f3a",
        target="h1",
        steps=steps,
        operator="tester",
        safety_backup="20261121T160000Z-0b1c",
    )


def test_a_running_restore_is_not_unfinished_and_cannot_be_acknowledged(tmp_path: Path) -> None:
    running = open_record(tmp_path, (("db", "h1"),))
    assert journal.unfinished(tmp_path) == []
    with pytest.raises(LifeboatError, match="still running"):
        journal.acknowledge(tmp_path, running.run, "tester", "checked")
    running.close("cancelled", ["restore: cancelled\nby Ctrl-C"], [])
    (record,) = journal.unfinished(tmp_path)
    assert record.outcome == "cancelled"
    assert record.error == "restore: cancelled by Ctrl-C"


def test_a_restore_clears_only_the_records_it_covers(tmp_path: Path) -> None:
    open_record(tmp_path, (("db", "h1"), ("files", "h1"))).close("failed", ["x"], [])
    wider = open_record(tmp_path, (("db", "h1"),))
    assert wider.resolves() == []  # files on h1 may still be half restored
    wider.close("ok", [], [])
    assert len(journal.unfinished(tmp_path)) == 1
    both = open_record(tmp_path, (("files", "h1"), ("db", "h1"), ("db", "h2")))
    cleared = both.resolves()
    assert len(cleared) == 1
    both.close("ok", [], cleared)
    assert journal.unfinished(tmp_path) == []


def test_acknowledge_is_audited_and_refuses_what_it_cannot_find(tmp_path: Path) -> None:
    open_record(tmp_path, (("db", "h1"),)).close("failed", ["x"], [])
    (record,) = journal.unfinished(tmp_path)
    with pytest.raises(UsageError, match="--reason"):
        journal.acknowledge(tmp_path, record.run, "tester", "  ")
    with pytest.raises(UsageError, match=f"unfinished restores: {record.run}"):
        journal.acknowledge(tmp_path, "../../etc/passwd", "tester", "checked")
    journal.acknowledge(tmp_path, record.run, "tester", "restored the safety backup by hand")
    assert journal.unfinished(tmp_path) == []
    (entry,) = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert entry["action"] == "restore.acknowledge"
    assert entry["run"] == record.run
    assert entry["reason"] == "restored the safety backup by hand"
    assert entry["safety_backup"] == "20261121T160000Z-0b1c"


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe not utf-8",
        b"[" * 100_000,
        b'{"schema": 1}',
        b"null",
        b"[]",
    ],
    ids=["binary", "deep", "fields-missing", "null", "list"],
)
def test_a_damaged_record_is_reported_by_name_and_can_be_acknowledged(
    tmp_path: Path, content: bytes
) -> None:
    open_record(tmp_path, (("db", "h1"),)).close("failed", ["x"], [])
    (record,) = journal.unfinished(tmp_path)
    path = tmp_path / "restores" / f"{record.run}.json"
    path.write_bytes(content)
    (damaged,) = journal.unfinished(tmp_path)
    assert damaged.outcome == "unreadable"
    assert f"restores/{record.run}.json" in damaged.describe()
    journal.acknowledge(tmp_path, record.run, "tester", "looked at it")
    assert journal.unfinished(tmp_path) == []


def test_a_record_cannot_put_control_codes_on_a_terminal(tmp_path: Path) -> None:
    open_record(tmp_path, (("db", "h1"),)).close("failed", ["x"], [])
    (record,) = journal.unfinished(tmp_path)
    path = tmp_path / "restores" / f"{record.run}.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "target": "h1\x1b]0;owned\x07"}))
    (damaged,) = journal.unfinished(tmp_path)
    assert damaged.outcome == "unreadable"
    assert "\x1b" not in damaged.describe()


async def test_the_dashboard_shows_the_unfinished_restore_at_80x24(tmp_path: Path) -> None:
    config = parse_config(f'[repository]\npath = "{tmp_path / "repo"}"\n')
    repo = Repository.open(config.repository.path)
    open_record(repo.path, (("db", "h1"),)).close("failed", ["x"], [])
    app = console(config, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await status_shown(pilot)
        strip = app.screen.query_one(ScheduleStrip)
        assert strip.display
        (line,) = strip.alerts
        assert line.startswith("RESTORE FAILED onto h1 ")
        assert line.endswith("· before: 20261121T160000Z-0b1c")
        assert len(line) <= 78  # the strip's width at 80 columns

"""Alerts through apprise to a real HTTP receiver on loopback, and the Prometheus metrics:
what is sent to whom, that a failed delivery never fails the work, that no URL's secret is
ever said, and that the scheduler tells a failed backup and writes it into the textfile."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from helpers import EventLog, Log, command_source, config_text, files_source, make_config
from prometheus_client.parser import text_string_to_metric_families
from sshd import SSHTestServer
from timing import DEADLINE, until
from webhook import Webhook, running_webhook

from engine.checklist.model import checklists_for
from engine.checklist.run import load_run
from engine.checklist.session import ChecklistSession
from engine.config.load import parse_config
from engine.errors import ConfigError
from engine.events import Event, LogLine, StageChanged
from engine.jobs import BackupRequest, JobFailedError, run_backup
from engine.metrics import render
from engine.notify import Notice, deliver, redact
from engine.repo.repository import Repository
from engine.restore.plan import RestoreRequest
from engine.restore.run import run_restore
from engine.schedule.daemon import Scheduler
from engine.schedule.ticks import local_claimer
from engine.status import BackupFacts, gather

SECRET = "tok3n-s3cr3t-value"
DEAD = f"json://127.0.0.1:1/{SECRET}"  # nothing listens on port 1


@pytest.fixture
def webhook() -> object:
    with running_webhook() as hook:
        yield hook


def channels(**urls_by_channel: tuple[list[str], list[str] | None]) -> str:
    text = ""
    for name, (urls, events) in urls_by_channel.items():
        text += f"[notify.{name}]\nurls = {json.dumps(urls)}\n"
        if events is not None:
            text += f"events = {json.dumps(events)}\n"
    return text


def bare_config(tmp_path: Path, extra: str) -> str:
    repository = f'[repository]\npath = "{tmp_path}/repo"\n'
    return f'operator = "tester"\nenvironment = "prod"\n{repository}{extra}'


def metrics_of(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Prometheus' own parser over the exposition text: name -> labels -> value."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_each_channel_gets_the_events_it_wants(tmp_path: Path, webhook: Webhook) -> None:
    config = parse_config(
        bare_config(
            tmp_path,
            channels(
                oncall=([webhook.url("oncall")], ["backup.failed"]),
                team=([webhook.url("team")], ["checklist.signed"]),
            ),
        )
    )
    assert await deliver(config, Notice("backup.failed", "backup of db failed", "exit 3")) == []
    assert await deliver(config, Notice("copy.failed", "nobody wants this", "")) == []
    [(path, body)] = webhook.received
    assert path == "/oncall"
    assert body["title"] == "[prod] backup of db failed"  # the environment, at a glance
    assert body["message"] == "exit 3"
    assert body["type"] == "failure"


async def test_undelivered_is_said_without_any_part_of_the_url(
    tmp_path: Path, webhook: Webhook
) -> None:
    config = parse_config(
        bare_config(
            tmp_path,
            channels(hook=([DEAD, f"nosuchservice://{SECRET}", webhook.url(SECRET)], None)),
        )
    )
    webhook.failing = True
    problems = await deliver(config, Notice("drill.failed", "drill failed", "marker missing"))
    assert len(problems) == 3
    assert problems[0].startswith("notify.hook URL 1 (json://): not delivered")
    assert "apprise knows no service nosuchservice://" in problems[1]
    assert problems[2].startswith("notify.hook URL 3 (json://): not delivered")
    assert all(SECRET not in problem for problem in problems)


def test_redact_takes_out_every_part_of_every_url() -> None:
    text = f"failed posting to hooks.example.com/{SECRET} as user:pw1234"
    shown = redact(text, [f"json://user:pw1234@hooks.example.com/{SECRET}?x=abc"])
    for part in (SECRET, "pw1234", "hooks.example.com"):
        assert part not in shown


def test_a_bad_url_is_a_config_error_that_never_repeats_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(bare_config(tmp_path, channels(hook=([f"https//{SECRET}"], None))))
    assert "notify.hook.urls[0]: is not an apprise URL" in str(info.value)
    assert SECRET not in str(info.value)
    with pytest.raises(ConfigError, match=r"notify.hook.events\[0\]: unknown event 'backup.done'"):
        parse_config(bare_config(tmp_path, channels(hook=(["json://h/x"], ["backup.done"]))))


def test_urls_can_live_in_a_file_of_their_own(tmp_path: Path) -> None:
    urls = tmp_path / "notify.urls"
    urls.write_text(f"# the on-call hook\njson://h/{SECRET}\n\n")
    text = bare_config(tmp_path, f'[notify.hook]\nurls_file = "{urls}"\n')
    assert parse_config(text).notify["hook"].all_urls() == (f"json://h/{SECRET}",)
    urls.write_text(f"json://h/ok\n{SECRET}\n")
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert "line 2 is not an apprise URL" in str(info.value)
    assert SECRET not in str(info.value)


async def test_a_failed_backup_is_told_and_a_failed_delivery_changes_nothing(
    asyncssh_server: SSHTestServer, tmp_path: Path, webhook: Webhook
) -> None:
    failing = ["sh", "-c", "echo disk on fire >&2; exit 3"]
    config = make_config(
        asyncssh_server,
        tmp_path / "repo",
        command_source("db", failing) + channels(hook=([webhook.url(), DEAD], None)),
    )
    repo = Repository.open(config.repository.path)
    log = EventLog()
    with pytest.raises(JobFailedError, match="disk on fire"):
        await run_backup(config, repo, BackupRequest(), log.emit)
    [(_, body)] = webhook.received
    assert body["title"] == "backup of db failed"
    assert "disk on fire" in body["message"]
    warnings = [e for e in log if isinstance(e, LogLine) and e.source == "notify"]
    assert len(warnings) == 1  # the dead URL: said, and the job's own failure is unchanged
    assert warnings[0].level == "warning"
    assert SECRET not in warnings[0].text
    assert warnings[0].text.endswith("; the work itself stands")


async def test_a_failed_scheduled_backup_reaches_the_hook_and_the_textfile(
    asyncssh_server: SSHTestServer, tmp_path: Path, webhook: Webhook
) -> None:
    textfile = tmp_path / "node-exporter" / "lifeboat.prom"
    failing = ["sh", "-c", "echo disk on fire >&2; exit 3"]
    config = parse_config(
        config_text(
            asyncssh_server,
            tmp_path / "repo",
            command_source("db", failing)
            + '[schedules.tick]\ncron = "*/2 * * * * *"\nscope = ["db"]\n'
            + '[tiers.gold]\nrpo = "1h"\nrto = "15m"\nsources = ["db"]\n'
            + f'[metrics]\ntextfile = "{textfile}"\n'
            + channels(hook=([webhook.url()], ["backup.failed", "rpo.breach"])),
        )
    )
    repo = Repository.open(config.repository.path)
    log = Log()
    daemon = Scheduler(config, repo, local_claimer(repo, "tester"), log, "test")
    task = asyncio.create_task(daemon.run())
    try:
        await until(lambda: bool(log.events("backup.failed")), "a failed tick")
        await until(lambda: "backup of db failed" in webhook.titles(), "the alert")
        await until(lambda: _last_run_failed(textfile), "the textfile to show it")
    finally:
        daemon.stop()
        await asyncio.wait_for(task, DEADLINE)
    assert "tier gold: RPO 1h breached (never backed up)" in webhook.titles()
    assert webhook.titles().count("tier gold: RPO 1h breached (never backed up)") == 1  # once
    metrics = metrics_of(textfile.read_text())
    assert metrics["lifeboat_tier_rpo_breached"][(("tier", "gold"),)] == 1
    assert metrics["lifeboat_healthy"][()] == 0
    assert textfile.stat().st_mode & 0o777 == 0o644  # node_exporter reads it as its own user


def _last_run_failed(textfile: Path) -> bool:
    if not textfile.exists():
        return False
    success = metrics_of(textfile.read_text()).get("lifeboat_schedule_last_run_success", {})
    return success.get((("schedule", "tick"),)) == 0


async def test_metrics_follow_prometheus_conventions(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    config = make_config(
        asyncssh_server,
        tmp_path / "repo",
        command_source("db", ["echo", "some bytes"])
        + '[tiers.gold]\nrpo = "1h"\nrto = "15m"\nsources = ["db"]\n',
    )
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    facts = BackupFacts()
    report = gather(config, repo, facts=facts)
    metrics = metrics_of(render(report, facts.newest(repo, config.sources)))
    gold = (("tier", "gold"),)
    assert metrics["lifeboat_tier_rpo_seconds"][gold] == 3600
    assert metrics["lifeboat_tier_rpo_breached"][gold] == 0
    assert metrics["lifeboat_tier_last_backup_timestamp_seconds"][gold] == pytest.approx(
        manifest.finished_at.timestamp()
    )
    assert 0 <= metrics["lifeboat_tier_last_backup_age_seconds"][gold] < 3600
    assert metrics["lifeboat_source_last_backup_bytes"][(("source", "db"),)] == len("some bytes\n")
    assert metrics["lifeboat_source_last_backup_duration_seconds"][(("source", "db"),)] >= 0
    assert metrics["lifeboat_locks_held"][(("kind", "repository"),)] == 0
    assert metrics["lifeboat_healthy"][()] == 1
    for name in metrics:
        assert name.startswith("lifeboat_")
    assert "lifeboat_tier_last_drill_passed" not in metrics  # never drilled: no made-up value


async def test_each_source_records_how_long_it_took_itself(
    asyncssh_server: SSHTestServer, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"  # the slow source ends only once the fast one is done
    slow = ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done; echo slow"]
    sources = command_source("a_slow", slow) + command_source("b_fast", ["echo", "fast"])
    config = make_config(asyncssh_server, tmp_path / "repo", sources)
    repo = Repository.open(config.repository.path)
    log = EventLog()

    def emit(event: Event) -> None:
        log.emit(event)
        if event == StageChanged("b_fast", "done"):
            gate.touch()

    manifest = await run_backup(config, repo, BackupRequest(), emit)
    seconds = {artifact.source: artifact.meta["seconds"] for artifact in manifest.artifacts}
    assert seconds["a_slow"] > seconds["b_fast"]  # it started first and ended after
    assert Repository.open(repo.path).load(manifest.id).artifacts == manifest.artifacts
    facts = BackupFacts()
    newest = facts.newest(repo, config.sources)
    assert {name: last.seconds for name, last in newest.items()} == seconds
    metrics = metrics_of(render(gather(config, repo, facts=facts), newest))
    took = metrics["lifeboat_source_last_backup_duration_seconds"]
    assert took == {(("source", name),): value for name, value in seconds.items()}


async def test_an_applied_restore_is_told_with_its_safety_backup(
    asyncssh_server: SSHTestServer, tmp_path: Path, webhook: Webhook
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "app.toml").write_text("listen = 8080\n")
    config = make_config(
        asyncssh_server,
        tmp_path / "repo",
        files_source("cfg", data) + channels(leads=([webhook.url()], ["restore.applied"])),
    )
    repo = Repository.open(config.repository.path)
    good = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    request = RestoreRequest(good.id, apply=True, confirm=("h1",))
    report = await run_restore(config, repo, request, EventLog().emit)
    [(_, body)] = webhook.received
    assert body["title"] == f"restore of backup {good.id} onto its own hosts applied"
    assert f"safety backup: {report.safety_backup}" in body["message"]
    assert body["type"] == "info"


async def test_a_checklist_sign_off_is_told_and_an_undelivered_one_stands(
    tmp_path: Path, webhook: Webhook
) -> None:
    checklist = tmp_path / "after.toml"
    checklist.write_text(
        'name = "after"\ntitle = "After a restore"\n'
        '[[items]]\nid = "look"\nkind = "manual"\ntitle = "Look at it"\n'
        'instruction = "Open the app"\n'
    )
    config = parse_config(
        bare_config(
            tmp_path,
            f'[checklists]\npaths = ["{checklist}"]\n'
            + channels(leads=([webhook.url(), DEAD], ["checklist.signed"])),
        )
    )
    repo = Repository.open(config.repository.path)
    warnings: list[str] = []
    session = ChecklistSession.start(
        config, repo, checklists_for(config)["after"], warn=warnings.append
    )
    session.tick("look", "")
    signed = await asyncio.to_thread(session.sign_off)
    [(_, body)] = webhook.received
    assert (
        body["title"]
        == f"[prod] checklist run {session.run.id} (After a restore) signed off by tester"
    )
    assert [w.split(":")[0] for w in warnings] == ["notify.leads URL 2 (json"]
    assert SECRET not in warnings[0]
    assert load_run(repo.path, session.run.id).signoff == signed  # it stands

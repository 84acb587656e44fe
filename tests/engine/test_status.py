"""Tier status: which backup covers a tier, its age against the RPO, and the last drill's
restore time against the RTO."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from helpers import stored_backup

from engine.config.load import parse_config
from engine.config.model import Config
from engine.drill import history
from engine.drill.history import DrillRecord
from engine.repo.manifest import Artifact, ArtifactFile, Manifest
from engine.repo.repository import Repository, VerifyRecord
from engine.status import BackupFacts, RpoState, gather, rpo_state, tier_statuses

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
CONFIG = parse_config(
    '[repository]\npath = "/r"\n[hosts.h]\naddress = "a"\n'
    '[sources.db]\nkind = "command"\nhost = "h"\nbackup = ["x"]\n'
    '[sources.cfg]\nkind = "files"\nhost = "h"\npaths = ["/etc/app"]\n'
    '[tiers.data]\nrpo = "1h"\nrto = "30m"\nsources = ["db", "cfg"]\n'
    '[tiers.config]\nrpo = "24h"\nrto = "30m"\nsources = ["cfg"]\n'
)


def manifest(backup_id: str, finished: datetime, *sources: str) -> Manifest:
    artifacts = tuple(
        Artifact(
            source=s,
            kind="command-output",
            host="h",
            files=(ArtifactFile(path=f"{s}.out", bytes=100, sha256="0" * 64),),
        )
        for s in sources
    )
    return Manifest(
        id=backup_id,
        created_at=finished,
        finished_at=finished,
        trigger="manual",
        operator="t",
        tool_version="0",
        scope=sources,
        artifacts=artifacts,
    )


def test_rpo_thresholds() -> None:
    hour = timedelta(hours=1)
    assert rpo_state(timedelta(minutes=47), hour) is RpoState.OK
    assert rpo_state(timedelta(minutes=49), hour) is RpoState.WARNING
    assert rpo_state(timedelta(minutes=61), hour) is RpoState.BREACH
    assert rpo_state(None, hour) is RpoState.BREACH


def test_a_tier_is_covered_only_by_backups_holding_all_its_sources() -> None:
    partial = manifest("20261121T115000Z-aaaa", NOW - timedelta(minutes=10), "cfg")
    full = manifest("20261121T103000Z-bbbb", NOW - timedelta(minutes=90), "db", "cfg")
    verified = {full.id: VerifyRecord(full.id, "2026-11-21T11:00:00Z", True)}
    data, config = tier_statuses(CONFIG, [partial, full], verified, now=NOW)
    assert (data.name, data.last, data.state) == ("data", full, RpoState.BREACH)
    assert data.age == timedelta(minutes=90)
    assert data.last_verify == verified[full.id]
    assert data.size == 200
    assert (config.last, config.state, config.size) == (partial, RpoState.OK, 100)
    assert config.last_verify is None


def test_verify_outcomes_are_kept_latest_last(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    repo.record_verify(VerifyRecord("x", "t1", False, ("bad",)))
    repo.record_verify(VerifyRecord("x", "t2", True))
    repo.record_verify(VerifyRecord("y", "t3", True))
    with (repo.path / "verify.jsonl").open("a") as log:
        log.write('{"backup_id": "z", "at"')  # a torn line after a crash
    assert repo.verifications() == {
        "x": VerifyRecord("x", "t2", True),
        "y": VerifyRecord("y", "t3", True),
    }


def drill(drill_id: str, sources: list[str], restore_seconds: float, verdict: str) -> DrillRecord:
    return DrillRecord(
        drill_id, drill_id, "t", sources, None, "s",
        restore_seconds=restore_seconds, verdict=verdict,
    )  # fmt: skip


def test_a_tiers_last_drill_restored_all_its_sources_and_is_judged_against_its_rto() -> None:
    slow = drill("3", ["cfg"], 31 * 60, "passed")  # newest, but covers only config
    failed = drill("2", ["db", "cfg"], 5, "failed")
    older = drill("1", ["db", "cfg"], 5, "passed")
    data, config = tier_statuses(CONFIG, [], {}, now=NOW, drills=[slow, failed, older])
    assert data.last_drill is failed
    assert data.rto_met is False
    assert config.last_drill is slow
    assert config.rto_met is False  # 31 minutes against 30
    fast = drill("4", ["cfg"], 12.5, "passed")
    data, config = tier_statuses(CONFIG, [], {}, now=NOW, drills=[fast, slow])
    assert config.rto_met is True
    assert data.last_drill is None
    assert data.rto_met is None


def test_the_drill_history_reads_newest_first_and_skips_a_torn_line(tmp_path: Path) -> None:
    history.append(tmp_path, drill("20261121T100000Z-a", ["cfg"], 1.5, "passed"))
    history.append(tmp_path, drill("20261121T110000Z-b", ["cfg"], 2.5, "failed"))
    with (tmp_path / history.DRILLS_FILE).open("a") as log:
        log.write('{"id": "torn')
    assert [r.id for r in history.load(tmp_path)] == ["20261121T110000Z-b", "20261121T100000Z-a"]
    assert (tmp_path / history.DRILLS_FILE).stat().st_mode & 0o777 == 0o600
    assert history.load(tmp_path)[1].timings() == "restore 1.5s"


def test_a_drill_line_of_the_wrong_shape_is_skipped_not_sorted(tmp_path: Path) -> None:
    good = drill("20261121T100000Z-a", ["cfg"], 1.5, "passed")
    history.append(tmp_path, good)
    wrong = {**good.to_dict(), "id": "20261121T110000Z-b", "started": 5}  # an int among strings
    with (tmp_path / history.DRILLS_FILE).open("a") as log:
        log.write(json.dumps(wrong) + "\n")
        log.write(json.dumps({**good.to_dict(), "sources": "cfg"}) + "\n")
    assert [r.id for r in history.load(tmp_path)] == ["20261121T100000Z-a"]


def facts_config(repo: Path) -> Config:
    """A tier no backup covers and a schedule that never ran: both would read every manifest."""
    return parse_config(
        f'[repository]\npath = "{repo}"\n[hosts.h]\naddress = "a"\n'
        '[sources.db]\nkind = "command"\nhost = "h"\nbackup = ["x"]\n'
        '[sources.audit]\nkind = "command"\nhost = "h"\nbackup = ["x"]\n'
        '[tiers.data]\nrpo = "1h"\nrto = "30m"\nsources = ["db"]\n'
        '[tiers.audit]\nrpo = "1h"\nrto = "30m"\nsources = ["audit"]\n'
        '[schedules.weekly]\ncron = "0 3 * * 0"\nscope = ["audit"]\n'
    )


def test_remembered_facts_spare_reading_old_manifests_again(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    config = facts_config(repo.path)
    old, newer = (
        stored_backup(repo, NOW - timedelta(hours=h), {"db": b"d" * h}, f"b{h}") for h in (3, 2)
    )
    facts = BackupFacts()
    first = gather(config, repo, NOW, facts=facts)
    assert [t.last.id if t.last else None for t in first.tiers] == [newer.id, None]
    (repo.backup_dir(old.id) / "manifest.json").write_text("{")  # read, it would be damaged
    newest = stored_backup(repo, NOW - timedelta(hours=1), {"db": b"d"}, "b1")
    again = gather(config, repo, NOW, facts=facts)
    assert [t.last.id if t.last else None for t in again.tiers] == [newest.id, None]
    assert again.damaged == ()  # the old manifest was not read again: only the new backup
    (damaged,) = gather(config, repo, NOW).damaged  # a gather that remembers nothing reads all
    assert damaged.startswith(f"backup {old.id} is damaged")
    assert facts.sizes(repo, ["db", "audit"]) == {"db": 1}  # the newest backup's


def test_a_remembered_backup_damaged_since_is_reported_and_the_next_one_shown(
    tmp_path: Path,
) -> None:
    repo = Repository.open(tmp_path / "repo")
    config = facts_config(repo.path)
    older, newer = (
        stored_backup(repo, NOW - timedelta(hours=h), {"db": b"d"}, f"b{h}") for h in (2, 1)
    )
    facts = BackupFacts()
    assert gather(config, repo, NOW, facts=facts).tiers[0].last == newer
    (repo.backup_dir(newer.id) / "manifest.json").write_text("{")
    report = gather(config, repo, NOW, facts=facts)
    assert report.tiers[0].last == older
    (damaged,) = report.damaged
    assert damaged.startswith(f"backup {newer.id} is damaged")

"""Off-host copies against real peers: moto's S3 server, and an SFTP directory on the system
sshd. A copy goes file by file with the manifest last, resumes without re-sending what is
whole, is listed back, and is fetched and restored on an empty machine; tampered and missing
pieces are named and never become a backup."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from checklists import checklists_toml, item, write_checklist
from cli_run import LIFEBOAT, lifeboat, write_config
from helpers import EventLog, Log, command_source, config_text, host_toml
from s3_server import BUCKET, S3Server, s3_remote_toml
from sshd import SSHTestServer
from timing import DEADLINE, until

from engine.config.load import parse_config
from engine.config.model import Config
from engine.events import LogLine, Progress
from engine.jobs import BackupRequest, run_backup
from engine.offsite.connect import connected
from engine.offsite.copy import run_copy
from engine.offsite.fetch import fetch_from
from engine.offsite.listing import list_remote
from engine.offsite.remote import RemoteError, backup_key
from engine.offsite.s3 import PART
from engine.offsite.verify import last_full_read, last_reads, verify_remote
from engine.remote.commands import single_chunk
from engine.repo import audit
from engine.repo.manifest import Manifest, utc_now
from engine.repo.repository import Repository
from engine.repo.retention import delete_backup
from engine.schedule.daemon import Scheduler
from engine.schedule.ticks import local_claimer
from engine.status import RpoState, gather

DUMP = bytes(range(256)) * 80_000  # 20 MB: three S3 parts
SMALL = bytes(range(256)) * 1000
PREFIX = "prod"


def sftp_remote_toml(directory: Path) -> str:
    return f'[remotes.offsite]\nkind = "sftp"\nhost = "h1"\npath = "{directory}"\n'


@pytest.fixture(params=["s3", "sftp"])
def remote_toml(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each kind of remote in turn, as the config's ``[remotes.offsite]``."""
    if request.param == "s3":
        server: S3Server = request.getfixturevalue("s3")
        return s3_remote_toml(server, prefix=PREFIX)
    return sftp_remote_toml(tmp_path / "vault")


def make(
    server: SSHTestServer, tmp_path: Path, remote: str, repo: str = "repo", data: bytes = DUMP
) -> Config:
    dump = tmp_path / "dump.bin"
    if not dump.exists():
        dump.write_bytes(data)
    sink = tmp_path / "restored.bin"
    sources = command_source("db", ["cat", str(dump)], ["sh", "-c", f"cat > {sink}"])
    return parse_config(config_text(server, tmp_path / repo, sources) + remote)


def only_file(manifest: Manifest) -> tuple[str, int, str]:
    ((entry,),) = [artifact.files for artifact in manifest.artifacts]
    return entry.path, entry.bytes, entry.sha256


async def test_a_copy_goes_whole_resumes_and_is_fetched_on_an_empty_machine(
    openssh_server: SSHTestServer, remote_toml: str, tmp_path: Path
) -> None:
    config = make(openssh_server, tmp_path, remote_toml)
    repo = Repository.open(config.repository.path)
    first = await run_backup(config, repo, BackupRequest(label="one"), EventLog().emit)
    second = await run_backup(config, repo, BackupRequest(label="two"), EventLog().emit)

    (outcome,) = await run_copy(config, repo, "offsite", [first.id], EventLog().emit)
    assert (outcome.sent, outcome.kept, outcome.bytes_sent) == (["db.out"], [], len(DUMP))
    name, size, sha256 = only_file(second)
    async with connected(config, "offsite") as remote:
        # A copy of the second backup cut short after its file: no manifest there yet.
        await remote.put(backup_key(second.id, name), single_chunk(DUMP), size, sha256)
        listing = await list_remote(remote)
    assert [m.id for m in listing.manifests] == [first.id]
    assert listing.manifests[0] == first
    (partial,) = listing.problems
    assert f"{second.id} on offsite: a partial copy (no manifest yet)" in partial

    (resumed,) = await run_copy(config, repo, "offsite", [], EventLog().emit, missing=True)
    assert (resumed.backup_id, resumed.sent, resumed.kept) == (second.id, [], ["db.out"])
    again = await run_copy(config, repo, "offsite", [first.id, second.id], EventLog().emit)
    assert [o.already for o in again] == [True, True]

    # The bastion is lost: an empty machine with the same config fetches the copy back.
    fresh = make(openssh_server, tmp_path, remote_toml, repo="fresh-repo")
    empty = Repository.open(fresh.repository.path)
    fetched = await fetch_from(fresh, empty, "offsite", second.id, EventLog().emit)
    assert fetched == second
    assert empty.backup_ids() == [second.id]
    assert (empty.backup_dir(second.id) / "db.out").read_bytes() == DUMP


def tamper(remote_toml: str, tmp_path: Path, key: str, data: bytes | None) -> None:
    """Change (or, with None, remove) ``key`` on the remote behind Lifeboat's back."""
    if "s3" in remote_toml.split("\n")[1]:
        client = boto3.client("s3", endpoint_url=_endpoint(remote_toml), region_name="us-east-1")
        if data is None:
            client.delete_object(Bucket=BUCKET, Key=f"{PREFIX}/{key}")
        else:
            client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{key}", Body=data)
        return
    path = tmp_path / "vault" / key
    if data is None:
        path.unlink()
    else:
        path.write_bytes(data)


def _endpoint(remote_toml: str) -> str:
    line = next(line for line in remote_toml.splitlines() if line.startswith("endpoint"))
    return line.split('"')[1]


async def test_a_tampered_or_incomplete_copy_never_becomes_a_backup(
    openssh_server: SSHTestServer, remote_toml: str, tmp_path: Path
) -> None:
    config = make(openssh_server, tmp_path, remote_toml)
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    await run_copy(config, repo, "offsite", [manifest.id], EventLog().emit)
    fresh = make(openssh_server, tmp_path, remote_toml, repo="fresh-repo")
    empty = Repository.open(fresh.repository.path)

    flipped = bytearray(DUMP)
    flipped[12345] ^= 1
    tamper(remote_toml, tmp_path, backup_key(manifest.id, "db.out"), bytes(flipped))
    with pytest.raises(RemoteError, match="is not what its manifest says") as failed:
        await fetch_from(fresh, empty, "offsite", manifest.id, EventLog().emit)
    assert "db.out of " + manifest.id in str(failed.value)
    assert empty.backup_ids() == []
    assert not list((empty.path / ".staging").iterdir())

    # A copy whose manifest is there counts as whole; without it, each file is checked.
    (judged,) = await run_copy(config, repo, "offsite", [manifest.id], EventLog().emit)
    assert judged.already  # its manifest is there: a copy is judged by it (README)

    tamper(remote_toml, tmp_path, backup_key(manifest.id), None)
    with pytest.raises(RemoteError, match="holds no complete copy of " + manifest.id):
        await fetch_from(fresh, empty, "offsite", manifest.id, EventLog().emit)
    (again,) = await run_copy(config, repo, "offsite", [manifest.id], EventLog().emit)
    assert again.sent == ["db.out"]  # the flipped file was found not whole, and replaced
    fetched = await fetch_from(fresh, empty, "offsite", manifest.id, EventLog().emit)
    assert (
        hashlib.sha256((empty.backup_dir(fetched.id) / "db.out").read_bytes()).hexdigest()
        == (only_file(manifest)[2])
    )


async def test_the_bastion_lost_case_through_the_cli(
    openssh_server: SSHTestServer, s3: S3Server, tmp_path: Path
) -> None:
    dump = tmp_path / "dump.bin"
    dump.write_bytes(SMALL)
    sink = tmp_path / "restored.bin"
    sources = command_source("db", ["cat", str(dump)], ["sh", "-c", f"cat > {sink}"])
    remote = s3_remote_toml(s3)
    bastion = write_config(
        tmp_path / "bastion.toml", config_text(openssh_server, tmp_path / "repo", sources) + remote
    )
    made = await lifeboat("backup", "create", "--json", config=bastion)
    assert made.rc == 0, made.stderr
    (backup_id,) = Repository.open(tmp_path / "repo").backup_ids()
    copied = await lifeboat("copy", "--missing", "--to", "offsite", config=bastion)
    assert copied.rc == 0, copied.stderr
    assert f"{backup_id}: copied to offsite: 1 file(s)" in copied.stdout

    # The new bastion checks the restore with a checklist: the file is back, byte for byte.
    same = item("command", "same", host="h1", argv=["cmp", str(dump), str(sink)])
    checklist = write_checklist(tmp_path, "after-rebuild", same)
    text = config_text(openssh_server, tmp_path / "new-bastion", sources) + remote
    replacement = write_config(tmp_path / "replacement.toml", text + checklists_toml([checklist]))
    assert (await lifeboat("repo", "init", config=replacement)).rc == 0
    listed = await lifeboat("backup", "list", "--remote", "offsite", config=replacement)
    assert listed.rc == 0, listed.stderr
    assert backup_id in listed.stdout
    restored = await lifeboat(
        "restore", backup_id, "--from", "offsite", "--apply", "--confirm", "h1",
        config=replacement,
    )  # fmt: skip
    assert restored.rc == 0, restored.stdout + restored.stderr
    assert sink.read_bytes() == SMALL
    checked = await lifeboat(
        "checklist", "run", "after-rebuild", "--backup", backup_id, "--restored", "db",
        "--non-interactive", "--json", config=replacement,
    )  # fmt: skip
    assert checked.rc == 0, checked.stdout + checked.stderr
    assert [i["status"] for i in json.loads(checked.stdout)["items"]] == ["passed"]


async def test_s3_problems_are_each_one_clear_message(s3: S3Server, tmp_path: Path) -> None:
    base = '[repository]\npath = "/tmp/lifeboat-unused"\n'

    async def reach(table: str) -> str:
        config = parse_config(base + table)
        with pytest.raises(RemoteError) as failed:
            async with connected(config, "offsite"):
                pass
        return str(failed.value)

    missing = s3_remote_toml(s3).replace(BUCKET, "no-such-bucket")
    assert "bucket no-such-bucket does not exist; create it" in await reach(missing)
    closed = s3_remote_toml(s3).replace(s3.url, "http://127.0.0.1:9")
    assert "check remotes.offsite.endpoint and that the server runs" in await reach(closed)
    config = write_config(tmp_path / "c.toml", base + s3_remote_toml(s3))
    ran = await lifeboat("backup", "list", "--remote", "nowhere", config=config)
    assert ran.rc == 2
    assert "unknown remote 'nowhere'; configured remotes: offsite" in ran.stderr


async def test_without_credentials_s3_says_where_they_come_from(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    config = write_config(
        tmp_path / "c.toml", '[repository]\npath = "/tmp/lifeboat-unused"\n' + s3_remote_toml(s3)
    )
    ran = await lifeboat("backup", "list", "--remote", "offsite", config=config)
    assert ran.rc == 1
    assert "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in ran.stderr
    assert "Traceback" not in ran.stderr


async def full_disk_is_said(config: Config, disk: Path) -> None:
    """A copy to the remote on ``disk`` (too small) fails saying so, and leaves nothing."""
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    with pytest.raises(RemoteError, match="the disk is full") as full:
        await run_copy(config, repo, "offsite", [manifest.id], EventLog().emit)
    assert "free space there or prune its copies" in str(full.value)
    assert [p.name for p in disk.rglob("*") if p.is_file()] == []


async def test_a_full_remote_disk_is_said_and_leaves_nothing_half_written(
    openssh_server: SSHTestServer, small_disk: Path, tmp_path: Path
) -> None:
    await full_disk_is_said(
        make(openssh_server, tmp_path, sftp_remote_toml(small_disk)), small_disk
    )


def storage_box(server: SSHTestServer, directory: Path) -> str:
    """An SFTP remote on ``server`` (SFTP only: it runs no commands) as host ``box``."""
    return host_toml(server, "box") + sftp_remote_toml(directory).replace('"h1"', '"box"')


async def test_a_host_that_only_speaks_sftp_gets_copies_checked_by_reading_back(
    openssh_server: SSHTestServer, sftp_only_server: SSHTestServer, tmp_path: Path
) -> None:
    vault = tmp_path / "vault"
    config = make(openssh_server, tmp_path, storage_box(sftp_only_server, vault))
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    log = EventLog()
    (outcome,) = await run_copy(config, repo, "offsite", [manifest.id], log.emit)
    assert outcome.sent == ["db.out"]
    (said,) = [e.text for e in log.of_type(LogLine) if "read back over SFTP" in e.text]
    expected = {  # the system sshd runs its SFTP server for any command; asyncssh refuses it
        "openssh": "runs no sha256sum (an SFTP-only account)",
        "asyncssh": "refuses commands (Session request failed)",
    }[sftp_only_server.kind]
    assert said == (
        f"remote offsite: box {expected}, so each file sent is read back over SFTP to check "
        "its sha256"
    )
    stored = vault / backup_key(manifest.id, "db.out")
    assert stored.read_bytes() == DUMP

    # Damage there is found by reading back too: the file is sent again.
    flipped = bytearray(DUMP)
    flipped[999] ^= 1
    stored.write_bytes(bytes(flipped))
    (vault / backup_key(manifest.id)).unlink()
    (again,) = await run_copy(config, repo, "offsite", [manifest.id], EventLog().emit)
    assert (again.sent, again.kept) == (["db.out"], [])
    assert stored.read_bytes() == DUMP


async def test_a_full_disk_on_an_sftp_only_host_is_said(
    openssh_server: SSHTestServer,
    sftp_only_server: SSHTestServer,
    small_disk: Path,
    tmp_path: Path,
) -> None:
    config = make(openssh_server, tmp_path, storage_box(sftp_only_server, small_disk))
    await full_disk_is_said(config, small_disk)


async def test_a_scheduled_backup_is_copied_to_s3_and_sftp_by_itself(
    asyncssh_server: SSHTestServer, s3: S3Server, tmp_path: Path
) -> None:
    broken = s3_remote_toml(s3, name="broken").replace(BUCKET, "no-such-bucket")
    remotes = s3_remote_toml(s3) + sftp_remote_toml(tmp_path / "vault").replace(
        "[remotes.offsite]", "[remotes.vault]"
    )
    schedule = '[schedules.tick]\ncron = "* * * * * *"\ncopy_to = ["offsite", "broken", "vault"]\n'
    repo = Repository.open(tmp_path / "repo")
    sources = command_source("db", ["echo", "scheduled"])
    config = parse_config(
        config_text(asyncssh_server, repo.path, sources) + remotes + broken + schedule
    )
    log = Log()
    daemon = Scheduler(config, repo, local_claimer(repo, "tester"), log, "test")
    task = asyncio.create_task(daemon.run())
    try:
        await until(lambda: len(log.events("copy.finished")) >= 2, "two copies")
    finally:
        daemon.stop()
        await asyncio.wait_for(task, DEADLINE)
    (backup_id, *_) = [record["backup"] for record in log.events("backup.finished")]
    copies = [(r["remote"], r["backup"]) for r in log.events("copy.finished")]
    assert copies[:2] == [("offsite", backup_id), ("vault", backup_id)]
    (failed, *_) = log.events("copy.failed")
    assert (failed["remote"], failed["level"]) == ("broken", "error")
    assert "bucket no-such-bucket does not exist" in failed["error"]
    assert not log.events("backup.failed")
    for remote in ("offsite", "vault"):
        async with connected(config, remote) as connection:
            assert backup_id in [m.id for m in (await list_remote(connection)).manifests]


async def test_verify_remote_reads_back_a_rotating_sample_and_names_damage(
    openssh_server: SSHTestServer, remote_toml: str, tmp_path: Path
) -> None:
    config = make(openssh_server, tmp_path, remote_toml, data=SMALL)
    repo = Repository.open(config.repository.path)
    ids = [(await run_backup(config, repo, BackupRequest(), EventLog().emit)).id for _ in range(4)]
    await run_copy(config, repo, "offsite", ids, EventLog().emit)
    seen: list[str] = []
    async with connected(config, "offsite") as remote:
        for _ in range(4):  # 25%: one file a run, each read once in four runs
            result = await verify_remote(repo, remote, EventLog().emit, sample=0.25)
            assert (result.ok, result.files_read, result.files_left) == (True, 1, 3)
            seen += [key for key in last_reads(repo, "offsite") if key not in seen]
        assert len(seen) == 4
        listing = await list_remote(remote)
        reads = last_reads(repo, "offsite")
        assert all(last_full_read(m, reads) for m in listing.manifests)

        flipped = bytearray(SMALL)
        flipped[7] ^= 1
        tamper(remote_toml, tmp_path, backup_key(ids[2], "db.out"), bytes(flipped))
        result = await verify_remote(repo, remote, EventLog().emit)
        assert result.files_read == 4
        (problem,) = result.problems
        assert problem.startswith(f"{ids[2]}/db.out on offsite: sha256 mismatch")
        reads = last_reads(repo, "offsite")
        damaged = next(m for m in (await list_remote(remote)).manifests if m.id == ids[2])
        assert last_full_read(damaged, reads) is None

    config_file = write_config(
        tmp_path / "c.toml", config_text(openssh_server, repo.path, "") + remote_toml
    )
    ran = await lifeboat("backup", "verify", "--remote", "offsite", "--all", config=config_file)
    assert ran.rc == 1
    assert f"{ids[2]}/db.out on offsite: sha256 mismatch" in ran.stdout
    listed = await lifeboat("backup", "list", "--remote", "offsite", config=config_file)
    assert f"{ids[2]}  never read back whole" in listed.stdout
    assert f"{ids[0]}  read back whole 20" in listed.stdout


async def test_a_remote_prunes_by_its_own_policy_and_keeps_the_last_copy_anywhere(
    openssh_server: SSHTestServer, s3: S3Server, tmp_path: Path
) -> None:
    policy = "[remotes.offsite.retention]\nkeep_last = 1\n"
    config = make(openssh_server, tmp_path, s3_remote_toml(s3) + policy, data=SMALL)
    repo = Repository.open(config.repository.path)
    older = [await run_backup(config, repo, BackupRequest(), EventLog().emit) for _ in range(2)]
    # Times have whole seconds: the newest must start in a later one to be the newest.
    await until(lambda: utc_now() > older[-1].created_at, "the next second")
    newest = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    ids = [m.id for m in (*older, newest)]
    await run_copy(config, repo, "offsite", ids, EventLog().emit)
    delete_backup(repo, ids[0], "tester")  # the oldest now lives on the remote only

    text = config_text(openssh_server, repo.path, "") + s3_remote_toml(s3) + policy
    config_file = write_config(tmp_path / "c.toml", text)
    planned = await lifeboat(
        "backup", "prune", "--remote", "offsite", "--dry-run", config=config_file
    )
    assert planned.rc == 0, planned.stderr
    lines = {
        line.split()[1]: line
        for line in planned.stdout.splitlines()
        if line[:4] in ("keep", "remo")
    }
    assert lines[ids[2]].startswith("keep")
    assert "last 1" in lines[ids[2]]
    assert lines[ids[1]].startswith("remove")
    assert "no rule of remotes.offsite.retention keeps it" in lines[ids[1]]
    assert lines[ids[0]].startswith("keep")
    assert "the last copy anywhere" in lines[ids[0]]

    done = await lifeboat("backup", "prune", "--remote", "offsite", config=config_file)
    assert done.rc == 0, done.stderr
    async with connected(config, "offsite") as remote:
        assert sorted(m.id for m in (await list_remote(remote)).manifests) == [ids[0], ids[2]]
    pruned = [e for e in audit.entries(repo.path) if e["action"] == "remote.prune"]
    assert [(e["remote"], e["backup"]) for e in pruned] == [("offsite", ids[1])]

    anyway = text.replace("path_style = true\n", "path_style = true\nprune_last_copy = true\n")
    write_config(tmp_path / "c.toml", anyway)
    done = await lifeboat("backup", "prune", "--remote", "offsite", config=config_file)
    assert done.rc == 0, done.stderr
    async with connected(parse_config(anyway), "offsite") as remote:
        assert [m.id for m in (await list_remote(remote)).manifests] == [ids[2]]


async def test_status_judges_each_tier_by_its_newest_off_host_copy(
    asyncssh_server: SSHTestServer, s3: S3Server, tmp_path: Path
) -> None:
    tier = '[tiers.core]\nrpo = "24h"\nrto = "1h"\nsources = ["db"]\noffsite_rpo = "48h"\n'
    config = make(asyncssh_server, tmp_path, s3_remote_toml(s3) + tier, data=SMALL)
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)

    (before,) = gather(config, repo).tiers
    assert before.offsite is not None
    assert before.offsite.state is RpoState.BREACH
    (problem,) = gather(config, repo).problems
    assert problem == (
        "tier core: off-host RPO 2d breached (no off-host copy; `lifeboat copy --missing "
        "--to NAME` makes one)"
    )
    await run_copy(config, repo, "offsite", [manifest.id], EventLog().emit)
    report = gather(config, repo)
    (after,) = report.tiers
    assert after.offsite is not None
    assert (after.offsite.state, after.offsite.remotes) == (RpoState.OK, ("offsite",))
    assert report.problems == []
    later = gather(config, repo, now=manifest.finished_at + timedelta(days=3))
    assert "tier core: off-host RPO 2d breached (newest off-host copy 3d old)" in later.problems


async def test_an_s3_server_killed_mid_upload_leaves_no_copy_and_the_next_run_finishes(
    openssh_server: SSHTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "lifeboat-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "lifeboat-test-secret")
    (tmp_path / "s3").mkdir()
    server = S3Server(tmp_path / "s3")
    server.start()
    try:
        boto3.client("s3", endpoint_url=server.url, region_name="us-east-1").create_bucket(
            Bucket=BUCKET
        )
        config = make(openssh_server, tmp_path, s3_remote_toml(server))  # three parts
        repo = Repository.open(config.repository.path)
        manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)

        def kill_midway(event: object) -> None:
            if isinstance(event, Progress) and event.done > PART:
                server.stop(kill=True)  # parts are in flight, more are still to read

        with pytest.raises(RemoteError) as failed:
            await run_copy(config, repo, "offsite", [manifest.id], kill_midway)
        assert f"remote offsite (s3://{BUCKET}/prod): cannot write backups/" in str(failed.value)
        assert "check remotes.offsite.endpoint and that the server runs" in str(failed.value)
        assert repo.backup_ids() == [manifest.id]  # the local backup is untouched

        server.start()  # the same endpoint, back (moto keeps nothing: everything is sent again)
        boto3.client("s3", endpoint_url=server.url, region_name="us-east-1").create_bucket(
            Bucket=BUCKET
        )
        (outcome,) = await run_copy(config, repo, "offsite", [manifest.id], EventLog().emit)
        assert outcome.sent == ["db.out"]
    finally:
        server.stop()


async def test_a_copy_killed_with_sigkill_is_finished_by_the_next_run(
    openssh_server: SSHTestServer, tmp_path: Path
) -> None:
    vault = tmp_path / "vault"
    big = bytes(range(256)) * 240_000  # 60 MB: the copy takes a while over SFTP
    config = make(openssh_server, tmp_path, sftp_remote_toml(vault), data=big)
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    text = config_text(openssh_server, repo.path, "") + sftp_remote_toml(vault)
    config_file = write_config(tmp_path / "c.toml", text)
    copy = ["--config", str(config_file), "copy", "--all", "--to", "offsite"]
    process = await asyncio.create_subprocess_exec(
        LIFEBOAT, *copy, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    copied = vault / "backups" / manifest.id
    await until(lambda: any(copied.glob("db.out.part-*")), "the file being written")
    process.kill()  # kill -9, mid-file
    assert await process.wait() == -signal.SIGKILL
    assert not (copied / "manifest.json").exists()  # never listed as a copy

    again = await lifeboat("copy", "--missing", "--to", "offsite", config=config_file)
    assert again.rc == 0, again.stderr
    assert f"{manifest.id}: copied to offsite: 1 file(s)" in again.stdout
    assert sorted(p.name for p in copied.iterdir()) == ["db.out", "manifest.json"]
    assert (copied / "db.out").read_bytes() == big


async def test_wrong_s3_credentials_are_one_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "s3").mkdir()
    server = S3Server(tmp_path / "s3", checked_keys=True)
    server.start()
    try:
        key, secret = server.user_keys()
        boto3.client(
            "s3", endpoint_url=server.url, region_name="us-east-1",
            aws_access_key_id=key, aws_secret_access_key=secret,
        ).create_bucket(Bucket=BUCKET)  # fmt: skip
        config = parse_config(
            '[repository]\npath = "/tmp/lifeboat-unused"\n' + s3_remote_toml(server)
        )
        for wrong_key, wrong_secret in [("AKIAWRONG", secret), (key, "not-the-secret")]:
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", wrong_key)
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong_secret)
            with pytest.raises(RemoteError) as refused:
                async with connected(config, "offsite"):
                    pass
            assert "access denied (403): cannot reach the bucket; check the credentials" in str(
                refused.value
            )
            assert wrong_secret not in str(refused.value)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        async with connected(config, "offsite") as remote:
            assert await remote.backups() == []
    finally:
        server.stop()


async def test_an_sftp_copy_never_reads_through_a_link(
    openssh_server: SSHTestServer, tmp_path: Path
) -> None:
    vault = tmp_path / "vault"
    config = make(openssh_server, tmp_path, sftp_remote_toml(vault), data=SMALL)
    repo = Repository.open(config.repository.path)
    manifest = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    await run_copy(config, repo, "offsite", [manifest.id], EventLog().emit)
    planted = vault / "backups" / manifest.id / "db.out"
    secret = tmp_path / "elsewhere"
    secret.write_bytes(SMALL)  # even the right bytes, behind a link, are refused
    planted.unlink()
    planted.symlink_to(secret)
    fresh = make(openssh_server, tmp_path, sftp_remote_toml(vault), repo="fresh-repo")
    empty = Repository.open(fresh.repository.path)
    with pytest.raises(RemoteError, match="is not a regular file \\(a link\\?\\); refusing it"):
        await fetch_from(fresh, empty, "offsite", manifest.id, EventLog().emit)
    assert empty.backup_ids() == []

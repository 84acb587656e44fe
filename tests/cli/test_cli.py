"""The ``lifeboat`` command as an operator runs it: exit codes, messages, JSON, Ctrl-C."""

from __future__ import annotations

import asyncio
import fcntl
import importlib
import json
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_run import LIFEBOAT, lifeboat, with_signals, write_config
from helpers import command_source, config_text, files_source, stored_backup
from sshd import SSHTestServer
from timing import DEADLINE, until

from engine.repo.manifest import Manifest
from engine.repo.repository import MANIFEST, Repository, VerifyRecord
from engine.repo.retention import delete_backup
from tui.cli.main import LazyGroup

MISTAKES = {
    "unknown key": (
        '[repository]\npath = "/r"\ncolour = "red"\n',
        "repository.colour: unknown key",
    ),
    "unknown host": (
        '[repository]\npath = "/r"\n[sources.a]\nkind = "command"\nhost = "db9"\nbackup = ["x"]\n',
        'sources.a.host: unknown host "db9"',
    ),
    "unknown kind": (
        '[repository]\npath = "/r"\n[hosts.h]\naddress = "a"\n'
        '[sources.a]\nkind = "ftp"\nhost = "h"\n',
        'sources.a.kind: unknown kind "ftp"',
    ),
    "relative path": ('[repository]\npath = "backups"\n', "repository.path: must be an absolute"),
    "zero port": (
        '[repository]\npath = "/r"\n[hosts.h]\naddress = "a"\nport = 0\n',
        "hosts.h.port: must be a positive number, got 0",
    ),
    "empty paths": (
        '[repository]\npath = "/r"\n[hosts.h]\naddress = "a"\n'
        '[sources.a]\nkind = "files"\nhost = "h"\npaths = []\n',
        "sources.a.paths: must not be empty",
    ),
    "empty backup": (
        '[repository]\npath = "/r"\n[hosts.h]\naddress = "a"\n'
        '[sources.a]\nkind = "command"\nhost = "h"\nbackup = []\n',
        "sources.a.backup: must not be empty",
    ),
    "environment label": (
        'environment = "prod\\nuction"\n[repository]\npath = "/r"\n',
        "environment: must be a short label",
    ),
    "duplicate name": (
        '[repository]\npath = "/r"\n[hosts.h]\naddress = "a"\n[hosts.h]\naddress = "b"\n',
        "Cannot declare [hosts.h] twice",
    ),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
async def test_config_mistakes_exit_2_with_one_line(mistake: str, tmp_path: Path) -> None:
    text, expected = MISTAKES[mistake]
    run = await lifeboat("config", "check", config=write_config(tmp_path / "c.toml", text))
    assert run.rc == 2
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert expected in lines[0]


async def test_several_config_mistakes_are_listed_at_once(tmp_path: Path) -> None:
    text = '[repository]\npath = "rel"\n[hosts.h]\naddress = "a"\nport = -1\nfoo = 1\n'
    run = await lifeboat("config", "check", config=write_config(tmp_path / "c.toml", text))
    assert run.rc == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 3
    assert any("repository.path" in line for line in lines)
    assert any("hosts.h.port" in line for line in lines)
    assert any("hosts.h.foo" in line for line in lines)


async def test_missing_config_says_where_it_looked(tmp_path: Path) -> None:
    run = await lifeboat("backup", "list", cwd=tmp_path)
    assert run.rc == 2
    assert "no config file found" in run.stderr
    assert "Traceback" not in run.stderr


async def test_usage_errors_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", f'[repository]\npath = "{tmp_path / "r"}"\n')
    assert (await lifeboat("backup", "verify", config=config)).rc == 2
    assert (await lifeboat("backup", "prune", "--keep", "0", config=config)).rc == 2
    shown = await lifeboat("backup", "show", "20260101T000000Z-abcd", config=config)
    assert shown.rc == 2
    assert "no backup" in shown.stderr


PRUNE_POLICY = """
[retention]
keep_last = 1
pin = ["pre-*"]
[schedules.nightly]
cron = "0 2 * * *"
timezone = "Europe/Berlin"
[schedules.nightly.retention]
keep_daily = 2
"""


def prune_repository(tmp_path: Path, policy: str) -> tuple[Path, list[Manifest]]:
    """A repository of six backups (manual, pinned, nightly) and a config with ``policy``."""
    repo = Repository.open(tmp_path / "repo")
    made = [
        stored_backup(repo, datetime(2026, 11, 20, 10, tzinfo=UTC), {"mongo": b"3"}),
        stored_backup(repo, datetime(2026, 11, 19, 10, tzinfo=UTC), {"mongo": b"2"}),
        stored_backup(repo, datetime(2026, 11, 1, 10, tzinfo=UTC), {"mongo": b"1"}, "pre-up"),
        *(
            stored_backup(repo, at, {"mongo": b"n"}, "nightly", trigger="schedule:nightly")
            for at in (
                datetime(2026, 11, 20, 1, tzinfo=UTC),
                datetime(2026, 11, 19, 23, 30, tzinfo=UTC),  # 00:30 on the 20th in Berlin
                datetime(2026, 11, 18, 1, tzinfo=UTC),
            )
        ),
    ]
    repo.record_verify(VerifyRecord(made[1].id, "2026-11-19T11:00:00Z", True))
    text = f"[repository]\npath = {json.dumps(str(repo.path))}\n{policy}"
    return write_config(tmp_path / "c.toml", text), made


async def test_backup_prune_dry_run_explains_every_backup(tmp_path: Path) -> None:
    config, made = prune_repository(tmp_path, PRUNE_POLICY)
    run = await lifeboat("backup", "prune", "--dry-run", config=config)
    assert run.rc == 0, run.stderr
    *lines, summary = run.stdout.splitlines()
    assert summary == "5 kept, would remove 1"
    expected = [
        (made[0], "keep", "last 1"),
        (made[3], "keep", "daily 2026-11-20"),
        (made[4], "remove", "no rule of schedule nightly keeps it"),
        (made[1], "keep", "newest verified backup of mongo"),
        (made[5], "keep", "daily 2026-11-18"),
        (made[2], "keep", "pinned (pre-*)"),
    ]
    assert [line.split()[:2] for line in lines] == [[verb, m.id] for m, verb, _ in expected]
    for line, (m, _, reason) in zip(lines, expected, strict=True):
        _, _, age, label, reasons = line.split(maxsplit=4)
        assert re.fullmatch(r"\d+[dhms]", age)
        assert (label, reasons) == (m.label or "-", reason)
        assert len(line) <= 80
    assert len(Repository.open(tmp_path / "repo").list_backups()[0]) == 6

    removed = await lifeboat("backup", "prune", config=config)
    assert removed.rc == 0, removed.stderr
    assert removed.stdout.splitlines()[-1] == "5 kept, 1 removed"
    left = {m.id for m in Repository.open(tmp_path / "repo").list_backups()[0]}
    assert left == {m.id for m in made} - {made[4].id}


async def test_backup_prune_json_and_keep_override(tmp_path: Path) -> None:
    config, made = prune_repository(tmp_path, PRUNE_POLICY)
    run = await lifeboat("backup", "prune", "--dry-run", "--json", "--keep", "1", config=config)
    assert run.rc == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["dry_run"] is True
    assert result["remove"] == [made[4].id, made[5].id]
    assert result["keep"] == [made[0].id, made[3].id, made[1].id, made[2].id]
    first = result["decisions"][0]
    assert first == {
        "id": made[0].id,
        "label": None,
        "created_at": "2026-11-20T10:00:00+00:00",
        "trigger": "manual",
        "keep": True,
        "reasons": ["last 1"],
    }
    assert result["decisions"][2]["reasons"] == [
        "not among the last 1 of schedule nightly (--keep)"
    ]


async def test_backup_prune_without_a_policy_exits_2(tmp_path: Path) -> None:
    config, _ = prune_repository(tmp_path, "")
    run = await lifeboat("backup", "prune", "--dry-run", config=config)
    assert run.rc == 2
    assert "no retention policy is configured" in run.stderr
    assert "--keep N" in run.stderr
    assert "Traceback" not in run.stderr


def damaged_repository(tmp_path: Path) -> tuple[Path, list[Manifest], list[str]]:
    """Two healthy backups (labels that look like markup), and, newer, three damaged entries:
    a manifest with a Latin-1 byte, one cut short, and a directory without any."""
    repo = Repository.open(tmp_path / "repo")
    healthy = [
        stored_backup(repo, datetime(2026, 11, day, tzinfo=UTC), {"db": b"%d" % day}, f"[/b]{day}")
        for day in (2, 1)
    ]
    latin1 = stored_backup(repo, datetime(2026, 11, 3, tzinfo=UTC), {"db": b"3"}, "latin1")
    path = repo.backup_dir(latin1.id) / MANIFEST
    path.write_bytes(path.read_bytes().replace(b'"tester"', b'"t\xe9ster"'))
    cut = stored_backup(repo, datetime(2026, 11, 4, tzinfo=UTC), {"db": b"4"}, "cut")
    (repo.backup_dir(cut.id) / MANIFEST).write_text('{"schema": 1, "id": ')
    incomplete = repo.backups_dir / "20261105T000000Z-dead"
    incomplete.mkdir()
    config = write_config(
        tmp_path / "c.toml", f"[repository]\npath = {json.dumps(str(repo.path))}\n"
    )
    return config, healthy, [incomplete.name, cut.id, latin1.id]


async def test_a_damaged_backup_is_named_everywhere_and_the_rest_stay_usable(
    tmp_path: Path,
) -> None:
    config, healthy, damaged = damaged_repository(tmp_path)
    listed, verified, shown, status = await asyncio.gather(
        lifeboat("backup", "list", config=config),
        lifeboat("backup", "verify", "--all", "--json", config=config),
        lifeboat("backup", "show", damaged[2], config=config),
        lifeboat("status", "--json", config=config),
    )
    for run in (listed, verified, shown, status):
        assert "Traceback" not in run.stderr
    assert listed.rc == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == [m.id for m in healthy]
    assert "[/b]2" in listed.stdout
    warnings = [line for line in listed.stderr.splitlines() if "is damaged" in line]
    assert [line.split()[3] for line in warnings] == damaged

    assert verified.rc == 1
    results = json.loads(verified.stdout.splitlines()[-1])
    assert [(r["id"], r["ok"]) for r in results] == [
        *((backup_id, False) for backup_id in damaged),
        *((m.id, True) for m in healthy),
    ]
    reasons = [r["problems"][0]["problem"] for r in results[:3]]
    assert "it has no manifest.json (incomplete)" in reasons[0]
    assert "manifest.json: not valid JSON" in reasons[1]
    assert "manifest.json: not UTF-8 text (byte 0xe9" in reasons[2]

    assert shown.rc == 1
    assert f"backup {damaged[2]} is damaged: manifest.json: not UTF-8" in shown.stderr
    assert status.rc == 1
    report = json.loads(status.stdout)
    assert [line.split()[1] for line in report["damaged"]] == damaged
    assert report["problems"] == report["damaged"]

    pruned = await lifeboat("backup", "prune", "--keep", "1", config=config)
    assert pruned.rc == 0, pruned.stderr
    assert pruned.stdout.splitlines()[-1] == "1 kept, 1 removed"
    deleted = await lifeboat("backup", "delete", damaged[2], "--confirm", damaged[2], config=config)
    assert deleted.rc == 0, deleted.stderr
    assert deleted.stdout.strip() == f"deleted damaged backup {damaged[2]}"
    left = Repository.open(tmp_path / "repo")
    assert left.backup_ids() == [*damaged[:2], healthy[0].id]


WRITE_SYSCALL = {"x86_64": "1", "aarch64": "64"}.get(os.uname().machine, "")


def blocked_writing(pid: int) -> bool:
    """Whether the process is asleep writing to its stdout (a full pipe), by its kernel wait
    channel or, where that is hidden, by the system call it is in."""
    proc = Path(f"/proc/{pid}")
    call = (proc / "syscall").read_text().split()
    return "pipe_write" in (proc / "wchan").read_text() or call[:2] == [WRITE_SYSCALL, "0x1"]


async def test_verify_all_skips_a_backup_deleted_while_it_runs(tmp_path: Path) -> None:
    repo = Repository.open(tmp_path / "repo")
    older = stored_backup(repo, datetime(2026, 11, 1, tzinfo=UTC), {"db": b"1"})
    newer = stored_backup(repo, datetime(2026, 11, 2, tzinfo=UTC), {"db": b"2"})
    config = write_config(
        tmp_path / "c.toml", f"[repository]\npath = {json.dumps(str(repo.path))}\n"
    )
    # A full pipe for stdout: lifeboat blocks writing its first event (the newer backup's
    # start), when it has already listed every backup, and waits there for the test.
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    os.write(write_end, b"\n" * fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ))
    proc = await asyncio.create_subprocess_exec(
        LIFEBOAT, "--config", str(config), "backup", "verify", "--all", "--json",
        stdout=write_end, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, "LIFEBOAT_CONFIG": ""},
    )  # fmt: skip
    os.close(write_end)
    with os.fdopen(read_end, "rb") as stdout:
        await until(lambda: blocked_writing(proc.pid), "lifeboat blocked on its first event")
        delete_backup(repo, older.id, "pruner")
        out = await asyncio.to_thread(stdout.read)
    err = await proc.stderr.read() if proc.stderr else b""
    assert await proc.wait() == 0, err.decode()
    results = json.loads(out.decode().splitlines()[-1])
    assert [(r["id"], r["ok"]) for r in results] == [(newer.id, True)]
    assert f"{older.id} was deleted meanwhile; skipped" in err.decode()
    assert older.id not in repo.verifications()


async def test_backup_list_verify_restore_delete(ssh_server: SSHTestServer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "app").mkdir(parents=True)
    (data / "app" / "settings.toml").write_text("a = 1\n")
    sources = files_source("cfg", data / "app") + command_source("db", ["echo", "dump"])
    config = write_config(
        tmp_path / "lifeboat.toml", config_text(ssh_server, tmp_path / "repo", sources)
    )

    created = await lifeboat("backup", "create", "--label", "first", "--json", config=config)
    assert created.rc == 0, created.stderr
    *events, manifest = created.json_lines()
    assert events[0]["event"] == "JobStarted"
    assert events[-1] == {
        "event": "JobFinished",
        "job_id": manifest["id"],
        "ok": True,
        "cancelled": False,
        "manifest_id": manifest["id"],
        "errors": [],
        "kept_at": None,
    }
    backup_id = str(manifest["id"])
    assert manifest["label"] == "first"

    listed = await lifeboat("backup", "list", "--json", config=config)
    assert [m["id"] for m in json.loads(listed.stdout)] == [backup_id]
    shown = await lifeboat("backup", "show", backup_id, config=config)
    assert "cfg (files-tar)" in shown.stdout
    assert "db (command-output)" in shown.stdout
    as_json = await lifeboat("backup", "show", backup_id, "--json", config=config)
    stored = (tmp_path / "repo" / "backups" / backup_id / "manifest.json").read_text()
    assert json.loads(as_json.stdout) == json.loads(stored)  # what the file holds, no more

    verified = await lifeboat("backup", "verify", backup_id, config=config)
    assert verified.rc == 0
    assert f"{backup_id}: OK (2 file(s))" in verified.stdout

    target = tmp_path / "target"
    dry = await lifeboat(
        "restore",
        backup_id,
        "--scope",
        "cfg",
        "--target-dir",
        str(target),
        "--dry-run",
        config=config,
    )
    assert dry.rc == 0, dry.stderr
    assert not target.exists()
    unconfirmed = await lifeboat(
        "restore",
        backup_id,
        "--scope",
        "cfg",
        "--target-dir",
        str(target),
        "--apply",
        "--confirm",
        "wrong",
        config=config,
    )
    assert unconfirmed.rc == 2
    assert "--confirm h1" in unconfirmed.stderr
    applied = await lifeboat(
        "restore",
        backup_id,
        "--scope",
        "cfg",
        "--target-dir",
        str(target),
        "--apply",
        "--confirm",
        "h1",
        config=config,
    )
    assert applied.rc == 0, applied.stderr
    restored = target / data.relative_to("/") / "app" / "settings.toml"
    assert restored.read_text() == "a = 1\n"

    db_file = tmp_path / "repo" / "backups" / backup_id / "db.out"
    db_file.write_bytes(b"dumq\n")
    broken = await lifeboat("backup", "verify", "--all", config=config)
    assert broken.rc == 1
    assert "db.out (db): sha256 mismatch" in broken.stdout
    refused = await lifeboat("restore", backup_id, "--scope", "db", "--dry-run", config=config)
    assert refused.rc == 1
    assert "restore refused" in refused.stderr

    assert (await lifeboat("backup", "delete", backup_id, config=config)).rc == 2
    deleted = await lifeboat("backup", "delete", backup_id, "--confirm", backup_id, config=config)
    assert deleted.rc == 0
    assert json.loads((await lifeboat("backup", "list", "--json", config=config)).stdout) == []
    audit = [
        json.loads(line) for line in (tmp_path / "repo" / "audit.jsonl").read_text().splitlines()
    ]
    assert [a["action"] for a in audit] == [
        "restore.validate",
        "restore.confirm",
        "restore.safety-backup",  # nothing to save: the target dir was empty
        "restore.start",
        "restore.finish",
        "backup.delete",
    ]
    assert audit[2]["result"] == "nothing to save"


async def test_ctrl_c_mid_backup_leaves_nothing(ssh_server: SSHTestServer, tmp_path: Path) -> None:
    sources = command_source("endless", ["cat", "/dev/zero"])
    config = write_config(tmp_path / "c.toml", config_text(ssh_server, tmp_path / "repo", sources))
    argv = [LIFEBOAT, "--config", str(config), "backup", "create", "--json"]
    proc = await asyncio.create_subprocess_exec(
        *with_signals(argv), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    try:
        while True:  # wait until bytes are flowing
            line = await asyncio.wait_for(proc.stdout.readline(), DEADLINE)
            event = json.loads(line)
            if event["event"] == "Progress" and event["done"] > 1_000_000:
                break
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    finally:  # a failure here must not leave the endless backup running into later tests
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
    assert proc.returncode == 130
    assert "interrupted" in err.decode()
    repo = tmp_path / "repo"
    assert list((repo / "backups").iterdir()) == []
    assert list((repo / ".staging").iterdir()) == []
    assert not (repo / ".failed").exists()


WARNING = re.compile(r"\w*Warning\b")


async def test_help_prints_nothing_on_stderr() -> None:
    """No third-party warning reaches an operator (asyncssh's DSA deprecation, say)."""
    run = await lifeboat("--help")
    assert run.rc == 0
    assert "backup" in run.stdout
    assert run.stderr == ""


def test_help_lists_each_lazy_command_by_its_own_first_line_without_importing_it() -> None:
    """``lifeboat --help`` imports no command module (start-up, issue 20): it shows the first
    line of each docstring from LazyGroup.LAZY, which must be that command's own."""
    code = (
        "import sys; sys.argv = ['lifeboat', '--help']\n"
        "from tui.entry import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('asyncssh', 'pydantic', "
        "'tui.cli.backup', 'textual'))), file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip() == "[]"
    for name, (target, summary) in LazyGroup.LAZY.items():
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert (command.help or "").splitlines()[0] == summary, name
        assert name in done.stdout


async def test_demo_makes_a_real_backup_and_verifies_it(tmp_path: Path) -> None:
    run = await lifeboat("demo", "--no-tui", "--dir", str(tmp_path / "sandbox"))
    assert run.rc == 0, run.stderr
    assert not WARNING.search(run.stderr), run.stderr  # stderr carries progress, no warning
    assert "verify " in run.stdout
    assert ": OK" in run.stdout
    config = tmp_path / "sandbox" / "lifeboat.toml"
    listed = await lifeboat("backup", "list", "--json", config=config)
    (manifest,) = json.loads(listed.stdout)
    # nx-27017 is a test extra; make test installs etcd, redis and postgresql
    expected = {
        "app-config",
        "app-db",
        "app-logs",
        "demo-mongo",
        "demo-etcd",
        "demo-redis",
        "demo-pg",
    }
    assert {a["source"] for a in manifest["artifacts"]} == expected
    assert (await lifeboat("backup", "verify", "--all", config=config)).rc == 0


async def test_console_refuses_without_a_terminal(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", f'[repository]\npath = "{tmp_path / "r"}"\n')
    run = await lifeboat(config=config)
    assert run.rc == 2
    assert "ssh -t" in run.stderr
    assert "Traceback" not in run.stderr

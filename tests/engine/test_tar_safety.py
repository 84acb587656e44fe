"""Hostile files archives with matching checksums: verify and the validator refuse them by
member and reason before anything is written; what a files backup really makes still passes."""

from __future__ import annotations

from pathlib import Path

import pytest
from crafted_tar import Entry, store_gzip
from helpers import EventLog, config_text, files_source, tree_snapshot
from sshd import SSHTestServer

from engine.config.load import parse_config
from engine.errors import ConfigError
from engine.jobs import BackupRequest, run_backup, run_verify
from engine.repo.repository import Repository
from engine.repo.verify import VerifyPolicy, verify_backup
from engine.restore.run import RestoreRefusedError, RestoreRequest, run_restore
from engine.sources import RestoreOptions

APP = [Entry("etc/app", "dir", mode=0o755)]  # GNU tar of /etc/app: no entry for etc
ROOT = ("/etc/app",)
STRICT = VerifyPolicy()


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.open(tmp_path / "repo")


def problems(
    repo: Repository,
    entries: list[Entry],
    paths: tuple[str, ...] = ROOT,
    policy: VerifyPolicy = STRICT,
) -> list[str]:
    manifest = store_gzip(repo, entries, paths)
    result = verify_backup(repo.backup_dir(manifest.id), manifest, policy=policy)
    return [p.problem for p in result.problems]


def refused(reason: str) -> list[str]:
    return [f"unsafe archive: {reason}; refusing it"]


# What the issue found: each of these passed verify and the validator.


def test_a_file_written_through_a_symlink_to_outside_is_refused(repo: Repository) -> None:
    entries = [
        *APP,
        Entry("etc/app/a.toml", data=b"a"),
        Entry("etc/app/out", "symlink", target="/tmp/outside"),
        Entry("etc/app/out/pwned", data=b"pwned"),
    ]
    assert problems(repo, entries) == refused(
        "'etc/app/out/pwned' goes through the symlink 'etc/app/out'"
    )


def test_a_character_device_is_refused(repo: Repository) -> None:
    entries = [*APP, Entry("etc/app/null", "chr", mode=0o666, device=(1, 1))]
    assert problems(repo, entries) == refused("character device 'etc/app/null' (1, 1)")


def test_a_setuid_file_is_refused_unless_the_source_allows_it(repo: Repository) -> None:
    entries = [*APP, Entry("etc/app/helper", mode=0o4755, data=b"#!/bin/sh\n")]
    assert problems(repo, entries) == refused(
        "setuid file 'etc/app/helper' (mode 4755); if this host may restore such files, set "
        "sources.cfg.allow_setid = true"
    )
    assert problems(repo, entries, policy=VerifyPolicy(frozenset({"cfg"}))) == []
    assert problems(repo, entries, policy=VerifyPolicy(frozenset({"other"}))) != []


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (
            Entry("etc/app/sda", "blk", mode=0o660, device=(8, 0)),
            "block device 'etc/app/sda' (8, 0)",
        ),
        (Entry("etc/app/pipe", "fifo"), "FIFO 'etc/app/pipe'"),
        (
            Entry("etc/app/g", mode=0o2755),
            "setgid file 'etc/app/g' (mode 2755); if this host may restore such files, set "
            "sources.cfg.allow_setid = true",
        ),
        (
            Entry("etc/app/keys", "symlink", target="/root/.ssh"),
            "symlink 'etc/app/keys' -> '/root/.ssh' points outside the backed-up paths (/etc/app)",
        ),
        (
            Entry("etc/app/up", "symlink", target="../../../../x"),
            "symlink 'etc/app/up' -> '../../../../x' climbs out of the restore root",
        ),
        (
            Entry("etc/app/sudo", "symlink", target="../sudoers.d/x"),
            "symlink 'etc/app/sudo' -> '../sudoers.d/x' points outside the backed-up paths "
            "(/etc/app)",
        ),
        (
            Entry("etc/app/h", "hardlink", target="etc/shadow"),
            "hard link 'etc/app/h' -> 'etc/shadow' is not to an earlier file of the archive",
        ),
        (
            Entry("etc/app/h", "hardlink", target="/etc/shadow"),
            "hard link 'etc/app/h': absolute member path '/etc/shadow'",
        ),
        (Entry("etc/shadow", data=b"x"), "'etc/shadow' is outside the backed-up paths (/etc/app)"),
        (Entry("etc", "dir", mode=0o777), "'etc' is outside the backed-up paths (/etc/app)"),
        (Entry(".", "dir", mode=0o777), "'.' is outside the backed-up paths (/etc/app)"),
        (
            Entry("etc/app/new/x", data=b"x"),
            "'etc/app/new/x' comes before its directory 'etc/app/new' (tar would follow whatever "
            "is at that path on the target)",
        ),
        (Entry("/etc/app/x", data=b"x"), "absolute member path '/etc/app/x'"),
        (Entry("etc/app/../../x", data=b"x"), "member path 'etc/app/../../x' climbs out with '..'"),
        (Entry("etc/app/vol", "volume"), "'etc/app/vol' is of an unsupported type b'V'"),
        (
            Entry("etc/app/" + "d/" * 2100 + "x"),
            "member name 'etc/app/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/'... is "
            "longer than 4096 characters",
        ),
    ],
    ids=lambda value: value.name if isinstance(value, Entry) else "",
)
def test_unsafe_members_are_named_with_the_reason(
    repo: Repository, entry: Entry, reason: str
) -> None:
    assert problems(repo, [*APP, Entry("etc/app/ok", data=b"ok"), entry]) == refused(reason)


def test_a_symlink_escape_chained_through_another_symlink_is_refused(repo: Repository) -> None:
    # Lexically p/s -> d/../../x is "x", inside; but p/d is the root, so p/s climbs out of it.
    entries = [
        Entry(".", "dir", mode=0o755),
        Entry("p", "dir", mode=0o755),
        Entry("p/s", "symlink", target="d/../../x"),
        Entry("p/d", "symlink", target=".."),
    ]
    assert problems(repo, entries, ("/",)) == refused(
        "symlink 'p/s' -> 'd/../../x' climbs out of the restore root"
    )
    loop = [
        *APP,
        Entry("etc/app/a", "symlink", target="b"),
        Entry("etc/app/b", "symlink", target="a"),
    ]
    assert problems(repo, loop) == refused(
        "symlink 'etc/app/a' -> 'b' goes through too many symlinks (a loop?)"
    )


def test_what_a_files_backup_makes_passes(repo: Repository) -> None:
    entries = [
        Entry("etc/nginx", "dir", mode=0o755),
        Entry("etc/nginx/sites-available", "dir", mode=0o755),
        Entry("etc/nginx/sites-available/app", data=b"server {}"),
        Entry("etc/nginx/sites-enabled", "dir", mode=0o755),
        # absolute, but into what was backed up (Debian's convention for sites-enabled)
        Entry("etc/nginx/sites-enabled/app", "symlink", target="/etc/nginx/sites-available/app"),
        Entry("etc/nginx/current", "symlink", target="sites-available"),
        Entry("etc/nginx/dangling", "symlink", target="sites-available/gone"),
        Entry("etc/nginx/again", "hardlink", target="etc/nginx/sites-available/app"),
        Entry("etc/nginx/shared", "dir", mode=0o2775),  # a setgid directory is fine
        Entry("etc/nginx/key.pem", mode=0o600, data=b"k"),
    ]
    assert problems(repo, entries, ("/etc/nginx",)) == []


def test_a_manifest_that_does_not_say_what_the_archive_holds_is_refused(
    repo: Repository,
) -> None:
    entries = [*APP, Entry("etc/app/a", data=b"a")]
    assert problems(repo, entries, ()) == [
        "the manifest does not say which paths this archive holds"
    ]
    assert problems(repo, entries, ("etc/app",)) == [
        "the manifest's path 'etc/app' is not an absolute path"
    ]


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (
            'kind = "files"\npaths = ["/etc/app"]\nallow_setid = "yes"\n',
            'sources.cfg.allow_setid: must be true or false, got "yes"; e.g. allow_setid = true',
        ),
        (
            'kind = "command"\nbackup = ["pg_dump"]\nallow_setid = true\n',
            "sources.cfg.allow_setid: unknown key; valid keys: drill, kind, host, backup, restore",
        ),
    ],
)
def test_allow_setid_is_a_boolean_of_files_sources(table: str, problem: str) -> None:
    text = '[repository]\npath = "/tmp/r"\n[hosts.h1]\naddress = "a"\n[sources.cfg]\nhost = "h1"\n'
    with pytest.raises(ConfigError) as info:
        parse_config(text + table)
    assert info.value.problems == [problem]
    assert (
        parse_config(text + 'kind = "files"\npaths = ["/x"]\n').sources["cfg"].allow_setid is False
    )


# The same archives through the validator and a restore against a real SSH server.


async def test_restore_refuses_a_hostile_archive_before_writing_anything(
    ssh_server: SSHTestServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "etc" / "app").mkdir(parents=True)
    (data / "etc" / "app" / "app.toml").write_text("listen = 8080\n")
    config = parse_config(
        config_text(ssh_server, tmp_path / "repo", files_source("cfg", data / "etc" / "app"))
    )
    repo = Repository.open(config.repository.path)
    good = await run_backup(config, repo, BackupRequest(), EventLog().emit)
    assert (await run_verify(repo, good.id, EventLog().emit, config=config)).ok
    outside = tmp_path / "outside"
    outside.mkdir()
    app = str(data / "etc" / "app").lstrip("/")
    hostile = store_gzip(
        repo,
        [
            Entry(app, "dir", mode=0o755),
            Entry(f"{app}/first.toml", data=b"written before the escape"),
            Entry(f"{app}/out", "symlink", target=str(outside)),
            Entry(f"{app}/out/pwned", data=b"pwned"),
            Entry(f"{app}/null", "chr", mode=0o666, device=(1, 1)),
        ],
        [str(data / "etc" / "app")],
    )
    before = tree_snapshot(tmp_path / "data")
    target = tmp_path / "target"
    for options in (RestoreOptions(), RestoreOptions(target_dir=target)):
        request = RestoreRequest(hostile.id, options=options, apply=True, confirm=("h1",))
        with pytest.raises(RestoreRefusedError) as info:
            await run_restore(config, repo, request, EventLog().emit)
        assert f"'{app}/out/pwned' goes through the symlink '{app}/out'" in str(info.value)
        assert tree_snapshot(tmp_path / "data") == before
        assert not (data / "etc" / "app" / "out").exists()
        assert list(outside.iterdir()) == []
        assert not target.exists()
    assert {m.id for m in repo.list_backups()[0]} == {good.id, hostile.id}

"""Fuzz: random files archives, safe members mixed with hostile ones, checksums all correct.

Each archive is a random tree as GNU tar writes it (directories first, links to what is
inside, long and odd names, setgid and sticky directories) with 0-3 attacks inserted at random
places: symlinks out (absolute, climbing, chained through a directory symlink), files written
through a symlink, hard links out, devices, FIFOs, setuid/setgid files, absolute, ``..`` and
over-long names, members outside the backed-up path or before their directory. Every attack
member's name holds ``evil-``, and no safe one's does: the oracle is the generator's label.

Seeded and bounded (a few seconds). Verify must refuse every archive with an attack, naming an
attack member, and accept every other; the validator must say the same; ``restore --apply``
against the system sshd writes nothing for a sample; and GNU tar's own defences, with the
options a restore uses, keep a sample of in-archive escapes inside the target even without
the check.
"""

from __future__ import annotations

import contextlib
import gzip
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import pytest
import zstandard
from crafted_tar import Entry, store_gzip, store_many, tar_bytes
from helpers import EventLog, config_text, files_source
from sshd import SSHTestServer

from engine.config.load import parse_config
from engine.config.model import Config
from engine.errors import RemoteCommandError
from engine.remote.ssh import connect
from engine.repo.manifest import Manifest
from engine.repo.repository import Repository
from engine.repo.tar_safety import MAX_NAME
from engine.repo.verify import VerifyPolicy, verify_backup
from engine.restore.run import RestoreRefusedError, RestoreRequest, run_restore
from engine.sources import RestoreOptions, SourceContext, source_from

ROOT = "srv/app"  # the backed-up path /srv/app, as a member name
ARCHIVES = 240
SEED = 20261207
OUTSIDE = "/tmp/lifeboat-fuzz-outside"  # what hostile links aim at, when not a test's own dir
STRICT = VerifyPolicy()


@dataclass
class Archive:
    entries: list[Entry]
    attacks: list[str] = field(default_factory=list)  # tag of each attack inserted
    only_setid: bool = False  # every attack is a setuid/setgid file (allow_setid accepts it)


def odd_name(rng: random.Random) -> str:
    """One path component, sometimes long or unusual, never '.', '..' or holding 'evil'."""
    kind = rng.random()
    if kind < 0.1:
        return "l" * rng.randint(100, 250)  # long: GNU long-name records
    if kind < 0.2:
        return rng.choice(["with space", "ünïcödé", "new\nline", "-dash", "tab\tname", "q'uote"])
    return "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789_.", k=rng.randint(1, 12)))


def safe_tree(rng: random.Random) -> tuple[list[Entry], list[str]]:
    """A tree a files backup could make, and its real directories."""
    entries = [Entry(ROOT, "dir", mode=0o755)]
    dirs, files, used = [ROOT], [], {ROOT}
    for _ in range(rng.randint(2, 30)):
        parent = rng.choice(dirs)
        component = odd_name(rng)
        name = f"{parent}/{component}"
        if name in used or component in (".", "..") or len(name) > MAX_NAME:
            continue
        used.add(name)
        kind = rng.random()
        if kind < 0.3:
            entries.append(Entry(name, "dir", mode=rng.choice([0o755, 0o700, 0o2775, 0o1777])))
            dirs.append(name)
        elif kind < 0.75 or not files:
            mode = rng.choice([0o644, 0o600, 0o755, 0o1755, 0o444])
            entries.append(Entry(name, mode=mode, data=rng.randbytes(rng.randint(0, 300))))
            files.append(name)
        elif kind < 0.9:
            target = rng.choice(dirs + files)
            relative = str(PurePosixPath(_relpath(target, parent)))
            entries.append(Entry(name, "symlink", target=rng.choice([relative, "/" + target])))
        else:
            entries.append(Entry(name, "hardlink", target=rng.choice(files)))
    return entries, dirs


def _relpath(target: str, start: str) -> str:
    t, s = PurePosixPath(target).parts, PurePosixPath(start).parts
    common = next(
        (i for i, (a, b) in enumerate(zip(t, s, strict=False)) if a != b), min(len(t), len(s))
    )
    return "/".join([".."] * (len(s) - common) + list(t[common:])) or "."


Attack = Callable[[random.Random, str, str], list[Entry]]


def _up(parent: str, extra: int) -> str:
    return "../" * (len(PurePosixPath(parent).parts) + extra)


ATTACKS: dict[str, Attack] = {
    "abs-symlink-out": lambda rng, p, tag: [
        Entry(f"{p}/{tag}", "symlink", target=rng.choice(["/root/.ssh", "/etc", OUTSIDE, "/"]))
    ],
    "climbing-symlink": lambda rng, p, tag: [
        Entry(f"{p}/{tag}", "symlink", target=_up(p, rng.randint(1, 3)) + rng.choice(["x", ""]))
    ],
    "sibling-symlink": lambda rng, p, tag: [
        Entry(f"{p}/{tag}", "symlink", target=_up(p, -1) + "other/x")
    ],
    "chained-symlink": lambda rng, p, tag: [
        Entry(f"{p}/{tag}-dir", "symlink", target="."),
        Entry(f"{p}/{tag}-via", "symlink", target=f"{tag}-dir/{_up(p, 1)}x"),
    ],
    "write-through-symlink": lambda rng, p, tag: [
        Entry(f"{p}/{tag}", "symlink", target=rng.choice([OUTSIDE, ".", "/" + ROOT])),
        Entry(f"{p}/{tag}/pwned", data=b"pwned"),
    ],
    "hard-link-out": lambda rng, p, tag: [
        Entry(
            f"{p}/{tag}",
            "hardlink",
            target=rng.choice(["etc/shadow", "/etc/shadow", "../etc/shadow", f"{ROOT}/no-{tag}"]),
        )
    ],
    "device": lambda rng, p, tag: [
        Entry(
            f"{p}/{tag}",
            rng.choice(["chr", "blk"]),
            mode=0o666,
            device=(rng.randint(0, 255), rng.randint(0, 255)),
        )
    ],
    "fifo": lambda rng, p, tag: [Entry(f"{p}/{tag}", "fifo", mode=0o666)],
    "setid": lambda rng, p, tag: [
        Entry(f"{p}/{tag}", mode=0o755 | rng.choice([0o4000, 0o2000, 0o6000]), data=b"#!")
    ],
    "absolute-name": lambda rng, p, tag: [
        Entry(rng.choice([f"/{p}/{tag}", f"/{tag}", "/" + "l" * 200 + f"/{tag}"]), data=b"x")
    ],
    "dotdot-name": lambda rng, p, tag: [
        Entry(rng.choice([f"{p}/../{tag}", f"../{tag}", f"{p}/x/../../../{tag}"]), data=b"x")
    ],
    "outside-path": lambda rng, p, tag: [
        Entry(rng.choice([f"srv/{tag}", tag, f"etc/{tag}"]), data=b"x")
    ],
    "before-directory": lambda rng, p, tag: [Entry(f"{p}/{tag}-new/x", data=b"x")],
    "too-long-name": lambda rng, p, tag: [Entry(f"{ROOT}/{tag}/" + "d/" * 2100 + "x", data=b"x")],
}


def hostile(rng: random.Random, index: int) -> Archive:
    entries, dirs = safe_tree(rng)
    archive = Archive(entries)
    kinds = [rng.choice(list(ATTACKS)) for _ in range(rng.choice([0, 1, 1, 2, 3]))]
    for number, kind in enumerate(kinds):
        tag = f"evil-{index}-{number}"
        at = rng.randint(1, len(archive.entries))
        # the attack's parent must exist before it: a directory made before position `at`
        made = [e.name for e in archive.entries[:at] if e.kind == "dir" and e.name in dirs]
        archive.entries[at:at] = ATTACKS[kind](rng, rng.choice(made), tag)
        archive.attacks.append(tag)
    archive.only_setid = bool(kinds) and set(kinds) == {"setid"}
    return archive


def archives() -> list[Archive]:
    rng = random.Random(SEED)
    return [hostile(rng, index) for index in range(ARCHIVES)]


def store_all(repo: Repository, batch: list[Archive]) -> Manifest:
    """Every archive as one source (``a<i>``) of a single backup, gzip and zstd in turn."""
    stored = {}
    for index, archive in enumerate(batch):
        raw = tar_bytes(archive.entries)
        if index % 2:
            stored[f"a{index}"] = (f"a{index}.tar.zst", zstandard.compress(raw, 1), "zstd")
        else:
            stored[f"a{index}"] = (f"a{index}.tar.gz", gzip.compress(raw, 1), "gzip")
    return store_many(repo, stored, ["/" + ROOT])


def judge(batch: list[Archive], problems: dict[str, list[str]], setid_allowed: bool) -> list[str]:
    """What is wrong with the verdicts: an attack not refused, or refused without naming one
    of its members, or a safe archive refused."""
    wrong = []
    for index, archive in enumerate(batch):
        texts = problems.get(f"a{index}", [])
        if archive.attacks and not (setid_allowed and archive.only_setid):
            named = len(texts) == 1 and any(
                f"-{tag}" in texts[0] or tag in texts[0] for tag in archive.attacks
            )
            if not named or "unsafe archive: " not in texts[0]:
                wrong.append(f"a{index} with {archive.attacks}: {texts}")
        elif texts:
            wrong.append(f"a{index} is safe but was refused: {texts}")
    return wrong


def test_verify_refuses_every_attack_by_name_and_accepts_every_safe_tree(
    tmp_path: Path,
) -> None:
    repo = Repository.open(tmp_path / "repo")
    batch = archives()
    manifest = store_all(repo, batch)
    members = sum(len(archive.entries) for archive in batch)
    wrong: list[str] = []
    for policy in (STRICT, VerifyPolicy(frozenset(manifest.scope))):
        result = verify_backup(repo.backup_dir(manifest.id), manifest, policy=policy)
        assert result.files_checked == len(batch)
        problems: dict[str, list[str]] = {}
        for problem in result.problems:
            problems.setdefault(problem.source, []).append(problem.problem)
        wrong += judge(batch, problems, setid_allowed=bool(policy.setid_sources))
    hostile_count = sum(1 for archive in batch if archive.attacks)
    print(f"tar fuzz: {len(batch)} archives ({members} members, {hostile_count} with attacks) "
          f"x 2 policies, 0 tracebacks, {len(wrong)} wrong verdicts")  # fmt: skip
    assert wrong == []
    assert ARCHIVES // 2 < hostile_count < ARCHIVES


def fuzz_config(server: SSHTestServer | None, tmp_path: Path, sources: list[str]) -> Config:
    """A files source per name, all of /srv/app on h1: the system sshd, or (None) a host that
    refuses connections at once, for the validator's checks that need no host."""
    tables = "".join(files_source(name, Path("/" + ROOT)) for name in sources)
    if server is None:
        text = (
            f'[repository]\npath = "{tmp_path / "repo"}"\n'
            '[hosts.h1]\naddress = "127.0.0.1"\nport = 9\n' + tables
        )
        return parse_config(text)
    return parse_config(config_text(server, tmp_path / "repo", tables))


async def test_the_validator_refuses_what_verify_refuses(tmp_path: Path) -> None:
    batch = archives()
    repo = Repository.open(tmp_path / "repo")
    manifest = store_all(repo, batch)
    config = fuzz_config(None, tmp_path, list(manifest.scope))
    request = RestoreRequest(manifest.id, options=RestoreOptions(target_dir=tmp_path / "t"))
    with pytest.raises(RestoreRefusedError) as info:
        await run_restore(config, repo, request, EventLog().emit)
    problems: dict[str, list[str]] = {}
    for check in info.value.report.failed:
        if check.name == "checksums":
            source = check.detail.split(" (", 1)[1].split(")", 1)[0]
            problems.setdefault(source, []).append(check.detail)
    assert judge(batch, problems, setid_allowed=False) == []
    assert not (tmp_path / "t").exists()


def snapshot(root: Path) -> set[str]:
    """Every path under ``root`` (symlinks not followed)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


async def test_restore_apply_writes_nothing_for_hostile_archives_and_restores_safe_ones(
    openssh_server: SSHTestServer, tmp_path: Path
) -> None:
    batch = archives()
    attacked = [a for a in batch if a.attacks][:3]
    safe = [a for a in batch if not a.attacks][:2]
    world = tmp_path / "world"  # where targets go; nothing else in it may change
    world.mkdir()
    repo = Repository.open(tmp_path / "repo")
    mixed = store_all(repo, [*attacked, safe[0]])  # one attack refuses the whole restore
    clean = store_all(repo, safe)
    config = fuzz_config(openssh_server, tmp_path, list(mixed.scope))
    escapes = 0
    for manifest in (mixed, clean):
        target = world / f"target-{manifest.id}"
        before = snapshot(world)
        request = RestoreRequest(
            manifest.id, options=RestoreOptions(target_dir=target), apply=True, confirm=("h1",)
        )
        if manifest is mixed:
            with pytest.raises(RestoreRefusedError):
                await run_restore(config, repo, request, EventLog().emit)
            assert not target.exists()
        else:
            assert (await run_restore(config, repo, request, EventLog().emit)).applied
            restored = {str(p.relative_to(target)) for p in target.rglob("*")}
            names = {entry.name for archive in safe for entry in archive.entries}
            assert restored == names | {"srv"}
        escapes += len({p for p in snapshot(world) - before if not p.startswith(target.name)})
    assert escapes == 0
    assert not Path(OUTSIDE).exists()


SECOND_LINE = ["write-through-symlink", "climbing-symlink", "absolute-name", "dotdot-name",
               "outside-path", "hard-link-out"]  # fmt: skip


async def test_without_the_check_tar_still_keeps_in_archive_escapes_inside_the_path(
    openssh_server: SSHTestServer, tmp_path: Path
) -> None:
    """The second line: a restore's own extraction, fed archives the check would refuse,
    writes nothing outside the target's backed-up path."""
    world = tmp_path / "world"
    outside = world / "outside"
    outside.mkdir(parents=True)
    repo = Repository.open(tmp_path / "repo")
    config = fuzz_config(openssh_server, tmp_path, ["cfg"])
    host = await connect("h1", config.hosts["h1"])
    stray: dict[str, set[str]] = {}
    try:
        for kind in SECOND_LINE:
            rng = random.Random(f"{SEED}-{kind}")
            entries, _dirs = safe_tree(rng)
            attack = [
                replace(e, target=str(outside) if e.target == OUTSIDE else e.target)
                for e in ATTACKS[kind](rng, ROOT, "evil")
            ]
            manifest = store_gzip(
                repo, [*entries, *attack, Entry(f"{ROOT}/after", data=b"a")], ["/" + ROOT]
            )
            (artifact,) = manifest.artifacts
            before = snapshot(world)
            ctx = SourceContext("cfg", host, repo.backup_dir(manifest.id), EventLog().emit)
            with contextlib.suppress(RemoteCommandError):  # tar refused a member, and said so
                await source_from("cfg", config.sources["cfg"]).restore(
                    artifact, ctx, RestoreOptions(target_dir=world / kind)
                )
            inside = (kind, f"{kind}/srv", f"{kind}/{ROOT}")
            stray[kind] = {
                p
                for p in snapshot(world) - before
                if not p.startswith(inside[2]) and p not in inside
            }
    finally:
        await host.close()
    assert stray == {kind: set() for kind in SECOND_LINE}
    assert list(outside.iterdir()) == []

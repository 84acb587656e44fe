"""A hostile repository, probed the way restic's and etcd's maintainers probe theirs.

Random byte flips and truncations of every manifest and of each artifact kind the repository
stores (files tar.gz and tar.zst, mongo.archive.gz, etcd snapshot, command output), and crafted
manifests and entries: paths out of the backup, links, FIFOs, empty lists, wrong types,
unknown schemas, huge and deep JSON, and Mongo prelude metadata that is no number.

Each input must end in a named reason (a ManifestError naming the backup, or a verify problem
naming the file), never in another exception; accepted input must carry the very files and
bytes the backup was made with; the healthy backups stay listed and verifiable; and nothing
outside the backup directories is ever opened (inotify watches the decoys outside). Seeded
and bounded: a few seconds, then one pass of the real CLI over what is left.
"""

from __future__ import annotations

import asyncio
import ctypes
import gzip
import hashlib
import io
import json
import os
import random
import struct
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bson
import zstandard
from cli_run import lifeboat, write_config
from crafted_tar import tar_bytes
from helpers import EventLog, commit_backup, stored_backup

from engine.errors import ManifestError
from engine.jobs import run_verify
from engine.mongo_archive import ArchiveWriter, NamespaceMeta, summarize
from engine.repo.manifest import Manifest
from engine.repo.repository import MANIFEST, Repository

SEED = 14
FLIPS = 14  # random byte flips per file (a manifest, and each artifact kind)
CUTS = 4  # random truncations per file
START = datetime(2026, 3, 1, tzinfo=UTC)
SECRET = b"-----BEGIN OPENSSH PRIVATE KEY----- the bastion's own\n"


# --------------------------------------------------------------------------- artifacts


def mongo_archive(metadata: str | None = None) -> bytes:
    """A gzipped mongodump archive of one namespace; ``metadata`` replaces its prelude text."""
    meta = NamespaceMeta.build(
        "app", "users", indexes=[{"v": 2, "key": {"_id": 1}, "name": "_id_"}]
    )
    if metadata is not None:
        meta = NamespaceMeta("app", "users", metadata, "collection")
    out = io.BytesIO()
    writer = ArchiveWriter(out.write, server_version="7.0.5", tool_version="t", prelude=[meta])
    docs = b"".join(bson.encode({"_id": i, "name": f"user {i}"}) for i in range(40))
    writer.write_batch("app", "users", docs)
    writer.end_namespace("app", "users")
    writer.close()
    return gzip.compress(out.getvalue())


def etcd_snapshot(rng: random.Random) -> bytes:
    """A bolt database of two pages (magic in the first meta page) and its sha256 footer."""
    body = bytearray(rng.randbytes(1024))
    body[16:20] = (0xED0CDAED).to_bytes(4, "little")
    return bytes(body) + hashlib.sha256(body).digest()


PATHS = {"paths": ["/etc"]}  # what the files source records its archive holds


@dataclass(frozen=True)
class Kind:
    kind: str
    filename: str
    data: bytes
    meta: dict[str, Any]


def artifact_kinds(rng: random.Random) -> dict[str, Kind]:
    tar = tar_bytes({"etc/app/a.toml": b"a = 1\n", "etc/app/b.toml": rng.randbytes(300)})
    archive = mongo_archive()
    return {
        "cfggz": Kind(
            "files-tar", "cfggz.tar.gz", gzip.compress(tar), {"compression": "gzip", **PATHS}
        ),
        "cfgzst": Kind(
            "files-tar", "cfgzst.tar.zst", zstandard.compress(tar), {"compression": "zstd", **PATHS}
        ),
        "mongo": Kind(
            "mongo-archive",
            "mongo.archive.gz",
            archive,
            summarize(io.BytesIO(archive)).manifest_meta(),
        ),
        "etcd": Kind("etcd-snapshot", "etcd.snapshot.db", etcd_snapshot(rng), {"key_count": 3}),
        "db": Kind("command-output", "db.out", rng.randbytes(700), {"command": ["pg_dump"]}),
    }


def store(repo: Repository, backup_id: str, source: str, kind: Kind) -> Manifest:
    """A backup of one artifact of ``kind``, committed through the repository API."""
    moment = datetime.strptime(backup_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    stored = (kind.filename, kind.data, kind.kind, kind.meta)
    return commit_backup(repo, backup_id, moment, {source: stored})


# --------------------------------------------------------------------------- watching


IN_ACCESS, IN_OPEN = 0x1, 0x20


class OpenWatch:
    """Every open or read of anything in the watched directories (Linux inotify)."""

    def __init__(self, directories: list[Path]) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self._fd >= 0, os.strerror(ctypes.get_errno())
        self._dirs: dict[int, Path] = {}
        for directory in directories:
            wd = libc.inotify_add_watch(self._fd, os.fsencode(directory), IN_ACCESS | IN_OPEN)
            assert wd >= 0, os.strerror(ctypes.get_errno())
            self._dirs[wd] = directory

    def seen(self) -> list[str]:
        events = []
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return events
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16 : offset + 16 + length].rstrip(b"\0").decode()
                events.append(f"{self._dirs[wd] / name} ({mask:#x})")
                offset += 16 + length

    def close(self) -> None:
        os.close(self._fd)


# --------------------------------------------------------------------------- judging


@dataclass
class Tally:
    inputs: int = 0
    named: int = 0  # refused or failed, with a reason naming the backup or the file
    # accepted, and the files, sizes, checksums and bytes are the backup's own: a flip in a
    # descriptive field (tool_version, host, created_at, an unchecked meta key), which only a
    # checksum of the manifest itself could tell
    intact: int = 0
    tracebacks: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)  # damage accepted as sound

    def __str__(self) -> str:
        return (
            f"inputs tried {self.inputs}: {self.named} named, {self.intact} intact; "
            f"tracebacks {len(self.tracebacks)}, hidden damage {len(self.hidden)}"
        )


def files_of(manifest: Manifest) -> list[tuple[str, str, int, str]]:
    return [(a.source, f.path, f.bytes, f.sha256) for a in manifest.artifacts for f in a.files]


def load(repo: Repository, backup_id: str) -> Manifest | ManifestError:
    try:
        return repo.load(backup_id)
    except ManifestError as exc:
        return exc


async def judge(
    tally: Tally,
    repo: Repository,
    backup_id: str,
    what: str,
    original: Manifest | None = None,
    damaged: bool = True,
) -> None:
    """One input: whatever it is, a reason naming the backup (or its file), or the backup's
    very own files and bytes. ``damaged``: the artifact bytes differ from the original."""
    tally.inputs += 1
    try:
        loaded = load(repo, backup_id)
        if isinstance(loaded, ManifestError):
            assert loaded.backup_id == backup_id
            assert f"backup {backup_id} is damaged: " in str(loaded)
            problems: list[ManifestError] = []
            assert list(repo.iter_backups([backup_id], problems)) == []
            assert [p.backup_id for p in problems] == [backup_id], "damage hidden from a list"
        elif original is None or files_of(loaded) != files_of(original):
            damaged = True
        result = await run_verify(repo, backup_id, EventLog().emit)
        if result.ok:
            if damaged:
                tally.hidden.append(what)
            else:
                tally.intact += 1
        else:
            assert all(str(p) for p in result.problems)
            assert repo.verifications()[backup_id].ok is False
            tally.named += 1
    except Exception:
        tally.tracebacks.append(f"{what}:\n{traceback.format_exc()}")


def mutations(rng: random.Random, data: bytes) -> Iterator[tuple[str, bytes]]:
    for _ in range(FLIPS):
        at = rng.randrange(len(data))
        flipped = bytearray(data)
        flipped[at] ^= 1 << rng.randrange(8)
        yield f"bit flip at byte {at}", bytes(flipped)
    for _ in range(CUTS):
        at = rng.randrange(len(data))
        yield f"truncated to {at} bytes", data[:at]


@contextmanager
def replaced(path: Path, data: bytes) -> Iterator[None]:
    original = path.read_bytes()
    path.write_bytes(data)
    try:
        yield
    finally:
        path.write_bytes(original)


# --------------------------------------------------------------------------- crafted input


def edited(manifest: Manifest, change: Callable[[dict[str, Any]], object]) -> bytes:
    data = json.loads(manifest.to_json())
    change(data)
    return json.dumps(data).encode()


def entry(data: dict[str, Any]) -> dict[str, Any]:
    return data["artifacts"][0]["files"][0]


def secret_entry(path: str) -> Callable[[dict[str, Any]], object]:
    return lambda d: entry(d).update(
        path=path, bytes=len(SECRET), sha256=hashlib.sha256(SECRET).hexdigest()
    )


def crafted_manifests(base: Manifest, decoy: Path, backup_dir: Path) -> dict[str, bytes]:
    """Manifest texts for ``base``'s id, each wrong in one way."""
    escape = os.path.relpath(decoy / "id_ed25519", backup_dir)
    deep = "[" * 100_000 + "]" * 100_000
    changes: dict[str, Callable[[dict[str, Any]], object]] = {
        "absolute path": secret_entry(str(decoy / "id_ed25519")),
        "dotdot path": secret_entry(escape),
        "dotdot inside": secret_entry("a/../../" + escape),
        "subdirectory": lambda d: entry(d).update(path="sub/db.out"),
        "backslash": lambda d: entry(d).update(path="..\\..\\db.out"),
        "empty path": lambda d: entry(d).update(path=""),
        "dot path": lambda d: entry(d).update(path="."),
        "NUL in path": lambda d: entry(d).update(path="db.out\x00.txt"),
        "long path": lambda d: entry(d).update(path="d" * 300),
        "trailing slash": lambda d: entry(d).update(path="db.out/"),
        "no artifacts": lambda d: d.update(artifacts=[], scope=[]),
        "no files": lambda d: d["artifacts"][0].update(files=[]),
        "bytes as text": lambda d: entry(d).update(bytes="700"),
        "bytes as float": lambda d: entry(d).update(bytes=700.0),
        "bytes as bool": lambda d: entry(d).update(bytes=True),
        "bytes null": lambda d: entry(d).update(bytes=None),
        "bytes negative": lambda d: entry(d).update(bytes=-1),
        "bytes huge": lambda d: entry(d).update(bytes=10**40),
        "sha256 int": lambda d: entry(d).update(sha256=7),
        "sha256 short": lambda d: entry(d).update(sha256="ab"),
        "files a dict": lambda d: d["artifacts"][0].update(files={"path": "db.out"}),
        "artifacts a dict": lambda d: d.update(artifacts={"db": 1}),
        "artifact a list": lambda d: d.update(artifacts=[[1, 2]]),
        "meta a list": lambda d: d["artifacts"][0].update(meta=[1]),
        "namespaces a list": lambda d: d["artifacts"][0].update(meta={"namespaces": [1]}),
        "counts as text": lambda d: d["artifacts"][0].update(
            meta={"namespaces": {"a.b": {"documents": "many"}}}
        ),
        "compression unknown": lambda d: d["artifacts"][0].update(meta={"compression": 3}),
        "deep meta": lambda d: d["artifacts"][0].update(
            meta={"x": json.loads("[" * 200 + "]" * 200)}
        ),
        "created_at garbage": lambda d: d.update(created_at="yesterday"),
        "created_at year 1": lambda d: d.update(created_at="0001-01-01T00:00:00+14:00"),
        "created_at int": lambda d: d.update(created_at=10**20),
        "another id": lambda d: d.update(id="20260101T000000Z-ffff"),
        "id not an id": lambda d: d.update(id="../../x"),
        "unknown key": lambda d: d.update(signed_by="mallory"),
        "missing key": lambda d: d.pop("trigger"),
        "scope mismatch": lambda d: d.update(scope=["db", "etcd"]),
        "source twice": lambda d: d["artifacts"].append(d["artifacts"][0]),
        "source a path": lambda d: d["artifacts"][0].update(source="../db"),
        "label escape": lambda d: d.update(label="\x1b]52;c;aGk=\x07"),
        "label a number": lambda d: d.update(label=42),
        "schema 2": lambda d: d.update(schema=2),
        "schema 0": lambda d: d.update(schema=0),
        "schema text": lambda d: d.update(schema="1"),
        "schema float": lambda d: d.update(schema=1.0),
        "schema true": lambda d: d.update(schema=True),
        "schema null": lambda d: d.update(schema=None),
        "schema huge": lambda d: d.update(schema=10**30),
        "schema_version": lambda d: d.update(schema_version=1),
    }
    texts = {name: edited(base, change) for name, change in changes.items()}
    texts |= {
        "deep array": f'{{"schema": 1, "label": {deep}}}'.encode(),
        "deep object": ('{"a":' * 50_000 + "1" + "}" * 50_000).encode(),
        "long number": b'{"schema": 1, "id": ' + b"9" * 5000 + b"}",
        "infinity": b'{"schema": 1, "bytes": 1e999, "x": NaN}',
        "not an object": b"[1, 2, 3]",
        "no schema": b"{}",
        "empty": b"",
        "NUL bytes": b"\0" * 64,
        "UTF-16": base.to_json().encode("utf-16"),
        "BOM": b"\xef\xbb\xbf" + base.to_json().encode(),
        "Latin-1": base.to_json().replace("tester", "t\xe9ster").encode("latin-1"),
        "duplicate keys": base.to_json().encode()[:-3]
        + b', "artifacts": [{"source": "db", "kind": "command-output", "host": "h1", "files": '
        + json.dumps([{"path": "/etc/hostname", "bytes": 1, "sha256": "0" * 64}]).encode()
        + b"}]}\n",
    }
    return texts


def crafted_entries(decoy: Path, kinds: dict[str, Kind]) -> dict[str, Callable[[Path], object]]:
    """Ways to spoil a backup directory itself (applied before the watch starts); those named
    "file: ..." leave the manifest sound and spoil the artifact."""
    artifact = kinds["db"].filename

    def link_artifact(directory: Path) -> None:
        (decoy / "db.out").write_bytes(kinds["db"].data)  # same bytes, same sha256
        (directory / artifact).unlink()
        (directory / artifact).symlink_to(decoy / "db.out")

    def fifo_artifact(directory: Path) -> None:
        (directory / artifact).unlink()
        os.mkfifo(directory / artifact)

    def directory_artifact(directory: Path) -> None:
        (directory / artifact).unlink()
        (directory / artifact).mkdir()

    def link_manifest(directory: Path) -> None:
        (decoy / MANIFEST).write_bytes((directory / MANIFEST).read_bytes())
        (directory / MANIFEST).unlink()
        (directory / MANIFEST).symlink_to(decoy / MANIFEST)

    def fifo_manifest(directory: Path) -> None:
        (directory / MANIFEST).unlink()
        os.mkfifo(directory / MANIFEST)

    def directory_manifest(directory: Path) -> None:
        (directory / MANIFEST).unlink()
        (directory / MANIFEST).mkdir()

    def no_manifest(directory: Path) -> None:
        (directory / MANIFEST).unlink()

    def link_directory(directory: Path) -> None:
        moved = decoy / "moved"
        directory.rename(moved)
        directory.symlink_to(moved)

    def file_for_directory(directory: Path) -> None:
        for child in directory.iterdir():
            child.unlink()
        directory.rmdir()
        directory.write_bytes(b"a file where a backup should be")

    def huge_manifest(directory: Path) -> None:
        with (directory / MANIFEST).open("wb") as out:
            out.truncate(65 * 1024 * 1024)  # sparse: costs no disk

    def mongo_decimal(directory: Path) -> None:
        rewrite_mongo(directory, '{"options": {"max": {"$numberDecimal": "many"}}, "indexes": []}')

    def mongo_deep(directory: Path) -> None:
        rewrite_mongo(directory, '{"a":' * 5000 + "1" + "}" * 5000)

    return {
        "file: a link out": link_artifact,
        "file: a FIFO": fifo_artifact,
        "file: a directory": directory_artifact,
        "manifest is a link out": link_manifest,
        "manifest is a FIFO": fifo_manifest,
        "manifest is a directory": directory_manifest,
        "no manifest": no_manifest,
        "directory is a link out": link_directory,
        "a file, not a directory": file_for_directory,
        "manifest of 65 MiB": huge_manifest,
        "file: mongo $numberDecimal no number": mongo_decimal,
        "file: mongo metadata too deep": mongo_deep,
    }


def rewrite_mongo(directory: Path, metadata: str) -> None:
    """The Mongo artifact replaced by one whose prelude says ``metadata``, the manifest updated
    to its true size and sha256: only the archive's own check can tell."""
    data = mongo_archive(metadata)
    (directory / "mongo.archive.gz").write_bytes(data)
    path = directory / MANIFEST
    manifest = json.loads(path.read_text())
    entry(manifest).update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    path.write_text(json.dumps(manifest))


# --------------------------------------------------------------------------- the run


async def test_fuzzed_repository_names_every_damage_and_keeps_the_rest_usable(
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    repo = Repository.open(tmp_path / "repo")
    decoy = tmp_path / "bastion"
    decoy.mkdir()
    (decoy / "id_ed25519").write_bytes(SECRET)
    healthy = [
        stored_backup(repo, START + timedelta(days=day), {"db": rng.randbytes(50)}, f"[/b]{day}")
        for day in range(2)
    ]
    kinds = artifact_kinds(rng)
    moments = (START + timedelta(days=2, minutes=i) for i in range(10_000))

    def new_id() -> str:
        return f"{next(moments):%Y%m%dT%H%M%SZ}-{rng.randrange(0x10000):04x}"

    targets = {source: store(repo, new_id(), source, kind) for source, kind in kinds.items()}
    manifest_texts = crafted_manifests(targets["db"], decoy, repo.backup_dir(targets["db"].id))
    crafted: dict[str, str] = {}
    for name, text in manifest_texts.items():
        backup = store(repo, new_id(), "db", kinds["db"])
        (repo.backup_dir(backup.id) / MANIFEST).write_bytes(
            text.replace(targets["db"].id.encode(), backup.id.encode())
        )
        crafted[name] = backup.id
    for name, spoil in crafted_entries(decoy, kinds).items():
        source = "mongo" if "mongo" in name else "db"
        backup = store(repo, new_id(), source, kinds[source])
        spoil(repo.backup_dir(backup.id))
        crafted[name] = backup.id

    tally = Tally()
    watch = OpenWatch([decoy, *(p for p in decoy.rglob("*") if p.is_dir() and not p.is_symlink())])
    try:
        for source, manifest in targets.items():
            directory = repo.backup_dir(manifest.id)
            for path, is_manifest in (
                (directory / MANIFEST, True),
                (directory / kinds[source].filename, False),
            ):
                for how, data in mutations(rng, path.read_bytes()):
                    with replaced(path, data):
                        what = f"{source}: {path.name} {how}"
                        await judge(
                            tally, repo, manifest.id, what, manifest, damaged=not is_manifest
                        )
        for name, backup_id in crafted.items():
            await judge(tally, repo, backup_id, f"crafted: {name}")
        opened = watch.seen()
    finally:
        watch.close()

    print(f"\nfuzz (seed {SEED}): {tally}; escapes {len(opened)}")
    assert tally.tracebacks == []
    assert tally.hidden == []
    assert opened == [], "files outside the backups were opened"
    assert tally.inputs == len(targets) * 2 * (FLIPS + CUTS) + len(crafted)

    spoiled_files = {i for name, i in crafted.items() if name.startswith("file: ")}
    manifests, problems = repo.list_backups()
    listed = {m.id for m in manifests}
    sound = {m.id for m in [*healthy, *targets.values()]}
    assert listed == sound | spoiled_files
    assert {p.backup_id for p in problems} == set(crafted.values()) - spoiled_files
    for backup_id in sound:
        assert (await run_verify(repo, backup_id, EventLog().emit)).ok

    await cli_pass(tmp_path, repo, listed, sound, set(crafted.values()))


async def cli_pass(
    tmp_path: Path, repo: Repository, listed: set[str], sound: set[str], spoiled: set[str]
) -> None:
    """The real CLI over the whole spoiled repository: every damaged backup named, the sound
    ones listed and verified, exit codes as documented (``status`` and ``prune`` over damage:
    test_cli)."""
    text = f"[repository]\npath = {json.dumps(str(repo.path))}\n"
    config = write_config(tmp_path / "c.toml", text)
    runs = await asyncio.gather(
        lifeboat("backup", "list", config=config),
        lifeboat("backup", "verify", "--all", "--json", config=config),
    )
    for run in runs:
        assert "Traceback" not in run.stdout + run.stderr
    assert [run.rc for run in runs] == [0, 1]
    listing, verified = (run.stdout.splitlines() for run in runs)
    assert {line.split()[0] for line in listing[1:]} == listed
    named = {line.split()[3] for line in runs[0].stderr.splitlines()}
    assert named == spoiled - listed
    results = {r["id"]: r["ok"] for r in json.loads(verified[-1])}
    assert results == {backup_id: backup_id in sound for backup_id in sound | spoiled}

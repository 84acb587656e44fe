"""How fast Lifeboat dumps MongoDB through SSH, against a bare driver read in the same run.

It starts a MongoDB wire server on 127.0.0.1 (``mongod`` if on PATH, else nx-27017 from the
venv, as the tests do), seeds it with documents that look like an application's (five
collections in two databases, varied fields and types, about 1 KB each, a few secondary
indexes), starts an SSH server on loopback (the system OpenSSH sshd by default, or the
in-process asyncssh server with ``--ssh asyncssh``) and times, against the same server and
data:

(a) bare, through the tunnel (the baseline): an asyncssh connection from
    ``engine.remote.ssh.connect`` and a local port forward (``SSHHost.forward_local``),
    pymongo's ``AsyncMongoClient`` with ``directConnection=True`` through it, the user
    collections listed and each read with ``find_raw_batches`` (the bytes are counted and
    dropped), ``--parallel`` collections at a time, as the dumper reads them;
(b) Lifeboat: ``engine.jobs.run_backup`` of a ``mongo`` source (driver method) on that host,
    as a whole: connection, tunnel, listing, indexes and collection stats, the same reads,
    the archive writer (CRC-64 per namespace), parallel gzip, sha256, fsync, the manifest.
(c) for information only, the bare read of (a) straight to the server's port, without SSH.

The sides alternate ``--runs`` times (default 2; a, b, c then b, a, c, ...) after an untimed
warm-up read, and the best run of each side counts. Rates are of BSON document bytes (MB =
10^6 bytes). Every side's namespaces and byte totals are checked against each other
(Lifeboat's from its manifest). Each side's row also shows its peak RSS (sampled from /proc)
and the CPU seconds spent by this process (all threads), the wire server and sshd (with its
sessions): when the server's CPU time is close to the wall time, the server is the
bottleneck, not Lifeboat. Then the process's peak RSS (getrusage), and on the last line
``ratio=X.XX`` (bare time through the tunnel / Lifeboat time). Target: ratio >= 0.9.
``--profile FILE`` adds one untimed Lifeboat run under cProfile (the event loop's thread
only, not the gzip workers), writes the stats to FILE and prints the top entries::

    .venv/bin/python bench/mongo_dump.py
    .venv/bin/python bench/mongo_dump.py --size 256M --runs 3 --profile /tmp/dump.prof

Sizes: nx-27017 keeps its data in SQLite and is CPU-bound on one core: it serves these
documents at about 12-14 MB/s and takes them in at about 5 MB/s, so seeding is a good part
of the run (the default 64 MiB: about 15 s to seed, about a minute in all). Below 64 MiB
the fixed costs (SSH handshake, listing and collection stats, the last gzip member, fsync)
weigh on the ratio and run-to-run noise on this kind of VM is of the same order as the
difference measured; 64M is the smallest meaningful size, 256M steadier. Everything shares
this machine's cores, so Lifeboat's gzip threads compete with the server for CPU, which a
real deployment (the database on another host) would not.

The temporary directory (server data, one backup at a time) holds about twice ``--size``
and is removed at the end. Run it as root or as a user allowed to start sshd.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime
import getpass
import io
import os
import pstats
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bson
from bson.binary import Binary
from bson.raw_bson import RawBSONDocument
from pymongo import AsyncMongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# tests/ is not a package: pytest puts it on sys.path for conftest.py. Doing the same here
# starts the wire server and sshd exactly as the tests do, and builds the config the same way.
sys.path.insert(0, str(ROOT / "tests" / "support"))
from benchargs import human, parse_size, positive_int  # noqa: E402
from helpers import config_text  # noqa: E402
from mongo_server import MongoServer  # noqa: E402
from sshd import SSHD, OpenSSHServer, SSHTestServer, in_process_server  # noqa: E402
from vocabulary import Vocabulary  # noqa: E402

from engine.config.load import parse_config  # noqa: E402
from engine.config.model import Config, HostConfig  # noqa: E402
from engine.demo.server import SandboxKeys, generate_keys  # noqa: E402
from engine.jobs import BackupRequest, run_backup  # noqa: E402
from engine.mongo_archive.names import selected  # noqa: E402
from engine.remote.ssh import connect  # noqa: E402
from engine.repo.repository import Repository  # noqa: E402

MB = 1_000_000
INSERT_BATCH = 1000  # documents per insert_many
BATCH_SIZE = 1000  # documents per find_raw_batches batch, as the dumper asks
HOST = "h1"  # the host name in the generated config (tests/support/helpers.py's default)
# Collections and their share of --size; shapes differ per collection (see DocumentFactory).
LAYOUT = {
    ("shop", "users"): 0.25,
    ("shop", "orders"): 0.30,
    ("shop", "events"): 0.20,
    ("billing", "invoices"): 0.15,
    ("billing", "payments"): 0.10,
}
INDEXES = {
    ("shop", "users"): [[("email", 1)], [("address.city", 1), ("created", -1)]],
    ("shop", "orders"): [[("account", 1), ("created", -1)]],
    ("shop", "events"): [[("kind", 1)]],
    ("billing", "invoices"): [[("account", 1)]],
}


# -- data ----------------------------------------------------------------------------------


class DocumentFactory(Vocabulary):
    """Documents that look like an application's: text from a vocabulary (so it compresses
    like text), random ids, amounts, timestamps, nested documents, arrays, a little binary;
    each collection its own shape, about 1 KB on average."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.serial = 0

    def when(self) -> datetime.datetime:
        return self.epoch + datetime.timedelta(seconds=self.rng.randrange(3 * 10**7))

    def document(self, collection: str) -> dict[str, Any]:
        rng = self.rng
        self.serial += 1
        doc: dict[str, Any] = getattr(self, f"_{collection}")(rng)
        for field in rng.sample(self.fields, rng.randint(0, 4)):  # sparse, schemaless extras
            doc[field] = rng.choice([rng.randrange(10**9), self.text(1, 6), None, rng.random()])
        return doc

    def _users(self, rng: random.Random) -> dict[str, Any]:
        first, last = rng.choice(self.names), rng.choice(self.names)
        return {
            "_id": bson.ObjectId(),
            "email": f"{first.lower()}.{last.lower()}{self.serial}@example.org",
            "name": {"first": first, "last": last},
            "created": self.when(),
            "status": rng.choice(["active", "pending", "closed", "suspended"]),
            "verified": rng.random() < 0.7,
            "tags": rng.sample(self.tags, rng.randint(0, 6)),
            "address": {
                "street": f"{rng.randrange(1, 999)} {rng.choice(self.names)} street",
                "city": rng.choice(self.cities),
                "zip": f"{rng.randrange(10000, 99999)}",
                "geo": [rng.uniform(-180, 180), rng.uniform(-90, 90)],
            },
            "bio": self.text(40, 160),
            "token": Binary(rng.randbytes(16)),
        }

    def _orders(self, rng: random.Random) -> dict[str, Any]:
        items = [
            {
                "sku": f"SKU-{rng.randrange(10**5):05d}",
                "title": self.text(2, 6),
                "qty": rng.randint(1, 9),
                "price": round(rng.uniform(1, 500), 2),
            }
            for _ in range(rng.randint(1, 12))
        ]
        return {
            "_id": self.serial,
            "account": rng.randrange(10**6),
            "created": self.when(),
            "state": rng.choice(["cart", "paid", "shipped", "delivered", "returned"]),
            "items": items,
            "total": round(sum(i["qty"] * i["price"] for i in items), 2),
            "shipping": {"city": rng.choice(self.cities), "notes": self.text(0, 40)},
        }

    def _events(self, rng: random.Random) -> dict[str, Any]:
        return {
            "_id": bson.ObjectId(),
            "at": self.when(),
            "kind": rng.choice(["login", "logout", "view", "search", "deploy", "error"]),
            "user": rng.randrange(10**6),
            "session": Binary(rng.randbytes(12)),
            "payload": {
                "path": "/" + "/".join(rng.choices(self.words, k=rng.randint(1, 4))),
                "ms": rng.expovariate(1 / 80),
                "query": self.text(0, 30),
                "flags": [rng.random() < 0.5 for _ in range(rng.randint(0, 8))],
            },
            "message": self.text(20, 120),
        }

    def _invoices(self, rng: random.Random) -> dict[str, Any]:
        lines = [
            {"text": self.text(3, 12), "amount": round(rng.uniform(5, 900), 2)}
            for _ in range(rng.randint(1, 8))
        ]
        return {
            "_id": f"INV-{self.serial:08d}",
            "account": rng.randrange(10**6),
            "issued": self.when(),
            "due_days": rng.choice([14, 30, 60]),
            "paid": rng.random() < 0.8,
            "currency": rng.choice(["EUR", "USD", "GBP"]),
            "lines": lines,
            "total": round(sum(line["amount"] for line in lines), 2),
            "terms": self.text(20, 80),
        }

    def _payments(self, rng: random.Random) -> dict[str, Any]:
        return {
            "_id": bson.ObjectId(),
            "invoice": f"INV-{rng.randrange(self.serial + 1):08d}",
            "at": self.when(),
            "amount": rng.uniform(5, 5000),
            "method": rng.choice(["card", "transfer", "direct-debit"]),
            "card": {"last4": f"{rng.randrange(10**4):04d}", "expiry": self.when()},
            "gateway": {"id": Binary(rng.randbytes(24)), "log": self.text(30, 150)},
        }


@dataclass(frozen=True)
class Seeded:
    documents: int
    bytes: int  # BSON bytes of all documents
    seconds: float


def seed(server: MongoServer, size: int) -> Seeded:
    """About ``size`` bytes of BSON over the collections of LAYOUT, by ``insert_many`` in
    batches, then the secondary indexes."""
    factory = DocumentFactory(seed=7)
    started = time.perf_counter()
    documents = total = 0
    with server.client(timeout_ms=30_000) as client:
        for (db, coll), share in LAYOUT.items():
            target, filled = int(size * share), 0
            collection = client[db][coll]
            while filled < target:
                batch = []
                while len(batch) < INSERT_BATCH and filled < target:
                    raw = bson.encode(factory.document(coll))
                    filled += len(raw)
                    batch.append(RawBSONDocument(raw))
                collection.insert_many(batch, ordered=False)
                documents += len(batch)
            total += filled
        for (db, coll), specs in INDEXES.items():
            for keys in specs:
                client[db][coll].create_index(keys)
    return Seeded(documents, total, time.perf_counter() - started)


# -- measurements --------------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and of its reaped children (sshd's per-connection processes)."""
    with open(f"/proc/{pid}/stat", "rb") as file:
        fields = file.read().rsplit(b")", 1)[1].split()
    return sum(int(field) for field in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread: the gzip workers too
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Usage:
    peak_rss: int  # bytes, this process
    cpu: dict[str, float]  # CPU seconds: "self" (this process), "server", "sshd"


class Meter:
    """Peak RSS of this process (sampled from /proc every few milliseconds, on a thread) and
    the CPU time of this process, the wire server and sshd, between :meth:`start` and
    :meth:`stop`."""

    def __init__(self, server_pid: int, interval: float = 0.01) -> None:
        self.pids = {"server": server_pid}
        self._interval = interval
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._peak = 0
        self._cpu: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _rss(self) -> int:
        with open("/proc/self/statm", "rb") as file:
            return int(file.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._peak = max(self._peak, self._rss())

    def __enter__(self) -> Meter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _cpus(self) -> dict[str, float]:
        return {"self": self_cpu()} | {name: process_cpu(pid) for name, pid in self.pids.items()}

    def start(self) -> None:
        self._peak = self._rss()
        self._cpu = self._cpus()

    async def stop(self) -> Usage:
        peak = max(self._peak, self._rss())
        await asyncio.sleep(0.05)  # let sshd reap the closed connection's processes
        now = self._cpus()
        return Usage(peak, {name: now[name] - self._cpu[name] for name in now})


@dataclass(frozen=True)
class Run:
    seconds: float
    bytes: int  # BSON document bytes read
    usage: Usage
    namespaces: dict[str, int]  # namespace -> bytes
    archive_bytes: int = 0  # Lifeboat: the gzipped archive's size


async def bare_read(address: str, port: int, parallel: int) -> dict[str, int]:
    """Read every user collection with ``find_raw_batches``, ``parallel`` at a time, as the
    dumper does but without writing anything; bytes read per namespace."""
    client: AsyncMongoClient = AsyncMongoClient(
        address, port, directConnection=True, serverSelectionTimeoutMS=15_000
    )
    try:
        namespaces = [
            (db, coll)
            for db in await client.list_database_names()
            for coll in await client[db].list_collection_names()
            if selected(f"{db}.{coll}", (), ())
        ]
        limit = asyncio.Semaphore(parallel)
        counts: dict[str, int] = {}

        async def one(db: str, coll: str) -> None:
            async with limit:
                read = 0
                async for batch in client[db][coll].find_raw_batches(batch_size=BATCH_SIZE):
                    read += len(batch)
                counts[f"{db}.{coll}"] = read

        await asyncio.gather(*(one(db, coll) for db, coll in namespaces))
        return counts
    finally:
        await client.close()


async def time_bare_direct(port: int, parallel: int, meter: Meter) -> Run:
    meter.start()
    started = time.perf_counter()
    counts = await bare_read("127.0.0.1", port, parallel)
    seconds = time.perf_counter() - started
    return Run(seconds, sum(counts.values()), await meter.stop(), counts)


async def time_bare_tunnel(host: HostConfig, port: int, parallel: int, meter: Meter) -> Run:
    """The bare read through an SSH local port forward, connection set-up included."""
    meter.start()
    started = time.perf_counter()
    ssh = await connect(HOST, host)
    try:
        async with ssh.forward_local("127.0.0.1", port) as local_port:
            counts = await bare_read("127.0.0.1", local_port, parallel)
    finally:
        await ssh.close()
    seconds = time.perf_counter() - started
    return Run(seconds, sum(counts.values()), await meter.stop(), counts)


async def time_lifeboat(config: Config, meter: Meter) -> Run:
    """One ``run_backup`` of the mongo source, as a whole; the backup is deleted after."""
    repo = Repository.open(config.repository.path)
    meter.start()
    started = time.perf_counter()
    manifest = await run_backup(config, repo, BackupRequest(label="bench"), lambda _event: None)
    seconds = time.perf_counter() - started
    usage = await meter.stop()
    shutil.rmtree(repo.backup_dir(manifest.id))
    (artifact,) = manifest.artifacts
    counts = {ns: int(s["bytes"]) for ns, s in artifact.meta["namespaces"].items()}
    return Run(seconds, sum(counts.values()), usage, counts, artifact.files[0].bytes)


async def profile_lifeboat(config: Config, meter: Meter, path: Path) -> str:
    """One more Lifeboat run under cProfile; the stats go to ``path``, the top to the result."""
    profile = cProfile.Profile()
    profile.enable()
    try:
        run = await time_lifeboat(config, meter)
    finally:
        profile.disable()
    profile.dump_stats(path)
    out = io.StringIO()
    out.write(f"profiled Lifeboat run: {run.seconds:.2f} s (cProfile slows it); stats in {path}\n")
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(15)
    stats.sort_stats("cumulative").print_stats(25)
    return out.getvalue()


# -- SSH servers ---------------------------------------------------------------------------


@contextlib.contextmanager
def openssh(keys: SandboxKeys, directory: Path) -> Iterator[tuple[SSHTestServer, int]]:
    """The system sshd, and its listener's pid (whose reaped children are the sessions)."""
    directory.mkdir()
    server = OpenSSHServer(keys, directory)
    server.start()
    try:
        pid = int((directory / "sshd.pid").read_text())
        yield server.describe(getpass.getuser()), pid
    finally:
        server.stop()


def mongo_config(server: SSHTestServer, repo: Path, mongo_port: int, parallel: int) -> Config:
    source = (
        f'[sources.mongo]\nkind = "mongo"\nhost = "{HOST}"\n'
        f'uri = "mongodb://127.0.0.1:{mongo_port}/"\nparallel = {parallel}\n'
    )
    return parse_config(config_text(server, repo, source))


# -- main ----------------------------------------------------------------------------------


@dataclass
class Results:
    tunnel: list[Run]
    lifeboat: list[Run]
    direct: list[Run]
    profile: str = ""


async def measure(
    args: argparse.Namespace, work: Path, mongo: MongoServer, keys: SandboxKeys, meter: Meter
) -> Results:
    async with contextlib.AsyncExitStack() as stack:
        if args.ssh == "openssh":
            server, meter.pids["sshd"] = stack.enter_context(openssh(keys, work / "sshd"))
        else:  # its CPU time is this process's
            server = await stack.enter_async_context(in_process_server(keys, work))
        config = mongo_config(server, work / "repo", mongo.port, args.parallel)
        host = config.hosts[HOST]
        # Untimed warm-up: the server's caches, and the first touch of this process's memory.
        await bare_read("127.0.0.1", mongo.port, args.parallel)
        results = Results([], [], [])
        sides: list[tuple[list[Run], Callable[[], Any], str]] = [
            (
                results.tunnel,
                lambda: time_bare_tunnel(host, mongo.port, args.parallel, meter),
                "bare",
            ),
            (results.lifeboat, lambda: time_lifeboat(config, meter), "lifeboat"),
            (results.direct, lambda: time_bare_direct(mongo.port, args.parallel, meter), "direct"),
        ]
        for number in range(1, args.runs + 1):
            # The compared pair swaps places every run (bare, lifeboat; lifeboat, bare; ...):
            # this server's speed drifts, and a fixed order would favour one side.
            order = sides if number % 2 else [sides[1], sides[0], sides[2]]
            report = []
            for runs, timed, label in order:
                run = await timed()
                runs.append(run)
                report.append(f"{label} {run.bytes / run.seconds / MB:.1f} MB/s")
            print(f"run {number}: " + "; ".join(report), flush=True)
        if args.profile is not None:
            results.profile = await profile_lifeboat(config, meter, args.profile)
    return results


def check(results: Results) -> None:
    """Every side read the same namespaces and bytes, in every run."""
    expected = results.tunnel[0].namespaces
    for run in results.tunnel + results.lifeboat + results.direct:
        if run.namespaces != expected:
            raise SystemExit(f"the sides disagree: {run.namespaces} != {expected}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("64M"), help="e.g. 256M")
    parser.add_argument("--runs", type=positive_int, default=2, help="per side; the best counts")
    parser.add_argument(
        "--ssh",
        choices=("openssh", "asyncssh"),
        default="openssh" if SSHD.exists() else "asyncssh",
        help="the SSH server: the system sshd, or the in-process asyncssh server",
    )
    parser.add_argument(
        "--parallel", type=positive_int, default=4, help="collections read at a time, both sides"
    )
    parser.add_argument("--profile", type=Path, help="profile one extra Lifeboat run into FILE")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as tmp:
        work = Path(tmp)
        (work / "mongo").mkdir()
        mongo = MongoServer(work / "mongo")
        mongo.start()
        assert mongo.process is not None
        try:
            seeded = seed(mongo, args.size)
            print(
                f"seeded {seeded.documents} documents, {seeded.bytes / MB:.1f} MB of BSON in "
                f"{len(LAYOUT)} collections of 2 databases ({seeded.seconds:.1f} s)",
                flush=True,
            )
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            keys = generate_keys(work / "keys")
            with Meter(mongo.process.pid) as meter:
                results = asyncio.run(measure(args, work, mongo, keys, meter))
        finally:
            mongo.stop()
    check(results)

    tunnel = min(results.tunnel, key=lambda run: run.seconds)
    lifeboat = min(results.lifeboat, key=lambda run: run.seconds)
    direct = min(results.direct, key=lambda run: run.seconds)
    size = tunnel.bytes

    if results.profile:
        print(results.profile.rstrip())
    print(
        f"Mongo dump: {human(args.size)} asked, {size / MB:.1f} MB of BSON in "
        f"{len(tunnel.namespaces)} collections, {mongo.kind} on 127.0.0.1, "
        f"{args.ssh} SSH server on 127.0.0.1"
    )
    print(
        f"  best of {args.runs} run(s) per side; {args.parallel} collections at a time; "
        f"batch_size={BATCH_SIZE}; cpus={os.cpu_count()}; MB = 10^6 bytes"
    )
    print("  target: ratio >= 0.90 (bare through the tunnel / Lifeboat)")
    rows = [
        ("bare find_raw_batches, SSH tunnel", tunnel, results.tunnel),
        ("lifeboat backup (mongo, driver)", lifeboat, results.lifeboat),
        ("bare find_raw_batches, direct", direct, results.direct),
    ]
    for label, best, runs in rows:
        rss_peak = max(run.usage.peak_rss for run in runs) / MB
        cpu = ", ".join(f"{name} {seconds:.2f}" for name, seconds in best.usage.cpu.items())
        print(
            f"  {label:34} {size / best.seconds / MB:6.1f} MB/s {best.seconds:6.2f} s"
            f"  peak RSS {rss_peak:4.0f} MB  CPU s: {cpu}"
        )
    print(
        "  lifeboat: the whole job (connect, list, dump, CRC, gzip, sha256, fsync, manifest);"
        f" archive.gz {lifeboat.archive_bytes / MB:.1f} MB"
    )
    print(
        f"  CPU s: of this process (all threads), of {mongo.kind}, of sshd and its sessions;"
        " direct: for information (no SSH)"
    )
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        f"  process peak RSS (getrusage): {rss_after / MB:.0f} MB "
        f"({rss_before / MB:.0f} MB after seeding)"
    )
    print(f"ratio={tunnel.seconds / lifeboat.seconds:.2f}")


if __name__ == "__main__":
    main()

"""Optional databases for the demo sandbox: a real etcd, a MongoDB wire server, Redis and
PostgreSQL.

When ``etcd`` is installed, or ``mongod`` / the ``nx-27017`` wire server (a test extra) is, or
``redis-server``, or Debian's ``postgresql``, the demo starts them on loopback with fresh data,
seeds a little (etcd keys; Mongo groups, users and an audit log with ``createdAt``; Redis
sessions and a queue; a shop's tables in PostgreSQL), and adds them as sources, so a newcomer
sees those backups work too. They live as long as the demo does; what could not start is
named in ``skipped``, with why.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.demo.postgres import (
    NoServerError,
    initdb_argv,
    psql_argv,
    server_argv,
    server_bin,
    server_user,
)
from engine.repo.atomic import atomic_write

READY_SECONDS = 20.0


@dataclass(frozen=True)
class DemoServices:
    etcd_port: int | None = None
    etcd_peer_port: int | None = None
    etcd_data_dir: Path | None = None
    mongo_port: int | None = None
    etcd_service: BackgroundService | None = None  # its stop/start commands (drills swap it)
    redis: DemoRedis | None = None
    postgres: DemoPostgres | None = None
    skipped: tuple[str, ...] = ()  # "postgres: not installed (...)", one line each


@dataclass(frozen=True)
class DemoRedis:
    port: int
    password_file: Path
    rdb_path: Path
    service: BackgroundService  # a restore stops and starts it


@dataclass(frozen=True)
class DemoPostgres:
    port: int
    password_file: Path
    bin_dir: Path


@dataclass(frozen=True)
class BackgroundService:
    """A server run in the background with its pid in a file, so that shell commands (run over
    SSH, like a host's ``systemctl``) can stop it and start it again: an etcd drill swaps the
    member's data directory between the two."""

    argv: list[str]
    pid_file: Path
    log: Path

    @property
    def start(self) -> list[str]:
        script = 'log=$1; pid=$2; shift 2; setsid "$@" >>"$log" 2>&1 </dev/null & echo $! >"$pid"'
        return ["sh", "-c", script, "sh", str(self.log), str(self.pid_file), *self.argv]

    @property
    def stop(self) -> list[str]:
        """Stop it and wait until it is gone (or a zombie nobody reaps: it holds nothing)."""
        script = (
            'p=$(cat "$1" 2>/dev/null) || exit 0; kill "$p" 2>/dev/null; '
            'while [ -d "/proc/$p" ] && ! grep -q "^State:.*Z" "/proc/$p/status" 2>/dev/null; '
            'do sleep 0.1; done; rm -f "$1"'
        )
        return ["sh", "-c", script, "sh", str(self.pid_file)]


async def _run(argv: list[str]) -> None:
    process = await asyncio.create_subprocess_exec(*argv)
    await process.wait()


@asynccontextmanager
async def _running(service: BackgroundService) -> AsyncIterator[None]:
    await _run(service.start)
    try:
        yield
    finally:
        await _run(service.stop)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def _process(
    argv: list[str], log: Path, user: str | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=asyncio.subprocess.STDOUT, user=user
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def _wait_for_etcd(port: int) -> None:
    import etcd3

    deadline = time.monotonic() + READY_SECONDS
    while True:
        try:
            with etcd3.client(host="127.0.0.1", port=port, timeout=2) as client:
                client.status()
                for i in range(200):
                    client.put(f"/demo/{['nodes', 'groups', 'modules'][i % 3]}/{i:03d}", f"v{i}")
            return
        except etcd3.exceptions.Etcd3Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _wait_for_mongo(port: int) -> None:
    import pymongo

    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    deadline = time.monotonic() + READY_SECONDS
    while True:
        try:
            client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
                uri, serverSelectionTimeoutMS=500
            )
            with client:
                client.admin.command("ping")
                client.app.groups.insert_many([{"_id": i, "name": f"g{i}"} for i in range(300)])
                client.app.users.insert_many([{"_id": i, "user": f"u{i}"} for i in range(700)])
                client.app.users.create_index("user", unique=True)
                client.app.audit_log.insert_many(_audit_rows(now=time.time()))
                client.app.audit_log.create_index([("createdAt", -1)])
            return
        except pymongo.errors.PyMongoError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _audit_rows(now: float, count: int = 120) -> list[dict[str, Any]]:
    """The sample app's audit log: who did what, one row a minute up to ``now``."""
    actions = ("group.create", "group.scale", "module.enable", "node.join", "user.login")
    start = datetime.fromtimestamp(now, UTC).replace(microsecond=0) - timedelta(minutes=count)
    return [
        {
            "_id": i,
            "createdAt": start + timedelta(minutes=i + 1),
            "actor": f"u{i % 7}",
            "action": actions[i % len(actions)],
            "target": f"group-{i % 200}",
        }
        for i in range(count)
    ]


def _mongo_argv(port: int, data: Path) -> list[str] | None:
    if shutil.which("mongod"):
        return ["mongod", "--bind_ip", "127.0.0.1", "--port", str(port), "--dbpath", str(data)]
    wire = Path(sys.executable).with_name("nx-27017")
    if not wire.exists():
        return None
    return [
        str(wire), "--data-dir", str(data), "--host", "127.0.0.1", "-p", str(port),
        "--log-file", str(data.parent / "nx.log"), "--pid-file", str(data.parent / "nx.pid"),
    ]  # fmt: skip


REDIS_SEED = [
    *(f"HSET session:{i} user u{i % 40} seen {i}" for i in range(200)),
    *(f"SET cache:page:{i} rendered-{i} EX 86400" for i in range(50)),
    "RPUSH jobs:queue build-1 build-2 deploy-3",
]
PG_SEED = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, city text);
INSERT INTO customers (name, city)
  SELECT 'customer ' || g, (ARRAY['Berlin', 'Lyon', 'Porto'])[g % 3 + 1]
  FROM generate_series(1, 120) g;
CREATE TABLE orders (id serial PRIMARY KEY, customer int NOT NULL REFERENCES customers (id),
  total numeric(10, 2) NOT NULL, placed timestamptz NOT NULL);
INSERT INTO orders (customer, total, placed)
  SELECT g % 120 + 1, (g * 7 % 500) + 0.99, now() - g * interval '1 hour'
  FROM generate_series(1, 600) g;
CREATE INDEX orders_by_customer ON orders (customer);
"""


def _private_file(path: Path, text: str) -> Path:
    """``text`` in a file made 0600 from the start (a password is never readable by others)."""
    atomic_write(path, text.encode())
    return path


async def _redis(root: Path, stack: AsyncExitStack) -> DemoRedis:
    """redis-server with a password, as a background service (a restore stops and starts
    it), seeded with sessions, cached pages (with a TTL) and a queue."""
    directory = root / "redis"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700, parents=True)
    password = secrets.token_urlsafe(18)
    port = _free_port()
    conf = _private_file(
        directory / "redis.conf",
        f'bind 127.0.0.1\nport {port}\ndir {directory}\ndbfilename dump.rdb\nsave ""\n'
        f"appendonly no\nrepl-diskless-sync-delay 0\nrequirepass {password}\n",
    )
    service = BackgroundService(["redis-server", str(conf)], root / "redis.pid", root / "redis.log")
    await stack.enter_async_context(_running(service))
    await asyncio.to_thread(_seed_redis, port, password)
    password_file = _private_file(root / "redis.password", f"{password}\n")
    return DemoRedis(port, password_file, directory / "dump.rdb", service)


def _seed_redis(port: int, password: str) -> None:
    argv = ["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
    environment = os.environ | {"REDISCLI_AUTH": password}
    deadline = time.monotonic() + READY_SECONDS
    while True:
        ping = subprocess.run([*argv, "PING"], capture_output=True, text=True, env=environment)
        if ping.stdout.strip() == "PONG":
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not answer: {ping.stderr.strip()}")
        time.sleep(0.1)
    seed = "".join(f"{line}\n" for line in REDIS_SEED)
    subprocess.run(argv, input=seed, capture_output=True, text=True, env=environment, check=True)


async def _postgres(root: Path, stack: AsyncExitStack) -> DemoPostgres:
    """A PostgreSQL cluster of its own (engine.demo.postgres), with a ``shop`` database."""
    bin_dir, user = server_bin(), server_user()
    cluster = Path(tempfile.mkdtemp(prefix="lifeboat-demo-pg-"))
    stack.callback(shutil.rmtree, cluster, True)  # after the server stopped (a stack unwinds)
    password = secrets.token_urlsafe(18)
    password_file = _private_file(cluster / "pwfile", f"{password}\n")
    if user is not None:
        shutil.chown(cluster, user)
        shutil.chown(password_file, user)
    initdb = await asyncio.create_subprocess_exec(
        *initdb_argv(bin_dir, cluster / "data", password_file),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, user=user,
    )  # fmt: skip
    _out, error = await initdb.communicate()
    password_file.unlink()
    if initdb.returncode != 0:
        raise NoServerError(f"initdb failed: {error.decode(errors='replace').strip()[-200:]}")
    port = _free_port()
    argv = server_argv(bin_dir, cluster / "data", port, cluster)
    await stack.enter_async_context(_process(argv, root / "postgres.log", user))
    await asyncio.to_thread(_seed_postgres, psql_argv(bin_dir, cluster, port, "postgres"))
    return DemoPostgres(port, _private_file(root / "postgres.password", f"{password}\n"), bin_dir)


def _seed_postgres(psql: list[str]) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while subprocess.run([*psql, "-c", "SELECT 1"], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError("postgres did not answer on its socket")
        time.sleep(0.1)
    subprocess.run([*psql, "-c", "CREATE DATABASE shop"], capture_output=True, check=True)
    shop = [*psql[:-1], "shop"]  # the same psql, in the shop database
    subprocess.run([*shop, "-c", PG_SEED], capture_output=True, check=True)


@asynccontextmanager
async def demo_services(root: Path) -> AsyncIterator[DemoServices]:
    """Start what is installed, with fresh data under ``root``; stop it all on exit."""
    async with AsyncExitStack() as stack:
        found: dict[str, object] = {}
        skipped = []
        if not shutil.which("etcd"):
            skipped.append("etcd: etcd is not installed (apt-get install etcd-server)")
        else:
            data = root / "etcd"
            shutil.rmtree(data, ignore_errors=True)
            data.mkdir(mode=0o700, parents=True)
            client, peer = _free_port(), _free_port()
            peer_url = f"http://127.0.0.1:{peer}"
            argv = [
                "etcd", "--name", "demo", "--data-dir", str(data / "member.etcd"),
                "--listen-client-urls", f"http://127.0.0.1:{client}",
                "--advertise-client-urls", f"http://127.0.0.1:{client}",
                "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                "--initial-cluster", f"demo={peer_url}",
            ]  # fmt: skip
            service = BackgroundService(argv, root / "etcd.pid", root / "etcd.log")
            await stack.enter_async_context(_running(service))
            await asyncio.to_thread(_wait_for_etcd, client)
            found.update(
                etcd_port=client,
                etcd_peer_port=peer,
                etcd_data_dir=data / "member.etcd",
                etcd_service=service,
            )
        mongo_data = root / "mongo" / "data"
        shutil.rmtree(mongo_data.parent, ignore_errors=True)
        mongo_data.mkdir(mode=0o700, parents=True)
        port = _free_port()
        argv_mongo = _mongo_argv(port, mongo_data)
        if argv_mongo is None:
            skipped.append("mongo: neither mongod nor nx-27017 (pip install nx-27017) is installed")
        else:
            await stack.enter_async_context(_process(argv_mongo, root / "mongo.log"))
            await asyncio.to_thread(_wait_for_mongo, port)
            found.update(mongo_port=port)
        if shutil.which("redis-server"):
            found.update(redis=await _redis(root, stack))
        else:
            skipped.append("redis: redis-server is not installed (apt-get install redis-server)")
        try:
            found.update(postgres=await _postgres(root, stack))
        except NoServerError as exc:
            skipped.append(f"postgres: {exc}")
        yield DemoServices(**found, skipped=tuple(skipped))  # type: ignore[arg-type]

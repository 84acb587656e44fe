"""Optional databases for the demo sandbox: a real etcd and a MongoDB wire server.

When ``etcd`` is installed, or ``mongod`` / the ``nx-27017`` wire server (a test extra) is, the
demo starts them on loopback with fresh data in the sandbox, seeds a little (etcd keys; Mongo
groups, users and an audit log with ``createdAt``), and adds them as sources, so a newcomer
sees those backups work too. They live as long as the demo does.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

READY_SECONDS = 20.0


@dataclass(frozen=True)
class DemoServices:
    etcd_port: int | None = None
    etcd_peer_port: int | None = None
    etcd_data_dir: Path | None = None
    mongo_port: int | None = None
    etcd_service: BackgroundService | None = None  # its stop/start commands (drills swap it)


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
async def _process(argv: list[str], log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=asyncio.subprocess.STDOUT
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


@asynccontextmanager
async def demo_services(root: Path) -> AsyncIterator[DemoServices]:
    """Start what is installed, with fresh data under ``root``; stop it all on exit."""
    async with AsyncExitStack() as stack:
        found: dict[str, object] = {}
        if shutil.which("etcd"):
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
        if argv_mongo is not None:
            await stack.enter_async_context(_process(argv_mongo, root / "mongo.log"))
            await asyncio.to_thread(_wait_for_mongo, port)
            found.update(mongo_port=port)
        yield DemoServices(**found)  # type: ignore[arg-type]

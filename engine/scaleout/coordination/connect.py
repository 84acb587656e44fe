"""Opening the coordinator a config asks for: directly, or through an SSH tunnel."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from engine.config.model import Config
from engine.remote.ssh import connect
from engine.repo.repository import Repository
from engine.scaleout.coordination.coordinator import Coordinator
from engine.scaleout.coordination.lease import etcd_failures, failure_detail
from engine.scaleout.coordination.model import CoordinationError

if TYPE_CHECKING:
    import etcd3

RECONNECT_MS = 1000  # most gRPC waits between attempts to reach etcd again
CONNECT_WAIT = 5.0  # seconds etcd has to answer a new connection


def _client(host: str, port: int, timeout: float) -> etcd3.MultiEndpointEtcd3Client:
    """A client that recovers as soon as etcd answers again: etcd3's default refuses every
    request for 300 s after one failure, and gRPC's reconnect backoff grows to 2 minutes."""
    import etcd3

    options = [("grpc.max_reconnect_backoff_ms", RECONNECT_MS)]
    endpoint = etcd3.Endpoint(host, port, secure=False, time_retry=0, opts=options)
    return etcd3.MultiEndpointEtcd3Client(endpoints=[endpoint], timeout=timeout)


async def _answering(client: etcd3.MultiEndpointEtcd3Client) -> None:
    """Wait until etcd answers, for up to CONNECT_WAIT: the first connection of a loaded
    machine may take longer than one request's timeout."""
    deadline = time.monotonic() + CONNECT_WAIT
    while True:
        try:
            await asyncio.to_thread(client.status)
            return
        except etcd_failures():
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.2)


@asynccontextmanager
async def open_coordinator(config: Config, repo: Repository) -> AsyncIterator[Coordinator | None]:
    """The coordinator for ``config.coordination`` (None when it is not configured), checked
    to answer; on exit every lock still held is released and the connection closed."""
    settings = config.coordination
    if settings is None:
        yield None
        return
    repo_id = repo.repo_id()
    instance = settings.instance or f"{socket.gethostname()}-{os.getpid()}"
    address, port = settings.etcd.rsplit(":", 1)
    timeout = settings.lease_ttl / 2  # a stuck refresh still leaves time for the next one
    async with AsyncExitStack() as stack:
        where = settings.etcd
        if settings.host is None:
            client = _client(address, int(port), timeout)
        else:
            where += f" seen from {settings.host}"
            ssh = await connect(settings.host, config.hosts[settings.host])
            stack.push_async_callback(ssh.close)
            forward = ssh.forward_local(address.strip("[]"), int(port))
            client = _client("127.0.0.1", await stack.enter_async_context(forward), timeout)
        coordinator = Coordinator(client, repo_id, instance, settings.lease_ttl)
        stack.push_async_callback(asyncio.to_thread, coordinator.close)
        try:
            await _answering(client)
        except etcd_failures() as exc:
            raise CoordinationError(
                f"coordination: etcd at {where} does not answer ({failure_detail(exc)}); "
                "check [coordination] etcd, or remove [coordination] to run uncoordinated"
            ) from None
        yield coordinator

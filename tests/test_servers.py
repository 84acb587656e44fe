"""The test SSH servers themselves: each behaves like a real host for plain asyncssh clients."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncssh
import pytest
from sshd import SSHTestServer

pytestmark = pytest.mark.timeout(60)


@asynccontextmanager
async def connect(
    server: SSHTestServer, known_hosts: Path | None = None
) -> AsyncIterator[asyncssh.SSHClientConnection]:
    async with asyncssh.connect(
        server.address,
        port=server.port,
        username=server.user,
        client_keys=[str(server.identity)],
        known_hosts=str(known_hosts or server.known_hosts),
        config=None,  # ignore any ~/.ssh/config
    ) as conn:
        yield conn


async def test_stdout_stderr_and_exit_status_all_arrive(ssh_server: SSHTestServer) -> None:
    async with connect(ssh_server) as conn:
        result = await conn.run("sh -c 'echo out; echo err >&2; exit 3'")
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.exit_status == 3


async def test_large_output_streams_completely(ssh_server: SSHTestServer) -> None:
    size = 20_000_000
    received = 0
    async with connect(ssh_server) as conn:
        async with conn.create_process(f"head -c {size} /dev/zero", encoding=None) as process:
            while chunk := await process.stdout.read(1 << 16):
                received += len(chunk)
            completed = await process.wait()
    assert received == size
    assert completed.exit_status == 0


async def test_stdin_reaches_the_command(ssh_server: SSHTestServer) -> None:
    data = os.urandom(3_000_000)
    async with connect(ssh_server) as conn:
        result = await conn.run("wc -c", input=data, encoding=None)
    assert result.exit_status == 0
    assert isinstance(result.stdout, bytes)
    assert int(result.stdout) == len(data)


async def test_sftp_put_and_get(ssh_server: SSHTestServer, tmp_path: Path) -> None:
    data = os.urandom(1_500_000)
    local = tmp_path / "local.bin"
    local.write_bytes(data)
    remote = tmp_path / "remote.bin"
    back = tmp_path / "back.bin"
    async with connect(ssh_server) as conn, conn.start_sftp_client() as sftp:
        await sftp.put(str(local), str(remote))
        await sftp.get(str(remote), str(back))
    assert remote.read_bytes() == data
    assert back.read_bytes() == data


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()


async def test_local_port_forwarding(ssh_server: SSHTestServer) -> None:
    echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
    echo_port = echo.sockets[0].getsockname()[1]
    try:
        async with connect(ssh_server) as conn:
            listener = await conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", echo_port)
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", listener.get_port())
                try:
                    writer.write(b"ping through the tunnel")
                    await writer.drain()
                    writer.write_eof()
                    assert await reader.read() == b"ping through the tunnel"
                finally:
                    writer.close()
                    await writer.wait_closed()
            finally:
                listener.close()
                await listener.wait_closed()
    finally:
        echo.close()
        await echo.wait_closed()


async def test_drop_ends_the_connection_and_the_listener_stays(
    ssh_server: SSHTestServer,
) -> None:
    async with connect(ssh_server) as conn:
        async with conn.create_process("cat /dev/zero", encoding=None) as process:
            assert await process.stdout.read(1 << 16)  # the command is streaming
            ssh_server.drop()
            with pytest.raises((asyncssh.Error, OSError)):  # noqa: PT012
                async with asyncio.timeout(30):
                    while await process.stdout.read(1 << 16):
                        pass
                    # EOF without an error: the channel must at least report no exit status
                    await process.wait(check=True)
        async with asyncio.timeout(30):
            await conn.wait_closed()

    async with connect(ssh_server) as conn:
        result = await conn.run("echo still here", check=True)
    assert result.stdout == "still here\n"


async def test_unknown_host_key_is_rejected(ssh_server: SSHTestServer, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        async with connect(ssh_server, known_hosts=empty):
            pass

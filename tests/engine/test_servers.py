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


async def test_a_command_killed_by_a_signal_reports_it(ssh_server: SSHTestServer) -> None:
    async with connect(ssh_server) as conn:
        result = await conn.run("kill -TERM $$")
    assert result.exit_signal is not None
    assert result.exit_signal[0] == "TERM"
    assert result.returncode == -15


async def test_large_output_streams_completely(ssh_server: SSHTestServer) -> None:
    size = 20_000_000
    received = 0
    async with (
        connect(ssh_server) as conn,
        conn.create_process(f"head -c {size} /dev/zero", encoding=None) as process,
    ):
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


async def _read_to_end(process: asyncssh.SSHClientProcess[bytes]) -> None:
    while await process.stdout.read(1 << 16):
        pass


async def test_drop_ends_the_connection_and_the_listener_stays(
    ssh_server: SSHTestServer,
) -> None:
    async with connect(ssh_server) as conn:
        async with conn.create_process("cat /dev/zero", encoding=None) as process:
            assert await process.stdout.read(1 << 16)  # the command is streaming
            ssh_server.drop()
            # The client sees the connection end (an error, not a clean EOF), and soon. Which
            # error is a race: ConnectionLost, or the OSError of a send (BrokenPipeError,
            # ConnectionResetError) when asyncssh was about to write a window adjust.
            with pytest.raises((asyncssh.DisconnectError, ConnectionError)):
                await asyncio.wait_for(_read_to_end(process), 30)
        await asyncio.wait_for(conn.wait_closed(), 30)

    async with connect(ssh_server) as conn:
        result = await conn.run("echo still here", check=True)
    assert result.stdout == "still here\n"


async def test_unknown_host_key_is_rejected(ssh_server: SSHTestServer, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        async with connect(ssh_server, known_hosts=empty):
            pass


async def test_an_unknown_client_key_is_refused(ssh_server: SSHTestServer, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger_ed25519"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    stranger.chmod(0o600)
    with pytest.raises(asyncssh.PermissionDenied):
        async with asyncssh.connect(
            ssh_server.address,
            port=ssh_server.port,
            username=ssh_server.user,
            client_keys=[str(stranger)],
            known_hosts=str(ssh_server.known_hosts),
            config=None,
        ):
            pass

"""engine.remote.ssh against both real SSH servers: host keys, exec, streaming, forwards, SFTP."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
from sshd import SSHTestServer
from timing import DEADLINE, until

from engine.config.model import HostConfig
from engine.errors import HostKeyError, RemoteCommandError, SSHConnectError
from engine.remote.commands import STDERR_TAIL_BYTES
from engine.remote.ssh import SSHHost, connect


def host_config(server: SSHTestServer, **overrides: object) -> HostConfig:
    values: dict[str, object] = {
        "address": server.address,
        "port": server.port,
        "user": server.user,
        "identity": server.identity,
        "known_hosts": server.known_hosts,
    }
    values.update(overrides)
    return HostConfig(**values)  # type: ignore[arg-type]


async def open_host(server: SSHTestServer, **overrides: object) -> SSHHost:
    return await connect("h1", host_config(server, **overrides))


async def test_exit_status_and_stderr_tail_reach_the_error(ssh_server: SSHTestServer) -> None:
    host = await open_host(ssh_server)
    try:
        with pytest.raises(RemoteCommandError) as info:
            await host.stream(["sh", "-c", "echo out; echo 'disk on fire' >&2; exit 3"])
        message = str(info.value)
        assert "exited with status 3" in message
        assert "disk on fire" in message
    finally:
        await host.close()


async def test_stderr_tail_is_bounded_to_its_end(ssh_server: SSHTestServer) -> None:
    host = await open_host(ssh_server)
    script = "for i in $(seq 1 5000); do echo line-$i >&2; done; exit 1"
    try:
        with pytest.raises(RemoteCommandError) as info:
            await host.stream(["sh", "-c", script])
    finally:
        await host.close()
    message = str(info.value)
    assert "line-5000" in message
    assert "line-1\n" not in message
    assert len(message) < STDERR_TAIL_BYTES + 300


async def test_stdout_streams_and_stdin_feeds(ssh_server: SSHTestServer) -> None:
    host = await open_host(ssh_server)
    received = bytearray()
    size = 8 * 1024 * 1024

    async def chunks():  # noqa: ANN202
        for _ in range(size // 65536):
            yield b"x" * 65536

    try:
        await host.stream(["head", "-c", str(size), "/dev/zero"], on_stdout=received.extend)
        assert len(received) == size
        counted = bytearray()
        await host.stream(["wc", "-c"], on_stdout=counted.extend, stdin=chunks())
        assert int(counted.decode().strip()) == size
    finally:
        await host.close()


async def test_unknown_host_key_is_refused_with_how_to_trust(
    ssh_server: SSHTestServer, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError) as info:
        await open_host(ssh_server, known_hosts=empty)
    message = str(info.value)
    assert "unknown host key" in message
    assert "ssh-keyscan" in message
    assert "trust_on_first_use" in message
    assert "SHA256:" in message


async def test_trust_on_first_use_records_the_key(
    ssh_server: SSHTestServer, tmp_path: Path
) -> None:
    known = tmp_path / "ssh" / "known_hosts"
    host = await open_host(ssh_server, known_hosts=known, trust_on_first_use=True)
    await host.close()
    recorded = known.read_text()
    assert f"[{ssh_server.address}]:{ssh_server.port} ssh-ed25519 " in recorded
    assert oct(known.stat().st_mode & 0o777) == "0o600"
    # the recorded key is now trusted without TOFU
    host = await open_host(ssh_server, known_hosts=known, trust_on_first_use=False)
    await host.close()


async def test_changed_key_is_refused_even_with_trust_on_first_use(
    ssh_server: SSHTestServer, tmp_path: Path
) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known = tmp_path / "known_hosts"
    known.write_text(f"[{ssh_server.address}]:{ssh_server.port} {other}")
    with pytest.raises(HostKeyError) as info:
        await open_host(ssh_server, known_hosts=known, trust_on_first_use=True)
    assert "CHANGED" in str(info.value)
    assert "ssh-keygen -R" in str(info.value)
    assert known.read_text() == f"[{ssh_server.address}]:{ssh_server.port} {other}"


async def test_wrong_client_key_is_an_authentication_error(
    ssh_server: SSHTestServer, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger"
    stranger.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    stranger.chmod(0o600)
    with pytest.raises(SSHConnectError, match="authentication as .* failed"):
        await open_host(ssh_server, identity=stranger)


async def test_unreachable_host_is_named(tmp_path: Path) -> None:
    from sshd import free_port

    config = HostConfig(
        address="127.0.0.1",
        port=free_port(),
        identity=None,
        known_hosts=tmp_path / "kh",
        connect_timeout=2,
    )
    with pytest.raises(SSHConnectError, match="cannot connect to .*127.0.0.1"):
        await connect("gone", config)


async def test_local_forward_reaches_a_service_behind_the_host(ssh_server: SSHTestServer) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"echo:" + await reader.readline())
        await writer.drain()
        writer.close()

    service = await asyncio.start_server(echo, "127.0.0.1", 0)
    service_port = service.sockets[0].getsockname()[1]
    host = await open_host(ssh_server)
    try:
        async with host.forward_local("127.0.0.1", service_port) as local_port:
            reader, writer = await asyncio.open_connection("127.0.0.1", local_port)
            writer.write(b"ping\n")
            await writer.drain()
            assert await reader.read() == b"echo:ping\n"
            writer.close()
            await writer.wait_closed()
    finally:
        await host.close()
        service.close()
        await service.wait_closed()


async def test_sftp_put_stream_writes_a_private_file_as_chunks_come(
    ssh_server: SSHTestServer, tmp_path: Path
) -> None:
    chunks = [bytes([n]) * 300_000 for n in range(7)]
    remote = tmp_path / "remote.bin"

    async def produce() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    host = await open_host(ssh_server)
    try:
        await host.put_stream(produce(), str(remote))
    finally:
        await host.close()
    assert remote.read_bytes() == b"".join(chunks)
    assert stat.S_IMODE(remote.stat().st_mode) == 0o600


# How a bulk command ended, in words, through both clients (asyncssh, the system ssh).


@pytest.mark.parametrize("bulk", ["openssh", "asyncssh"])
async def test_a_command_killed_by_a_signal_is_not_called_a_lost_connection(
    ssh_server: SSHTestServer, bulk: str
) -> None:
    host = await open_host(ssh_server, bulk_transport=bulk)
    try:
        with pytest.raises(RemoteCommandError) as info:
            await host.stream("printf dying >&2; kill -KILL $$", bulk=True)
        killed = str(info.value)
        with pytest.raises(RemoteCommandError) as info:
            await host.stream(["sh", "-c", "echo out of luck >&2; exit 255"], bulk=True)
        exited = str(info.value)
    finally:
        await host.close()
    words = "killed by signal KILL" if bulk == "asyncssh" else "killed by a signal"
    assert f"h1: `printf dying >&2; kill -KILL $$` was {words}; stderr: dying" in killed
    assert "exited with status 255; stderr: out of luck" in exited
    for message in (killed, exited):
        assert "connection" not in message
        assert "debug1" not in message


@pytest.mark.parametrize("bulk", ["openssh", "asyncssh"])
async def test_a_dropped_connection_is_called_one(ssh_server: SSHTestServer, bulk: str) -> None:
    host = await open_host(ssh_server, bulk_transport=bulk)
    started = asyncio.Event()
    stream = asyncio.ensure_future(
        host.stream("echo up; exec sleep 60", on_stdout=lambda _: started.set(), bulk=True)
    )
    try:
        await until(started.is_set, "the remote command to start")
        ssh_server.drop()
        with pytest.raises(RemoteCommandError) as info:
            await asyncio.wait_for(stream, DEADLINE)
    finally:
        stream.cancel()
        await host.close()
    assert "connection" in str(info.value)
    assert "killed" not in str(info.value)
    assert "debug1" not in str(info.value)

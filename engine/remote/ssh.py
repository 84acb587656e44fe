"""SSH transport: verified connections, streaming exec, port forwards and SFTP.

Every remote action of Lifeboat goes through here, so the security rules live in one place:
host keys are checked against known_hosts (trust on first use only where a host opts in, and
never for a changed key), commands are built from argument lists, and bulk output streams
straight into a sink with SSH flow control as back-pressure, so memory stays flat.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import asyncssh

from engine.config.model import HostConfig
from engine.errors import HostKeyError, RemoteCommandError, SSHConnectError
from engine.remote.commands import (
    CIPHERS,
    KEEPALIVE_COUNT_MAX,
    CommandOutput,
    OutputSink,
    TailBuffer,
    ends_with_channel,
    quote_command,
    single_chunk,
)
from engine.remote.openssh import openssh_client, stream_openssh

# A larger channel window and packet size keep a fast link busy with less per-packet overhead.
CHANNEL_WINDOW = 8 * 1024 * 1024
CHANNEL_MAX_PACKET = 128 * 1024


class _HostKeyPolicy(asyncssh.SSHClient):
    """Records the key a server offers and applies trust on first use when allowed.

    asyncssh asks ``validate_host_public_key`` whenever the offered key is not in known_hosts,
    which includes a *changed* key of a known host: that case is always refused.
    """

    def __init__(self, known_hosts: Path, has_entry: bool, trust_on_first_use: bool) -> None:
        self.known_hosts = known_hosts
        self.has_entry = has_entry
        self.trust_on_first_use = trust_on_first_use
        self.offered_key: asyncssh.SSHKey | None = None
        self.trusted_now = False

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.offered_key = key
        if self.has_entry or not self.trust_on_first_use:
            return False
        _append_known_host(self.known_hosts, host, port, key)
        self.trusted_now = True
        return True


def _known_hosts_pattern(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def _append_known_host(path: Path, address: str, port: int, key: asyncssh.SSHKey) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = f"{_known_hosts_pattern(address, port)} {key.export_public_key().decode().strip()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_known_hosts(path: Path) -> asyncssh.SSHKnownHosts:
    try:
        return asyncssh.read_known_hosts(str(path))
    except FileNotFoundError:
        return asyncssh.import_known_hosts("")
    except (OSError, ValueError) as exc:
        raise HostKeyError(f"cannot read known_hosts file {path}: {exc}") from exc


class SSHHost:
    """One verified SSH connection to a configured host."""

    def __init__(self, name: str, config: HostConfig, conn: asyncssh.SSHClientConnection) -> None:
        self.name = name
        self.config = config
        self.conn = conn

    async def close(self) -> None:
        self.conn.close()
        await self.conn.wait_closed()

    async def stream(
        self,
        argv: Sequence[str] | str,
        *,
        on_stdout: OutputSink | None = None,
        stdin: AsyncIterable[bytes] | None = None,
        ok_statuses: frozenset[int] = frozenset({0}),
        bulk: bool = False,
        stdout_fd: int | None = None,
        stdin_fd: int | None = None,
    ) -> CommandOutput:
        """Run a command, feeding ``stdin`` and handing each stdout chunk to ``on_stdout``.

        ``argv`` is an argument list (quoted here) or a shell line whose parts were quoted
        with :func:`quote_command`. Raises :class:`RemoteCommandError` with the exit status
        and stderr tail unless the status is in ``ok_statuses``. ``bulk`` marks a transfer
        of backup data, which goes through the system ``ssh`` client when the host's
        ``bulk_transport`` allows it (see ``engine.remote.openssh``); a bulk command without
        ``stdin`` also ends when its channel closes (see ``ends_with_channel``). For a bulk
        command, when :meth:`writes_files` says so, ``stdout_fd`` is where the ``ssh`` child
        writes the output itself, and ``stdin_fd`` a file it reads the input from itself.
        """
        command = argv if isinstance(argv, str) else quote_command(argv)
        fed = stdin is not None or stdin_fd is not None
        sent = ends_with_channel(command) if bulk and not fed else command
        client = self._bulk_client() if bulk else None
        if client is not None:
            return await stream_openssh(
                client,
                self.name,
                self.config,
                command,
                on_stdout=on_stdout,
                stdin=stdin,
                ok_statuses=ok_statuses,
                sent=sent,
                stdout_fd=stdout_fd,
                stdin_fd=stdin_fd,
            )
        if stdout_fd is not None or stdin_fd is not None:
            raise ValueError("only the ssh client reads or writes a file itself (writes_files)")
        session = _StreamSession(on_stdout)
        try:
            chan, _ = await self.conn.create_session(
                lambda: session,
                sent,
                encoding=None,
                window=CHANNEL_WINDOW,
                max_pktsize=CHANNEL_MAX_PACKET,
            )
        except (asyncssh.Error, OSError) as exc:
            raise RemoteCommandError(f"{self.name}: cannot start `{command}`: {exc}") from exc
        try:
            if stdin is not None:
                await session.feed(chan, stdin)
            await chan.wait_closed()
        except BaseException:
            chan.abort()
            raise
        status = session.result(self.name, command, chan, ok_statuses)
        return CommandOutput(b"", session.stderr.text(), status)

    def writes_files(self) -> bool:
        """Whether a bulk command's output can go straight into a file (the ``ssh`` child's
        stdout), with no Python in its path."""
        return self._bulk_client() is not None

    def _bulk_client(self) -> str | None:
        choice = self.config.bulk_transport
        if choice == "asyncssh":
            return None
        client = openssh_client()
        if client is None and choice == "openssh":
            raise SSHConnectError(
                f'hosts.{self.name}.bulk_transport is "openssh" but no `ssh` client is '
                'installed here; install openssh-client or set bulk_transport = "auto"'
            )
        return client

    async def capture(
        self,
        argv: Sequence[str] | str,
        *,
        ok_statuses: frozenset[int] = frozenset({0}),
        stdin: bytes | None = None,
    ) -> CommandOutput:
        """Run a short command (fed ``stdin``, e.g. a password) and collect its small output."""
        chunks: list[bytes] = []
        feed = single_chunk(stdin) if stdin is not None else None
        outcome = await self.stream(
            argv, on_stdout=chunks.append, ok_statuses=ok_statuses, stdin=feed
        )
        return CommandOutput(b"".join(chunks), outcome.stderr, outcome.exit_status)

    async def has_command(self, name: str) -> bool:
        """Whether ``name`` is on the remote PATH."""
        output = await self.capture(
            f"command -v {shlex.quote(name)} >/dev/null 2>&1", ok_statuses=frozenset({0, 1, 127})
        )
        return output.exit_status == 0

    @asynccontextmanager
    async def forward_local(self, dest_host: str, dest_port: int) -> AsyncIterator[int]:
        """Forward a random local loopback port to ``dest_host:dest_port`` as seen by the host."""
        try:
            listener = await self.conn.forward_local_port("127.0.0.1", 0, dest_host, dest_port)
        except (asyncssh.Error, OSError) as exc:
            raise SSHConnectError(
                f"{self.name}: cannot forward a local port to {dest_host}:{dest_port}: {exc}; "
                "check that the host's sshd allows TCP forwarding (AllowTcpForwarding yes)"
            ) from exc
        try:
            yield listener.get_port()
        finally:
            listener.close()
            await listener.wait_closed()

    async def put_stream(self, chunks: AsyncIterable[bytes], remote: str) -> None:
        """Write ``chunks`` to a new file ``remote`` (mode 0600) over SFTP, as they come."""
        try:
            async with (
                self.conn.start_sftp_client() as sftp,
                sftp.open(remote, "wb", asyncssh.SFTPAttrs(permissions=0o600)) as file,
            ):
                async for chunk in chunks:
                    await file.write(chunk)
        except (asyncssh.Error, OSError) as exc:
            raise RemoteCommandError(f"{self.name}: SFTP upload to {remote} failed: {exc}") from exc


class _StreamSession(asyncssh.SSHClientSession[bytes]):
    """Hands stdout to a sink as it arrives, keeps a bounded stderr tail, tracks flow control."""

    def __init__(self, on_stdout: OutputSink | None) -> None:
        self.on_stdout = on_stdout
        self.stderr = TailBuffer()
        self.sink_error: BaseException | None = None
        self.lost: Exception | None = None
        self.channel: asyncssh.SSHClientChannel[bytes] | None = None
        self.writable = asyncio.Event()
        self.writable.set()

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self.channel = chan

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            self.stderr.append(data)
        elif self.on_stdout is not None and self.sink_error is None:
            try:
                room = self.on_stdout(data)
            except Exception as exc:  # the sink failed (disk full...): stop the command
                self.sink_error = exc
                if self.channel is not None:
                    self.channel.close()
                return
            if room is not None and self.channel is not None:  # the sink is full: wait
                self.channel.pause_reading()
                room.add_done_callback(lambda _: self._resume_reading())

    def _resume_reading(self) -> None:
        if self.channel is not None:
            self.channel.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    async def feed(
        self, chan: asyncssh.SSHClientChannel[bytes], chunks: AsyncIterable[bytes]
    ) -> None:
        """Write every chunk to the command's stdin, waiting while the peer's window is full."""
        async for chunk in chunks:
            await self.writable.wait()
            if chan.is_closing():
                return
            chan.write(chunk)
        await self.writable.wait()
        if not chan.is_closing():
            chan.write_eof()

    def result(
        self,
        host: str,
        command: str,
        chan: asyncssh.SSHClientChannel[bytes],
        ok_statuses: frozenset[int],
    ) -> int:
        if self.sink_error is not None:
            raise self.sink_error
        status = chan.get_exit_status()
        signal = chan.get_exit_signal()
        tail = self.stderr.text()
        detail = f"; stderr: {tail}" if tail else ""
        if signal is not None:
            raise RemoteCommandError(
                f"{host}: `{command}` was killed by signal {signal[0]}{detail}"
            )
        if status is None:
            reason = f" ({self.lost})" if self.lost else ""
            raise RemoteCommandError(
                f"{host}: connection lost before `{command}` finished{reason}{detail}; "
                "check the network and the host, then retry"
            )
        if status not in ok_statuses:
            raise RemoteCommandError(f"{host}: `{command}` exited with status {status}{detail}")
        return status


async def connect(name: str, config: HostConfig) -> SSHHost:
    """Open a verified connection to the configured host ``name``."""
    known = _load_known_hosts(config.known_hosts)
    has_entry = bool(known.match(config.address, config.address, config.port)[0])
    policy = _HostKeyPolicy(config.known_hosts, has_entry, config.trust_on_first_use)
    options: dict[str, object] = {}
    if config.identity is not None:
        if not config.identity.is_file():
            raise SSHConnectError(
                f"hosts.{name}.identity: key file {config.identity} not found; "
                "fix the path or remove the key to use the SSH agent"
            )
        options["client_keys"] = [str(config.identity)]
    target = f"{config.user}@{config.address}:{config.port}"
    try:
        conn = await asyncio.wait_for(
            asyncssh.connect(
                config.address,
                port=config.port,
                username=config.user,
                known_hosts=known,
                client_factory=lambda: policy,
                encryption_algs=list(CIPHERS),
                keepalive_interval=config.keepalive_interval,
                keepalive_count_max=KEEPALIVE_COUNT_MAX,
                connect_timeout=config.connect_timeout,
                **options,
            ),
            timeout=config.connect_timeout * 2,
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        raise _host_key_error(name, config, policy) from exc
    except asyncssh.PermissionDenied as exc:
        raise SSHConnectError(
            f"{name}: authentication as {target} failed; check hosts.{name}.user and "
            f"hosts.{name}.identity, and that the public key is in the host's authorized_keys"
        ) from exc
    except TimeoutError as exc:
        raise SSHConnectError(
            f"{name}: no answer from {target} within {config.connect_timeout:g}s; "
            "check the address, port and firewall"
        ) from exc
    except (OSError, asyncssh.Error) as exc:
        raise SSHConnectError(
            f"{name}: cannot connect to {target}: {exc}; check the address and that sshd runs"
        ) from exc
    return SSHHost(name, config, conn)


def _host_key_error(name: str, config: HostConfig, policy: _HostKeyPolicy) -> HostKeyError:
    pattern = _known_hosts_pattern(config.address, config.port)
    fingerprint = policy.offered_key.get_fingerprint("sha256") if policy.offered_key else "?"
    if policy.has_entry:
        return HostKeyError(
            f"{name}: the host key of {pattern} has CHANGED (now {fingerprint}) and does not "
            f"match {config.known_hosts}; this may be an attack. If the host was really "
            f"re-keyed, remove the old entry with `ssh-keygen -R '{pattern}' -f "
            f"{config.known_hosts}` and connect again"
        )
    return HostKeyError(
        f"{name}: unknown host key for {pattern} ({fingerprint}), not in {config.known_hosts}; "
        f"after checking the fingerprint, add it with `ssh-keyscan -p {config.port} "
        f"{config.address} >> {config.known_hosts}`, or set hosts.{name}.trust_on_first_use = true"
    )


class ConnectionPool:
    """One connection per host per job, opened on first use and closed together."""

    def __init__(self, hosts: dict[str, HostConfig]) -> None:
        self._hosts = hosts
        self._connections: dict[str, asyncio.Task[SSHHost]] = {}

    async def get(self, name: str) -> SSHHost:
        task = self._connections.get(name)
        if task is None:
            task = asyncio.ensure_future(connect(name, self._hosts[name]))
            self._connections[name] = task
        return await asyncio.shield(task)

    async def close(self) -> None:
        for task in self._connections.values():
            if not task.done():
                task.cancel()
        for task in self._connections.values():
            try:
                host = await task
            except (asyncio.CancelledError, Exception):  # already reported to whoever asked
                continue
            await host.close()
        self._connections.clear()

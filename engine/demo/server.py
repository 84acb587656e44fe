"""An in-process SSH server that runs real shell commands on this machine.

It stands in for remote hosts in the demo sandbox (``lifeboat demo``) and in the tests: the
engine talks to it with the same asyncssh client code it uses in production, and every exec
request runs ``/bin/sh -c <command>`` for real. It also serves SFTP on the local filesystem
and local port forwards (``direct-tcpip``) to any address.

It is a test and demo tool, not a hardened server: it listens on loopback by default,
accepts exactly one client key, and runs commands as the user running it, with its
environment, from its home directory (as sshd would). ``path`` puts directories first on the
commands' ``PATH`` (the demo's host finds its ``prexorctl`` there). No pseudo-terminals.

Importable without Textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

__all__ = ["InProcessSSHServer", "SandboxKeys", "generate_keys", "write_known_hosts"]

_log = logging.getLogger(__name__)
_CHUNK = 256 * 1024  # bytes per read of a client's input
_SFTP_VERSION = 3  # the version OpenSSH's sftp-server speaks


@dataclass(frozen=True)
class SandboxKeys:
    """Key files for a sandbox: a server host key and one client key, all ed25519.

    Private keys are in OpenSSH format without a passphrase, so the system ``ssh`` client and
    OpenSSH ``sshd`` can use them as well as asyncssh.
    """

    host_key: Path
    host_public_key: Path
    client_key: Path
    client_public_key: Path


def _write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600 from the start."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)


def _ensure_key_pair(private: Path, public: Path, comment: str) -> None:
    """Create an ed25519 key pair at ``private``/``public``, keeping an existing private key."""
    if private.exists():
        if not public.exists():
            key = asyncssh.read_private_key(private)
            key.set_comment(comment)
            _write_private_file(public, key.export_public_key("openssh"))
    else:
        key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
        _write_private_file(private, key.export_private_key("openssh"))
        _write_private_file(public, key.export_public_key("openssh"))
    for path in (private, public):
        path.chmod(0o600)


def generate_keys(directory: Path) -> SandboxKeys:
    """Create (or reuse, when already there) the sandbox's host and client keys in ``directory``.

    The directory is created if needed and made 0700; key files are 0600.
    """
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    keys = SandboxKeys(
        host_key=directory / "host_ed25519",
        host_public_key=directory / "host_ed25519.pub",
        client_key=directory / "client_ed25519",
        client_public_key=directory / "client_ed25519.pub",
    )
    _ensure_key_pair(keys.host_key, keys.host_public_key, "lifeboat-sandbox-host")
    _ensure_key_pair(keys.client_key, keys.client_public_key, "lifeboat-sandbox-client")
    return keys


def write_known_hosts(path: Path, address: str, port: int, host_public_key: Path) -> None:
    """Write (replace) a known_hosts file at ``path`` trusting one host key for address:port."""
    key_type, key_data = host_public_key.read_text().split()[:2]
    host = address if port == 22 else f"[{address}]:{port}"
    _write_private_file(path, f"{host} {key_type} {key_data}\n".encode())


class _SessionProcess(asyncssh.SSHServerProcess[bytes]):
    """asyncssh's server process, with input flow control that actually bounds memory.

    asyncssh's channel re-opens the SSH window each time it hands a packet to the session,
    sized by what has arrived rather than by what the session consumed. A stock stream
    session resumes the channel whenever one read frees a little room, so each small read
    lets the client push up to a whole window more into the channel's buffer: seen holding
    ~180 MB while 256 MB of stdin went to ``wc -c``. Resuming only once the buffer is empty
    lets in at most about one window per pause/resume cycle. (Relies on two asyncssh
    internals, ``_recv_buf_len`` and ``_maybe_resume_reading``; asyncssh is pinned < 3.)
    """

    def _maybe_resume_reading(self) -> bool:
        if self._recv_buf_len:
            return False
        return super()._maybe_resume_reading()


class _ConnectionHandler(asyncssh.SSHServer):
    """Per-connection callbacks: public-key auth with the one client key, any local forward."""

    def __init__(self, owner: InProcessSSHServer) -> None:
        self._owner = owner
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._owner._connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._owner._connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True  # authentication is always required

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # asyncssh checks the client's signature itself; we only say which key is acceptable.
        user_ok = self._owner._authorized_user in (None, username)
        return user_ok and key.public_data == self._owner._client_key.public_data

    def session_requested(self) -> asyncssh.SSHServerSession[bytes]:
        # Exec, shell and the SFTP subsystem; see _SessionProcess for why not process_factory.
        # asyncssh types an SFTP factory's argument as SSHChannel; it passes the server
        # channel that SFTPServer takes.
        return _SessionProcess(
            self._owner._handle_session,
            asyncssh.SFTPServer,  # type: ignore[arg-type]
            _SFTP_VERSION,
            False,
        )

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        return True  # plain local port forwarding, to any destination


class InProcessSSHServer:
    """An asyncssh server on this event loop that runs commands with ``/bin/sh -c``.

    Usage: ``server = InProcessSSHServer(keys); await server.start(); ... await server.close()``.
    The event loop must keep running for the server to serve (async tests, or the demo's loop).
    """

    def __init__(
        self,
        keys: SandboxKeys,
        *,
        authorized_user: str | None = None,
        path: Sequence[Path] = (),
    ) -> None:
        """``authorized_user``: the only user name accepted (``None``: any name); ``path``:
        directories searched first for the commands run (before this process's ``PATH``)."""
        self._keys = keys
        self._authorized_user = authorized_user
        self._path = tuple(str(directory) for directory in path)
        self._client_key = asyncssh.read_public_key(keys.client_public_key)
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._port: int | None = None
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._sessions: set[asyncio.Task[None]] = set()
        self._children: set[asyncio.subprocess.Process] = set()

    async def start(self, address: str = "127.0.0.1", port: int = 0) -> None:
        """Start listening on ``address:port`` (port 0 picks a free one; see ``port``)."""
        if self._acceptor is not None:
            raise RuntimeError("server already started")
        self._acceptor = await asyncssh.listen(
            address,
            port,
            server_factory=lambda: _ConnectionHandler(self),
            server_host_keys=[str(self._keys.host_key)],
            encoding=None,  # bytes in, bytes out
            allow_pty=False,
        )
        self._port = self._acceptor.get_port()

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    async def close(self) -> None:
        """Stop listening, disconnect every client, stop every command, and wait for all that."""
        if self._acceptor is not None:
            self._acceptor.close()
        self._kill_children()
        connections = list(self._connections)
        for conn in connections:
            conn.close()
        for conn in connections:
            await conn.wait_closed()
        if self._sessions:
            await asyncio.gather(*self._sessions, return_exceptions=True)
        if self._acceptor is not None:
            await self._acceptor.wait_closed()
            self._acceptor = None

    def drop_connections(self) -> None:
        """Abort every connection without an SSH disconnect, and kill every running command.

        Simulates a dropped link or a killed server; the listener stays up.
        """
        self._kill_children()
        for conn in list(self._connections):
            conn.abort()

    def _kill_children(self) -> None:
        for child in self._children:
            _kill_process_group(child)

    def _environment(self) -> dict[str, str] | None:
        """The commands' environment: this process's, with ``path`` first on ``PATH``."""
        if not self._path:
            return None
        inherited = os.environ.get("PATH", os.defpath)
        return {**os.environ, "PATH": os.pathsep.join((*self._path, inherited))}

    async def _handle_session(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        """Serve one session channel (SFTP never gets here: asyncssh serves it)."""
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            if process.subsystem is not None:
                process.stderr.write(f"subsystem {process.subsystem!r} not supported\n".encode())
                process.exit(1)
            elif process.command is None:
                await self._run(process, ["/bin/sh"])  # a "shell": commands read from stdin
            else:
                await self._run(process, ["/bin/sh", "-c", process.command])
        except Exception:
            # Left to asyncssh, an error here would tear down the whole connection.
            _log.exception("session failed: %r", process.command)
            if not process.is_closing():
                process.exit(255)
        finally:
            self._sessions.discard(task)

    async def _run(self, process: asyncssh.SSHServerProcess[bytes], argv: list[str]) -> None:
        # stdout/stderr: plain OS pipes, handed to asyncssh's redirect(), which forwards them
        # with pipe transports that stop reading while the channel's send window is full, so
        # output of any size streams with flat memory.
        # stdin: copied by our own task (_forward_stdin), not redirected: asyncssh's pipe
        # writer writes from inside the pipe transport's resume_writing() callback and then
        # writes EOF, and asyncio's _UnixWritePipeTransport._write_ready then closes the pipe
        # with that last data still buffered (seen losing ~64 KiB of 3 MB of stdin, 1 run in
        # 12, Python 3.11). A task that writes and awaits drain() never re-enters it.
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        try:
            child = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=stdout_w,
                stderr=stderr_w,
                cwd=_home_directory(),
                env=self._environment(),
                start_new_session=True,  # its own process group, so we can kill the whole job
            )
        except OSError as exc:
            os.close(stdout_r)
            os.close(stderr_r)
            process.stderr.write(f"cannot run {argv[0]}: {exc}\n".encode())
            process.exit(127)
            return
        finally:
            os.close(stdout_w)
            os.close(stderr_w)

        self._children.add(child)
        assert child.stdin is not None
        closed = asyncio.ensure_future(process.channel.wait_closed())
        stdin_task = asyncio.ensure_future(_forward_stdin(process, child))
        pending: set[asyncio.Future[Any]] = {closed, stdin_task}
        try:
            # asyncssh now owns the read ends and closes them with their transports.
            # send_eof=False: EOF on the child's stdout must not end the channel, or stderr
            # written after it and the exit status would be lost.
            await process.redirect(stdout=stdout_r, stderr=stderr_r, send_eof=False)

            exited = asyncio.ensure_future(child.wait())
            pending.add(exited)
            await asyncio.wait({closed, exited}, return_when=asyncio.FIRST_COMPLETED)
            if closed.done():
                return  # the client went away; the finally clause kills the command
            # The child has exited, but its last output may still be in the pipes (their
            # reading pauses while the channel's window is full) or in the channel's send
            # buffer. drain() on each stream returns once its pipe hit EOF and all was sent.
            # It would never return if the channel closed meanwhile (asyncssh forgets the pipe
            # readers without waking drain), hence the race against ``closed``.
            drained = asyncio.ensure_future(_drain(process))
            pending.add(drained)
            await asyncio.wait({closed, drained}, return_when=asyncio.FIRST_COMPLETED)
            if not closed.done():
                _report_exit(process, child.returncode)
        finally:
            for future in pending:
                future.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if child.returncode is None:
                _kill_process_group(child)
            await child.wait()
            self._children.discard(child)
            await process.wait_closed()


async def _forward_stdin(
    process: asyncssh.SSHServerProcess[bytes], child: asyncio.subprocess.Process
) -> None:
    """Copy the channel's input to the command's stdin, with back-pressure both ways.

    Signals and breaks from the client arrive here too (as exceptions from read()).
    """
    assert child.stdin is not None
    writer: asyncio.StreamWriter | None = child.stdin
    try:
        while True:
            try:
                data = await process.stdin.read(_CHUNK)
            except asyncssh.SignalReceived as exc:  # like sshd: to the command's process group
                with contextlib.suppress(AttributeError, ProcessLookupError, PermissionError):
                    os.killpg(child.pid, getattr(signal, f"SIG{exc.signal}"))
                continue
            except asyncssh.BreakReceived:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGINT)
                continue
            except asyncssh.TerminalSizeChanged:
                continue
            if not data:
                break
            if writer is None:
                continue  # stdin already closed by the command: discard, as sshd does
            try:
                writer.write(data)
                await writer.drain()
            except ConnectionError:
                writer.close()
                writer = None
    except (asyncssh.Error, OSError):
        pass  # the channel or connection closed; _run notices and cleans up
    finally:
        if writer is not None:
            writer.close()  # EOF for the command


async def _drain(process: asyncssh.SSHServerProcess[bytes]) -> None:
    await process.stdout.drain()
    await process.stderr.drain()


def _report_exit(process: asyncssh.SSHServerProcess[bytes], returncode: int | None) -> None:
    """Send the exit status (or, like sshd, the signal that killed the command) and close."""
    assert returncode is not None
    if returncode >= 0:
        process.exit(returncode)
        return
    try:
        name = signal.Signals(-returncode).name.removeprefix("SIG")
    except ValueError:  # a real-time signal has no SSH name
        process.exit(128 - returncode)
    else:
        process.exit_with_signal(name)


def _kill_process_group(child: asyncio.subprocess.Process) -> None:
    """SIGKILL the child's process group (the command and anything it started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)


def _home_directory() -> str | None:
    home = os.path.expanduser("~")
    return home if os.path.isdir(home) else None

"""SSH servers for tests: the system OpenSSH sshd, and what fixtures hand to tests.

The in-process asyncssh server lives in ``engine.demo.server``; ``conftest.py`` wraps both
behind ``SSHTestServer`` so a transport test runs unchanged against each.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from engine.demo.server import InProcessSSHServer, SandboxKeys, write_known_hosts

SSHD = Path("/usr/sbin/sshd")


@dataclass(frozen=True)
class SSHTestServer:
    """An SSH server a test can connect to (not named Test* so pytest does not collect it)."""

    kind: str  # "asyncssh" or "openssh"
    address: str
    port: int
    user: str
    identity: Path  # the client's private key
    known_hosts: Path  # trusts this server's host key at address:port
    host_public_key: Path
    drop: Callable[[], None]  # kill every open connection abruptly; the listener stays up


def terminate(process: subprocess.Popen[bytes] | None) -> None:
    """Stop a server process politely, then firmly, and reap it."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the caller must cope with a rare collision)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def wait_for_port(address: str, port: int, deadline: float) -> bool:
    """Whether ``address:port`` accepts a TCP connection before ``deadline`` (monotonic)."""
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((address, port), 0.5):
            return True
        time.sleep(0.02)
    return False


def _children_by_parent() -> dict[int, list[int]]:
    """Map each pid to its children's pids, read from /proc (no psutil)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as file:
                stat = file.read()
        except OSError:
            continue  # exited meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rindex(b")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (children, grandchildren, ...)."""
    tree = _children_by_parent()
    found: set[int] = set()
    todo = list(tree.get(pid, []))
    while todo:
        child = todo.pop()
        if child not in found:
            found.add(child)
            todo.extend(tree.get(child, []))
    return found


def kill_descendants(pid: int) -> None:
    """SIGKILL every descendant of ``pid``, but not ``pid`` itself.

    They are stopped first, until the set is stable: a stopped process cannot fork, and the
    children of a live (stopped) parent are not reparented away from the tree before we see
    them. Then all are killed together.
    """
    stopped: set[int] = set()
    for _ in range(100):
        new = descendants(pid) - stopped
        if not new:
            break
        for child in new:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGSTOP)
        stopped |= new
    for child in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


class OpenSSHServer:
    """The system OpenSSH sshd on 127.0.0.1 and a free port, configured in ``directory``.

    It authorises the sandbox client key (for every user, root included) and presents the
    sandbox host key. ``start()`` returns once the port accepts connections; ``stop()`` kills
    the listener and every session.
    """

    address = "127.0.0.1"

    def __init__(
        self, keys: SandboxKeys, directory: Path, extra_config: tuple[str, ...] = ()
    ) -> None:
        self.keys = keys
        self.directory = directory
        self.extra_config = extra_config  # more sshd_config lines ("ForceCommand ...")
        self.config = directory / "sshd_config"
        self.log = directory / "sshd.log"
        self.known_hosts = directory / "known_hosts"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> None:
        authorized_keys = self.directory / "authorized_keys"
        authorized_keys.write_bytes(self.keys.client_public_key.read_bytes())
        authorized_keys.chmod(0o600)
        self.config.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.address}",
                    f"Port {self.port}",
                    f"HostKey {self.keys.host_key}",
                    f"AuthorizedKeysFile {authorized_keys}",
                    f"PidFile {self.directory / 'sshd.pid'}",
                    "Subsystem sftp internal-sftp",
                    "UsePAM no",
                    "StrictModes no",  # temporary directories are not root-only
                    "PermitRootLogin prohibit-password",  # the tests run as root
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "AllowTcpForwarding yes",
                    "MaxStartups 100",
                    "MaxSessions 100",
                    "LogLevel VERBOSE",
                    *self.extra_config,
                    "",
                ]
            )
        )

    def start(self, timeout: float = 10.0) -> None:
        """Start sshd and wait until it accepts connections; raise with its log otherwise."""
        if not SSHD.exists():
            raise RuntimeError(f"{SSHD} is missing: run `make test`, which installs openssh-server")
        # sshd's privilege-separation directory; normally made by the package's service.
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        for _attempt in range(5):
            self.port = free_port(self.address)
            self._write_config()
            self.log.unlink(missing_ok=True)
            self._process = subprocess.Popen(
                [str(SSHD), "-D", "-f", str(self.config), "-E", str(self.log)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._process.poll() is None:
                if wait_for_port(self.address, self.port, min(deadline, time.monotonic() + 0.2)):
                    return
            log = self._read_log()
            self.stop()
            if "Address already in use" not in log:
                raise RuntimeError(f"sshd did not start on port {self.port}; its log:\n{log}")
        raise RuntimeError(f"sshd found no free port; its last log:\n{log}")

    def _read_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log written)"

    def drop_connections(self) -> None:
        """Kill -9 every per-connection sshd process and the commands it runs, not the listener."""
        if self._process is not None and self._process.poll() is None:
            kill_descendants(self._process.pid)

    def stop(self) -> None:
        """Kill every session, then the listener, and reap it."""
        if self._process is None:
            return
        self.drop_connections()
        terminate(self._process)
        self._process = None

    def describe(self, user: str) -> SSHTestServer:
        """Describe this (started) server for a test, writing its known_hosts file."""
        write_known_hosts(self.known_hosts, self.address, self.port, self.keys.host_public_key)
        return SSHTestServer(
            kind="openssh",
            address=self.address,
            port=self.port,
            user=user,
            identity=self.keys.client_key,
            known_hosts=self.known_hosts,
            host_public_key=self.keys.host_public_key,
            drop=self.drop_connections,
        )


@contextlib.asynccontextmanager
async def in_process_server(keys: SandboxKeys, directory: Path) -> AsyncIterator[SSHTestServer]:
    """The demo's in-process asyncssh server, served by the running event loop, with a
    known_hosts file in ``directory`` that trusts it."""
    user = getpass.getuser()
    server = InProcessSSHServer(keys, authorized_user=user)
    await server.start("127.0.0.1", 0)
    try:
        known_hosts = directory / "asyncssh_known_hosts"
        write_known_hosts(known_hosts, "127.0.0.1", server.port, keys.host_public_key)
        yield SSHTestServer(
            kind="asyncssh",
            address="127.0.0.1",
            port=server.port,
            user=user,
            identity=keys.client_key,
            known_hosts=known_hosts,
            host_public_key=keys.host_public_key,
            drop=server.drop_connections,
        )
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def sftp_only_asyncssh(keys: SandboxKeys, directory: Path) -> AsyncIterator[SSHTestServer]:
    """An asyncssh server that serves the SFTP subsystem and refuses every command (as AWS
    Transfer and other SFTP appliances do), on this event loop."""
    acceptor = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[str(keys.host_key)],
        authorized_client_keys=str(keys.client_public_key),
        sftp_factory=True,
        allow_scp=False,
    )
    port = acceptor.get_port()

    def cannot_drop() -> None:
        raise NotImplementedError("this server cannot drop its connections; use another one")

    try:
        known_hosts = directory / "sftp_only_known_hosts"
        write_known_hosts(known_hosts, "127.0.0.1", port, keys.host_public_key)
        yield SSHTestServer(
            kind="asyncssh",
            address="127.0.0.1",
            port=port,
            user=getpass.getuser(),
            identity=keys.client_key,
            known_hosts=known_hosts,
            host_public_key=keys.host_public_key,
            drop=cannot_drop,  # closing the listener would not drop the open connections
        )
    finally:
        acceptor.close()
        await acceptor.wait_closed()

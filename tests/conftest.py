"""Shared fixtures: real SSH servers, etcd and a Mongo wire server on loopback (DESIGN.md).

``ssh_server`` runs a test once against the in-process asyncssh server and once against the
system OpenSSH sshd. Tests using it must be ``async``: the asyncssh server is served by the
test's own event loop.
"""

from __future__ import annotations

import getpass
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from checklists import http_server  # noqa: F401 (a fixture, for every test folder)
from etcd_server import EtcdServer
from mongo_server import MongoServer
from processes import endless  # noqa: F401 (a fixture, for every test folder)
from sshd import SSHD, OpenSSHServer, SSHTestServer, in_process_server

from engine.demo.server import SandboxKeys, generate_keys


@pytest.fixture(autouse=True)
def _no_operator_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """$LIFEBOAT_OPERATOR overrides every config's operator: the developer's stays out."""
    monkeypatch.delenv("LIFEBOAT_OPERATOR", raising=False)


@pytest.fixture(scope="session")
def ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> SandboxKeys:
    """Host and client keys shared by every test server of the session."""
    return generate_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
async def asyncssh_server(ssh_keys: SandboxKeys, tmp_path: Path) -> AsyncIterator[SSHTestServer]:
    """The in-process asyncssh server (engine.demo.server) on 127.0.0.1 and a random port."""
    async with in_process_server(ssh_keys, tmp_path) as server:
        yield server


@pytest.fixture
def openssh_server(
    ssh_keys: SandboxKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SSHTestServer]:
    """The system OpenSSH sshd on 127.0.0.1 and a random port."""
    if not SSHD.exists():
        pytest.fail(f"{SSHD} is missing: run `make test`, which installs openssh-server")
    server = OpenSSHServer(ssh_keys, tmp_path_factory.mktemp("sshd"))
    server.start()
    try:
        yield server.describe(getpass.getuser())
    finally:
        server.stop()


@pytest.fixture(params=["asyncssh", "openssh"], ids=["asyncssh", "openssh"])
def ssh_server(request: pytest.FixtureRequest) -> SSHTestServer:
    """Each SSH server in turn: the test runs once per kind."""
    server: SSHTestServer = request.getfixturevalue(f"{request.param}_server")
    return server


@pytest.fixture
def mongo(tmp_path: Path) -> Iterator[MongoServer]:
    """A Mongo wire-protocol server (mongod, else nx-27017) on a random loopback port."""
    directory = tmp_path / "mongo"
    directory.mkdir()
    server = MongoServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def etcd_member(tmp_path: Path) -> Iterator[EtcdServer]:
    """A real single-member etcd on random loopback ports."""
    directory = tmp_path / "etcd"
    directory.mkdir()
    server = EtcdServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()

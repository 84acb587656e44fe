"""Shared fixtures: real SSH servers, etcd, a Mongo wire server and PostgreSQL on loopback
(DESIGN.md).

``ssh_server`` runs a test once against the in-process asyncssh server and once against the
system OpenSSH sshd. Tests using it must be ``async``: the asyncssh server is served by the
test's own event loop.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from checklists import http_server  # noqa: F401 (a fixture, for every test folder)
from etcd_server import EtcdServer
from mongo_server import MongoServer
from pg_server import PostgresServer
from processes import endless  # noqa: F401 (a fixture, for every test folder)
from s3_server import BUCKET, S3Server
from sshd import SSHD, OpenSSHServer, SSHTestServer, in_process_server, sftp_only_asyncssh

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


def running_sshd(
    keys: SandboxKeys, directory: Path, extra_config: tuple[str, ...] = ()
) -> Iterator[SSHTestServer]:
    """The system sshd, configured in ``directory`` (plus ``extra_config`` lines), while the
    generator is suspended; stopped after."""
    if not SSHD.exists():
        pytest.fail(f"{SSHD} is missing: run `make test`, which installs openssh-server")
    server = OpenSSHServer(keys, directory, extra_config)
    server.start()
    try:
        yield server.describe(getpass.getuser())
    finally:
        server.stop()


@pytest.fixture
def openssh_server(
    ssh_keys: SandboxKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SSHTestServer]:
    """The system OpenSSH sshd on 127.0.0.1 and a random port."""
    yield from running_sshd(ssh_keys, tmp_path_factory.mktemp("sshd"))


@pytest.fixture(params=["forcecommand", "no-commands"])
async def sftp_only_server(
    request: pytest.FixtureRequest, ssh_keys: SandboxKeys, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SSHTestServer]:
    """A storage box, SFTP only: the system sshd answering every session with its SFTP
    server (``ForceCommand internal-sftp``), then an asyncssh server refusing every command."""
    directory = tmp_path_factory.mktemp("sftp-only")
    if request.param == "forcecommand":
        for server in running_sshd(ssh_keys, directory, ("ForceCommand internal-sftp",)):
            yield server
    else:
        async with sftp_only_asyncssh(ssh_keys, directory) as server:
            yield server


@pytest.fixture(params=["asyncssh", "openssh"], ids=["asyncssh", "openssh"])
def ssh_server(request: pytest.FixtureRequest) -> SSHTestServer:
    """Each SSH server in turn: the test runs once per kind."""
    server: SSHTestServer = request.getfixturevalue(f"{request.param}_server")
    return server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server on a random loopback port, one per test worker (``s3`` resets it)."""
    server = S3Server(tmp_path_factory.mktemp("s3"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Server:
    """The S3 server, emptied, with the bucket the tests use and credentials in the
    environment (moto takes any; no developer's ~/.aws is read)."""
    import boto3

    s3_server.reset()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "lifeboat-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "lifeboat-test-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    client = boto3.client("s3", endpoint_url=s3_server.url, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return s3_server


@contextlib.contextmanager
def mounted_tmpfs(mount_point: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``mount_point`` (made here) with ``options`` (root only; skips the
    test where mounting is not allowed), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:  # a container without the right to mount
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs to write into until it is full (needs root, as `make test` runs in CI)."""
    with mounted_tmpfs(tmp_path / "tiny", "size=2m,mode=0700") as mount_point:
        yield mount_point


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (root only): a remote disk that fills up."""
    with mounted_tmpfs(tmp_path / "vault", "size=4m") as vault:
        yield vault


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server on a random loopback port, one per test worker: each test makes
    databases of its own names."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


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

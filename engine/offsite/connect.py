"""A configured remote, connected: the one way every command reaches one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from engine.config.model import Config
from engine.config.remotes import RemoteConfig, SftpRemoteConfig
from engine.errors import UsageError
from engine.offsite.remote import Remote
from engine.offsite.sftp import SftpRemote
from engine.remote.ssh import ConnectionPool


def remote_config(config: Config, name: str) -> RemoteConfig:
    """``[remotes.<name>]``; UsageError naming the configured ones when there is none."""
    remote = config.remotes.get(name)
    if remote is None:
        known = ", ".join(config.remotes) or "none; add a [remotes.NAME] table"
        raise UsageError(f"unknown remote {name!r}; configured remotes: {known}")
    return remote


@asynccontextmanager
async def connected(config: Config, name: str) -> AsyncIterator[Remote]:
    """``[remotes.<name>]``, connected for the block; UsageError when no such remote."""
    remote = remote_config(config, name)
    if isinstance(remote, SftpRemoteConfig):
        pool = ConnectionPool(dict(config.hosts))
        try:
            async with SftpRemote(name, remote, await pool.get(remote.host)) as sftp:
                yield sftp
        finally:
            await pool.close()
    else:
        from engine.offsite.s3 import S3Remote  # the S3 client is heavy: loaded when used

        async with S3Remote(name, remote) as s3:
            yield s3

"""A remote on another machine over SSH: SFTP for the files, ``sha256sum`` there to check them.

A file is written as ``<name>.part`` (0600), checked on the host (its size, then its sha256,
computed where it lies rather than read back over the network) and only then renamed into
place; a backup directory is 0700. The host key is verified as for every host.

A host that runs no commands (``ForceCommand internal-sftp``, a storage box's restricted
account) cannot hash there: its files are then read back over SFTP and hashed here, which
costs a second transfer, and the copy says so once.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from typing import cast

import asyncssh

from engine.config.remotes import SftpRemoteConfig
from engine.errors import LifeboatError, RemoteCommandError
from engine.offsite.remote import Remote, RemoteBackup, RemoteError, backup_key, is_backup_id
from engine.remote.commands import quote_command
from engine.remote.hostfacts import file_sha256, probe_path
from engine.remote.ssh import SSHHost

READ_BLOCK = 1024 * 1024
PART_MARK = ".part-"  # a file being written: ``<name>.part-<random>``, renamed once checked
FULL_BELOW = 1024 * 1024  # free bytes under which a failed write is a full disk
FILE_MODE = 0o600
DIR_MODE = 0o700
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # what ``sha256sum /dev/null`` prints
ANY_STATUS = frozenset(range(256))


class SftpRemote(Remote):
    def __init__(self, name: str, config: SftpRemoteConfig, host: SSHHost) -> None:
        super().__init__(name)
        self.config = config
        self.host = host
        self.root = str(config.path)
        self._sftp: asyncssh.SFTPClient | None = None
        self._hashes_there: bool | None = None  # whether the host runs sha256sum for us

    @property
    def where(self) -> str:
        return f"{self.host.name}:{self.root}"

    async def connect(self) -> None:
        try:
            self._sftp = await self.host.conn.start_sftp_client()
        except (asyncssh.Error, OSError) as exc:
            raise RemoteError(
                f"remote {self.name}: SFTP to {self.host.name} failed: {exc}"
            ) from None

    async def close(self) -> None:
        if self._sftp is not None:
            self._sftp.exit()
            await self._sftp.wait_closed()
            self._sftp = None

    @property
    def sftp(self) -> asyncssh.SFTPClient:
        if self._sftp is None:
            raise RemoteError(f"remote {self.name} is not connected")
        return self._sftp

    def _path(self, key: str) -> str:
        return posixpath.join(self.root, key)

    async def backups(self) -> list[RemoteBackup]:
        directory = self._path("backups")
        try:
            names = await self.sftp.listdir(directory)
        except asyncssh.SFTPNoSuchFile:
            return []
        except asyncssh.SFTPError as exc:
            raise self._failed(f"cannot list {directory}", exc) from None
        found = []
        for name in sorted(n for n in names if is_backup_id(n)):
            complete = await self.sftp.isfile(self._path(backup_key(name)))
            found.append(RemoteBackup(name, complete))
        return found

    async def holds(self, key: str, size: int, sha256: str) -> bool:
        path = self._path(key)
        try:
            attrs = await self.sftp.lstat(path)
        except asyncssh.SFTPNoSuchFile:
            return False
        except asyncssh.SFTPError as exc:
            raise self._failed(f"cannot look at {path}", exc) from None
        if attrs.size != size or attrs.type != asyncssh.FILEXFER_TYPE_REGULAR:
            return False
        return await self._sha256(path, size) == sha256

    async def put(self, key: str, chunks: AsyncIterable[bytes], size: int, sha256: str) -> None:
        path = self._path(key)
        part = f"{path}{PART_MARK}{secrets.token_hex(4)}"
        await self._make_dirs(posixpath.dirname(path))
        await self._remove_stale_parts(path)
        try:
            try:
                attrs = asyncssh.SFTPAttrs(permissions=FILE_MODE)
                async with self.sftp.open(part, "wb", attrs) as file:
                    async for chunk in chunks:
                        await file.write(chunk)
            except (asyncssh.SFTPError, OSError) as exc:
                raise await self._write_failed(part, size, exc) from None
            written = (await self.sftp.stat(part)).size
            if written != size:
                raise RemoteError(
                    f"remote {self.name}: {part} holds {written} bytes after the copy, not "
                    f"{size}: the copy was cut short; run it again"
                )
            found = await self._sha256(part, size)
            if found != sha256:
                raise RemoteError(
                    f"remote {self.name}: {part} does not read back as what was sent (sha256 "
                    f"{(found or 'unreadable')[:12]}…, sent {sha256[:12]}…); run the copy again"
                )
            await self.sftp.posix_rename(part, path)
        except BaseException:
            await self._remove_quietly(part)
            raise

    async def get(self, key: str) -> AsyncIterator[bytes]:
        """The file at ``key``, read only as a regular file (never through a link)."""
        path = self._path(key)
        try:
            if (await self.sftp.lstat(path)).type != asyncssh.FILEXFER_TYPE_REGULAR:
                raise RemoteError(
                    f"remote {self.name}: {path} is not a regular file (a link?); refusing it"
                )
            async with self.sftp.open(path, "rb", encoding=None) as file:
                while chunk := await file.read(READ_BLOCK):
                    yield cast(bytes, chunk)  # encoding=None: bytes, which the stubs miss
        except asyncssh.SFTPNoSuchFile:
            raise FileNotFoundError(path) from None
        except asyncssh.SFTPError as exc:
            raise self._failed(f"cannot read {path}", exc) from None

    async def delete_backup(self, backup_id: str) -> None:
        directory = self._path(backup_key(backup_id, ""))
        await self._remove_quietly(self._path(backup_key(backup_id)))
        try:
            await self.sftp.rmtree(directory)
        except asyncssh.SFTPNoSuchFile:
            return
        except asyncssh.SFTPError as exc:
            raise self._failed(f"cannot remove {directory}", exc) from None

    async def _sha256(self, path: str, size: int) -> str | None:
        """The sha256 of the file at ``path``, which should hold ``size`` bytes: computed on
        the host when it runs commands, else read back over SFTP (never more than one byte
        past ``size``: a server that streams on gets a mismatch); None when unreadable."""
        if self._hashes_there is None:
            cannot = await self._why_host_cannot_hash()
            self._hashes_there = cannot is None
            if cannot is not None:
                self.notices.append(
                    f"remote {self.name}: {self.host.name} {cannot}, so each file sent is read "
                    "back over SFTP to check its sha256"
                )
        if self._hashes_there:
            return await file_sha256(self.host, path)
        digest, left = hashlib.sha256(), size + 1
        try:
            async with self.sftp.open(path, "rb", encoding=None) as file:
                while left and (chunk := await file.read(min(READ_BLOCK, left))):
                    digest.update(cast(bytes, chunk))
                    left -= len(chunk)
        except asyncssh.SFTPError:
            return None
        return digest.hexdigest()

    async def _why_host_cannot_hash(self) -> str | None:
        """Why the host cannot hash its files for us (None: ``sha256sum`` works there). An
        SFTP-only account refuses commands, or answers each with its SFTP server; a lost
        connection is raised, never taken for that."""
        command = quote_command(["sha256sum", "--", "/dev/null"])
        try:
            output = await self.host.capture(command, ok_statuses=ANY_STATUS)
        except RemoteCommandError as exc:
            if isinstance(exc.__cause__, asyncssh.ChannelOpenError):
                return f"refuses commands ({exc.__cause__.reason})"
            raise
        if output.stdout.decode(errors="replace").split(" ", 1)[0] == EMPTY_SHA256:
            return None
        return "runs no sha256sum (an SFTP-only account)"

    async def _make_dirs(self, directory: str) -> None:
        try:
            await self.sftp.makedirs(
                directory, asyncssh.SFTPAttrs(permissions=DIR_MODE), exist_ok=True
            )
        except asyncssh.SFTPError as exc:
            raise self._failed(f"cannot create {directory}", exc) from None

    async def _remove_stale_parts(self, path: str) -> None:
        """What copies killed while writing ``path`` left (``<name>.part-*``)."""
        directory, name = posixpath.split(path)
        with contextlib.suppress(asyncssh.SFTPError):
            for found in await self.sftp.listdir(directory):
                if found.startswith(f"{name}{PART_MARK}"):
                    await self._remove_quietly(posixpath.join(directory, found))

    async def _write_failed(self, part: str, size: int, exc: Exception) -> RemoteError:
        """Why writing failed: SFTP servers report a full disk as a bare "Failure", so the
        free space is looked at before the part file is removed."""
        free = await self._free_bytes(posixpath.dirname(part))
        if free is not None and free < FULL_BELOW:
            return RemoteError(
                f"remote {self.name} ({self.where}): the disk is full ({free} bytes free while "
                f"writing a file of {size} bytes); free space there or prune its copies "
                f"(`lifeboat backup prune --remote {self.name}`), then copy again"
            )
        return self._failed(f"cannot write {part}", exc)

    async def _free_bytes(self, directory: str) -> int | None:
        """Free bytes where ``directory`` lies: asked over SFTP (OpenSSH's statvfs extension,
        which an SFTP-only host answers too), else of ``df`` there; None when neither can."""
        with contextlib.suppress(asyncssh.SFTPError):
            space = await self.sftp.statvfs(directory)
            return int(space.bavail * space.frsize)
        try:
            return (await probe_path(self.host, directory)).free_bytes
        except LifeboatError:
            return None

    async def _remove_quietly(self, path: str) -> None:
        # gone already, or the connection is: the next copy starts this file again
        with contextlib.suppress(asyncssh.SFTPError, asyncssh.Error, OSError):
            await self.sftp.remove(path)

    def _failed(self, what: str, exc: Exception) -> RemoteError:
        reason = getattr(exc, "reason", "") or str(exc)
        code = getattr(exc, "code", None)
        if code == asyncssh.FX_NO_SPACE_ON_FILESYSTEM or "No space left" in reason:
            return RemoteError(
                f"remote {self.name} ({self.where}): the disk is full ({what}); free space there "
                "or prune its copies, then copy again"
            )
        if code == asyncssh.FX_PERMISSION_DENIED:
            return RemoteError(
                f"remote {self.name} ({self.where}): permission denied ({what}); give "
                f"{self.host.config.user} write access there, or change remotes.{self.name}.path"
            )
        return RemoteError(f"remote {self.name} ({self.where}): {what}: {reason}")

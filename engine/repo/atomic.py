"""Crash-safe file writes: write a temporary file, fsync, rename, fsync the directory.

A crash at any moment leaves either the old content or the new, never a torn file.
Files are created 0600 and directories 0700, as everything in a repository is.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) if needed and make sure it is 0700."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)


def temporary_name(path: Path) -> Path:
    """Where ``path`` is written before it appears whole: a name of its own, so that two
    writers never share one and nobody can lay a file or link there beforehand."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def atomic_create(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data``, whole and durably, unless it exists: False when
    another writer created it first (its content stands)."""
    tmp = temporary_name(path)
    _write_durably(tmp, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    fsync_dir(path.parent)
    return True


def atomic_write(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``data`` atomically and durably (``mode``, whatever the umask)."""
    tmp = temporary_name(path)
    _write_durably(tmp, data, mode)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _write_durably(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        if mode != FILE_MODE:
            os.fchmod(fd, mode)  # wider than the umask may allow
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)

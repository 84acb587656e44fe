"""Reading a backup's files without ever leaving its directory.

Everything read back from a repository is untrusted: a manifest may name ``/etc/hostname`` or
``../../x``, and a file in a backup directory may be a symbolic link, a FIFO or a device put
there by whoever could write the repository. File names are therefore plain names (one path
component, a conservative alphabet), and a file is opened relative to its directory without
following a link, and only when it is a regular file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

# What Lifeboat writes: ``<source name>.<suffix>``, where source names are [A-Za-z0-9_.-].
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
MAX_NAME = 255


class UnsafeFileError(OSError):
    """A name or a file that would lead outside the backup directory, or is not a file;
    ``strerror`` says which."""

    def __str__(self) -> str:
        return str(self.strerror)


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a plain file name inside its backup directory (None: it is)."""
    if not name:
        return "an empty file name"
    if name.startswith("/") or name.startswith("\\"):
        return f"{name!r} is an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return f"{name!r} climbs out with '..'"
    if "/" in name or "\\" in name:
        return f"{name!r} has a directory separator"
    if len(name) > MAX_NAME or not PLAIN_NAME.fullmatch(name):
        return f"{name!r} is not a plain file name (letters, digits, '_', '.', '+', '-')"
    return None


def open_confined(directory: Path, name: str) -> BinaryIO:
    """Open the regular file ``name`` directly inside ``directory`` for reading.

    Raises :class:`UnsafeFileError` for a name that is not plain, a symbolic link, or
    anything but a regular file (a FIFO would block, a device would read forever);
    ``FileNotFoundError`` when it is missing; other ``OSError`` as the system says.
    """
    problem = name_problem(name)
    if problem is not None:
        raise UnsafeFileError(errno.EINVAL, problem)
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeFileError(exc.errno, f"{directory} is not a directory") from None
        raise
    try:
        # Look before opening, so a FIFO or a device is never even opened; fstat after, so
        # what was opened is what was looked at.
        _require_regular(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFileError(errno.ELOOP, "a symbolic link (never followed)") from None
        raise
    finally:
        os.close(dir_fd)
    with contextlib.ExitStack() as on_error:
        on_error.callback(os.close, fd)
        _require_regular(os.fstat(fd).st_mode)
        os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
        on_error.pop_all()
    return handle


def _require_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise UnsafeFileError(errno.EINVAL, describe_mode(mode))


def describe_mode(mode: int) -> str:
    """What a file of this mode is, in words: ``a FIFO``, ``a symbolic link (never followed)``."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISLNK(mode):
        return "a symbolic link (never followed)"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "of an unknown file type"

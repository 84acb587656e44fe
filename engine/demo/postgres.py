"""A throwaway PostgreSQL cluster: where Debian keeps the server's programs, who may run it,
and the commands that make and start one on loopback (the demo and the tests share them).

The server refuses to run as root; started by root, it runs as the ``postgres`` account the
package creates, and its cluster lives in a directory of its own under the system's
temporary directory (a root-private sandbox is not one that account may enter).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
from pathlib import Path


class NoServerError(Exception):
    """No PostgreSQL server can run here; the message says why, in one line."""


def server_bin() -> Path:
    """The newest installed server's programs (Debian keeps them off the PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise NoServerError("PostgreSQL is not installed (apt-get install postgresql)")
    return Path(initdb).parent


def _major(path: str) -> int:
    version = Path(path).parent.parent.name
    return int(version) if version.isdigit() else 0


def server_user() -> str | None:
    """Who runs the server: None for this user, ``postgres`` when this is root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise NoServerError("the server refuses root, and there is no postgres account") from None
    return "postgres"


def initdb_argv(bin_dir: Path, data: Path, password_file: Path) -> list[str]:
    """A cluster whose superuser ``postgres`` has the password in ``password_file``: trusted
    through its socket, password-checked over TCP."""
    return [
        str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--no-sync", "-E", "UTF8",
        "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}",
    ]  # fmt: skip


def server_argv(bin_dir: Path, data: Path, port: int, sockets: Path) -> list[str]:
    """The server on 127.0.0.1:``port`` (its socket in ``sockets``), durability off: its
    data is thrown away."""
    return [
        str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets),
        "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off",
    ]  # fmt: skip


def psql_argv(bin_dir: Path, sockets: Path, port: int, database: str) -> list[str]:
    """psql as ``postgres`` through the socket, stopping at the first error."""
    return [
        str(bin_dir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
        "-h", str(sockets), "-p", str(port), "-U", "postgres", "-d", database,
    ]  # fmt: skip

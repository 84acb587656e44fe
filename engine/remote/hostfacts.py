"""Small read-only questions asked of a host over SSH: free space, writability, a file's hash.

Each is one short remote command that changes nothing; the restore validator relies on that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.remote.commands import quote_command

if TYPE_CHECKING:
    from engine.remote.ssh import SSHHost

# The nearest existing ancestor of $1, whether it is writable, and its filesystem's free bytes.
_PATH_SCRIPT = """p=$1
while [ ! -e "$p" ]; do p=$(dirname -- "$p"); done
printf '%s\\n' "$p"
if [ -w "$p" ]; then echo writable; else echo read-only; fi
df -P -B1 -- "$p" | tail -n 1"""


@dataclass(frozen=True)
class PathFacts:
    path: str
    exists: bool
    existing: str  # the path itself, or its nearest existing ancestor
    writable: bool  # by the SSH user, at ``existing``
    free_bytes: int | None  # on ``existing``'s filesystem; None when df did not say


async def probe_path(host: SSHHost, path: str) -> PathFacts:
    """What a restore into ``path`` on ``host`` would find there."""
    output = await host.capture(quote_command(["sh", "-c", _PATH_SCRIPT, "sh", path]))
    lines = output.stdout.decode(errors="replace").splitlines()
    existing, access, df_line = (lines + ["", "", ""])[:3]
    columns = df_line.split()
    free = int(columns[3]) if len(columns) >= 4 and columns[3].isdigit() else None
    return PathFacts(path, existing == path, existing, access == "writable", free)


async def file_sha256(host: SSHHost, path: str) -> str | None:
    """The sha256 of a remote file, or None when it does not exist or cannot be read."""
    output = await host.capture(
        quote_command(["sha256sum", "--", path]), ok_statuses=frozenset({0, 1})
    )
    if output.exit_status != 0:
        return None
    digest = output.stdout.decode(errors="replace").split(" ", 1)[0]
    return digest if len(digest) == 64 else None

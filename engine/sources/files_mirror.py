"""``restore --mirror`` for files sources: remove what the target holds that the backup does not.

Extracting a tar only adds and overwrites, so an in-place restore leaves every file made since
the backup. With ``--mirror`` the validator lists what the target holds under the backed-up
paths that the archive does not (the dry run shows it), and the apply, once the extraction
succeeded (so after the safety backup, which holds those files), removes them and records
each in the audit log. Only paths the source's config lists are mirrored, never their parents.
"""

from __future__ import annotations

import asyncio
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from engine.repo.content import Keyring
from engine.repo.manifest import Artifact, ArtifactFile
from engine.repo.verify import decompressed

if TYPE_CHECKING:
    from engine.remote.ssh import SSHHost

SHOWN = 10  # paths named in a message; the rest are counted
FIND_MISSING = 1  # find's status when a starting point does not exist


def archive_members(
    keyring: Keyring, backup_dir: Path, entry: ArtifactFile, compression: str
) -> frozenset[PurePosixPath]:
    """Every member name of a (verified) files archive."""
    with (
        keyring.open(backup_dir, entry) as raw,
        tarfile.open(fileobj=decompressed(raw, compression), mode="r|") as tar,
    ):
        return frozenset(PurePosixPath(member.name) for member in tar)


async def extras(
    host: SSHHost, artifact: Artifact, keyring: Keyring, backup_dir: Path, target_dir: Path | None
) -> list[str]:
    """The paths under the backed-up paths on ``host`` that the archive does not hold,
    outermost only (removing one removes what is inside), sorted."""
    (entry,) = artifact.files
    members = await asyncio.to_thread(
        archive_members, keyring, backup_dir, entry, artifact.meta["compression"]
    )
    root = PurePosixPath(target_dir or "/")
    found: list[PurePosixPath] = []
    for backed_up in artifact.meta["paths"]:
        top = root / PurePosixPath(backed_up).relative_to("/")
        listing = await host.capture(
            ["find", str(top), "-print0"], ok_statuses=frozenset({0, FIND_MISSING})
        )
        names = listing.stdout.decode(errors="surrogateescape").split("\0")
        found += [PurePosixPath(name) for name in names if name and name != str(top)]
    removed: set[PurePosixPath] = set()
    for path in sorted(found):
        if path.relative_to(root) in members or removed.intersection(path.parents):
            continue
        removed.add(path)
    return sorted(str(path) for path in removed)


def describe(paths: list[str]) -> str:
    """``paths`` for a message: the first few, then how many more."""
    shown = ", ".join(paths[:SHOWN])
    more = len(paths) - SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


async def remove(host: SSHHost, paths: list[str]) -> None:
    """``rm -rf`` each of ``paths`` on ``host`` (the list goes on stdin, NUL-separated)."""

    async def listing() -> AsyncIterator[bytes]:
        yield "".join(f"{path}\0" for path in paths).encode(errors="surrogateescape")

    await host.stream(["xargs", "-0", "-r", "rm", "-rf", "--"], stdin=listing())

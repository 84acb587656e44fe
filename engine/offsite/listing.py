"""What a remote holds, read back as untrusted input: complete copies with their manifests,
and what is wrong with the rest (partial copies, damaged manifests), each by name."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.config.model import Config
from engine.errors import ManifestError
from engine.offsite.connect import connected
from engine.offsite.remote import Remote, backup_key
from engine.repo.manifest import Manifest


@dataclass
class RemoteListing:
    manifests: list[Manifest] = field(default_factory=list)  # complete copies, newest first
    problems: list[str] = field(default_factory=list)  # one line per copy that is not


async def listing_of(config: Config, name: str) -> RemoteListing:
    """What ``[remotes.<name>]`` holds, connected for it."""
    async with connected(config, name) as remote:
        return await list_remote(remote)


async def list_remote(remote: Remote) -> RemoteListing:
    listing = RemoteListing()
    for held in await remote.backups():
        if not held.complete:
            listing.problems.append(
                f"{held.id} on {remote.name}: a partial copy (no manifest yet); "
                f"`lifeboat copy {held.id} --to {remote.name}` finishes it"
            )
            continue
        key = backup_key(held.id)
        raw = await remote.read(key)
        if raw is None:  # removed since it was listed
            continue
        try:
            manifest = Manifest.from_json(raw, f"{remote.where}/{key}")
        except ManifestError as exc:
            listing.problems.append(f"{held.id} on {remote.name}: damaged: {exc}")
            continue
        if manifest.id != held.id:
            listing.problems.append(
                f"{held.id} on {remote.name}: its manifest names {manifest.id}: tampered with"
            )
            continue
        listing.manifests.append(manifest)
    listing.manifests.sort(key=lambda m: m.id, reverse=True)
    return listing

"""``lifeboat key generate``: an age identity for encrypted backups (the file is 0600; its
public recipient is printed, the secret never is)."""

from __future__ import annotations

from pathlib import Path

import click

from engine.crypto.age import Identity
from engine.crypto.identities import identity_file_text
from engine.errors import UsageError
from engine.repo.atomic import atomic_create
from engine.repo.manifest import iso_z, utc_now


@click.group()
def key() -> None:
    """Age keys for encrypted backups (the identity belongs off the bastion)."""


@key.command("generate")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
def key_generate(path: Path) -> None:
    """Write a new age identity to PATH (mode 0600, never over an existing file) and print
    its recipient (the public key, safe to share): age-keygen's format, so `age` reads it."""
    if path.exists() or path.is_symlink():
        raise UsageError(f"{path} exists; a key file is never overwritten: choose another path")
    if not path.parent.is_dir():
        raise UsageError(f"{path.parent} is not a directory: create it, or choose another path")
    identity = Identity.generate()
    text = identity_file_text(identity, iso_z(utc_now()))
    try:
        created = atomic_create(path, text.encode())
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}; choose another path") from None
    if not created:
        raise UsageError(f"{path} was created meanwhile; choose another path")
    click.echo(str(identity.recipient))
    click.echo(
        f"identity written to {path} (0600): keep it off the bastion, with a copy in escrow",
        err=True,
    )

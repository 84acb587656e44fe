"""age identities as `age-keygen` writes them, for encrypted repositories in tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from engine.crypto.age import Identity, parse_identities


def keygen(directory: Path, name: str = "key.txt") -> tuple[Identity, Path]:
    """A new identity written by Debian's `age-keygen` into ``directory``, and its file."""
    path = directory / name
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    (identity,) = parse_identities(path.read_bytes())
    return identity, path


def encryption_toml(*identities: Identity) -> str:
    recipients = ", ".join(f'"{identity.recipient}"' for identity in identities)
    return f"[encryption]\nrecipients = [{recipients}]\n"


def age_decrypt(path: Path, key: Path) -> bytes:
    """What the `age` CLI decrypts ``path`` to with the identity file ``key``."""
    return subprocess.run(
        ["age", "-d", "-i", str(key), str(path)], check=True, capture_output=True
    ).stdout


def protect(key: Path, passphrase: str) -> Path:
    """``key`` encrypted with ``passphrase`` by ``age -p`` (as ``<key>.age``), which asks for
    it twice on its terminal: ``script`` gives it one."""
    protected = key.with_name(key.name + ".age")
    subprocess.run(
        ["script", "-qec", f"age -p -o {protected} {key}", "/dev/null"],
        input=f"{passphrase}\n" * 2, text=True, capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    return protected

"""Where the identity that opens encrypted backups comes from, at the moment it is needed.

An identity is given as a file (``--identity FILE``; ``age -p`` passphrase-protected files
work), through ``$LIFEBOAT_AGE_IDENTITY`` (a file's path, or the ``AGE-SECRET-KEY-1...``
itself), or typed at a prompt. It is held in memory for one run: never stored, logged or
passed on a command line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from engine.crypto import IDENTITY_VARIABLE
from engine.crypto.age import (
    AgeError,
    AgeKeyError,
    Identity,
    is_passphrase_protected,
    parse_identities,
)
from engine.errors import UsageError

SECRET_PREFIX = "AGE-SECRET-KEY-1"
MAX_IDENTITY_FILE = 1024 * 1024  # far beyond any identity file
PASSPHRASE_ATTEMPTS = 3
Ask = Callable[[], str]  # asks for a passphrase (on a terminal, in a dialog)


def read_identities(
    value: str, ask_passphrase: Ask | None = None, attempts: int = PASSPHRASE_ATTEMPTS
) -> tuple[Identity, ...]:
    """The identities ``value`` gives: an ``AGE-SECRET-KEY-1...`` itself, or the path of an
    identity file (a passphrase-protected one is opened with up to ``attempts`` answers of
    ``ask_passphrase``). UsageError says what is wrong, never showing a secret."""
    text = value.strip()
    if text.upper().startswith(SECRET_PREFIX):
        try:
            return (Identity.parse(text),)
        except AgeKeyError as exc:
            raise UsageError(f"the identity given: {exc}; check it was copied whole") from None
    data = _read_file(Path(text).expanduser())
    try:
        return tuple(parse_identities(data, _answers(ask_passphrase, attempts)))
    except (AgeError, AgeKeyError) as exc:
        raise UsageError(f"{text}: {exc}") from None


def identities_from_environment(ask_passphrase: Ask | None = None) -> tuple[Identity, ...]:
    """What ``$LIFEBOAT_AGE_IDENTITY`` gives (nothing when it is unset or empty)."""
    value = os.environ.get(IDENTITY_VARIABLE, "").strip()
    if not value:
        return ()
    try:
        return read_identities(value, ask_passphrase)
    except UsageError as exc:
        raise UsageError(f"${IDENTITY_VARIABLE}: {exc}") from None


def identity_file_text(identity: Identity, created: str) -> str:
    """An identity file as ``age-keygen`` writes it (``age -i`` and Lifeboat read it)."""
    return f"# created: {created}\n# public key: {identity.recipient}\n{identity.secret_text()}\n"


def _read_file(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_IDENTITY_FILE + 1)
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot read the identity file ({exc.strerror}); give the path of the file "
            "`lifeboat key generate` or `age-keygen` wrote"
        ) from None
    if len(data) > MAX_IDENTITY_FILE:
        raise UsageError(f"{path} is larger than any identity file; is it the right file?")
    return data


def needs_passphrase(value: str) -> bool:
    """Whether ``value`` names a passphrase-protected identity file (``age -p``)."""
    text = value.strip()
    if not text or text.upper().startswith(SECRET_PREFIX):
        return False
    try:
        return is_passphrase_protected(_read_file(Path(text).expanduser()))
    except UsageError:
        return False  # reading it again says why


def _answers(ask: Ask | None, attempts: int) -> Iterator[str]:
    if ask is not None:
        for _ in range(attempts):
            yield ask()

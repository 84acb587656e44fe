"""The errors Lifeboat reports to an operator.

Every error carries one message that names the problem and the fix. The CLI maps
``UsageError`` (and its subclasses) to exit code 2 and every other ``LifeboatError`` to 1,
printing the message without a traceback.
"""

from __future__ import annotations


class LifeboatError(Exception):
    """An operation ran and failed in a way the operator can understand and act on."""


class UsageError(LifeboatError):
    """The operator asked for something impossible (bad flag, unknown name): exit code 2."""


class ConfigError(UsageError):
    """The configuration is invalid; ``problems`` holds one line per mistake."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class HostKeyError(LifeboatError):
    """A host key could not be verified (unknown, or changed)."""


class SSHConnectError(LifeboatError):
    """A host could not be reached or refused authentication."""


class RemoteCommandError(LifeboatError):
    """A remote command failed; the message carries its exit status and stderr tail."""


class RepositoryError(LifeboatError):
    """The repository is missing, unreadable, or in a state that forbids the operation."""


class DiskFullError(RepositoryError):
    """The repository's filesystem ran out of space."""


class RepositoryLockedError(RepositoryError):
    """Another process holds the repository's write lock."""


class ManifestError(RepositoryError):
    """A manifest is unreadable, invalid, or of a schema this version cannot read.
    ``backup_id`` names the damaged backup once the repository knows which it is."""

    def __init__(self, message: str, backup_id: str | None = None) -> None:
        super().__init__(message)
        self.backup_id = backup_id


class BackupNotFoundError(UsageError):
    """No backup with the given id exists in the repository."""


def describe_error(exc: BaseException) -> str:
    """An operator-facing message: ours as written, anything else with its type."""
    if isinstance(exc, LifeboatError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"

"""Namespace globs and renames, with mongorestore's ``--nsFrom``/``--nsTo`` semantics.

A namespace is ``db.collection``. Globs use ``*`` (any run of characters, dots included) and
``?``. A rename pattern pair such as ``app.*`` -> ``staging_app.*`` substitutes what each
``*`` of the first matched into the same position of the second.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from engine.errors import UsageError

SYSTEM_DATABASES = frozenset({"admin", "local", "config"})


def matches_any(namespace: str, globs: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(namespace, glob) for glob in globs)


def selected(namespace: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    """Whether a backup covers ``namespace``: included (by default every user database's
    collections, not ``system.*`` ones) and not excluded."""
    if matches_any(namespace, exclude):
        return False
    if include:
        return matches_any(namespace, include)
    db, _, collection = namespace.partition(".")
    return db not in SYSTEM_DATABASES and not collection.startswith("system.")


@dataclass(frozen=True)
class Rename:
    """``--ns-from`` / ``--ns-to``: a pattern pair with the same number of ``*``."""

    source: str
    target: str

    def __post_init__(self) -> None:
        if self.source.count("*") != self.target.count("*"):
            raise UsageError(
                f"--ns-from {self.source!r} and --ns-to {self.target!r} must have the same "
                "number of '*'; each '*' of the target takes what the source's matched"
            )
        if "." not in self.target.strip("*"):
            raise UsageError(f"--ns-to {self.target!r} must name db.collection, e.g. 'staging.*'")

    def _regex(self) -> re.Pattern[str]:
        parts = (re.escape(part) for part in self.source.split("*"))
        return re.compile("(.*)".join(parts) + r"\Z", re.DOTALL)

    def apply(self, namespace: str) -> str:
        """The namespace renamed, or unchanged when the source pattern does not match it."""
        match = self._regex().match(namespace)
        if match is None:
            return namespace
        pieces = self.target.split("*")
        out = pieces[0]
        for group, piece in zip(match.groups(), pieces[1:], strict=True):
            out += group + piece
        return out


def split_namespace(namespace: str) -> tuple[str, str]:
    db, dot, collection = namespace.partition(".")
    if not dot or not db or not collection:
        raise UsageError(f"{namespace!r} is not a db.collection namespace")
    return db, collection

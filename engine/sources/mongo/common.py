"""What the mongo source's modules share: its error, the parsed target, namespace matching."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import LifeboatError
from engine.mongo_archive.names import matches_any


class MongoError(LifeboatError):
    """MongoDB refused or failed a request (the message is already redacted)."""


@dataclass(frozen=True)
class MongoTarget:
    """Where and how to connect, parsed from the URI; ``password`` is secret."""

    address: str
    port: int
    username: str | None
    password: str | None
    options: dict[str, Any]

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for a client reaching the server through a local tunnel."""
        options = {k: v for k, v in self.options.items() if k.lower() not in _TUNNEL_UNSAFE}
        if self.username is not None:
            options.update(username=self.username, password=self.password)
        return options | {"directConnection": True, "serverSelectionTimeoutMS": 15_000}


# Options that make no sense through a tunnel to one member.
_TUNNEL_UNSAFE = frozenset({"replicaset", "directconnection", "loadbalanced", "srvservicename"})


def matches_any_of(namespaces: list[str], glob: str) -> bool:
    return any(matches_any(ns, (glob,)) for ns in namespaces)

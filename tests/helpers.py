"""Small builders shared by engine and CLI tests."""

from __future__ import annotations

import json
from pathlib import Path

from sshd import SSHTestServer

from engine.config import Config, parse_config
from engine.events import Event


def host_toml(server: SSHTestServer, name: str = "h1", **extra: object) -> str:
    lines = [
        f"[hosts.{name}]",
        f'address = "{server.address}"',
        f"port = {server.port}",
        f"user = {json.dumps(server.user)}",
        f"identity = {json.dumps(str(server.identity))}",
        f"known_hosts = {json.dumps(str(server.known_hosts))}",
    ]
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def config_text(server: SSHTestServer, repo: Path, sources: str, **host_extra: object) -> str:
    return (
        f'operator = "tester"\n[repository]\npath = {json.dumps(str(repo))}\n'
        + host_toml(server, **host_extra)
        + sources
    )


def make_config(server: SSHTestServer, repo: Path, sources: str, **host_extra: object) -> Config:
    return parse_config(config_text(server, repo, sources, **host_extra))


def files_source(name: str, *paths: Path) -> str:
    quoted = ", ".join(json.dumps(str(p)) for p in paths)
    return f'[sources.{name}]\nkind = "files"\nhost = "h1"\npaths = [{quoted}]\n'


def command_source(name: str, backup: list[str], restore: list[str] | None = None) -> str:
    text = f'[sources.{name}]\nkind = "command"\nhost = "h1"\nbackup = {json.dumps(backup)}\n'
    if restore is not None:
        text += f"restore = {json.dumps(restore)}\n"
    return text


class EventLog(list[Event]):
    """Collects events; ``emit`` is the callback to hand the engine."""

    def emit(self, event: Event) -> None:
        self.append(event)

    def of_type(self, kind: type) -> list[Event]:
        return [e for e in self if isinstance(e, kind)]


def tree_snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its content."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }

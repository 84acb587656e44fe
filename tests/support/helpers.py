"""Small builders shared by engine and CLI tests."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sshd import SSHTestServer

from engine.config.load import parse_config
from engine.config.model import Config
from engine.events import Event
from engine.repo.manifest import Artifact, ArtifactFile, Manifest
from engine.repo.repository import Repository


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


StoredArtifact = tuple[str, bytes, str, dict[str, Any]]  # filename, data, kind, meta


def commit_backup(
    repo: Repository,
    backup_id: str,
    moment: datetime,
    artifacts: Mapping[str, StoredArtifact],
    label: str | None = None,
    trigger: str = "manual",
) -> Manifest:
    """A backup of one file per source (true size and sha256), written to staging and
    committed through the repository API, at a fixed time."""
    staging = repo.create_staging(backup_id)
    made = []
    for source, (filename, data, kind, meta) in artifacts.items():
        (staging / filename).write_bytes(data)
        entry = ArtifactFile(
            path=filename, bytes=len(data), sha256=hashlib.sha256(data).hexdigest()
        )
        made.append(Artifact(source=source, kind=kind, host="h1", files=(entry,), meta=meta))
    manifest = Manifest(
        id=backup_id,
        label=label,
        created_at=moment,
        finished_at=moment,
        trigger=trigger,
        operator="tester",
        tool_version="0.1.0",
        scope=tuple(artifacts),
        artifacts=tuple(made),
    )
    repo.commit(staging, manifest)
    return manifest


def stored_backup(
    repo: Repository,
    moment: datetime,
    contents: dict[str, bytes],
    label: str | None = None,
    trigger: str = "manual",
    mongo: tuple[str, ...] = (),
) -> Manifest:
    """A real backup of command-output artifacts (one file per source), with a fixed time and
    an id derived from it. Sources named in ``mongo`` get a mongo-archive artifact instead
    (its bytes are not checked here)."""
    suffix = hashlib.sha256((label or "").encode()).hexdigest()[:4]
    artifacts: dict[str, StoredArtifact] = {
        source: (f"{source}.out", data, "mongo-archive", {"namespaces": {}})
        if source in mongo
        else (f"{source}.out", data, "command-output", {})
        for source, data in contents.items()
    }
    return commit_backup(
        repo, f"{moment:%Y%m%dT%H%M%SZ}-{suffix}", moment, artifacts, label, trigger
    )


def incident_tree(selects: str = 'kinds = ["mongo"]', placeholder: str | None = None) -> str:
    """A small valid restore tree (question, input, outcome, advice) for tests; ``selects``
    is the outcome's sources line."""
    asked = f'placeholder = "{placeholder}"\n' if placeholder else ""
    return f"""
name = "incident"
title = "Which incident?"
start = "first"

[nodes.first]
kind = "question"
key = "scenario"
text = "What happened?"
choices = [
  {{ value = "module", label = "A module was removed", next = "ask" }},
  {{ value = "nothing", label = "Nothing", next = "done" }},
]

[nodes.ask]
kind = "input"
key = "globs"
text = "Which namespaces?"
{asked}next = "restore"

[nodes.restore]
kind = "outcome"
title = "Put the module back"
text = "Restore its namespaces."
{selects}
namespaces_from = "globs"

[nodes.done]
kind = "advice"
title = "Relax"
text = "Nothing to restore."
"""


class Log(list[dict[str, Any]]):
    """The scheduler's log records, as the JSON log would carry them."""

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        self.append({"event": event, "level": level, **json.loads(json.dumps(fields, default=str))})

    def events(self, name: str) -> list[dict[str, Any]]:
        return [record for record in self if record["event"] == name]

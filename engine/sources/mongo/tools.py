"""Mongo backup and restore with the host's own ``mongodump`` / ``mongorestore``.

Credentials reach the tools through a ``--config`` file (YAML with ``uri`` and ``password``)
written 0600 on the host from our stdin and removed when the tool ends, never through a
command line (which ``ps`` shows to every user). The archive streams over SSH as the tools
write or read it; the dump is described as it streams to fill the manifest like a driver dump.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from engine.errors import LifeboatError
from engine.mongo_archive import summarize
from engine.mongo_archive.names import SYSTEM_DATABASES
from engine.remote.commands import quote_command
from engine.repo.manifest import Artifact
from engine.sources.base import RestoreOptions, SourceContext
from engine.sources.mongo.common import MongoError

if TYPE_CHECKING:
    from engine.remote.ssh import SSHHost
    from engine.sources.mongo.source import MongoSource

# Writes stdin to a new private temp file and prints its name.
WRITE_SECRET_FILE = 'umask 077 && f=$(mktemp) && cat > "$f" && echo "$f"'


def tool_config(source: MongoSource) -> bytes:
    """The YAML config handed to mongodump/mongorestore (JSON strings are valid YAML)."""
    lines = [f"uri: {json.dumps(source.config.uri.get_secret_value())}"]
    password = source.password()
    if password is not None:
        lines.append(f"password: {json.dumps(password)}")
    return ("\n".join(lines) + "\n").encode()


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _write_secret_file(source: MongoSource, host: SSHHost) -> str:
    chunks: list[bytes] = []
    await host.stream(WRITE_SECRET_FILE, stdin=_once(tool_config(source)), on_stdout=chunks.append)
    path = b"".join(chunks).decode().strip()
    if not path.startswith("/"):
        raise ValueError(f"mktemp on {host.name} gave {path!r}")
    return path


def _with_config(argv: list[str], config_path: str) -> str:
    """Run ``argv --config=PATH``; the file goes whatever happens (a lost link: SIGHUP)."""
    cleanup = quote_command(["rm", "-f", "--", config_path])
    tool = quote_command([*argv, f"--config={config_path}"])
    traps = f"trap {quote_command([cleanup])} EXIT; trap 'exit 129' HUP; trap 'exit 143' TERM"
    return f"{traps}; {tool}"


def _dump_filters(source: MongoSource) -> list[str]:
    args = [f"--nsInclude={glob}" for glob in source.config.include]
    args += [f"--nsExclude={glob}" for glob in source.config.exclude]
    if not source.config.include:
        args += [f"--nsExclude={db}.*" for db in sorted(SYSTEM_DATABASES)]
    return args


async def dump_with_mongodump(source: MongoSource, ctx: SourceContext) -> dict[str, Any]:
    host = ctx.host
    argv = [*source.config.mongodump, "--archive", "--gzip", *_dump_filters(source)]
    config_path = await _write_secret_file(source, host)
    ctx.stage("mongodump")
    try:
        command = _with_config(argv, config_path)
        entry, outcome, summary = await ctx.describe_output(source.filename(), command, summarize)
    except LifeboatError as exc:
        raise MongoError(source.redact(str(exc))) from None
    if outcome.stderr:
        ctx.log(source.redact(outcome.stderr.splitlines()[-1]))
    return {"file": entry, "method": "mongodump", **summary.manifest_meta()}


def _restore_args(options: RestoreOptions) -> list[str]:
    args = [f"--nsInclude={glob}" for glob in options.namespaces]
    if options.ns_from and options.ns_to:
        args += [f"--nsFrom={options.ns_from}", f"--nsTo={options.ns_to}"]
    if options.drop:
        args.append("--drop")
    return args


async def restore_with_mongorestore(
    source: MongoSource, artifact: Artifact, ctx: SourceContext, options: RestoreOptions
) -> None:
    host = ctx.host
    (entry,) = artifact.files
    argv = [*source.config.mongorestore, "--archive", "--gzip", *_restore_args(options)]
    config_path = await _write_secret_file(source, host)
    ctx.stage("mongorestore")
    try:
        await ctx.send(entry, _with_config(argv, config_path))
    except LifeboatError as exc:
        raise MongoError(source.redact(str(exc))) from None

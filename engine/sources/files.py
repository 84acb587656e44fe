"""The ``files`` source: a remote ``tar`` of configured paths, compressed on the host.

zstd is used when the host has it, else gzip; the manifest records which, and the restore
asks the host's tar for the same. Members are stored relative to ``/``, so a restore can
land in the original paths or under any ``--target-dir``.
"""

from __future__ import annotations

import tarfile
import zlib
from typing import ClassVar

import zstandard

from engine.checks import Check
from engine.config.sources import FilesSourceConfig
from engine.errors import RemoteCommandError
from engine.remote.commands import quote_command
from engine.remote.hostfacts import probe_path
from engine.repo.content import ContentError
from engine.repo.manifest import Artifact
from engine.repo.tar_safety import archive_name
from engine.sources import files_mirror as mirror
from engine.sources.base import Preflight, RestoreOptions, Source, SourceContext

COMPRESSION_FLAGS = {"zstd": "--zstd", "gzip": "--gzip"}
SUFFIXES = {"zstd": "tar.zst", "gzip": "tar.gz"}
TAR_WARNING_STATUS = 1  # GNU tar: some files changed while being read
UNPACKED_ESTIMATE = 4  # backups without a recorded size: assume 4x compression
_ANY = frozenset(range(256))
# The validator refused anything unsafe in the archive before this runs (engine.repo.tar_safety);
# extraction keeps GNU tar's own defences as a second line: no -P (a leading / is stripped,
# `..` members are skipped, links that point away are made only at the end), no -h and no
# --keep-directory-symlink (a directory entry replaces a symlink on the target, never follows
# it), and only the backed-up paths are extracted, matched literally.
EXTRACT_OPTIONS = ("--no-wildcards", "--anchored")


class FilesSource(Source):
    kind: ClassVar[str] = "files"
    artifact_kind: ClassVar[str] = "files-tar"
    config: FilesSourceConfig

    async def backup(self, ctx: SourceContext) -> Artifact:
        ctx.stage("probing")
        compression = "zstd" if await ctx.host.has_command("zstd") else "gzip"
        unpacked = await self._unpacked_bytes(ctx)
        members = [archive_name(str(p)) for p in self.config.paths]
        argv = ["tar", "-C", "/", COMPRESSION_FLAGS[compression], "-cf", "-", "--", *members]
        filename = f"{self.name}.{SUFFIXES[compression]}"
        ctx.stage("archiving")
        entry, outcome = await ctx.record_output(
            filename, argv, ok_statuses=frozenset({0, TAR_WARNING_STATUS})
        )
        if outcome.exit_status == TAR_WARNING_STATUS:
            ctx.log(f"tar warned (files changed while read): {outcome.stderr}", "warning")
        return Artifact(
            source=self.name,
            kind=self.artifact_kind,
            host=ctx.host.name,
            files=(entry,),
            meta={
                "compression": compression,
                "paths": [str(p) for p in self.config.paths],
                "unpacked_bytes": unpacked,
            },
        )

    async def _unpacked_bytes(self, ctx: SourceContext) -> int | None:
        """What the paths take on disk (``du``), so a restore can check for room first."""
        paths = [str(p) for p in self.config.paths]
        output = await ctx.host.capture(["du", "-sbc", "--", *paths], ok_statuses=_ANY)
        total = output.stdout.decode(errors="replace").strip().rsplit("\n", 1)[-1].split("\t")[0]
        return int(total) if output.exit_status == 0 and total.isdigit() else None

    async def preflight(self, check: Preflight) -> list[Check]:
        host, meta = check.host, check.artifact.meta
        checks = []
        if meta.get("compression") == "zstd" and not await host.has_command("zstd"):
            checks.append(
                Check.fail(
                    f"tools {host.name}",
                    "this backup is zstd-compressed but the host has no `zstd`; install it "
                    "there (e.g. apt-get install zstd)",
                )
            )
        root = str(check.options.target_dir or "/").rstrip("/")
        found = [await probe_path(host, root + path) for path in meta.get("paths", [])]
        blocked = [facts.existing for facts in found if not facts.writable]
        if blocked:
            checks.append(
                Check.fail(
                    f"writable {host.name}",
                    f"{', '.join(blocked)} is not writable by {host.config.user}; restore as a "
                    "user who may write there, or into another directory",
                )
            )
        elif found:
            checks.append(
                Check.ok(f"writable {host.name}", f"{', '.join(f.path for f in found)} writable")
            )
        if found:
            (entry,) = check.artifact.files
            unpacked = meta.get("unpacked_bytes")
            estimated = not isinstance(unpacked, int)
            size = unpacked if isinstance(unpacked, int) else entry.bytes * UNPACKED_ESTIMATE
            checks.append(
                check.space(found[0].existing, found[0].free_bytes, size, estimated=estimated)
            )
        if check.options.mirror:
            checks.append(await self._mirror_check(check))
        return checks

    async def _mirror_check(self, check: Preflight) -> Check:
        """What ``--mirror`` would remove: the dry run shows it, the apply removes it."""
        name = f"mirror {check.host.name}"
        try:
            paths = await mirror.extras(
                check.host,
                check.artifact,
                check.keyring,
                check.backup_dir,
                check.options.target_dir,
            )
        except (
            OSError,
            tarfile.TarError,
            EOFError,
            zlib.error,
            zstandard.ZstdError,
            ContentError,
        ) as exc:
            return Check.fail(name, f"cannot list the archive to compare: {exc}")
        if not paths:
            return Check.ok(name, "nothing to remove: the target holds nothing the backup does not")
        return Check.warning(
            name,
            f"--mirror removes {len(paths)} path(s) the backup does not hold, after the safety "
            f"backup: {mirror.describe(paths)}",
        )

    def restore_problems(self, artifact: Artifact, options: RestoreOptions) -> list[str]:
        problems = super().restore_problems(artifact, options)
        if options.target_dir is not None and not options.target_dir.is_absolute():
            problems.append(f"--target-dir must be an absolute path, got {options.target_dir}")
        if options.mirror:
            configured = {str(path) for path in self.config.paths}
            held = artifact.meta.get("paths")
            others = [p for p in held if p not in configured] if isinstance(held, list) else [held]
            if others:
                problems.append(
                    f"--mirror removes files only under the paths [sources.{self.name}] lists, "
                    f"and this backup holds {', '.join(map(str, others))}: add it to paths, or "
                    "restore without --mirror"
                )
        return problems

    async def restore(
        self, artifact: Artifact, ctx: SourceContext, options: RestoreOptions
    ) -> None:
        (entry,) = artifact.files
        compression = artifact.meta["compression"]
        target = str(options.target_dir or "/")
        if compression == "zstd" and not await ctx.host.has_command("zstd"):
            raise RemoteCommandError(
                f"{ctx.host.name}: this backup is zstd-compressed but the host has no `zstd`; "
                "install it there (e.g. apt-get install zstd) and retry"
            )
        ctx.stage(f"extracting into {target}")
        names = [archive_name(path) for path in artifact.meta["paths"]]
        extract = ["tar", "-C", target, *EXTRACT_OPTIONS, COMPRESSION_FLAGS[compression], "-xpf"]
        command = " && ".join(
            [
                quote_command(["mkdir", "-p", "--", target]),
                quote_command([*extract, "-", "--", *names]),
            ]
        )
        await ctx.send(entry, command)
        if options.mirror:
            await self._mirror(artifact, ctx, options)

    def restore_effect(self, options: RestoreOptions, backup_id: str) -> str:
        under = f" under {options.target_dir}" if options.target_dir else ""
        paths = ", ".join(str(path) for path in self.config.paths)
        kept = (
            "and files there that the backup lacks are removed (mirror)"
            if options.mirror
            else "files there that the backup lacks are left alone"
        )
        return f"each backed-up file in {paths}{under} is written over; {kept}"

    async def _mirror(
        self, artifact: Artifact, ctx: SourceContext, options: RestoreOptions
    ) -> None:
        """Remove what the target holds under the backed-up paths that the backup does not."""
        ctx.stage("removing what the backup does not hold")
        paths = await mirror.extras(
            ctx.host, artifact, ctx.keyring, ctx.directory, options.target_dir
        )
        if paths:
            await mirror.remove(ctx.host, paths)
        ctx.audit("restore.mirror", host=ctx.host.name, removed=paths)
        ctx.log(f"--mirror removed {len(paths)} path(s): {mirror.describe(paths) or 'none'}")

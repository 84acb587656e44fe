"""The ``command`` source: any remote command whose stdout is the backup (e.g. ``pg_dump -Fc``)."""

from __future__ import annotations

import shlex
from typing import ClassVar

from engine.checks import Check
from engine.config.sources import CommandSourceConfig
from engine.repo.manifest import Artifact
from engine.sources.base import Preflight, RestoreOptions, Source, SourceContext


class CommandSource(Source):
    kind: ClassVar[str] = "command"
    artifact_kind: ClassVar[str] = "command-output"
    config: CommandSourceConfig

    def filename(self) -> str:
        return f"{self.name}.out"

    async def backup(self, ctx: SourceContext) -> Artifact:
        ctx.stage("dumping")
        entry, _outcome = await ctx.record_output(self.filename(), self.config.backup)
        return Artifact(
            source=self.name,
            kind=self.artifact_kind,
            host=ctx.host.name,
            files=(entry,),
            meta={"command": list(self.config.backup)},
        )

    def restore_problems(self, artifact: Artifact, options: RestoreOptions) -> list[str]:
        problems = super().restore_problems(artifact, options)
        if not self.config.restore:
            problems.append(
                f"sources.{self.name}.restore: no restore command is configured; add one, "
                'e.g. restore = ["pg_restore", "--clean", "-d", "app"]'
            )
        return problems

    async def preflight(self, check: Preflight) -> list[Check]:
        if not self.config.restore:
            return []
        return [await check.tool(self.config.restore[0], "install it there")]

    def restore_effect(self, options: RestoreOptions, backup_id: str) -> str:
        command = shlex.join(self.config.restore or ())
        return f"`{command}` runs with the backup on its input: what it writes is replaced"

    async def restore(
        self, artifact: Artifact, ctx: SourceContext, options: RestoreOptions
    ) -> None:
        assert self.config.restore  # restore_problems() refused this case beforehand
        (entry,) = artifact.files
        ctx.stage("restoring")
        await ctx.send(entry, self.config.restore)

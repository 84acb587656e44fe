"""The ``mongo`` source: one gzipped mongodump archive per backup, whichever method wrote it.

``driver`` dumps with pymongo through an SSH local port forward, so the database is never
exposed beyond SSH; ``mongodump`` streams the host's own ``mongodump --archive --gzip``.
Either way the artifact is ``<name>.archive.gz``, read back by one reader for verify and
restore. Credentials (in the URI or ``password_file``) never reach a command line, a
manifest, an event or an error message: :meth:`MongoSource.redact` scrubs every message.
"""

from __future__ import annotations

from typing import ClassVar

from engine.checks import Check
from engine.config.sources import MongoSourceConfig
from engine.errors import UsageError
from engine.mongo_archive.names import Rename
from engine.repo.manifest import Artifact
from engine.sources.base import Preflight, RestoreOptions, Source, SourceContext
from engine.sources.mongo.common import MongoTarget, matches_any_of

DRIVER_PREFIX = "mongodb://"


class MongoSource(Source):
    kind: ClassVar[str] = "mongo"
    artifact_kind: ClassVar[str] = "mongo-archive"
    config: MongoSourceConfig

    def filename(self) -> str:
        return f"{self.name}.archive.gz"

    def password(self) -> str | None:
        """The password from ``password_file`` (read each time, never kept in the config)."""
        if self.config.password_file is None:
            return None
        try:
            return self.config.password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise UsageError(
                f"sources.{self.name}.password_file: cannot read {self.config.password_file} "
                f"({exc.strerror}); fix the path or its permissions"
            ) from None

    def redact(self, text: str) -> str:
        """``text`` with the URI and any password replaced by ``***``."""
        uri = self.config.uri.get_secret_value()
        secrets = [uri, self.password() or ""]
        if "@" in uri:
            secrets.append(uri.split("://", 1)[-1].rsplit("@", 1)[0])  # user:password
        for secret in sorted(filter(None, secrets), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def target(self) -> MongoTarget:
        from pymongo import uri_parser
        from pymongo.errors import InvalidURI

        uri = self.config.uri.get_secret_value()
        if not uri.startswith(DRIVER_PREFIX):
            raise UsageError(
                f"sources.{self.name}.uri: a mongodb+srv:// URI needs DNS on the host; use "
                'method = "mongodump" for it, or a mongodb:// URI'
            )
        try:
            parsed = uri_parser.parse_uri(uri)
        except (InvalidURI, ValueError) as exc:
            raise UsageError(f"sources.{self.name}.uri: {self.redact(str(exc))}") from None
        address, port = parsed["nodelist"][0]
        return MongoTarget(
            address=address,
            port=port,
            username=parsed["username"],
            password=self.password() or parsed["password"],
            options=dict(parsed["options"]),
        )

    async def backup(self, ctx: SourceContext) -> Artifact:
        if self.config.method == "driver":
            from engine.sources.mongo.driver import dump_with_driver

            meta = await dump_with_driver(self, ctx)
        else:
            from engine.sources.mongo.tools import dump_with_mongodump

            meta = await dump_with_mongodump(self, ctx)
        entry = meta.pop("file")
        return Artifact(
            source=self.name, kind=self.artifact_kind, host=ctx.host.name, files=(entry,), meta=meta
        )

    def restore_problems(self, artifact: Artifact, options: RestoreOptions) -> list[str]:
        problems = super().restore_problems(artifact, options)
        held = list(artifact.meta.get("namespaces", {}))
        for glob in options.namespaces:
            if not matches_any_of(held, glob):
                problems.append(
                    f"{self.name}: --ns {glob!r} matches no namespace in this backup; it holds "
                    f"{', '.join(held) or 'none'}"
                )
        if options.ns_from is not None and options.ns_to is not None:
            try:
                Rename(options.ns_from, options.ns_to)
            except UsageError as exc:
                problems.append(f"{self.name}: {exc}")
            if not matches_any_of(held, options.ns_from):
                problems.append(f"{self.name}: --ns-from {options.ns_from!r} matches nothing")
        return problems

    async def preflight(self, check: Preflight) -> list[Check]:
        if self.config.method == "driver":
            from engine.sources.mongo.driver import preflight_with_driver

            return await preflight_with_driver(self, check)
        fix = f"install it or set sources.{self.name}.mongorestore"
        return [await check.tool(self.config.mongorestore[0], fix)]

    def restore_effect(self, options: RestoreOptions, backup_id: str) -> str:
        which = " ".join(options.namespaces) or "every namespace in the backup"
        if options.ns_from and options.ns_to:
            which += f", renamed {options.ns_from} -> {options.ns_to}"
        if options.drop:
            return f"{which}: each collection is dropped and replaced; the others are untouched"
        return f"{which}: documents are added; what the collections hold now is kept"

    async def restore(
        self, artifact: Artifact, ctx: SourceContext, options: RestoreOptions
    ) -> None:
        if self.config.method == "driver":
            from engine.sources.mongo.driver import restore_with_driver

            await restore_with_driver(self, artifact, ctx, options)
        else:
            from engine.sources.mongo.tools import restore_with_mongorestore

            await restore_with_mongorestore(self, artifact, ctx, options)

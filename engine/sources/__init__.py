"""Source kinds, one module each; ``make_source`` builds the right one from its config."""

from __future__ import annotations

from engine.config.model import Config
from engine.config.sources import SourceConfig
from engine.errors import UsageError
from engine.sources.base import RestoreOptions, Source, SourceContext
from engine.sources.command import CommandSource
from engine.sources.etcd import EtcdSource
from engine.sources.files import FilesSource
from engine.sources.mongo.source import MongoSource
from engine.sources.postgres import PostgresSource
from engine.sources.redis import RedisSource

SOURCE_CLASSES: dict[str, type[Source]] = {
    cls.kind: cls
    for cls in (FilesSource, CommandSource, EtcdSource, MongoSource, RedisSource, PostgresSource)
}

__all__ = [
    "RestoreOptions",
    "Source",
    "SourceContext",
    "make_source",
    "resolve_scope",
    "source_from",
]


def make_source(config: Config, name: str) -> Source:
    return source_from(name, config.sources[name])


def source_from(name: str, source_config: SourceConfig) -> Source:
    return SOURCE_CLASSES[source_config.kind](name, source_config)


def resolve_scope(config: Config, scope: tuple[str, ...] | None) -> tuple[str, ...]:
    """The source names a ``--scope`` selects (all when empty), refusing unknown names."""
    if not scope:
        if not config.sources:
            raise UsageError("no sources are configured; add a [sources.NAME] table to the config")
        return tuple(config.sources)
    unknown = [name for name in scope if name not in config.sources]
    if unknown:
        raise UsageError(
            f"unknown source {', '.join(unknown)}; configured sources: "
            f"{', '.join(config.sources) or 'none'}"
        )
    return tuple(dict.fromkeys(scope))

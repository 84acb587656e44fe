"""What every source kind provides, and the context a job hands it.

A source backs up by streaming artifacts into the job's staging directory and restores by
streaming them back; it reports through the context and never knows who is listening.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from engine.events import Emit, LogLine, ProgressMeter, StageChanged
from engine.manifest import Artifact
from engine.sink import HashingFileSink
from engine.ssh import SSHHost

READ_CHUNK = 1024 * 1024


@dataclass
class SourceContext:
    """What a source may use while it runs: its host connection, a directory, reporting."""

    source: str
    host: SSHHost
    directory: Path  # staging dir (backup) or backup dir (restore)
    emit: Emit

    def stage(self, stage: str) -> None:
        self.emit(StageChanged(self.source, stage))

    def log(self, text: str, level: str = "info") -> None:
        self.emit(LogLine(self.source, level, text))

    def meter(self, total: int | None = None) -> ProgressMeter:
        return ProgressMeter(self.source, self.emit, total)

    def sink(self, filename: str) -> HashingFileSink:
        return HashingFileSink(self.directory / filename, filename)


@dataclass(frozen=True)
class RestoreOptions:
    """Per-restore choices; each source kind reads the ones that concern it."""

    target_dir: Path | None = None
    swap: bool = False  # etcd: move the restored data dir into place (stop/start configured)


class Source(ABC):
    """One configured source of one kind."""

    kind: ClassVar[str]
    artifact_kind: ClassVar[str]

    def __init__(self, name: str, config: object) -> None:
        self.name = name
        self.config = config

    @abstractmethod
    async def backup(self, ctx: SourceContext) -> Artifact:
        """Stream this source's artifact into ``ctx.directory`` and describe it."""

    @abstractmethod
    async def restore(
        self, artifact: Artifact, ctx: SourceContext, options: RestoreOptions
    ) -> None:
        """Stream ``artifact`` (already verified) from ``ctx.directory`` back to ``ctx.host``."""

    def restore_problems(self, options: RestoreOptions) -> list[str]:
        """Reasons this source cannot be restored with ``options`` (checked before anything)."""
        if options.target_dir is not None:
            return [f"{self.name}: --target-dir applies to files sources only"]
        return []


async def read_chunks(path: Path, meter: ProgressMeter) -> AsyncIterator[bytes]:
    """A local file's bytes in chunks, advancing ``meter`` as they go."""
    with path.open("rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            meter.advance(len(chunk))
            yield chunk
    meter.finish()

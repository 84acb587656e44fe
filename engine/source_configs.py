"""The config model of each source kind (``[sources.NAME]`` tables).

To add a source kind, write its model here and add it to ``SourceConfig``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_core import PydanticCustomError

from engine.config_types import MODEL_CONFIG, AbsolutePath, Command, NonEmptyStr


class FilesSourceConfig(BaseModel):
    """Files and directories copied from a host."""

    model_config = MODEL_CONFIG
    kind: Literal["files"] = "files"
    """Source kind."""
    host: NonEmptyStr = Field(examples=["db1"])
    """Name of the ``[hosts.<name>]`` table the files live on."""
    paths: tuple[AbsolutePath, ...] = Field(min_length=1, examples=[["/etc/prexorcloud"]])
    """Absolute paths to back up, each listed once."""

    @field_validator("paths")
    @classmethod
    def _no_duplicates(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        first: dict[Path, int] = {}
        duplicates = [
            (i, str(p), first[p]) for i, p in enumerate(value) if first.setdefault(p, i) != i
        ]
        if duplicates:
            raise PydanticCustomError(
                "duplicate_path", "duplicate path", {"duplicates": duplicates}
            )
        return value


class CommandSourceConfig(BaseModel):
    """The output of a command run on a host (a database dump, say)."""

    model_config = MODEL_CONFIG
    kind: Literal["command"] = "command"
    """Source kind."""
    host: NonEmptyStr = Field(examples=["db1"])
    """Name of the ``[hosts.<name>]`` table the command runs on."""
    backup: Command = Field(examples=[["pg_dump", "-Fc", "app"]])
    """Command (a list: program, then arguments) whose standard output is the backup."""
    restore: Command | None = Field(None, examples=[["pg_restore", "--clean", "-d", "app"]])
    """Command that reads a backup on standard input; without it the source cannot be restored."""


SourceConfig = FilesSourceConfig | CommandSourceConfig

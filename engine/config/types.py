"""Field types shared by every config model: absolute paths, seconds, commands."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, StrictFloat, StrictStr
from pydantic_core import PydanticCustomError

from engine.durations import parse_duration

MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True)


def _expand_absolute(value: Path) -> Path:
    if "\0" in str(value):
        raise PydanticCustomError("nul_path", "must not contain a NUL character")
    with contextlib.suppress(RuntimeError):  # "~nobody/x": reported as not absolute below
        value = value.expanduser()
    if not value.is_absolute():
        raise PydanticCustomError("relative_path", "must be an absolute path")
    return value


AbsolutePath = Annotated[Path, AfterValidator(_expand_absolute)]
NonEmptyStr = Annotated[StrictStr, Field(min_length=1)]
MAX_SECONDS = 7 * 86400  # a week: past that a timeout is a typo (and overflows clocks)
Seconds = Annotated[StrictFloat, Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)]
Command = Annotated[tuple[NonEmptyStr, ...], Field(min_length=1)]


def _duration(value: object) -> timedelta:
    if not isinstance(value, str):
        raise ValueError(f'must be a duration string like "24h", got {value!r}')
    return parse_duration(value)


Duration = Annotated[timedelta, BeforeValidator(_duration)]


def listed_lines(path: Path, limit: int, what: str) -> list[tuple[int, str]]:
    """The numbered lines of a small text file that lists things (``what``), blank lines and
    ``#`` comments skipped; ValueError says what is wrong with the file."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc.strerror}); check the path") from None
    if len(data) > limit:
        raise ValueError(f"{path} is larger than any list of {what}")
    try:
        lines = data.decode().splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not text") from None
    return [
        (number, line)
        for number, line in enumerate(lines, 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]

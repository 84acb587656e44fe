"""The ``[notify.NAME]`` tables (where alerts go, and which) and ``[metrics]``.

A channel is a list of apprise URLs (``json://``, ``slack://``, ``mailto://``, ``ntfy://``...)
and the events it wants. A URL often holds a token: keep it in ``urls_file`` (0600) rather than
in the config, which operators read and paste. Whether apprise knows a URL's service is checked
when it is used (``lifeboat notify test``): importing apprise costs every command 0.3 s.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, model_validator

from engine.config.types import MODEL_CONFIG, AbsolutePath, listed_lines

# What Lifeboat tells a channel, each when it happens (the failures, once per run) or, for the
# states the scheduler watches (a tier past its RPO, a schedule overdue, damage), once each
# time it begins.
EVENTS = (
    "backup.failed",
    "copy.failed",
    "verify.failed",
    "drill.failed",
    "rpo.breach",
    "schedule.overdue",
    "damage.found",
    "restore.applied",
    "checklist.signed",
)
MAX_URLS_FILE = 64 * 1024
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S+")


def _url(text: str) -> str:
    if not _URL.fullmatch(text.strip()):
        # The value itself is left out of the message: it may hold a token.
        raise ValueError("is not an apprise URL (SERVICE://...)")
    return text.strip()


def _event(text: str) -> str:
    if text not in EVENTS:
        raise ValueError(f"unknown event {text!r}; events: {', '.join(EVENTS)}")
    return text


def read_urls_file(path: Path) -> tuple[str, ...]:
    """The URLs of a file of lines (``#`` comments and blank lines skipped); ValueError names
    the line that is not a URL, never its text."""
    urls = []
    for number, line in listed_lines(path, MAX_URLS_FILE, "URLs"):
        try:
            urls.append(_url(line))
        except ValueError as exc:
            raise ValueError(f"{path} line {number} {exc}") from None
    if not urls:
        raise ValueError(f"{path} holds no URL")
    return tuple(urls)


class NotifyChannelConfig(BaseModel):
    """One place alerts go: its apprise URLs and the events it is sent."""

    model_config = MODEL_CONFIG
    urls: tuple[Annotated[str, AfterValidator(_url)], ...] = Field(
        (), examples=[["json://hooks.example.com/lifeboat"]]
    )
    """apprise URLs (https://github.com/caronc/apprise/wiki); one holding a token is better in
    ``urls_file``."""
    urls_file: AbsolutePath | None = Field(None, examples=["/etc/lifeboat/notify.urls"])
    """A file of URLs, one a line (``#`` comments allowed), read when the config is loaded."""
    events: tuple[Annotated[str, AfterValidator(_event)], ...] = Field(
        EVENTS, examples=[["backup.failed", "rpo.breach"]]
    )
    """Which events this channel is sent (default: all of them)."""

    @model_validator(mode="after")
    def _some_url(self) -> NotifyChannelConfig:
        if not self.urls and self.urls_file is None:
            raise ValueError('names no URL: set urls = ["json://..."] or urls_file')
        if self.urls_file is not None:
            read_urls_file(self.urls_file)
        return self

    def all_urls(self) -> tuple[str, ...]:
        extra = read_urls_file(self.urls_file) if self.urls_file is not None else ()
        return (*self.urls, *extra)


class MetricsConfig(BaseModel):
    """Prometheus metrics the scheduler keeps up to date."""

    model_config = MODEL_CONFIG
    textfile: AbsolutePath | None = Field(
        None, examples=["/var/lib/prometheus/node-exporter/lifeboat.prom"]
    )
    """A file for node_exporter's textfile collector, rewritten (atomically) after each
    scheduled run and each minute."""

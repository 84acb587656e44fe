"""Alerts to the ``[notify.NAME]`` channels, through apprise.

A notice goes to every channel that wants its event, one URL at a time, on a thread (apprise
blocks), with apprise's own timeouts. Delivery never fails the work it reports on: what could
not be delivered comes back as problems, which the caller logs and shows. URLs hold tokens, so
a problem names a URL by its channel, its place in the list and its service (``json://``);
apprise's own words are kept only with every part of every URL taken out.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.config.model import Config
from engine.errors import describe_error
from engine.events import Emit, LogLine

if TYPE_CHECKING:
    import apprise

SOURCE = "notify"  # the pseudo-source of the log lines about delivery
_SENDING = threading.Lock()  # apprise's log capture is per logger, not per call
_URL_PARTS = re.compile(r"[/:@?&=#,;+]+")
MIN_SECRET = 3  # shorter parts of a URL ("v1", a port digit) are not worth hiding


@dataclass(frozen=True)
class Notice:
    """One alert: its event (engine.config.notify.EVENTS), a one-line title and a body."""

    event: str
    title: str
    body: str
    failure: bool = True  # apprise's "failure" type; else "info" (a sign-off, a restore)


def channels_for(config: Config, event: str | None) -> dict[str, tuple[str, ...]]:
    """The URLs of each channel that wants ``event`` (None: of every channel)."""
    return {
        name: channel.all_urls()
        for name, channel in config.notify.items()
        if event is None or event in channel.events
    }


def deliver_now(
    config: Config, notice: Notice, channels: dict[str, tuple[str, ...]] | None = None
) -> list[str]:
    """Send ``notice`` to ``channels`` (their URLs by name; default: every channel that wants
    its event), blocking (for a thread); the problems, never an exception."""
    try:
        wanted = channels_for(config, notice.event) if channels is None else channels
    except (OSError, ValueError) as exc:  # a urls_file that went away since the config loaded
        return [f"notify: cannot read the channels' URLs: {describe_error(exc)}"]
    return _send_all(wanted, notice, config.environment) if wanted else []


async def deliver(config: Config, notice: Notice) -> list[str]:
    """:func:`deliver_now` on a thread."""
    return await asyncio.to_thread(deliver_now, config, notice)


async def notify(config: Config, notice: Notice, emit: Emit) -> None:
    """:func:`deliver`, with each problem as a warning of the ``notify`` pseudo-source."""
    for problem in await deliver(config, notice):
        emit(LogLine(SOURCE, "warning", f"{problem}; the work itself stands"))


def _send_all(
    wanted: dict[str, tuple[str, ...]], notice: Notice, environment: str | None
) -> list[str]:
    import apprise  # 0.3 s to import and load its services: only when something is sent

    apprise_log = logging.getLogger("apprise")  # its messages may quote a URL: never to stderr
    apprise_log.propagate = False
    if not apprise_log.handlers:
        apprise_log.addHandler(logging.NullHandler())  # else Python's last resort prints them
    every_url = [url for urls in wanted.values() for url in urls]
    title = f"[{environment}] {notice.title}" if environment else notice.title
    kind = apprise.NotifyType.FAILURE if notice.failure else apprise.NotifyType.INFO
    problems = []
    with _SENDING:
        for channel, urls in wanted.items():
            for number, url in enumerate(urls, 1):
                sent, said = _send_one(apprise, url, title, notice.body, kind)
                if not sent:
                    where = f"notify.{channel} URL {number} ({_service(url)}://)"
                    reason = redact(said, every_url) or "apprise gave no reason"
                    problems.append(f"{where}: not delivered ({reason})")
    return problems


def _send_one(
    module: Any, url: str, title: str, body: str, kind: apprise.NotifyType
) -> tuple[bool, str]:
    """Whether apprise delivered it, and what it logged on the way."""
    sender = module.Apprise()
    with module.LogCapture(level=logging.WARNING) as captured:
        if not sender.add(url):
            return False, f"apprise knows no service {_service(url)}://"
        sent = bool(sender.notify(body=body, title=title, notify_type=kind))
        said = " ".join(line.strip() for line in captured.getvalue().splitlines()[-2:])
    return sent, _without_timestamps(said)


def _service(url: str) -> str:
    return url.partition("://")[0].lower()


def _without_timestamps(text: str) -> str:
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ - \w+ - ", "", text)


def redact(text: str, urls: Iterable[str]) -> str:
    """``text`` with every part of every URL (host, user, token, path, query) taken out."""
    parts = {
        part
        for url in urls
        for part in _URL_PARTS.split(url.partition("://")[2])
        if len(part) >= MIN_SECRET
    }
    for part in sorted(parts, key=len, reverse=True):
        text = text.replace(part, "***")
    return text

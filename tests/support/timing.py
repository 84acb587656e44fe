"""Every deadline, lease and client timeout the tests use, in one place (DESIGN.md, Testing).

CI runs on a busy 2-core machine where an etcd WAL fsync can take over a second and a
Python process takes a second to start. A wait ends as soon as its condition holds, so a
generous deadline costs a passing test nothing; only a failing one waits it out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from textual.pilot import Pilot

DEADLINE = 60.0  # seconds any wait on a condition may take before the test fails
POLL = 0.05  # seconds between two looks at a condition
LEASE_TTL = 6  # etcd lease TTL in coordination tests; leaves a 3 s client timeout
ETCD_CLIENT_TIMEOUT = LEASE_TTL / 2  # what engine.scaleout.coordination derives from the TTL


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait on the event loop until ``condition`` holds; fail naming ``what`` after DEADLINE."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(POLL)


def eventually(condition: Callable[[], bool], what: str) -> None:
    """Block until ``condition`` holds; fail naming ``what`` after DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(POLL)


async def pilot_until(pilot: Pilot[object], condition: Callable[[], bool], what: str) -> None:
    """Let the app run until ``condition`` holds; fail naming ``what`` after DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(POLL)

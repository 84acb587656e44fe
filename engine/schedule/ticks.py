"""Claiming a schedule's tick, so that each tick runs once however many schedulers there are.

Without ``[coordination]``, schedulers sharing a repository claim through a flock per schedule
(``locks/schedule-<name>.lock``, held for the whole run) and the schedule's state file (the
last tick run). With it, ``engine.scaleout.coordination`` claims through etcd leases instead;
both give the scheduler the same small interface.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime
from typing import Protocol

from engine.repo import locks
from engine.repo.atomic import make_private_dir
from engine.repo.repository import Repository
from engine.schedule.status import read_state


class Claim(Protocol):
    """A tick this scheduler may run."""

    @property
    def lost(self) -> bool:
        """True once the claim could have passed to someone else (an etcd lease expired)."""

    def finish(self) -> None:
        """The tick was handled (whatever the outcome): no one runs it again."""

    def release(self) -> None:
        """Give the tick up without handling it (a cancelled run)."""


ClaimTick = Callable[[str, datetime], "Claim | str"]
"""Claim ``(schedule, fire time)``, or return why not (another instance has it, it is done)."""


class LocalClaim:
    """A schedule's flock, held until the run is over."""

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack

    @property
    def lost(self) -> bool:
        return False  # a flock dies only with its process

    def finish(self) -> None:
        self._stack.close()

    def release(self) -> None:
        self._stack.close()


def local_claimer(repo: Repository, operator: str) -> ClaimTick:
    """Claims through the repository: a flock per schedule, and its state file's last tick."""

    def claim(schedule: str, fire: datetime) -> LocalClaim | str:
        directory = repo.path / "locks"
        make_private_dir(directory)
        stack = ExitStack()
        try:
            stack.enter_context(
                locks.hold(
                    directory / f"schedule-{schedule}.lock", f"schedule {schedule}", operator
                )
            )
        except locks.LockBusy as busy:
            return f"previous run still going: {busy.holder}"
        state = read_state(repo, schedule)
        if state is not None and state.last_fire is not None:
            with contextlib.suppress(ValueError):
                if datetime.fromisoformat(state.last_fire) >= fire:
                    stack.close()
                    return "tick already done"
        return LocalClaim(stack)

    return claim

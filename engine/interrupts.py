"""A hang-up (SIGHUP: the terminal or the SSH session went away) or a SIGTERM is a cancel.

Without a handler either signal ends Python at once: no ``finally`` runs, so the ``ssh``
child, the remote command and the staging directory outlive the process. Under
:func:`cancel_on_signals` they cancel the running coroutine instead, exactly as Ctrl-C
does (``asyncio.run`` cancels its main task on SIGINT), so every job's cleanup runs; then
:class:`Interrupted` (where Ctrl-C raises ``KeyboardInterrupt``) says which signal it was,
for an exit status of 128 + its number.

:func:`stop_reason` is what a cancelled job records in the audit log: the signal this process
is stopping for (``SIGHUP``, ``SIGTERM``, ``SIGINT``), or ``cancelled`` (the console's cancel).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")

STOP_SIGNALS = (signal.SIGHUP, signal.SIGTERM)
_stopping_for: list[signal.Signals] = []  # the first signal this process is stopping for
_stoppers: list[Callable[[int], None]] = []  # who stops the work instead of a plain cancel


class Interrupted(BaseException):
    """The work was cancelled because the process got ``signum``; it exits 128 + ``signum``.

    Not a ``KeyboardInterrupt`` (click turns those into an ``Abort`` that forgets the
    signal), and not an ``Exception``: nothing that handles errors may swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def exit_status(interrupt: BaseException) -> int:
    """128 + the signal's number: 129 for a hang-up, 143 for SIGTERM, else (Ctrl-C) 130."""
    signum = interrupt.signum if isinstance(interrupt, Interrupted) else signal.SIGINT
    return 128 + signum


def stop_reason() -> str:
    """Why a job is being cancelled, for its audit record."""
    return _stopping_for[0].name if _stopping_for else "cancelled"


def note_signal(signum: int) -> None:
    """Remember that the process is stopping for ``signum`` (the first one counts)."""
    if not _stopping_for:
        _stopping_for.append(signal.Signals(signum))


@contextlib.contextmanager
def on_stop_signals(handler: Callable[[int], None]) -> Iterator[None]:
    """Call ``handler(signum)`` on the running loop for SIGHUP and SIGTERM (and note the
    signal), instead of dying of them; the previous handlers come back afterwards. A signal
    ignored on entry stays ignored: ``nohup lifeboat ...`` survives the hang-up it asked to."""
    loop = asyncio.get_running_loop()
    previous = {
        number: before
        for number in STOP_SIGNALS
        if (before := signal.getsignal(number)) is not signal.SIG_IGN
    }

    def on_signal(signum: int) -> None:
        note_signal(signum)
        handler(signum)

    for number in previous:
        loop.add_signal_handler(number, on_signal, number)
    try:
        yield
    finally:
        for number, before in previous.items():
            loop.remove_signal_handler(number)
            with contextlib.suppress(TypeError, ValueError):
                signal.signal(number, before)


@contextlib.contextmanager
def _noting_sigint() -> Iterator[None]:
    """Note a Ctrl-C before asyncio's own handler (which cancels the main task) sees it."""
    before = signal.getsignal(signal.SIGINT)
    if not callable(before):
        yield
        return
    forward: Callable[[int, FrameType | None], Any] = before

    def noting(signum: int, frame: FrameType | None) -> Any:
        note_signal(signum)
        return forward(signum, frame)

    signal.signal(signal.SIGINT, noting)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is noting:
            signal.signal(signal.SIGINT, before)


@contextlib.contextmanager
def stopped_by(stopper: Callable[[int], None]) -> Iterator[None]:
    """While inside, a SIGHUP or SIGTERM under :func:`cancel_on_signals` calls
    ``stopper(signum)`` instead of cancelling: the console cancels its job workers, waits for
    them and exits (raising :class:`Interrupted` itself)."""
    _stoppers.append(stopper)
    try:
        yield
    finally:
        _stoppers.remove(stopper)


async def cancel_on_signals(work: Awaitable[T]) -> T:
    """Await ``work`` in the current task; SIGHUP or SIGTERM cancels it (its cleanup runs)
    and then raises :class:`Interrupted`. Meant as the main coroutine of ``asyncio.run``."""
    task = asyncio.current_task()
    assert task is not None
    received: list[int] = []

    def cancel(signum: int) -> None:
        if _stoppers:
            _stoppers[-1](signum)
        elif not received:  # once: a second cancel would cut the cleanup short
            received.append(signum)
            task.cancel(msg=signal.Signals(signum).name)

    with on_stop_signals(cancel), _noting_sigint():
        try:
            return await work
        except asyncio.CancelledError:
            if received:
                raise Interrupted(received[0]) from None
            raise

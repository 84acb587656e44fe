"""The repository's write hook: what runs once after writes (the catalog's refresh).

Every write the catalog indexes calls :meth:`WriteHook.wrote`: a backup committed or deleted,
a verify recorded, a checklist run saved, a drill recorded. The hook (set with ``attach``, by
``engine.scaleout.catalog.keep_current``) runs at once in the writer's thread or, inside a
batch, once when the outermost batch of this task or thread ends. The write lock is a batch
(a prune is one refresh, after the lock is released); an async job is one ``batch_async``,
whose hook runs in a thread, off the event loop.

The hook returns a warning instead of raising: the write stands. The warning goes to the
outermost batch's ``warn``, else to the one attached with the hook.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import MappingProxyType

AfterWrite = Callable[[], str | None]
"""Runs after writes; returns a warning when it failed (it never raises)."""
Warn = Callable[[str], None]


@dataclass
class _Batch:
    warn: Warn | None
    written: bool = False


_Opened = tuple[_Batch, Token[Mapping["WriteHook", _Batch]]]

# The open batches of this task or thread, by hook (asyncio tasks and asyncio.to_thread copy it).
_batches: ContextVar[Mapping[WriteHook, _Batch]] = ContextVar(
    "lifeboat_write_batches", default=MappingProxyType({})
)


class WriteHook:
    """One repository's hook; nothing runs until one is attached."""

    def __init__(self) -> None:
        self._after: AfterWrite | None = None
        self._warn: Warn | None = None

    def attach(self, after: AfterWrite, warn: Warn | None = None) -> None:
        self._after, self._warn = after, warn

    def wrote(self) -> None:
        """A write happened: run the hook now, or when the open batch ends."""
        batch = _batches.get().get(self)
        if batch is not None:
            batch.written = True
        elif self._after is not None:
            self._tell(self._run(), None)

    @contextmanager
    def batch(self, warn: Warn | None = None) -> Iterator[None]:
        """Writes inside run the hook once, when the block ends (raising or not), in this
        thread; inside an open batch, they wait for that one's end."""
        opened = self._open(warn)
        try:
            yield
        finally:
            if (batch := self._close(opened)) is not None:
                self._tell(self._run(), batch.warn)

    @asynccontextmanager
    async def batch_async(self, warn: Warn | None = None) -> AsyncIterator[None]:
        """``batch`` for async code: the hook runs in a thread, and ``warn`` on the loop."""
        opened = self._open(warn)
        try:
            yield
        finally:
            if (batch := self._close(opened)) is not None:
                self._tell(await asyncio.to_thread(self._run), batch.warn)

    def _open(self, warn: Warn | None) -> _Opened | None:
        """A new batch, or None inside an open one (that one runs the hook)."""
        if self in _batches.get():
            return None
        batch = _Batch(warn)
        return batch, _batches.set(MappingProxyType({**_batches.get(), self: batch}))

    def _close(self, opened: _Opened | None) -> _Batch | None:
        """Close a batch; it is returned when the hook is due (something was written)."""
        if opened is None:
            return None
        batch, token = opened
        _batches.reset(token)
        return batch if batch.written and self._after is not None else None

    def _run(self) -> str | None:
        return None if self._after is None else self._after()

    def _tell(self, warning: str | None, warn: Warn | None) -> None:
        told = warn or self._warn
        if warning is not None and told is not None:
            told(warning)

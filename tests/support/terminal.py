"""A process on a pseudo-terminal of 80x24, as an operator's SSH session gives it."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import struct
import termios
from collections.abc import Callable

from cli_run import with_signals
from timing import DEADLINE

ESCAPES = re.compile(rb"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")


class Terminal:
    """A process on a pseudo-terminal of 80x24, and everything it wrote, without escapes."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int) -> None:
        self.proc, self.master = proc, master
        self.raw = bytearray()
        self.changed = asyncio.Event()
        asyncio.get_running_loop().add_reader(master, self._read)

    @classmethod
    async def start(cls, *argv: str) -> Terminal:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        proc = await asyncio.create_subprocess_exec(
            *with_signals(list(argv)),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            env={**os.environ, "LIFEBOAT_CONFIG": "", "TERM": "xterm-256color"},
        )
        os.close(slave)
        return cls(proc, master)

    def _read(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the process is gone
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.master)
        self.raw += data
        self.changed.set()

    @property
    def text(self) -> str:
        return ESCAPES.sub(b"", bytes(self.raw)).decode(errors="replace").replace("\r", "")

    async def until(self, condition: Callable[[str], bool], what: str) -> str:
        async def waiting() -> str:
            while not condition(self.text):
                self.changed.clear()
                await self.changed.wait()
            return self.text

        try:
            return await asyncio.wait_for(waiting(), DEADLINE)
        except TimeoutError:
            tail = self.text[-2000:]
            raise AssertionError(f"timed out waiting for {what}; got:\n{tail}") from None

    async def ended(self) -> int:
        rc = await asyncio.wait_for(self.proc.wait(), DEADLINE)
        self._drain()  # the last bytes it wrote
        return rc

    def _drain(self) -> None:
        try:
            while data := os.read(self.master, 65536):
                self.raw += data
        except OSError:
            pass

    def hang_up(self) -> None:
        """The terminal goes away (its SSH session closed): the process's writes fail now."""
        if self.master >= 0:
            asyncio.get_running_loop().remove_reader(self.master)
            os.close(self.master)
            self.master = -1

    def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        self.hang_up()

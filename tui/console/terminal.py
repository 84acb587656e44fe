"""The console's terminal driver: once the terminal is gone, its output is dropped.

After a hang-up (an SSH session or a Wi-Fi link lost) a write to the terminal fails with EIO.
Textual's writer thread dies of the first such error and its bounded queue fills up, so the
next screen update, or the exit itself, waits forever: the console never got to cancel its
jobs. This driver's file drops what cannot be written instead, so the hang-up is handled (jobs
cancelled, cleanup done) and the console exits.
"""

from __future__ import annotations

import contextlib
import sys
from typing import IO, Any, cast

from textual.app import App
from textual.driver import Driver


class _GoneIsDropped:
    """A text file whose writes and flushes never fail: once the terminal is gone, the
    output has nowhere to go, and nobody to read it."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file

    def write(self, text: str) -> int:
        try:
            return self._file.write(text)
        except OSError:  # EIO: the terminal hung up
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError):
            self._file.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def hang_up_safe_driver() -> type[Driver] | None:
    """The platform's driver, with output that survives a hang-up (None: Textual's choice)."""
    if sys.platform == "win32":
        return None
    from textual.drivers.linux_driver import LinuxDriver

    class HangUpSafeDriver(LinuxDriver):
        def __init__(self, app: App[Any], **options: Any) -> None:
            super().__init__(app, **options)
            if self._file is not None:
                self._file = cast("Any", _GoneIsDropped(self._file))

    return HangUpSafeDriver

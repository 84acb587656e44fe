"""The console's terminal driver: once the terminal is gone, its output is dropped.

After a hang-up (an SSH session or a Wi-Fi link lost) a write to the terminal fails with EIO.
Textual's writer thread dies of the first such error and its bounded queue fills up, so the
next screen update, or the exit itself, waits forever: the console never got to cancel its
jobs. This driver's file drops what cannot be written instead, so the hang-up is handled (jobs
cancelled, cleanup done) and the console exits.
"""

from __future__ import annotations

import errno
import sys
from typing import IO, Any, cast

from textual.app import App
from textual.driver import Driver

GONE = frozenset({errno.EIO, errno.EPIPE, errno.ENXIO})  # what writing to a lost terminal gives


class _GoneIsDropped:
    """A text file whose writes and flushes do not fail once the terminal is gone: the
    output has nowhere to go, and nobody to read it. Any other error is raised."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file

    def write(self, text: str) -> int:
        try:
            return self._file.write(text)
        except OSError as exc:
            _unless_gone(exc)
            return len(text)

    def flush(self) -> None:
        try:
            self._file.flush()
        except OSError as exc:
            _unless_gone(exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def _unless_gone(exc: OSError) -> None:
    """Raise ``exc`` unless it says the terminal is gone (EIO, EPIPE, ENXIO)."""
    if exc.errno not in GONE:
        raise exc


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

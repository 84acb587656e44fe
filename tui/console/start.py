"""Starting the console from the command line: terminal checks, then the Textual app."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from engine.errors import UsageError
from engine.interrupts import Interrupted, stopped_by

if TYPE_CHECKING:
    from engine.config.model import Config
    from engine.repo.content import Keyring


def require_terminal() -> None:
    """Refuse to start without a terminal (``ssh host lifeboat`` without ``-t`` would hang)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(
            "the console needs a terminal; connect with `ssh -t HOST lifeboat`, or use a "
            "subcommand such as `lifeboat backup list` (see `lifeboat --help`)"
        )


async def run_console(
    config: Config, *, mouse: bool, wizard: str | None = None, keyring: Keyring | None = None
) -> None:
    """The console on ``config`` (``keyring``: what opens encrypted backups; none yet: it
    asks when one is needed)."""
    from engine.repo.content import NO_KEYS
    from tui.console.app import make_app  # Textual loads only when the console opens

    require_terminal()
    from tui.console.terminal import hang_up_safe_driver

    app = make_app(config, wizard=wizard, keyring=keyring or NO_KEYS)
    app.driver_class = hang_up_safe_driver() or app.driver_class
    with stopped_by(app.stop_for_signal):  # a hang-up or SIGTERM: cancel the jobs, then exit
        await app.run_async(mouse=mouse)
    if app.stopped_by is not None:
        raise Interrupted(app.stopped_by)

"""The ``lifeboat`` console script.

asyncssh names DSA key types when it is imported, and cryptography 48+ deprecates DSA, so
every command (every cron run too) would print six lines of a warning no operator can act
on. This entry point silences exactly that warning, by category, message and module,
before anything imports asyncssh; every other warning still shows.
"""

from __future__ import annotations

import warnings


def silence_known_warnings() -> None:
    """Ignore asyncssh's DSA deprecation warning, and only that one."""
    from cryptography.utils import CryptographyDeprecationWarning

    warnings.filterwarnings(
        "ignore",
        message="DSA is deprecated",
        category=CryptographyDeprecationWarning,
        module=r"asyncssh\.",
    )


def main() -> None:
    """Run the ``lifeboat`` command with the known third-party warning silenced."""
    silence_known_warnings()
    from tui.cli.main import main as run_cli

    run_cli()

"""Lifeboat's default paths and names, in one place.

Every default location comes from here (via ``platformdirs``), so no other module guesses at
home directories or glues ``expanduser`` strings together.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import platformdirs

APP_NAME = "lifeboat"


def user_config_file() -> Path:
    """The per-user config file, e.g. ``~/.config/lifeboat/config.toml`` on Linux."""
    return platformdirs.user_config_path(APP_NAME, appauthor=False) / "config.toml"


def console_settings_file() -> Path:
    """Where the console remembers per-user choices (the theme)."""
    return platformdirs.user_config_path(APP_NAME, appauthor=False) / "console.json"


def user_data_dir() -> Path:
    """The per-user data directory, e.g. ``~/.local/share/lifeboat`` on Linux."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False)


def default_known_hosts() -> Path:
    """OpenSSH's per-user known_hosts file."""
    return Path.home() / ".ssh" / "known_hosts"


def operator_name() -> str:
    """Who is at the keyboard: under sudo, who ran sudo (``SUDO_USER``, which sudo sets), since
    the operators' console runs as the service user through sudo (deploy/lifeboat-console)
    and must name the person; else the login name."""
    return os.environ.get("SUDO_USER", "").strip() or login_name()


def login_name() -> str:
    """The process's login name, or ``"unknown"`` when the system cannot tell."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):  # no $USER and no passwd entry (e.g. a bare container)
        return "unknown"


def display(path: Path) -> str:
    """``path`` as an operator reads it: under the home directory as ``~/...``."""
    try:
        home = Path.home()
    except RuntimeError:  # no $HOME and no passwd entry
        return str(path)
    if home != Path("/") and path.is_relative_to(home):
        return str(Path("~") / path.relative_to(home))
    return str(path)

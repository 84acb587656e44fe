"""A console on a config's repository, for Pilot tests."""

from __future__ import annotations

from pathlib import Path

from engine.config.model import Config
from engine.repo.repository import Repository
from tui.console.app import LifeboatApp


def console(config: Config, tmp_path: Path) -> LifeboatApp:
    repo = Repository.open(config.repository.path)
    return LifeboatApp(config, repo, settings=tmp_path / "console.json")

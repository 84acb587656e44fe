"""The layering holds at run time: each part, imported whole in a fresh interpreter, loads only
what it may. (The static import contracts are in pyproject.toml, checked by ``make lint``.)"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

LOADED = """
import importlib, json, pkgutil, sys
loaded = []
for package in sys.argv[1:]:
    root = importlib.import_module(package)
    loaded.append(root.__name__)
    if hasattr(root, "__path__"):
        for module in pkgutil.walk_packages(root.__path__, package + "."):
            loaded.append(importlib.import_module(module.name).__name__)
tops = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"imported": loaded, "top_level": tops}))
"""


def imported_in_fresh_interpreter(*packages: str) -> dict[str, list[str]]:
    """Every module of ``packages`` imported; what was imported, and every top-level package
    then in ``sys.modules``."""
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", LOADED, *packages],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("packages", "forbidden"),
    [
        (("engine",), {"textual", "rich", "tui", "themes"}),
        (("tui.cli", "tui.format", "tui.entry", "tui.console.start"), {"textual"}),
    ],
    ids=["engine", "cli"],
)
def test_a_part_loads_nothing_it_may_not(packages: tuple[str, ...], forbidden: set[str]) -> None:
    report = imported_in_fresh_interpreter(*packages)
    assert len(report["imported"]) > len(packages)  # the walk found the modules
    assert forbidden & set(report["top_level"]) == set()


def test_the_console_does_load_textual() -> None:
    """The check above can fail: importing the console does bring Textual in."""
    report = imported_in_fresh_interpreter("tui.console")
    assert "textual" in report["top_level"]


FIRST_PAINT = """
import asyncio, pathlib, sys
from engine.config.load import load_config
from tui.console.app import make_app
async def main():
    app = make_app(load_config(pathlib.Path(sys.argv[1])), settings=pathlib.Path(sys.argv[2]))
    async with app.run_test(size=(80, 24)) as pilot:
        while app.screen.report is None:  # the first status, gathered on a thread
            await pilot.pause()
asyncio.run(main())
print(sorted(sys.modules))
"""


def test_the_console_paints_without_what_only_jobs_need(tmp_path: Path) -> None:
    """Every module costs start-up time: the dashboard's first paint loads neither SSH, etcd,
    the Mongo archive reader nor the decision trees' models (jobs and the wizard load them)."""
    config = tmp_path / "lifeboat.toml"
    config.write_text(
        f'operator = "o"\n[repository]\npath = "{tmp_path / "repo"}"\n'
        '[hosts.h1]\naddress = "127.0.0.1"\n'
        '[sources.db]\nkind = "command"\nhost = "h1"\nbackup = ["true"]\n'
        '[tiers.gold]\nrpo = "1h"\nrto = "15m"\nsources = ["db"]\n'
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", FIRST_PAINT, str(config), str(tmp_path / "s.json")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    loaded = set(ast.literal_eval(done.stdout.strip().splitlines()[-1]))
    assert "tui.console.screens.dashboard" in loaded  # it did paint the dashboard
    unwanted = {"asyncssh", "etcd3", "engine.mongo_archive", "engine.restore.tree"}
    assert unwanted & loaded == set()

"""Process start to the first painted dashboard, on the demo sandbox's config.

Target: <= 0.45 s (issue 20). Each side is a fresh interpreter that prints the wall clock once
its first screen is painted (headless, via ``run_test``); the baseline is a bare Textual app with
one Static, measured in the same run, so the ratio shows what Lifeboat adds to Textual's own
start-up. Run: ``.venv/bin/python bench/console_start.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchargs import compile_project

from engine.demo.sandbox import open_sandbox

LIFEBOAT = """
import asyncio, pathlib, time
from tui.entry import silence_known_warnings
silence_known_warnings()  # as the lifeboat command does
from engine.config.load import load_config
from tui.console.app import make_app
async def main():
    app = make_app(load_config(pathlib.Path({config!r})), settings=pathlib.Path({settings!r}))
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        print(time.time(), flush=True)
asyncio.run(main())
"""
BARE = """
import asyncio, time
from textual.app import App
from textual.widgets import Static
class Bare(App):
    def compose(self):
        yield Static("hello")
async def main():
    async with Bare().run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        print(time.time(), flush=True)
asyncio.run(main())
"""


def first_paint(code: str) -> float:
    started = time.time()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1]) - started


async def write_demo_config(root: Path) -> Path:
    async with open_sandbox(root, with_databases=False) as sandbox:
        return sandbox.config_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    compile_project()
    with tempfile.TemporaryDirectory(prefix="lifeboat-start-") as tmp:
        config = asyncio.run(write_demo_config(Path(tmp) / "sandbox"))
        code = LIFEBOAT.format(config=str(config), settings=str(Path(tmp) / "console.json"))
        lifeboat, bare = [], []
        for _ in range(runs):
            bare.append(first_paint(BARE))
            lifeboat.append(first_paint(code))
    print(f"console start to first paint, demo config, {runs} runs; target <= 0.45 s")
    print(f"  bare Textual app   median {statistics.median(bare):.3f} s  best {min(bare):.3f} s")
    print(
        f"  lifeboat console   median {statistics.median(lifeboat):.3f} s"
        f"  best {min(lifeboat):.3f} s"
    )
    print(f"ratio={statistics.median(bare) / statistics.median(lifeboat):.2f}")


if __name__ == "__main__":
    main()

"""How fast the backups browser opens and filters a repository of 10,000 backups.

It commits 10,000 small backups through the repository API (``create_staging`` + ``commit``;
a quarter with a Mongo artifact and its namespaces), opens the console headless
(``run_test``) at 120x36 and measures, in one run:

(a) switching to the browser until its first rows are painted (the rest of the index is read
    in a thread and painted as it arrives; the time until every backup is listed is printed
    too),
(b) a filter keystroke until the list's repaint (several keystrokes; the slowest counts),
(c) the naive baseline: a screen with a plain Textual ``DataTable`` that reads every manifest
    (``Repository.list_backups``) and adds all rows, from switching to it until its rows are
    painted (the DataTable part alone, rows already in memory, is printed too).

"Painted" is the first ``render_line`` of a data row after the step began. Targets:
(a) <= 0.5 s, (b) <= 50 ms, and the last line ``ratio=X.XX`` ((c) / (a)) >= 2::

    .venv/bin/python bench/tui_browser.py
    .venv/bin/python bench/tui_browser.py --count 2000 --dir /tmp/bench-repo

Committing fsyncs every backup; the repository goes to /dev/shm when it exists (fsync is
cheap there) unless ``--dir`` says otherwise, and an existing one with enough backups is reused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.screen import Screen
from textual.strip import Strip
from textual.widgets import DataTable

from engine.config.load import parse_config
from engine.repo.manifest import Artifact, ArtifactFile, Manifest
from engine.repo.repository import Repository, new_backup_id
from tui.console.app import make_app
from tui.console.widgets.backup_list import BackupList
from tui.format import age, human_size

SIZE = (120, 36)
KEYS = ("m", "o", "n", "backspace", "backspace", "backspace", "7", "2")


def make_repository(path: Path, count: int) -> Repository:
    repo = Repository.open(path)
    have = sum(1 for _ in repo.backups_dir.iterdir())
    if have >= count:
        return repo
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for number in range(have, count):
        moment = start + timedelta(minutes=13 * number)
        backup_id = new_backup_id(moment)
        staging = repo.create_staging(backup_id)
        (staging / "config.out").write_bytes(b"x" * 64)
        artifacts = [
            Artifact(
                source="config",
                kind="command-output",
                host=f"web{number % 7}",
                files=(ArtifactFile(path="config.out", bytes=64, sha256="0" * 64),),
            )
        ]
        if number % 4 == 0:
            names = [f"app{number % 3}.coll{n}" for n in range(5)]
            artifacts.append(
                Artifact(
                    source="mongo",
                    kind="mongo-archive",
                    host="db1",
                    files=(ArtifactFile(path="mongo.archive.gz", bytes=4096, sha256="1" * 64),),
                    meta={
                        "server_version": "7.0.5",
                        "namespaces": {n: {"documents": 1000, "bytes": 4096} for n in names},
                    },
                )
            )
        manifest = Manifest(
            id=backup_id,
            label=f"release-{number}" if number % 5 == 0 else None,
            created_at=moment,
            finished_at=moment,
            trigger="schedule:hourly" if number % 2 else "manual",
            operator="bench",
            tool_version="0.1.0",
            scope=tuple(a.source for a in artifacts),
            artifacts=tuple(artifacts),
        )
        repo.commit(staging, manifest)
    return repo


class Paints:
    """Times of data-row paints, recorded by wrapping a widget class's ``render_line``."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.painted = asyncio.Event()

    def wrap(self, cls: type[Any], is_row: Any) -> None:
        original = cls.render_line
        paints = self

        def render_line(widget: Any, y: int) -> Strip:
            strip = original(widget, y)
            if is_row(widget, y):
                paints.times.append(time.perf_counter())
                paints.painted.set()
            return strip

        cls.render_line = render_line

    def first_after(self, moment: float) -> float | None:
        return next((t for t in self.times if t > moment), None)

    async def wait_after(self, moment: float) -> float:
        """Seconds from ``moment`` to the first row painted after it (give up after 2 min)."""
        async with asyncio.timeout(120):
            while (painted := self.first_after(moment)) is None:
                self.painted.clear()
                await self.painted.wait()
        return painted - moment


class NaiveScreen(Screen[None]):
    """The baseline: every manifest read up front, every row added to a DataTable."""

    def __init__(self, repo: Repository) -> None:
        super().__init__()
        self.repo = repo
        self.read_seconds = 0.0

    def compose(self) -> ComposeResult:
        yield DataTable(cursor_type="row")

    def on_mount(self) -> None:
        started = time.perf_counter()
        manifests, _ = self.repo.list_backups()
        verifications = self.repo.verifications()
        self.read_seconds = time.perf_counter() - started
        table = self.query_one(DataTable)
        table.add_columns("id", "created", "label", "scope", "size", "last verify")
        table.add_rows(
            (
                m.id,
                f"{m.created_at:%Y-%m-%d %H:%M}Z  {age(m.created_at)}",
                m.label or "-",
                ",".join(m.scope),
                human_size(m.size),
                "OK" if (v := verifications.get(m.id)) and v.ok else ("FAILED" if v else "-"),
            )
            for m in manifests
        )


async def measure(repo_path: Path, settings: Path) -> dict[str, float]:
    config = parse_config(
        f'operator = "bench"\n[repository]\npath = {json.dumps(str(repo_path))}\n'
    )
    rows = Paints()
    rows.wrap(BackupList, lambda w, y: y >= 1 and round(w.scroll_y) + y - 1 < w.shown)
    table = Paints()
    table.wrap(DataTable, lambda w, y: y >= 1 and w.row_count > 0)
    app = make_app(config, settings=settings)
    result: dict[str, float] = {}
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        started = time.perf_counter()
        app.switch_mode("backups")
        result["open"] = await rows.wait_after(started)
        await app.workers.wait_for_complete()
        await pilot.pause()
        result["all_listed"] = time.perf_counter() - started
        listing = app.screen.query_one(BackupList)
        result["listed"] = listing.total
        await pilot.press("slash")
        await pilot.pause()
        keystrokes = []
        for key in KEYS:
            started = time.perf_counter()
            await pilot.press(key)
            keystrokes.append(await rows.wait_after(started))
        result["filter_max"] = max(keystrokes)
        result["filter_median"] = statistics.median(keystrokes)
        result["shown_after_filter"] = listing.shown

        app.add_mode("naive", lambda: NaiveScreen(app.repository))
        started = time.perf_counter()
        app.switch_mode("naive")
        result["baseline"] = await table.wait_after(started)
        naive = app.screen
        assert isinstance(naive, NaiveScreen)
        result["baseline_read"] = naive.read_seconds
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="backups (default 10000)")
    parser.add_argument("--dir", type=Path, help="repository directory (kept; reused if full)")
    args = parser.parse_args()
    shm = Path("/dev/shm")
    scratch = Path(tempfile.mkdtemp(prefix="lifeboat-bench-", dir=shm if shm.is_dir() else None))
    try:
        repo_path = args.dir or scratch / "repo"
        started = time.perf_counter()
        make_repository(repo_path, args.count)
        made = time.perf_counter() - started
        print(f"repository: {args.count:,} backups in {repo_path} (ready in {made:.1f} s)")
        r = asyncio.run(measure(repo_path, scratch / "settings.json"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"(a) open the browser until rows are painted: {r['open']:.3f} s (target <= 0.5 s)")
    print(f"    every backup read and listed ({int(r['listed']):,}): {r['all_listed']:.3f} s")
    print(
        f"(b) filter keystroke until repainted: max {r['filter_max'] * 1000:.1f} ms, median "
        f"{r['filter_median'] * 1000:.1f} ms over {len(KEYS)} keys (target <= 50 ms)"
    )
    print(
        f"(c) baseline DataTable (list_backups + add all rows) until painted: "
        f"{r['baseline']:.3f} s (reading the manifests {r['baseline_read']:.3f} s, the table "
        f"{r['baseline'] - r['baseline_read']:.3f} s)"
    )
    print(f"ratio={r['baseline'] / r['open']:.2f}")


if __name__ == "__main__":
    main()

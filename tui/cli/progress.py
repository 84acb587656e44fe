"""Rendering engine events in a terminal: rich progress bars, plain lines, or JSON lines.

Progress goes to stderr so stdout stays clean for results (a table, an id, a JSON object).
"""

from __future__ import annotations

import json
import sys
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from engine.events import Event, JobFinished, LogLine, StageChanged, event_to_dict
from engine.events import Progress as ProgressEvent
from engine.sizes import human_size


class EventRenderer:
    """Base renderer: a context manager with an ``emit`` callback for the engine."""

    def __enter__(self) -> EventRenderer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def emit(self, event: Event) -> None:
        raise NotImplementedError


class JsonLinesRenderer(EventRenderer):
    """One JSON object per event on stdout, for scripts (``--json``)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def emit(self, event: Event) -> None:
        self.stream.write(json.dumps(event_to_dict(event)) + "\n")
        self.stream.flush()


class PlainRenderer(EventRenderer):
    """Stage changes and log lines as plain text, for logs and pipes (no progress spam)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def emit(self, event: Event) -> None:
        if isinstance(event, StageChanged):
            self.stream.write(f"{event.source}: {event.stage}\n")
        elif isinstance(event, LogLine):
            self.stream.write(f"{event.source}: {event.level}: {event.text}\n")
        self.stream.flush()


class AmountColumn(ProgressColumn):
    """Bytes as sizes and rates in binary units (MiB, as the console and every message say);
    other units as counts."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = DownloadColumn(binary_units=True)

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "bytes")
        if unit == "bytes":
            speed = f" {human_size(task.speed)}/s" if task.speed else ""
            return Text.assemble(self._bytes.render(task), (speed, "progress.data.speed"))
        total = f"/{task.total:,.0f}" if task.total is not None else ""
        rate = f" {task.speed:,.0f}/s" if task.speed else ""
        return Text(f"{task.completed:,.0f}{total} {unit}{rate}", style="progress.download")


class RichRenderer(EventRenderer):
    """A live bar per source with bytes, rate and ETA, on a terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            AmountColumn(),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.stages: dict[str, str] = {}

    def __enter__(self) -> RichRenderer:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def _task(self, source: str) -> TaskID:
        if source not in self.tasks:
            self.tasks[source] = self.progress.add_task(source, total=None, unit="bytes")
        return self.tasks[source]

    def emit(self, event: Event) -> None:
        if isinstance(event, StageChanged):
            self.stages[event.source] = event.stage
            self.progress.update(
                self._task(event.source), description=f"{event.source} [dim]{event.stage}"
            )
        elif isinstance(event, ProgressEvent):
            if event.item is not None:
                return  # one bar per source; per-item counts are for the console and --json
            task = self._task(event.source)
            self.progress.update(task, completed=event.done, total=event.total, unit=event.unit)
        elif isinstance(event, LogLine):
            style = {"error": "red", "warning": "yellow"}.get(event.level, "dim")
            self.progress.console.print(
                f"[{style}]{event.source}: {event.text}[/]", markup=True, highlight=False
            )
        elif isinstance(event, JobFinished):
            for source, task in self.tasks.items():
                if self.stages.get(source) == "done":
                    total = self.progress.tasks[task].completed
                    self.progress.update(task, total=total, completed=total)


def make_renderer(as_json: bool, stream: TextIO | None = None) -> EventRenderer:
    """JSON lines with ``--json``, live bars on a terminal, plain lines otherwise."""
    if as_json:
        return JsonLinesRenderer()
    err = stream or sys.stderr
    if err.isatty():
        return RichRenderer(Console(file=err))
    return PlainRenderer(err)

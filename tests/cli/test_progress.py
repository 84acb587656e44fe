"""The CLI's progress columns speak the console's units."""

from __future__ import annotations

from rich.console import Console
from rich.progress import Progress

from tui.cli.progress import AmountColumn


def test_bytes_are_shown_in_binary_units_as_in_the_console() -> None:
    progress = Progress(AmountColumn(), console=Console(width=80))
    task_id = progress.add_task("db", total=3 * 1024**3, unit="bytes")
    progress.update(task_id, completed=1536 * 1024**2)
    shown = AmountColumn().render(progress.tasks[0]).plain
    assert shown == "1.5/3.0 GiB"  # rich's default would say 1.6/3.2 GB


def test_other_units_are_counted() -> None:
    progress = Progress(AmountColumn(), console=Console(width=80))
    task_id = progress.add_task("mongo", total=2000, unit="documents")
    progress.update(task_id, completed=1500)
    assert AmountColumn().render(progress.tasks[0]).plain == "1,500/2,000 documents"

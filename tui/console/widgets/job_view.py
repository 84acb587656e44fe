"""One job: its title and, per source, a progress bar with stage, bytes, rate and ETA."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from tui.console.jobs import JobState, SourceState
from tui.format import eta, human_size


def amount(state: SourceState) -> str:
    if state.unit != "bytes":
        total = f"/{state.total:,}" if state.total else ""
        return f"{state.done:,}{total} {state.unit}"
    total = f"/{human_size(state.total)}" if state.total else ""
    rate = f" {human_size(state.rate)}/s" if state.rate else ""
    return f"{human_size(state.done)}{total}{rate}"


class JobView(Widget, can_focus=True):
    """Focus a job (Tab) to cancel it with ``c``."""

    DEFAULT_CSS = """
    JobView { height: auto; padding: 0 1; }
    JobView:focus { background: $boost; }
    """

    def __init__(self, job: JobState, estimates: dict[str, int]) -> None:
        super().__init__(id=f"job-{job.key}")
        self.job = job
        self.estimates = estimates  # source -> size of its previous backup, for the ETA

    def render(self) -> RenderableType:
        job = self.job
        name = job.job_id or job.key
        if job.finished is None:
            status = Text("running", style="bold")
        elif job.finished.cancelled:
            status = Text("cancelled", style="dim")
        elif job.finished.ok:
            status = Text("done", style="bold")
        else:
            status = Text("FAILED", style=f"bold {self.app.theme_variables.get('error')}")
        title = Text.assemble((f"{job.kind} ", "bold"), name, "  ", status)
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(width=12, no_wrap=True, overflow="ellipsis")
        grid.add_column(ratio=1)
        grid.add_column(no_wrap=True, overflow="ellipsis", ratio=2)
        for source, state in job.sources.items():
            total = state.total or self.estimates.get(source)
            finished = state.stage in ("done", "failed")
            if finished:
                bar = ProgressBar(total=1, completed=1)
            elif total:
                bar = ProgressBar(total=total, completed=min(state.done, total))
            else:
                bar = ProgressBar(total=None, pulse=True)
            left = eta(state.done, total, state.rate)
            info = f"{state.stage} · {amount(state)}" + (f" · ETA {left}" if left else "")
            grid.add_row(source, bar, info)
        return Group(title, grid)

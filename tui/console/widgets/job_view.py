"""One job: its title and, per source, a progress bar with stage, bytes, rate and ETA; once
the job finished, each source's final stage (done, failed, cancelled, skipped) and bytes."""

from __future__ import annotations

from typing import Self

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from textual.geometry import Region
from textual.widget import Widget

from tui.console.jobs import JobState, SourceState
from tui.format import eta, human_size


def amount(state: SourceState) -> str:
    """Done of total, and the rate while it moves; a source done shows what it moved."""
    total = None if state.stage == "done" else state.total
    if state.unit != "bytes":
        return f"{state.done:,}" + (f"/{total:,}" if total else "") + f" {state.unit}"
    rate = f" {human_size(state.rate)}/s" if state.rate and not state.final else ""
    return f"{human_size(state.done)}" + (f"/{human_size(total)}" if total else "") + rate


def bar_of(state: SourceState, estimate: int | None) -> ProgressBar:
    """Full when done; where it stopped when failed, cancelled or skipped; live otherwise."""
    total = state.total or estimate
    if state.stage == "done":
        return ProgressBar(total=1, completed=1)
    if state.final:
        return ProgressBar(total=state.total or 1, completed=min(state.done, state.total or 0))
    if total:
        return ProgressBar(total=total, completed=min(state.done, total))
    return ProgressBar(total=None, pulse=True)


def info_of(state: SourceState, estimate: int | None) -> str:
    left = None if state.final else eta(state.done, state.total or estimate, state.rate)
    return f"{state.stage} · {amount(state)}" + (f" · ETA {left}" if left else "")


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
        self._rows = len(job.sources)

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> Self:
        """Repaint; and lay out again when rows came (or settled in) since the last time: the
        view is as tall as its rows, whoever asks it to show its job again."""
        if len(self.job.sources) != self._rows:
            self._rows = len(self.job.sources)
            layout = True
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

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
            estimate = self.estimates.get(source)
            grid.add_row(source, bar_of(state, estimate), info_of(state, estimate))
        return Group(title, grid)

"""One backup in full: its files with sizes and short sha256, what each source recorded
(Mongo namespaces, PostgreSQL tables and rows, etcd revision), who made it and how its last
verify went.

``describe_backup`` is a pure function of the manifest and its verify record, so the pane
shows exactly what is on disk; a running verify adds a progress line above it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from engine.durations import format_duration
from engine.repo.manifest import Artifact, Manifest
from engine.repo.repository import VerifyRecord
from tui import format as fmt
from tui.console.jobs import JobState
from tui.console.widgets.job_view import amount
from tui.format import age, human_size

SHORT_SHA = 12
SHOWN_META = {
    "namespaces", "server_version", "revision", "key_count", "member_id", "db_size",
    "databases", "expiring", "rdb_version", "tables", "owners", "seconds",
}  # fmt: skip


def _when(moment: datetime, now: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}Z ({age(moment, now)})"


def _fields(rows: list[tuple[str, Text | str]]) -> Table:
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(style="bold", no_wrap=True, width=8)
    grid.add_column(ratio=1, overflow="fold")
    for name, value in rows:
        grid.add_row(name, value)
    return grid


def _verify_text(verify: VerifyRecord | None, now: datetime, ok: str, bad: str) -> Text:
    if verify is None:
        return Text("never verified: press v to check sizes, sha256 and structure", style="dim")
    try:
        when = _when(datetime.fromisoformat(verify.at), now)
    except ValueError:
        when = verify.at
    if verify.ok:
        return Text.assemble(("OK", f"bold {ok}"), f" {when}")
    count = len(verify.problems)
    text = Text.assemble(("FAILED", f"bold {bad}"), f" {when}: {count} problem(s)")
    for problem in verify.problems:
        text.append(f"\n✗ {problem}", style=bad)
    return text


def _source_facts(artifact: Artifact) -> str:
    meta = artifact.meta
    facts = [f"{artifact.kind} from {artifact.host}"]
    if artifact.kind == "mongo-archive" and meta.get("server_version"):
        facts.append(f"MongoDB {meta['server_version']}")
    elif meta.get("server_version"):
        facts.append(f"server {meta['server_version']}")
    if "revision" in meta:
        facts.append(f"revision {meta['revision']}")
    if "key_count" in meta:
        facts.append(f"{meta['key_count']:,} keys")
    if "member_id" in meta:
        facts.append(f"member {meta['member_id']}")
    if "db_size" in meta:
        facts.append(f"db {human_size(meta['db_size'])}")
    if isinstance(databases := meta.get("databases"), dict):
        keys = sum(databases.values())
        expiring = meta.get("expiring")
        ttl = sum(expiring.values()) if isinstance(expiring, dict) else 0
        facts.append(f"{keys:,} keys in {len(databases)} database(s), {ttl:,} with a TTL")
    if isinstance(tables := meta.get("tables"), dict):
        counted = [n for db in tables.values() for n in db.values() if isinstance(n, int)]
        every = sum(len(db) for db in tables.values())
        facts.append(f"{every} table(s), {sum(counted):,} rows in {len(tables)} database(s)")
    if isinstance(seconds := meta.get("seconds"), int | float):
        took = format_duration(timedelta(seconds=seconds)) if seconds >= 1 else "<1s"
        facts.append(f"took {took}")
    return " · ".join(facts)


def _plain(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def describe_artifact(
    artifact: Artifact, verify: VerifyRecord | None, ok: str = "green", bad: str = "red"
) -> RenderableType:
    """One source's artifact: facts, files (marked by the last verify), namespaces, meta."""
    title = Text.assemble(
        (artifact.source, "bold"), f"  {_source_facts(artifact)} · {human_size(artifact.size)}"
    )
    files = Table.grid(padding=(0, 1))
    files.add_column(width=3, no_wrap=True)
    files.add_column(ratio=1, overflow="fold")
    files.add_column(justify="right", no_wrap=True)
    files.add_column(no_wrap=True)
    for entry in artifact.files:
        mark = Text("")
        if verify is not None:
            prefix = f"{entry.path} ({artifact.source}): "
            failed = any(p.startswith(prefix) for p in verify.problems)
            mark = Text("  ✗", style=f"bold {bad}") if failed else Text("  ✓", style=ok)
        short = f"sha256 {entry.sha256[:SHORT_SHA]}"
        files.add_row(mark, entry.path, human_size(entry.bytes), short)
    parts: list[RenderableType] = [title, files]
    namespaces = artifact.meta.get("namespaces")
    if isinstance(namespaces, dict) and namespaces:
        parts.append(Text(f"   {len(namespaces)} namespace(s):", style="dim"))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=3)
        grid.add_column(ratio=1, overflow="fold")
        grid.add_column(justify="right", no_wrap=True)
        grid.add_column(justify="right", no_wrap=True)
        for name, stats in sorted(namespaces.items()):
            stats = stats if isinstance(stats, dict) else {}
            documents = stats.get("documents")
            size = stats.get("bytes")
            grid.add_row(
                "",
                name,
                f"{documents:,} docs" if isinstance(documents, int) else "? docs",
                human_size(size) if isinstance(size, int) else "",
            )
        parts.append(grid)
    tables = artifact.meta.get("tables")
    if isinstance(tables, dict):
        parts += _table_rows(tables)
    other = {k: v for k, v in artifact.meta.items() if k not in SHOWN_META}
    if other:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=3)
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(style="dim", overflow="fold")
        for key, value in other.items():
            grid.add_row("", key, _plain(value))
        parts.append(grid)
    return Group(*parts)


def _table_rows(tables: dict[str, Any]) -> list[RenderableType]:
    """Per PostgreSQL database, its tables and their rows as dumped."""
    parts: list[RenderableType] = []
    for database, rows in sorted(tables.items()):
        parts.append(Text(f"   {database}: {len(rows)} table(s):", style="dim"))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=3)
        grid.add_column(ratio=1, overflow="fold")
        grid.add_column(justify="right", no_wrap=True)
        for name, count in sorted(rows.items()):
            grid.add_row("", name, f"{count:,} rows" if isinstance(count, int) else "? rows")
        parts.append(grid)
    return parts


def describe_backup(
    manifest: Manifest,
    verify: VerifyRecord | None,
    *,
    ok: str = "green",
    bad: str = "red",
    now: datetime | None = None,
    copies: tuple[str, ...] | None = None,
) -> RenderableType:
    """Everything the manifest says about one backup, its last verify's outcome, and (when
    remotes are configured: ``copies`` is not None) which remotes hold a copy."""
    now = now or fmt.current_time()
    files = sum(len(a.files) for a in manifest.artifacts)
    took = format_duration(manifest.finished_at - manifest.created_at)
    label = Text(manifest.label, style="bold") if manifest.label else Text("no label", style="dim")
    rows: list[tuple[str, Text | str]] = [
        ("label", label),
        ("created", f"{_when(manifest.created_at, now)}, took {took}"),
        ("trigger", f"{manifest.trigger} by {manifest.operator}"),
        ("tool", f"lifeboat {manifest.tool_version}"),
        ("size", f"{human_size(manifest.size)} in {files} file(s)"),
        ("scope", ", ".join(manifest.scope)),
        ("verify", _verify_text(verify, now, ok, bad)),
    ]
    if copies is not None:
        where = f"local, and on {', '.join(copies)}" if copies else "local only (o: copy it)"
        rows.append(("copies", where))
    if manifest.encrypted:
        to = "\n".join(manifest.encrypted_to)
        rows.insert(5, ("stored", f"encrypted (age); the identity of any of these opens it:\n{to}"))
    header = _fields(rows)
    artifacts = [describe_artifact(a, verify, ok, bad) for a in manifest.artifacts]
    return Group(header, *(Group(Text(""), part) for part in artifacts))


def describe_progress(job: JobState) -> RenderableType:
    """A running verify of this backup: a bar, bytes and rate."""
    state = job.sources.get("verify")
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(no_wrap=True)
    grid.add_column(ratio=1)
    grid.add_column(no_wrap=True)
    if state is None or not state.total:
        bar = ProgressBar(total=None, pulse=True)
        info = "starting"
    else:
        bar = ProgressBar(total=state.total, completed=min(state.done, state.total))
        info = amount(state)
    grid.add_row(Text("verifying", style="bold"), bar, info)
    return grid


class BackupDetail(VerticalScroll):
    """The highlighted backup in full; focus it (Enter or Tab) to scroll."""

    DEFAULT_CSS = """
    BackupDetail { padding: 0 1; }
    BackupDetail > #detail-job { height: auto; }
    BackupDetail > #detail-job.-idle { display: none; }
    BackupDetail > #detail-error { color: $error; height: auto; }
    BackupDetail > #detail-error.-idle { display: none; }
    BackupDetail > #detail-body { height: auto; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="detail-job", classes="-idle")
        yield Static(id="detail-error", classes="-idle")
        yield Static("no backup selected", id="detail-body")

    def show(
        self,
        manifest: Manifest | None,
        verify: VerifyRecord | None,
        job: JobState | None = None,
        error: str | None = None,
        empty: str = "no backup selected",
        copies: tuple[str, ...] | None = None,
    ) -> None:
        """Show ``manifest`` with its verify record, a running verify job, or a job error,
        and (not None) the remotes holding its copies."""
        colours = self.app.theme_variables
        ok, bad = colours.get("success", "green"), colours.get("error", "red")
        progress = self.query_one("#detail-job", Static)
        progress.set_class(job is None, "-idle")
        if job is not None:
            progress.update(describe_progress(job))
        problem = self.query_one("#detail-error", Static)
        problem.set_class(error is None, "-idle")
        problem.update(error or "")
        body = self.query_one("#detail-body", Static)
        if manifest is None:
            body.update(Text(empty, style="dim"))
        else:
            body.update(describe_backup(manifest, verify, ok=ok, bad=bad, copies=copies))
        self.border_title = manifest.id if manifest else "detail"

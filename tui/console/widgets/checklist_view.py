"""A checklist run as the console shows it: one row per item, the highlighted item's evidence
and what the operator can do with it, the status line, and what the run validates.

Pure functions of a :class:`~engine.checklist.session.ChecklistSession` (and the theme's
variables), so the screen only decides when to repaint.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from engine.checklist.model import Item, ManualItem
from engine.checklist.report import RESULT_WORDS
from engine.checklist.run import DONE, NOT_APPLICABLE, ItemState
from engine.checklist.session import ChecklistSession
from tui.format import age

MARKS = {
    "passed": ("✓", "success"),
    "ticked": ("✓", "success"),
    "failed": ("✗", "error"),
    "waived": ("~", "warning"),
    "running": ("…", "accent"),
    "pending": ("·", ""),
    NOT_APPLICABLE: ("-", ""),
}


def when(moment: str) -> str:
    """An item's or sign-off's ISO time as ``2026-11-21 15:00:02Z``."""
    try:
        parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return moment
    return f"{parsed:%Y-%m-%d %H:%M:%S}Z"


def about(session: ChecklistSession) -> Text:
    """The run, what it validates (the backup), and the restore that started it."""
    run, manifest = session.run, session.manifest
    parts = [f"run {run.id}"]
    if manifest is not None:
        label = f" ({manifest.label})" if manifest.label else ""
        parts.append(f"backup {manifest.id}{label}, {age(manifest.created_at)}")
    elif run.backup:
        parts.append(f"backup {run.backup} (no longer in the repository)")
    else:
        parts.append("no backup linked: counts are not compared with one")
    restore = run.restore or {}
    if restore:
        where = restore.get("target") or ", ".join(restore.get("hosts", []))
        onto = f" onto {where}" if where else ""
        parts.append(f"restored {', '.join(restore.get('sources', []))}{onto}")
    return Text(" · ".join(parts))


def word(session: ChecklistSession, state: ItemState) -> str:
    """The item's status in words (a manual item not done yet is "to tick")."""
    status = session.status_of(state)
    if status == "running":
        return "running…"
    if status == "pending" and state.kind == "manual":
        return "to tick"
    if status == NOT_APPLICABLE:
        return "not applicable"
    return RESULT_WORDS.get(status, status)


def row(session: ChecklistSession, state: ItemState, variables: Mapping[str, str]) -> Table:
    """The item's line in the list: its mark, its title, its status in words."""
    mark, variable = MARKS.get(session.status_of(state), ("?", ""))
    style = variables.get(variable, "dim") if variable else "dim"
    title = Text(state.title, style="dim" if state.status == NOT_APPLICABLE else "")
    if not state.required:
        title.append(" (optional)", style="dim")
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(no_wrap=True, width=1)
    grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    grid.add_column(no_wrap=True, justify="right")
    grid.add_row(Text(mark, style=f"bold {style}"), title, Text(word(session, state), style))
    return grid


def definition(session: ChecklistSession, item_id: str) -> Item | None:
    """The checklist's definition of an item (None: the file no longer has it)."""
    return next((i for i in session.loaded.checklist.items if i.id == item_id), None)


def evidence(session: ChecklistSession, state: ItemState) -> RenderableType:
    """Everything known about the item: result, instruction, detail, evidence, note, waiver,
    and what the operator can do with it."""
    item = definition(session, state.id)
    required = "required" if state.required else "optional"
    result = word(session, state)
    if state.at:
        result += f" at {when(state.at)}"
    if state.seconds is not None:
        result += f" in {state.seconds:g} s"
    lines: list[RenderableType] = [
        Text(state.title, style="bold"),
        Text(f"{state.kind} · {required} · {result}", style="dim"),
    ]
    if isinstance(item, ManualItem):
        lines.append(Text(item.instruction))
    if state.detail:
        lines.append(Text(state.detail))
    if state.evidence:
        lines.append(Text("evidence:", style="bold"))
        lines += [Text(f"  {line}") for line in state.evidence]
    if state.note:
        lines.append(Text(f"note: {state.note}"))
    if state.waiver:
        lines.append(Text(f"waived: {state.waiver}"))
    if hint := _hint(session, state, item):
        lines.append(Text(hint, style="italic dim"))
    return Group(*lines)


def _hint(session: ChecklistSession, state: ItemState, item: Item | None) -> str:
    """What the operator can do with the item, in keys."""
    if session.run.signoff is not None:
        return ""
    if state.status == NOT_APPLICABLE:
        return "not run: nothing to do for this run"
    if item is None:
        return f"not in the {session.run.checklist} checklist any more: w waives it"
    if state.id in session.checking:
        return "being checked…"
    status = session.status_of(state)
    waiver = " · w waives it with a reason" if status in ("failed", "pending") else ""
    if isinstance(item, ManualItem):
        note = "a note is required" if item.note == "required" else "the note is optional"
        verb = "changes the note" if status == "ticked" else "ticks it when done"
        return f"t {verb} ({note}){waiver}"
    again = "a runs it" if status == "pending" else "a runs it again"
    return f"{again} (A: every automatic item){waiver}"


def done_count(session: ChecklistSession) -> str:
    """``5/6 done`` of the items that apply, and how many do not."""
    items = session.run.items
    skipped = sum(1 for state in items if state.status == NOT_APPLICABLE)
    done = sum(1 for state in items if state.status in DONE)
    counted = f"{done}/{len(items) - skipped} done"
    return f"{counted}, {skipped} not applicable" if skipped else counted


def status(session: ChecklistSession, variables: Mapping[str, str]) -> Text:
    """The status line: signed off, or what is being checked and what is still open."""
    signed = session.run.signoff
    if signed is not None:
        return Text(
            f"Signed off by {signed.operator} on {signed.host} at {when(signed.at)}. "
            "e exports the report.",
            style=f"bold {variables.get('success', '')}",
        )
    parts = []
    if session.checking:
        parts.append(f"checking {len(session.checking)} automatic item(s)…")
    open_items = session.run.blocking()
    if open_items:
        names = ", ".join(item.id for item in open_items)
        parts.append(f"{len(open_items)} required item(s) open: {names}")
        style = variables.get("warning", "")
    else:
        parts.append("every required item is done: s signs the run off")
        style = variables.get("success", "")
    return Text("; ".join(parts), style=style)

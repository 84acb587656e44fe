"""A virtualised list of backups: paints only the rows on screen, whatever the repository holds.

Textual's DataTable builds every row up front (about 0.9 s for 10,000 rows, DESIGN.md), so a
large repository would freeze the console. This widget keeps one small immutable tuple per
backup and renders only the visible lines through the Line API; filtering is a substring scan
over precomputed lowercase text, a few milliseconds for 10,000 backups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.message import Message
from textual.strip import Strip

from engine.repo.repository import VerifyRecord
from tui import format as fmt
from tui.console.backup_index import BackupRow
from tui.console.widgets.row_cursor import RowCursor
from tui.format import age

WIDE = 112  # from this width the absolute time and the verify age fit beside the rest
AGE_REFRESH_SECONDS = 30
MAX_REMEMBERED = 64  # filter results kept, so Backspace costs nothing


def matching(rows: Sequence[BackupRow], query: str) -> list[BackupRow]:
    """Rows whose text holds every whitespace-separated term of ``query`` (any case)."""
    terms = query.lower().split()
    if not terms:
        return list(rows)
    if len(terms) == 1:
        term = terms[0]
        return [row for row in rows if term in row.haystack]
    return [row for row in rows if all(term in row.haystack for term in terms)]


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    width: int
    right: bool = False


def layout(width: int) -> list[Column]:
    """The columns for ``width`` cells: fixed ones first, label and scope share the rest."""
    wide = width >= WIDE
    created, verify = (29, 17) if wide else (12, 6)
    fixed = 21 + created + 9 + verify
    flexible = max(8, width - fixed - 5)  # five one-cell gaps between six columns
    label = max(4, flexible * 11 // 20)
    return [
        Column("id", "id", 21),
        Column("created", "created", created),
        Column("label", "label", label),
        Column("scope", "scope", max(4, flexible - label)),
        Column("size", "size", 9, right=True),
        Column("verify", "last verify" if wide else "verify", verify),
    ]


def fit(text: str, width: int, *, right: bool = False) -> str:
    """``text`` in exactly ``width`` cells: padded, or cut with an ellipsis."""
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…" if width > 1 else "…"[:width]
    padding = " " * (width - cell_len(text))
    return padding + text if right else text + padding


def verify_cell(record: VerifyRecord | None, *, wide: bool, now: datetime) -> tuple[str, str]:
    """The verify column's text and its style class (``ok``, ``failed`` or ``dim``)."""
    if record is None:
        return ("never" if wide else "-"), "dim"
    word, kind = ("OK", "ok") if record.ok else ("FAILED", "failed")
    if wide:
        try:
            when = age(datetime.fromisoformat(record.at), now)
        except ValueError:
            when = "?"
        return f"{word} {when}", kind
    return word, kind


class BackupList(RowCursor):
    """The backups, newest first, one line each, with a cursor; posts the highlighted id."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "backup-list--header",
        "backup-list--cursor",
        "backup-list--ok",
        "backup-list--failed",
        "backup-list--dim",
    }
    DEFAULT_CSS = """
    BackupList {
        overflow-x: hidden;
        background: $surface;
        & > .backup-list--header { text-style: bold; background: $panel; }
        & > .backup-list--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
        }
        &:focus > .backup-list--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .backup-list--ok { color: $success; }
        & > .backup-list--failed { color: $error; text-style: bold; }
        & > .backup-list--dim { color: $text-muted; }
    }
    """
    HEADER_LINES = 1

    class Highlighted(Message):
        """The backup under the cursor changed (None: the list shows nothing)."""

        def __init__(self, backup_list: BackupList, backup_id: str | None) -> None:
            super().__init__()
            self.backup_list = backup_list
            self.backup_id = backup_id

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, BackupList.Highlighted)  # only the latest matters

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._rows: list[BackupRow] = []  # every backup, newest first
        self._shown: list[BackupRow] = []  # those the filter lets through
        self._query = ""
        self._results: dict[str, list[BackupRow]] = {}  # query -> rows, for these rows
        self._posted: str | None = None
        self.verifications: Mapping[str, VerifyRecord] = {}
        self.empty_text = "loading backups…"

    def on_mount(self) -> None:
        self.set_interval(AGE_REFRESH_SECONDS, self.refresh)

    # -- data ----------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self._rows)

    @property
    def shown(self) -> int:
        return len(self._shown)

    def shown_ids(self) -> list[str]:
        """The ids the filter lets through, in order."""
        return [row.id for row in self._shown]

    @property
    def highlighted(self) -> str | None:
        return self._shown[self.cursor].id if self._shown else None

    def set_rows(self, rows: list[BackupRow]) -> None:
        """Show ``rows`` (newest first) through the current filter; the cursor stays put."""
        self._rows = rows
        self._results.clear()
        self._apply(keep=self.highlighted)

    def set_filter(self, query: str) -> None:
        if query != self._query:
            self._query = query
            self._apply(keep=self.highlighted)

    def _matching(self) -> list[BackupRow]:
        """Rows for the query: remembered (Backspace), or narrowed from the previous result
        when the query only grew (typing on), else scanned in full."""
        query = self._query
        if query in self._results:
            return self._results[query]
        grown_from = max(
            (q for q in self._results if q and query.startswith(q)), key=len, default=""
        )
        shown = matching(self._results[grown_from] if grown_from else self._rows, query)
        if len(self._results) >= MAX_REMEMBERED:
            self._results.clear()
        self._results[query] = shown
        return shown

    def set_verifications(self, verifications: Mapping[str, VerifyRecord]) -> None:
        self.verifications = verifications
        self.refresh()

    def select(self, backup_id: str) -> bool:
        """Move the cursor to ``backup_id`` if the list shows it."""
        for index, row in enumerate(self._shown):
            if row.id == backup_id:
                self.move_cursor(index)
                return True
        return False

    def _apply(self, keep: str | None) -> None:
        self._shown = self._matching()
        self.set_row_count(len(self._shown))
        index = next((i for i, row in enumerate(self._shown) if row.id == keep), None)
        self.move_cursor(index if index is not None else self.cursor)

    def cursor_moved(self) -> None:
        if self.highlighted != self._posted:
            self._posted = self.highlighted
            self.post_message(self.Highlighted(self, self._posted))

    # -- painting ------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        columns = layout(width)
        if y == 0:
            header = self.get_component_rich_style("backup-list--header")
            text = " ".join(fit(c.title, c.width, right=c.right) for c in columns)
            return Strip([Segment(fit(text, width), base + header)], width)
        index = self.row_at(y)
        if index >= len(self._shown):
            if index == 0:
                dim = self.get_component_rich_style("backup-list--dim")
                return Strip([Segment(fit(" " + self.empty_text, width), base + dim)], width)
            return Strip.blank(width, base)
        return self._row_strip(self._shown[index], index == self.cursor, columns, width)

    def _row_strip(
        self, row: BackupRow, is_cursor: bool, columns: list[Column], width: int
    ) -> Strip:
        now = fmt.current_time()
        wide = width >= WIDE
        style = self.rich_style
        if is_cursor:
            style += self.get_component_rich_style("backup-list--cursor")
        verify, verify_kind = verify_cell(self.verifications.get(row.id), wide=wide, now=now)
        created = f"{row.created_at:%Y-%m-%d %H:%M}Z {age(row.created_at, now)}" if wide else None
        cells: dict[str, tuple[str, str | None]] = {
            "id": (row.id, None),
            "created": (created or age(row.created_at, now), None),
            "label": (row.label or "-", None if row.label else "dim"),
            "scope": (",".join(row.scope), None),
            "size": (row.size, None),
            "verify": (verify, verify_kind),
        }
        segments: list[Segment] = []
        for number, column in enumerate(columns):
            text, kind = cells[column.key]
            cell_style = style
            if kind is not None and not (is_cursor and kind == "dim"):
                cell_style = style + self._kind_style(kind, is_cursor)
            if number:
                segments.append(Segment(" ", style))
            segments.append(Segment(fit(text, column.width, right=column.right), cell_style))
        used = sum(c.width for c in columns) + len(columns) - 1
        if used < width:
            segments.append(Segment(" " * (width - used), style))
        return Strip(segments).crop(0, width)

    def _kind_style(self, kind: str, is_cursor: bool) -> Style:
        style = self.get_component_rich_style(f"backup-list--{kind}")
        if is_cursor:  # keep the cursor's background, take only the emphasis
            return Style(bold=style.bold, color=None)
        return style

"""Every key that works on a screen, read from the bindings themselves (so the `?` help
cannot drift from what the keys do).

The rows come, in this order, from: the screen's own bindings, those of the console's widgets
on it (the browser's list, the wizard's backup picker), the App's (d, l, D, ?, q), and then
Textual's own (the palette, Ctrl+Q, Ctrl+C, Tab, and the focused widget's moves). Keys bound
to the same action are one row: ``up k``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.binding import Binding
from textual.widget import Widget

if TYPE_CHECKING:
    from textual.app import App
    from textual.dom import DOMNode
    from textual.screen import Screen

# What Textual's own bindings do in this console, said for its operator.
TEXTUAL_ACTIONS = {
    "command_palette": "Every action by name (the palette)",
    "app.command_palette": "Every action by name (the palette)",
    "quit": "Quit (asks first while jobs run)",
    "screen.copy_text": "Copy the selected text (none: says q quits)",
    "help_quit": "Says q quits (Ctrl+C stops nothing in the console)",
    "app.focus_next": "Next pane",
    "app.focus_previous": "Previous pane",
}
MOVES = "Move or scroll (^: also with Ctrl)"
MOVE_ACTIONS = ("scroll_", "page_", "cursor_", "first", "last", "home", "end")


@dataclass
class KeyRow:
    keys: list[str]  # as shown: "?", "^p", "up"
    does: str
    bound: list[str]  # the binding keys: "question_mark", "ctrl+p", "up"


def ours(node: DOMNode) -> list[Binding]:
    """The bindings the console's own classes declare on ``node`` (not Textual's)."""
    declared: list[Binding] = []
    for cls in type(node).__mro__:
        if cls.__module__.startswith("tui.") and "BINDINGS" in vars(cls):
            declared.extend(Binding.make_bindings(vars(cls)["BINDINGS"]))
    return declared


def shown_widgets(screen: Screen[Any]) -> list[Widget]:
    """The widgets on ``screen`` that are displayed (a wizard's later steps are not yet)."""
    return [
        widget
        for widget in screen.query("*")
        if all(node.display for node in widget.ancestors_with_self if isinstance(node, Widget))
    ]


def key_rows(app: App[Any], screen: Screen[Any]) -> list[KeyRow]:
    """The keys that work on ``screen``, the console's first, each action once."""
    ranked: list[tuple[int, DOMNode, Binding]] = []
    own_widgets = [
        widget for widget in shown_widgets(screen) if widget.__module__.startswith("tui.")
    ]
    for node in [screen, *own_widgets, app]:
        rank = 0 if node is screen else 2 if node is app else 1
        ranked.extend((rank, node, binding) for binding in ours(node))
    for active in screen.active_bindings.values():  # what works now, Textual's included
        ranked.append((3, active.node, active.binding))
    rows: dict[tuple[int, str, str], KeyRow] = {}
    seen: set[str] = set()
    for rank, node, binding in sorted(ranked, key=lambda entry: entry[0]):
        if binding.key in seen or not _enabled(app, node, binding):
            continue
        does = binding.tooltip or binding.description
        if rank == 3 or not does:
            does = MOVES if _moves(binding.action) else TEXTUAL_ACTIONS.get(binding.action, does)
        if not does:
            continue
        seen.add(binding.key)
        action = "move" if does == MOVES else binding.action
        row = rows.setdefault((rank, action, does), KeyRow([], does, []))
        shown = app.get_key_display(binding)
        if shown not in row.keys:
            row.keys.append(shown)
        row.bound.append(binding.key)
    return list(rows.values())


def shown_keys(row: KeyRow) -> str:
    """The row's keys for the help's narrow column: a row of moves reads
    ``↑↓←→ home end pgup pgdn ^``, with ``^`` for "also with Ctrl"."""
    if row.does != MOVES:
        return " ".join(row.keys)
    arrows = "".join(key for key in row.keys if key in "↑↓←→")
    plain = [key for key in row.keys if key not in "↑↓←→" and not key.startswith("^")]
    ctrl = " ^" if any(key.startswith("^") for key in row.keys) else ""
    return " ".join([arrows, *plain]).strip() + ctrl


def _enabled(app: App[Any], node: DOMNode, binding: Binding) -> bool:
    """False for a key its screen hides (``d`` on the dashboard itself)."""
    return app._check_action_state(binding.action, node) is not False  # noqa: SLF001


def _moves(action: str) -> bool:
    return action.rpartition(".")[2].startswith(MOVE_ACTIONS)

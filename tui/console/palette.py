"""Every console action by name in the command palette (Ctrl+P)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

from themes import THEMES

if TYPE_CHECKING:
    from tui.console.app import LifeboatApp


MAX_BACKUP_HITS = 20


def _open_backup(app: LifeboatApp, backup_id: str | None) -> None:
    """The backups browser on ``backup_id`` (None: asks for it), leaving a wizard first. The
    screens load here, not with the palette: the dashboard paints before the engine's jobs."""
    from tui.console.screens.backups import open_backup
    from tui.console.screens.wizard import leave_wizard

    leave_wizard(app, partial(open_backup, app, backup_id))


class LifeboatCommands(Provider):
    _backup_ids: tuple[str, ...] | list[str] = ()

    @property
    def lifeboat(self) -> LifeboatApp:
        """The app whose actions the palette lists (this provider is the app's own)."""
        from tui.console.app import LifeboatApp  # the app imports this module

        assert isinstance(self.app, LifeboatApp)
        return self.app

    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app = self.lifeboat
        commands: list[tuple[str, Callable[[], object], str]] = [
            ("Back up now (all sources)", app.start_backup, "start a backup of every source"),
            ("Go to dashboard", partial(app.go_to, "dashboard"), "tiers, jobs, log"),
            ("Go to backups", partial(app.go_to, "backups"), "verify, restore, delete"),
            ("Go to drills", partial(app.go_to, "drills"), "tested recoveries, run a drill"),
            (
                "Restore (guided wizard)",
                app.action_restore_wizard,
                "what happened -> plan -> checks -> confirm -> restore",
            ),
            (
                "Open backup by id …",
                partial(_open_backup, app, None),
                "type part of its id",
            ),
            ("Show keys", app.action_help, "every key binding"),
        ]
        latest = list(itertools.islice(app.repository.iter_backups(), 1))
        newest = latest[0].id if latest else None
        commands.append(
            (
                "Validation checklist",
                partial(app.action_checklist, newest),
                f"run or resume one on backup {newest}" if newest else "run or resume one",
            )
        )
        if latest:
            commands.append(
                (
                    "Verify latest backup",
                    partial(app.start_verify, latest[0].id),
                    f"check sizes, sha256 and structure of {latest[0].id}",
                )
            )
        commands += [
            (f"Switch theme: {name}", partial(setattr, app, "theme", name), "remembered")
            for name in sorted(theme.name for theme in THEMES)
        ]
        return commands

    async def startup(self) -> None:
        self._backup_ids = self.lifeboat.repository.backup_ids()

    def _backup_hits(self, query: str) -> list[Hit]:
        """One hit per backup whose id holds the query (after an optional "open backup")."""
        needle = query.lower().replace("open backup", "").replace("by id", "").strip(" …")
        if not needle:
            return []
        matcher = self.matcher(needle)
        ids = [i for i in self._backup_ids if needle in i.lower()][:MAX_BACKUP_HITS]
        return [
            Hit(
                max(matcher.match(i), 0.5),
                Content("Open backup ") + matcher.highlight(i),
                partial(_open_backup, self.lifeboat, i),
                help="show it in the backups browser",
            )
            for i in ids
        ]

    async def discover(self) -> Hits:
        for name, action, help_text in self._commands():
            yield DiscoveryHit(name, action, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, action, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), action, help=help_text)
        for hit in self._backup_hits(query):
            yield hit

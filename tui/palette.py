"""Every console action by name in the command palette (Ctrl+P)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from tui.app import LifeboatApp


class LifeboatCommands(Provider):
    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app: LifeboatApp = self.app  # type: ignore[assignment]
        commands: list[tuple[str, Callable[[], object], str]] = [
            ("Back up now (all sources)", app.start_backup, "start a backup of every source"),
            ("Go to dashboard", partial(app.switch_mode, "dashboard"), "tiers, jobs, log"),
            ("Show keys", app.action_help, "every key binding"),
        ]
        latest = app.repository.list_backups()[0][:1]
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
            for name in sorted(app.available_themes)
        ]
        return commands

    async def discover(self) -> Hits:
        for name, action, help_text in self._commands():
            yield DiscoveryHit(name, action, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, action, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), action, help=help_text)

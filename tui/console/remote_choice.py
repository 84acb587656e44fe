"""Choosing a remote, and a copy on it to fetch: the dialogs the browser (``o``, ``f``) and the
wizard's backup step (``f``) share. Listing a remote is an engine call in a worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import App

from engine.errors import LifeboatError
from tui.console.screens.modals import ChoiceModal
from tui.console.services import services


def with_remote(app: App[Any], question: str, then: Callable[[str], object]) -> None:
    """``then`` the remote the operator names: the only one, or one chosen in a dialog."""
    lifeboat = services(app)
    remotes = list(lifeboat.config.remotes)
    if not remotes:
        lifeboat.notify_problem(
            "no [remotes] are configured: add one (README, Off-host copies) to keep copies of "
            "the backups off this machine",
            cause="remotes",
            timeout=15,
        )
        return
    lifeboat.fixed("remotes")
    if len(remotes) == 1:
        then(remotes[0])
        return

    def chosen(remote: str | None) -> None:
        if remote:
            then(remote)

    app.push_screen(ChoiceModal(question, remotes), chosen)


def offer_fetch(app: App[Any], started: Callable[[str], object] = lambda _id: None) -> None:
    """Fetch a copy the repository lacks: a remote, then one of its copies, chosen; the fetch
    runs as a job and ``started`` hears which backup it brings."""

    def listed(remote: str) -> None:
        app.run_worker(
            _choose_copy(app, remote, started),
            group="remote-listing",
            exclusive=True,
            exit_on_error=False,
        )

    with_remote(app, "Fetch a backup from:", listed)


async def _choose_copy(app: App[Any], remote: str, started: Callable[[str], object]) -> None:
    from engine.offsite.listing import listing_of

    lifeboat = services(app)
    app.notify(f"listing the copies on {remote}…")
    try:
        listing = await listing_of(lifeboat.config, remote)
    except LifeboatError as exc:
        lifeboat.notify_problem(str(exc), cause="remotes", timeout=20)
        return
    here = set(lifeboat.backups.order)
    missing = [m.id for m in listing.manifests if m.id not in here]
    if not missing:
        app.notify(f"the repository holds every copy {remote} has")
        return

    def chosen(backup_id: str | None) -> None:
        if backup_id:
            lifeboat.start_fetch(backup_id, remote)
            started(backup_id)
            app.notify(f"fetching {backup_id} from {remote}; it is listed once it is here")

    app.push_screen(ChoiceModal(f"Fetch which backup from {remote}?", missing), chosen)

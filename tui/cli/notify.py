"""``lifeboat notify test``: send a test notice to every ``[notify]`` channel and say, per URL,
whether it was delivered (a URL is named by its channel, place and service, never in full)."""

from __future__ import annotations

import sys

import click

from engine.config.notify import EVENTS
from engine.errors import UsageError
from engine.notify import Notice, channels_for, deliver_now
from tui.cli.common import CliState, pass_state

EXIT_UNDELIVERED = 1


@click.group()
def notify() -> None:
    """Alerts to the [notify] channels (apprise URLs)."""


@notify.command("test")
@click.option(
    "--event",
    type=click.Choice(EVENTS),
    help="Send as this event: only the channels that want it get it (default: every channel).",
)
@pass_state
def notify_test(state: CliState, event: str | None) -> None:
    """Send a test notice; exits 1 when one is not delivered."""
    config = state.config()
    if not config.notify:
        raise UsageError(
            "no [notify] channel is configured; add one, e.g. [notify.oncall] urls = "
            '["json://hooks.example.com/lifeboat"] (see README, Alerts and metrics)'
        )
    try:
        wanted = channels_for(config, event)
    except (OSError, ValueError) as exc:  # a urls_file gone or changed since the config loaded
        raise UsageError(f"notify: cannot read the channels' URLs: {exc}") from None
    if not wanted:
        raise UsageError(f"no channel wants {event}; add it to a channel's events")
    sent_as = event or "test"
    notice = Notice(
        sent_as,
        f"Lifeboat test notice ({sent_as})",
        f"sent by {config.operator} with `lifeboat notify test`; nothing is wrong",
        failure=False,
    )
    problems = deliver_now(config, notice, wanted)
    for problem in problems:
        click.echo(problem, err=True)
    count = sum(len(urls) for urls in wanted.values())
    click.echo(f"{count - len(problems)} of {count} URL(s) delivered ({', '.join(wanted)})")
    if problems:
        sys.exit(EXIT_UNDELIVERED)

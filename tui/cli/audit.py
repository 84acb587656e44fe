"""``lifeboat audit verify|show``: the repository's hash-chained audit log."""

from __future__ import annotations

import json

import click

from engine.durations import parse_duration
from engine.errors import LifeboatError, UsageError
from engine.repo import audit as audit_log
from engine.repo.manifest import utc_now
from engine.scaleout.anchors import anchors_of
from tui.cli.common import CliState, pass_state, print_json

SHOWN_FIRST = ("ts", "operator", "action")
NOT_SHOWN = ("prev", "host")


class AuditTamperedError(LifeboatError):
    """The chain is broken: exit 1."""


@click.group()
def audit() -> None:
    """Check and read the audit log (restores, deletes, prunes, sign-offs, drills)."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_state
def audit_verify(state: CliState, as_json: bool) -> None:
    """Check the hash chain, audit.head and the anchored heads (etcd, the catalog); exit 1
    naming the first bad line on any edit, deletion, reordering or truncation, or a rewrite
    an anchor disagrees with."""
    repo = state.repository(create=False)
    anchors = anchors_of(state.config())
    verdict = audit_log.verify(repo.path, anchors)
    if as_json:
        print_json(
            {
                "ok": verdict.ok,
                "lines": verdict.lines,
                "bad_line": verdict.bad_line,
                "problem": verdict.problem or None,
                "note": verdict.note or None,
                "anchors": [anchor.name for anchor in anchors],
            }
        )
    path = repo.path / audit_log.AUDIT_FILE
    if not verdict.ok:
        where = f"line {verdict.bad_line}: " if verdict.bad_line is not None else ""
        raise AuditTamperedError(
            f"{path}: {where}{verdict.problem}; keep a copy of the file as evidence and "
            "compare it with a backup of the repository"
        )
    if not as_json:
        note = f" ({verdict.note})" if verdict.note else ""
        click.echo(f"{path}: OK, {verdict.lines} line(s), the chain is intact{note}")


@audit.command("show")
@click.option("--since", metavar="DURATION", help="Only the last DURATION, e.g. 24h or 7d.")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per line.")
@pass_state
def audit_show(state: CliState, since: str | None, as_json: bool) -> None:
    """Print the audit log, oldest first."""
    try:
        start = utc_now() - parse_duration(since) if since else None
    except ValueError as exc:
        raise UsageError(f"--since {since!r}: {exc}") from None
    repo = state.repository(create=False)
    for entry in audit_log.entries(repo.path, start):
        if as_json:
            click.echo(json.dumps(entry, sort_keys=True))
            continue
        details = " ".join(
            f"{key}={json.dumps(value) if not isinstance(value, str) else value}"
            for key, value in entry.items()
            if key not in SHOWN_FIRST + NOT_SHOWN and value not in (None, [], "")
        )
        click.echo(f"{entry.get('ts', '?')}  {entry.get('operator', '?'):<10} "
                   f"{entry.get('action', '?'):<22} {details}")  # fmt: skip

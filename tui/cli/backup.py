"""``lifeboat backup ...``: create, list, show, verify, prune and delete backups."""

from __future__ import annotations

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engine.errors import BackupNotFoundError, ManifestError, UsageError
from engine.events import Emit
from engine.jobs import BackupRequest, run_backup, run_verify
from engine.offsite.connect import connected
from engine.offsite.listing import listing_of
from engine.offsite.prune import prune_remote
from engine.offsite.verify import RemoteVerifyResult, last_full_read, last_reads, verify_remote
from engine.repo import leftovers
from engine.repo.manifest import Manifest
from engine.repo.retention import Decision, PrunePlan, delete_backup, prune
from engine.repo.verify import VerifyResult
from tui.cli.common import (
    CliState,
    identity_option,
    keyring_for,
    pass_state,
    print_json,
    require_confirmation,
    run_async,
)
from tui.cli.complete import backup_ids, source_names
from tui.cli.progress import make_renderer
from tui.format import age, human_size

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


class Percent(click.ParamType):  # type: ignore[type-arg]
    """A share such as ``10%`` or ``0.1``, above 0 and at most 100%."""

    name = "percent"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        text = str(value).strip()
        try:
            share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            self.fail(f"{text!r} is not a share like 10% or 0.1", param, ctx)
        if not 0 < share <= 1:
            self.fail(f"{text!r} is not above 0% and at most 100%", param, ctx)
        return share


SAMPLE = Percent()


@click.group()
def backup() -> None:
    """Create, inspect, verify and remove backups."""


@backup.command("create")
@click.option(
    "--scope",
    multiple=True,
    metavar="SOURCE",
    help="Back up only these sources.",
    shell_complete=source_names,
)
@click.option("--label", help="A label to find this backup by, e.g. pre-v1.4-upgrade.")
@json_option
@pass_state
def backup_create(
    state: CliState, scope: tuple[str, ...], label: str | None, as_json: bool
) -> None:
    """Back up the configured sources (all, or --scope) into the repository."""
    config = state.config()
    repo = state.repository()
    with make_renderer(as_json) as renderer:
        manifest = run_async(
            run_backup(config, repo, BackupRequest(scope=scope, label=label), renderer.emit)
        )
    if as_json:
        print_json(manifest.to_data())
    else:
        click.echo(
            f"backup {manifest.id} complete: {len(manifest.artifacts)} artifact(s), "
            f"{human_size(manifest.size)}"
        )


@backup.command("list")
@click.option("--remote", metavar="NAME", help="List the copies a [remotes.NAME] holds instead.")
@json_option
@pass_state
def backup_list(state: CliState, remote: str | None, as_json: bool) -> None:
    """List backups, newest first; damaged ones are named on stderr, with the reason."""
    if remote is not None:
        listing = run_async(listing_of(state.config(), remote))
        reads = last_reads(state.repository(), remote)
        read_back = {m.id: last_full_read(m, reads) for m in listing.manifests}
        if as_json:
            for problem in listing.problems:
                click.echo(f"lifeboat: warning: {problem}", err=True)
            print_json(
                [m.to_data() | {"last_full_read": read_back[m.id]}
                 for m in listing.manifests]
            )  # fmt: skip
            return
        _print_list(listing.manifests, listing.problems, as_json, f"{remote} holds no copy yet")
        for backup_id, at in read_back.items():
            said = f"read back whole {at}" if at else "never read back whole"
            click.echo(f"{backup_id}  {said}")
        return
    repo = state.repository()
    manifests, errors = repo.list_backups()
    problems = [str(error) for error in errors]
    if dead := leftovers.find(repo):
        problems.append(leftovers.describe(dead))
    _print_list(
        manifests, problems, as_json, "no backups yet; make one with `lifeboat backup create`"
    )


def _print_list(manifests: list[Manifest], problems: list[str], as_json: bool, empty: str) -> None:
    for problem in problems:
        click.echo(f"lifeboat: warning: {problem}", err=True)
    if as_json:
        print_json([m.to_data() for m in manifests])
        return
    if not manifests:
        click.echo(empty)
        return
    console = Console()
    console.print(list_table(manifests, console.width))


LABEL_SCOPE_ROOM = 20  # label and scope shrink to this together before `created` takes 2 lines


def list_table(manifests: list[Manifest], width: int) -> Table:
    """The backups as a table for ``width`` columns: ids whole (they are what an operator
    copies), size and `created`; label and scope shrink first, and only then does `created`
    take two lines (the time, then the age)."""
    rows = [
        (
            m.id,
            f"{m.created_at:%Y-%m-%d %H:%M}Z",
            f"({age(m.created_at)})",
            m.label or "",
            ",".join(m.scope),
            human_size(m.size),
        )
        for m in manifests
    ]

    def widest(column: int, header: str) -> int:
        return max(len(header), *(len(row[column]) for row in rows))

    created = max(len(f"{row[1]} {row[2]}") for row in rows)
    room = width - 2 * 4 - widest(0, "id") - created - widest(5, "size")  # label and scope's
    one_line = room >= min(widest(3, "label") + widest(4, "scope"), LABEL_SCOPE_ROOM)
    table = Table(box=None, pad_edge=False)
    table.add_column("id", no_wrap=True, min_width=widest(0, "id"))
    table.add_column("created", no_wrap=True)
    table.add_column("label")
    table.add_column("scope")
    table.add_column("size", justify="right", no_wrap=True)
    for backup_id, at, ago, label, scope, size in rows:
        when = f"{at} {ago}" if one_line else f"{at}\n{ago}"
        # the manifest's text, never markup
        table.add_row(backup_id, when, escape(label), escape(scope), size)
    return table


@backup.command("show")
@click.argument("backup_id", metavar="ID", shell_complete=backup_ids)
@json_option
@pass_state
def backup_show(state: CliState, backup_id: str, as_json: bool) -> None:
    """Show one backup's manifest."""
    repo = state.repository()
    manifest = repo.load(repo.resolve(backup_id))
    if as_json:
        print_json(manifest.to_data())
        return
    click.echo(describe(manifest))


def describe(m: Manifest) -> str:
    lines = [
        f"backup    {m.id}",
        f"label     {m.label or '-'}",
        f"created   {m.created_at:%Y-%m-%d %H:%M:%S}Z, finished {m.finished_at:%H:%M:%S}Z",
        f"trigger   {m.trigger} by {m.operator} (lifeboat {m.tool_version})",
        f"size      {human_size(m.size)}",
    ]
    if m.encryption is None:
        lines.append("stored    in plaintext (not encrypted)")
    else:
        lines.append(f"encrypted {m.encryption.format}; opened by the identity of any of:")
        lines += [f"            {recipient}" for recipient in m.encryption.recipients]
    for artifact in m.artifacts:
        lines.append(f"artifact  {artifact.source} ({artifact.kind}) from {artifact.host}")
        for f in artifact.files:
            lines.append(f"            {f.path}  {human_size(f.bytes)}  sha256 {f.sha256[:16]}…")
        for key, value in artifact.meta.items():
            lines += _meta_lines(key, value, " " * 12)
    return "\n".join(lines)


def _meta_lines(key: str, value: object, indent: str) -> list[str]:
    """A meta entry, a nested mapping one line per key (a table's rows, a namespace's
    counts), indented under its name."""
    if not isinstance(value, dict) or not value:
        return [f"{indent}{key}: {value}"]
    lines = [f"{indent}{key}:"]
    for inner, item in value.items():
        lines += _meta_lines(str(inner), item, indent + "  ")
    return lines


@backup.command("verify")
@click.argument("backup_id", metavar="ID", required=False, shell_complete=backup_ids)
@click.option("--all", "verify_all", is_flag=True, help="Verify every backup.")
@identity_option
@click.option("--remote", metavar="NAME", help="Read back the copies a [remotes.NAME] holds.")
@click.option(
    "--sample",
    metavar="PERCENT",
    type=SAMPLE,
    help="With --remote: read back this share of the bytes, least recently read first.",
)
@json_option
@pass_state
def backup_verify(
    state: CliState,
    backup_id: str | None,
    verify_all: bool,
    identity: str | None,
    remote: str | None,
    sample: float | None,
    as_json: bool,
) -> int:
    """Check sizes, sha256 and structure of a backup's files (exit 1 if anything is wrong).

    An encrypted backup's files are decrypted and checked through with an identity
    (--identity or $LIFEBOAT_AGE_IDENTITY); without one, only what is stored is checked.
    With --remote, the copies there are read back and checked against their manifests."""
    if verify_all == (backup_id is not None):
        raise UsageError("give either a backup ID or --all")
    if sample is not None and remote is None:
        raise UsageError("--sample goes with --remote")
    if remote is not None:
        return _verify_remote(
            state, remote, None if verify_all else [backup_id or ""], sample, as_json
        )
    keyring = keyring_for(identity)
    repo = state.repository()
    ids = repo.backup_ids() if verify_all else [repo.resolve(backup_id or "")]
    results: list[VerifyResult] = []
    with make_renderer(as_json) as renderer:
        emit: Emit = renderer.emit
        for one in ids:
            try:
                verifying = run_verify(repo, one, emit, config=state.config(), keyring=keyring)
                results.append(run_async(verifying))
            except BackupNotFoundError:
                if not verify_all:
                    raise
                # deleted or pruned since the listing, on purpose: not damage
                click.echo(f"lifeboat: note: {one} was deleted meanwhile; skipped", err=True)
    if as_json:
        print_json(
            [
                {
                    "id": r.backup_id,
                    "ok": r.ok,
                    "files": r.files_checked,
                    "bytes": r.bytes_checked,
                    "encrypted_checked_as_stored": r.sealed,
                    "problems": [p.__dict__ for p in r.problems],
                }
                for r in results
            ]
        )
    else:
        for r in results:
            verdict = "OK" if r.ok else "FAILED"
            click.echo(f"{r.backup_id}: {verdict} ({r.files_checked} file(s))")
            for problem in r.problems:
                click.echo(f"  {problem}")
            if r.sealed:
                click.echo(
                    f"  {r.sealed} encrypted file(s) checked as stored (size, sha256); give "
                    "--identity to decrypt and check their content too"
                )
    return 0 if all(r.ok for r in results) else 1


def _verify_remote(
    state: CliState, remote: str, ids: list[str] | None, sample: float | None, as_json: bool
) -> int:
    repo = state.repository()

    async def verifying(emit: Emit) -> RemoteVerifyResult:
        async with connected(state.config(), remote) as connection:
            return await verify_remote(repo, connection, emit, ids, sample)

    with make_renderer(as_json) as renderer:
        result = run_async(verifying(renderer.emit))
    if as_json:
        print_json(result.__dict__ | {"ok": result.ok})
    else:
        verdict = "OK" if result.ok else "FAILED"
        click.echo(
            f"{remote}: {verdict}: read back {result.files_read} file(s), "
            f"{human_size(result.bytes_read)}, of {result.backups} copie(s)"
            + (f"; {result.files_left} file(s) left for later runs" if result.files_left else "")
        )
        for problem in result.problems:
            click.echo(f"  {problem}")
    return 0 if result.ok else 1


@backup.command("prune")
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    metavar="N",
    help="Keep the N newest of each group instead of the configured rules.",
)
@click.option("--dry-run", is_flag=True, help="Only show what would be removed.")
@click.option(
    "--remote", metavar="NAME", help="Prune the copies on [remotes.NAME] by its own policy."
)
@json_option
@pass_state
def backup_prune(
    state: CliState, keep: int | None, dry_run: bool, remote: str | None, as_json: bool
) -> None:
    """Remove the backups no retention rule keeps (never anything that is not a backup).

    With --remote, the copies there, by [remotes.NAME.retention]; the last copy of a backup
    anywhere is kept unless the remote's prune_last_copy says otherwise."""
    config = state.config()
    repo = state.repository()
    if remote is not None:
        if keep is not None:
            raise UsageError("--keep goes with a local prune; a remote follows its own policy")
        plan = run_async(prune_remote(config, repo, remote, dry_run=dry_run))
    else:
        plan = prune(config, repo, config.operator, dry_run=dry_run, keep_last=keep)
    if as_json:
        print_json(prune_json(plan, dry_run))
        return
    label_width = max((len(d.manifest.label or "-") for d in plan.decisions), default=1)
    for decision in plan.decisions:
        click.echo(prune_line(decision, label_width))
    for leftover in plan.leftovers:
        click.echo(leftover.removed())
    kept, removed = len(plan.keep), len(plan.remove)
    click.echo(
        f"{kept} kept, would remove {removed}" if dry_run else f"{kept} kept, {removed} removed"
    )


def prune_line(decision: Decision, label_width: int) -> str:
    """``remove 20261121T150000Z-7f3a   3d nightly  no rule of schedule nightly keeps it``
    (the age in its largest unit: the id already says when)."""
    m = decision.manifest
    action = "keep" if decision.keep else "remove"
    label = (m.label or "-").ljust(label_width)
    short_age = age(m.created_at).split()[0]
    return f"{action:<6} {m.id} {short_age:>4} {label}  {', '.join(decision.reasons)}"


def prune_json(plan: PrunePlan, dry_run: bool) -> dict[str, object]:
    """The plan for scripts: the ids kept and removed, and every decision with its reasons."""
    return {
        "dry_run": dry_run,
        "keep": [m.id for m in plan.keep],
        "remove": [m.id for m in plan.remove],
        "leftovers_removed": [leftover.name for leftover in plan.leftovers],
        "decisions": [
            {
                "id": d.manifest.id,
                "label": d.manifest.label,
                "created_at": d.manifest.created_at.isoformat(),
                "trigger": d.manifest.trigger,
                "keep": d.keep,
                "reasons": list(d.reasons),
            }
            for d in plan.decisions
        ],
    }


@backup.command("delete")
@click.argument("backup_id", metavar="ID", shell_complete=backup_ids)
@click.option("--confirm", metavar="ID", help="Type the backup's full id to confirm.")
@pass_state
def backup_delete(state: CliState, backup_id: str, confirm: str | None) -> None:
    """Delete one backup, damaged or not (confirm by typing its id)."""
    config = state.config()
    repo = state.repository()
    backup_id = repo.resolve(backup_id)  # the full id from here on: confirmed in full
    damaged = ""
    try:
        repo.load(backup_id)
    except ManifestError as damage:
        click.echo(f"lifeboat: warning: {damage}", err=True)
        damaged = "damaged "
    require_confirmation(confirm, backup_id, f"deleting {damaged}backup {backup_id}")
    delete_backup(repo, backup_id, config.operator)
    click.echo(f"deleted {damaged}backup {backup_id}" if damaged else f"deleted {backup_id}")

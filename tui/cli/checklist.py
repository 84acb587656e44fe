"""``lifeboat checklist``: run a validation checklist, tick, waive, sign off, export.

``checklist run NAME`` runs the automatic items concurrently and prints the table; on a
terminal it then asks for each manual item, offers waivers for what failed, and asks for the
sign-off. ``--non-interactive`` stops after the table (exit 1 when a required automatic item
failed). ``--restored SOURCE`` says the run validates a restore of those sources: items bound
to other sources are not applicable (not run, never blocking), as after a restore in the
console. Every run is kept in the repository under ``checklists/``.
"""

from __future__ import annotations

import sys
import textwrap

import click

from engine.checklist.model import ManualItem, checklists_for
from engine.checklist.report import RESULT_WORDS, to_json, to_markdown
from engine.checklist.run import ChecklistRun, ItemState, load_run, run_ids
from engine.checklist.session import ChecklistSession
from engine.errors import LifeboatError, UsageError
from tui.cli.common import CliState, pass_state, print_json, run_async, warn
from tui.cli.complete import checklist_runs


class ChecklistFailedError(LifeboatError):
    """A required automatic item failed: exit 1."""


@click.group()
def checklist() -> None:
    """Validate a restore (or a backup) with a checklist and sign it off."""


@checklist.command("run")
@click.argument("name")
@click.option("--backup", "backup_id", metavar="ID", help="The backup this run validates.")
@click.option(
    "--restored",
    "restored",
    metavar="SOURCE",
    multiple=True,
    help="A source the validated restore restored (repeatable); items bound to other "
    "sources are not applicable.",
)
@click.option("--non-interactive", is_flag=True, help="Run the automatic items only; no prompts.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@pass_state
def checklist_run(
    state: CliState,
    name: str,
    backup_id: str | None,
    restored: tuple[str, ...],
    non_interactive: bool,
    as_json: bool,
) -> None:
    """Run checklist NAME: automatic items at once, then (on a terminal) the manual ones."""
    config = state.config()
    available = checklists_for(config)
    if name not in available:
        raise UsageError(f"no checklist {name!r}; checklists: {', '.join(sorted(available))}")
    unknown = [source for source in restored if source not in config.sources]
    if unknown:
        raise UsageError(
            f"--restored: no source {', '.join(map(repr, unknown))}; "
            f"sources: {', '.join(sorted(config.sources))}"
        )
    repo = state.repository()
    manifest = repo.load(repo.resolve(backup_id)) if backup_id else None
    restore = {"sources": list(dict.fromkeys(restored))} if restored else None
    session = ChecklistSession.start(config, repo, available[name], manifest, restore, warn=warn)

    def changed(item: ItemState) -> None:
        if item.status != "running" and not as_json:
            click.echo(f"{RESULT_WORDS[item.status]:<7} {item.id}: {item.detail}", err=True)

    run_async(session.check(changed=changed))
    if not (non_interactive or as_json) and sys.stdin.isatty():
        _ask(session)
    run = session.run
    if as_json:
        print_json(run.to_dict())
    else:
        click.echo(items_table(run))
        click.echo(f"run {run.id} saved; export: lifeboat checklist export {run.id} --format md")
    failed = [i.id for i in run.items if i.required and i.status == "failed"]
    if failed:
        raise ChecklistFailedError(f"required item(s) failed: {', '.join(failed)}")


def _ask(session: ChecklistSession) -> None:
    """On a terminal: each manual item, a waiver for each required item still open, and the
    sign-off; each answer is saved as it is given."""
    for item in session.loaded.checklist.items:
        if isinstance(item, ManualItem):
            click.echo(f"\n{item.title}\n  {item.instruction}")
            if click.confirm("  done?", default=False):
                if item.note == "required":
                    note = _given("  note (required)")
                else:
                    note = click.prompt("  note (optional)", default="", show_default=False)
                session.tick(item.id, note)
    for state in session.run.blocking():
        if click.confirm(
            f"\n{state.id} is {state.status}: {state.detail}\n  waive it?", default=False
        ):
            session.waive(state.id, _given("  reason (recorded)"))
    if not session.run.blocking() and click.confirm("\nsign the run off?", default=False):
        signed = session.sign_off()
        click.echo(f"signed off by {signed.operator} at {signed.at}")


def _given(prompt: str) -> str:
    """An answer that is more than blanks, asked for again until given."""
    answer = ""
    while not answer.strip():
        answer = click.prompt(prompt)
    return answer


def items_table(run: ChecklistRun, width: int = 100) -> str:
    lines = [f"{run.title} ({run.checklist}), run {run.id}"]
    for item in run.items:
        optional = "" if item.required else " (optional)"
        detail = item.waiver and f"waived: {item.waiver}" or item.note or item.detail
        head = f"{RESULT_WORDS.get(item.status, item.status):<13} {item.id}{optional}: "
        wrapped = textwrap.wrap(
            head + detail, width, subsequent_indent=" " * 14, break_on_hyphens=False
        )
        lines += wrapped or [head]
    if run.signoff:
        lines.append(f"signed off by {run.signoff.operator} at {run.signoff.at}")
    return "\n".join(lines)


@checklist.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_state
def checklist_list(state: CliState, as_json: bool) -> None:
    """The stored runs, newest first."""
    repo = state.repository()
    runs = [load_run(repo.path, run_id) for run_id in run_ids(repo.path)]
    if as_json:
        print_json([run.to_dict() for run in runs])
        return
    for run in runs:
        signed = f"signed off by {run.signoff.operator}" if run.signoff else "not signed off"
        open_items = len(run.blocking())
        click.echo(f"{run.id}  {run.checklist:<16} backup {run.backup or '-'}  {signed}, "
                   f"{open_items} required item(s) open")  # fmt: skip


@checklist.command("tick")
@click.argument("run_id", metavar="RUN", shell_complete=checklist_runs)
@click.argument("item_id", metavar="ITEM")
@click.option("--note", default="", help="What was seen (some items require it).")
@pass_state
def checklist_tick(state: CliState, run_id: str, item_id: str, note: str) -> None:
    """Mark a manual item done, with a note."""
    ChecklistSession.resume(state.config(), state.repository(), run_id).tick(item_id, note)
    click.echo(f"{item_id}: ticked")


@checklist.command("waive")
@click.argument("run_id", metavar="RUN", shell_complete=checklist_runs)
@click.argument("item_id", metavar="ITEM")
@click.option("--reason", required=True, help="Why the item may stay open (recorded).")
@pass_state
def checklist_waive(state: CliState, run_id: str, item_id: str, reason: str) -> None:
    """Accept an item that did not pass, with a written reason."""
    ChecklistSession.resume(state.config(), state.repository(), run_id).waive(item_id, reason)
    click.echo(f"{item_id}: waived")


@checklist.command("sign-off")
@click.argument("run_id", metavar="RUN", shell_complete=checklist_runs)
@pass_state
def checklist_sign_off(state: CliState, run_id: str) -> None:
    """Sign a run off (refused while a required item is open)."""
    session = ChecklistSession.resume(state.config(), state.repository(), run_id, warn=warn)
    signed = session.sign_off()
    click.echo(f"run {run_id} signed off by {signed.operator} at {signed.at}")


@checklist.command("export")
@click.argument("run_id", metavar="RUN", shell_complete=checklist_runs)
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@pass_state
def checklist_export(state: CliState, run_id: str, fmt: str) -> None:
    """Print a run as a Markdown report (for an incident document) or JSON."""
    repo = state.repository()
    run = load_run(repo.path, run_id)
    if fmt == "json":
        click.echo(to_json(run), nl=False)
        return
    manifest = repo.load(run.backup) if run.backup and repo.is_backup(run.backup) else None
    click.echo(to_markdown(run, manifest), nl=False)

"""``lifeboat restore``: by id (validator, then apply), a scenario's plan, or the wizard.

``restore ID --dry-run`` prints the validator's table and exits 1 when a check fails;
``restore ID --apply --confirm NAME`` validates again, takes the safety backup, restores.
``restore plan --scenario NAME`` walks the decision tree; ``restore --wizard`` opens it in
the console.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import sys
import textwrap
from pathlib import Path

import click

from engine.checks import Check
from engine.errors import LifeboatError, UsageError
from engine.interrupts import Interrupted, exit_status
from engine.offsite.fetch import fetch_from
from engine.repo.manifest import BACKUP_ID, Manifest, utc_now
from engine.restore import journal
from engine.restore.apply import SafetyBackupError
from engine.restore.plan import RestoreRequest
from engine.restore.run import RestoreRefusedError, RestoreReport, run_restore
from engine.restore.scenario import DefaultBackup, Recommendation, choose_backup, recommend
from engine.restore.tree import BUILT_IN, AdviceNode, Walk, load_trees, walk
from engine.sources import RestoreOptions
from tui.cli.common import (
    CliState,
    RunByDefaultGroup,
    identity_option,
    keyring_for,
    pass_state,
    print_json,
    run_async,
)
from tui.cli.complete import backup_ids, source_names
from tui.cli.progress import make_renderer

MARKS = {"ok": "ok", "warning": "warn", "fail": "FAIL"}
INTERRUPTED_APPLY = (
    "lifeboat: interrupted; a restore that had begun writing stopped part way and stays on "
    "record: `lifeboat status` names it and the safety backup that holds the state before"
)


@click.group(cls=RunByDefaultGroup)
def restore() -> None:
    """Restore a backup: `restore ID --dry-run|--apply`, `restore plan`, `restore --wizard`.

    \b
    lifeboat restore --wizard             guided: what broke -> plan -> checks -> restore
    lifeboat restore plan --scenario NAME the decision tree's plan for an incident
    lifeboat restore ID --dry-run         the validator's checks; changes nothing
    lifeboat restore ID --apply --confirm HOST
    lifeboat restore acknowledge RUN --reason TEXT   clear an unfinished restore
    """


@restore.command("run", hidden=True)
@click.argument("backup_id", metavar="ID", required=False, shell_complete=backup_ids)
@click.option("--wizard", is_flag=True, help="Open the guided restore in the console.")
@click.option(
    "--scope",
    multiple=True,
    metavar="SOURCE",
    help="Restore only these sources.",
    shell_complete=source_names,
)
@click.option("--target", metavar="NAME", help="Restore to an alternate [targets.NAME].")
@click.option("--target-host", metavar="HOST", help="Restore onto this configured host instead.")
@click.option(
    "--target-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Extract files sources under this directory instead of their original paths.",
)
@click.option(
    "--mirror",
    is_flag=True,
    help="files: after the safety backup, remove what the target holds under the backed-up "
    "paths that the backup does not (the dry run lists it).",
)
@click.option(
    "--swap",
    is_flag=True,
    help="etcd: stop the member, move the restored data dir into place, start it again.",
)
@click.option(
    "--ns",
    "namespaces",
    multiple=True,
    metavar="GLOB",
    help="mongo: restore only namespaces matching these globs (db.collection, e.g. 'app.mod_*'); "
    "postgres: only these tables (db.schema.table, e.g. 'shop.billing.*').",
)
@click.option(
    "--ns-from",
    metavar="PATTERN",
    help="mongo: rename namespaces matching this ...; postgres: restore this database ...",
)
@click.option(
    "--ns-to",
    metavar="PATTERN",
    help="... to this, e.g. --ns-from 'app.*' --ns-to 'staging_app.*' (postgres: into this "
    "database, created when missing).",
)
@click.option("--no-drop", is_flag=True, help="mongo: keep target collections (do not drop first).")
@click.option("--dry-run", is_flag=True, help="Run the validator only; change nothing.")
@click.option("--apply", is_flag=True, help="Restore for real (needs --confirm).")
@click.option(
    "--confirm",
    multiple=True,
    metavar="NAME",
    help="Type the target's name (or each target host's) to confirm --apply.",
)
@click.option(
    "--skip-safety-backup",
    is_flag=True,
    help="Do not back up the target's current state first (needs --reason).",
)
@click.option("--reason", metavar="TEXT", help="Why the safety backup is skipped (audited).")
@identity_option
@click.option(
    "--from",
    "from_remote",
    metavar="NAME",
    help="Fetch the backup from [remotes.NAME] first (checked file by file), e.g. after the "
    "bastion was lost.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_state
def restore_run(
    state: CliState,
    backup_id: str | None,
    wizard: bool,
    scope: tuple[str, ...],
    target: str | None,
    target_host: str | None,
    target_dir: Path | None,
    mirror: bool,
    swap: bool,
    namespaces: tuple[str, ...],
    ns_from: str | None,
    ns_to: str | None,
    no_drop: bool,
    dry_run: bool,
    apply: bool,
    confirm: tuple[str, ...],
    skip_safety_backup: bool,
    reason: str | None,
    identity: str | None,
    from_remote: str | None,
    as_json: bool,
) -> None:
    """Validate what a restore will use and where, then (with --apply) restore it."""
    if wizard:
        from tui.console.start import run_console

        wanted = state.repository().resolve(backup_id) if backup_id else ""
        keyring = keyring_for(identity)  # else the wizard asks when the backup is encrypted
        run_async(run_console(state.config(), mouse=state.mouse, wizard=wanted, keyring=keyring))
        return
    if backup_id is None:
        raise UsageError(
            "which backup? `lifeboat restore ID --dry-run` (ids: `lifeboat backup list`), "
            "or `lifeboat restore --wizard`"
        )
    if dry_run == apply:
        raise UsageError("choose one of --dry-run (check only) or --apply --confirm NAME")
    if (ns_from is None) != (ns_to is None):
        raise UsageError("--ns-from and --ns-to go together")
    if dry_run and (confirm or skip_safety_backup):
        raise UsageError("--confirm and --skip-safety-backup go with --apply, not --dry-run")
    if reason and not skip_safety_backup:
        raise UsageError("--reason explains --skip-safety-backup; add it or drop --reason")
    repo = state.repository()
    if from_remote is not None:
        if not BACKUP_ID.match(backup_id):
            raise UsageError(
                f"with --from, give the whole backup id (`lifeboat backup list --remote "
                f"{from_remote}` lists them), not {backup_id!r}"
            )
        with make_renderer(as_json) as renderer:
            run_async(fetch_from(state.config(), repo, from_remote, backup_id, renderer.emit))
    backup_id = repo.resolve(backup_id)  # a unique prefix names it too
    encryption = repo.load(backup_id).encryption
    keyring = keyring_for(identity, encrypted_to=encryption.recipients if encryption else ())
    request = RestoreRequest(
        backup_id=backup_id,
        scope=scope,
        target=target,
        target_host=target_host,
        options=RestoreOptions(
            target_dir=target_dir,
            mirror=mirror,
            swap=swap,
            namespaces=namespaces,
            ns_from=ns_from,
            ns_to=ns_to,
            drop=not no_drop,
        ),
        apply=apply,
        confirm=confirm,
        safety_backup=not skip_safety_backup,
        skip_reason=reason,
        keyring=keyring,
    )
    config = state.config()
    try:
        with make_renderer(as_json) as renderer:
            report = run_async(run_restore(config, repo, request, renderer.emit))
    except RestoreRefusedError as refused:
        _print_report(refused.report, as_json)
        raise
    except SafetyBackupError as failed:
        raise LifeboatError(
            f"{failed}\nfix that and retry, or skip the safety backup with "
            "--skip-safety-backup --reason TEXT (the reason is recorded)"
        ) from None
    except (KeyboardInterrupt, Interrupted) as interrupt:
        if not apply:
            raise
        with contextlib.suppress(OSError):  # a hung-up terminal takes no more output
            click.echo(INTERRUPTED_APPLY, err=True)
        sys.exit(exit_status(interrupt))
    _print_report(report, as_json)


def _print_report(report: RestoreReport, as_json: bool) -> None:
    plan = report.plan
    summary = {
        "backup": report.backup_id,
        "sources": [step.source for step in report.steps],
        "hosts": list(report.plan.hosts),
        "target": report.plan.target,
        "checks": [
            {"name": c.name, "status": c.status.value, "detail": c.detail} for c in report.checks
        ],
        "safety_backup": report.safety_backup,
        "applied": report.applied,
        **plan.selection(),
        "effects": {step.source: plan.effect(step) for step in plan.steps},
        "left_to_do": {step.source: list(plan.left_to_do(step)) for step in plan.steps}
        if report.applied
        else {},
    }
    if as_json:
        print_json(summary)
        return
    click.echo(checks_table(report.checks))
    hosts = ", ".join(plan.hosts) or "no host"
    sources = ", ".join(step.source for step in report.steps) or "nothing"
    if report.applied:
        saved = (
            f"; the state before is in backup {report.safety_backup}"
            if report.safety_backup
            else ""
        )
        click.echo(f"restored {sources} from {report.backup_id} onto {hosts}{saved}")
        for step in plan.steps:
            _echo_wrapped(f"{step.source}: ", ", ".join(plan.selection_of(step)))
            left = plan.left_to_do(step)
            if left:
                _echo_wrapped(f"{step.source} on {step.target_host}: ", left[0])
                for command in left[1:]:
                    click.echo(f"  {command}")
    elif not report.failed:
        for step in plan.steps:
            _echo_wrapped(f"{step.source} on {step.target_host}: ", plan.effect(step))
        names = " ".join(f"--confirm {name}" for name in plan.confirm_names)
        click.echo(
            f"dry run: every check passed for {sources} from {report.backup_id} onto {hosts}; "
            f"nothing was changed. Apply with: --apply {names}"
        )


def _echo_wrapped(head: str, text: str) -> None:
    """``head`` and ``text`` wrapped to 88 columns (nothing when ``text`` is empty)."""
    if text:
        click.echo(
            textwrap.fill(
                text,
                88,
                initial_indent=head,
                subsequent_indent="  ",
                break_long_words=False,
                break_on_hyphens=False,
            )  # fmt: skip
        )


def checks_table(checks: list[Check], width: int | None = None) -> str:
    """The validator's checks as an aligned table whose details wrap to the terminal."""
    width = width or min(shutil.get_terminal_size((100, 24)).columns, 120)
    name_width = min(max((len(c.name) for c in checks), default=4), 24)
    indent = 6 + name_width + 1
    lines = []
    for check in checks:
        head = f"{MARKS[check.status.value]:<5} {check.name:<{name_width}} "
        body = textwrap.wrap(check.detail, max(width - indent, 30)) or [""]
        lines.append(head + body[0])
        lines.extend(" " * indent + line for line in body[1:])
    return "\n".join(lines)


@restore.command("acknowledge")
@click.argument("run", metavar="RUN")
@click.option("--reason", metavar="TEXT", required=True, help="What was checked or done (audited).")
@pass_state
def restore_acknowledge(state: CliState, run: str, reason: str) -> None:
    """Clear an unfinished restore resolved by hand (`lifeboat status` names RUN)."""
    config = state.config()
    record = journal.acknowledge(state.repository().path, run, config.operator, reason)
    target = record.target or "unknown targets"
    click.echo(f"acknowledged restore {record.run} onto {target}; recorded in the audit log")


@restore.command("plan")
@click.option("--scenario", metavar="NAME", help="The incident (the tree's first question).")
@click.option(
    "--answer",
    "answers",
    multiple=True,
    metavar="KEY=VALUE",
    help="Answer a further question, e.g. --answer migration=yes --answer globs='app.mod_x_*'.",
)
@click.option("--tree", "tree_name", default=BUILT_IN, show_default=True, help="Which tree.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_state
def restore_plan(
    state: CliState,
    scenario: str | None,
    answers: tuple[str, ...],
    tree_name: str,
    as_json: bool,
) -> None:
    """Walk the decision tree and print the recommended restore (changes nothing)."""
    config = state.config()
    trees = load_trees(config.runbooks.paths, config.sources)
    if tree_name not in trees:
        raise UsageError(f"no tree {tree_name!r}; trees: {', '.join(trees)}")
    tree = trees[tree_name]
    given = dict(_parse_answer(text) for text in answers)
    first = tree.nodes[tree.start]
    if scenario is not None:
        given[getattr(first, "key", "scenario")] = scenario
    steps = walk(tree, given)
    if steps.pending is not None:
        raise UsageError(_pending_message(steps, scenario is None and not steps.steps))
    if isinstance(steps.ending, AdviceNode):
        _print_advice(steps.ending, as_json)
        return
    recommendation = recommend(config, steps)
    choice = choose_backup(config, state.repository(), recommendation.sources, utc_now())
    _print_plan(recommendation, choice.manifest.id if choice.manifest else None, choice, as_json)


def _parse_answer(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--answer {text!r}: write KEY=VALUE, e.g. --answer migration=yes")
    return key, value


def _pending_message(steps: Walk, no_scenario: bool) -> str:
    question = steps.pending
    assert question is not None
    if no_scenario:
        lines = [f"{steps.tree.title} Choose --scenario NAME:"]
    else:
        lines = [f"{question.text} Answer with --answer {question.key}=VALUE:"]
    if hasattr(question, "choices"):
        lines += [f"  {choice.value:<18} {choice.label}" for choice in question.choices]
    else:
        lines.append(f"  e.g. --answer {question.key}={shlex.quote(question.placeholder or '...')}")
    return "\n".join(lines)


def _print_advice(advice: AdviceNode, as_json: bool) -> None:
    if as_json:
        print_json({"advice": advice.title, "text": advice.text, "command": advice.command,
                    "notes": list(advice.notes)})  # fmt: skip
        return
    click.echo(f"Advice: {advice.title}")
    click.echo(textwrap.fill(advice.text, 88, initial_indent="  ", subsequent_indent="  "))
    if advice.command:
        click.echo(f"Run: {advice.command}")
    for note in advice.notes:
        click.echo(textwrap.fill(note, 88, initial_indent="  - ", subsequent_indent="    "))


def _print_plan(
    plan: Recommendation, backup_id: str | None, choice: DefaultBackup[Manifest], as_json: bool
) -> None:
    command = ["lifeboat", "restore", backup_id or "ID"]
    for source in plan.sources:
        command += ["--scope", source]
    for glob in plan.namespaces:
        command += ["--ns", glob]
    if plan.alternate_target:
        command += ["--target", "NAME"]
    command.append("--dry-run")
    if as_json:
        print_json(
            {
                "plan": plan.title,
                "sources": list(plan.sources),
                "namespaces": list(plan.namespaces),
                "target": "alternate" if plan.alternate_target else "original",
                "backup": backup_id,
                "verified": choice.verified,
                "reason": choice.reason,
                "warnings": list(choice.warnings),
                "notes": list(plan.notes),
                "checklist": plan.checklist,
                "next": shlex.join(command),
            }
        )
        return
    click.echo(f"Plan: {plan.title}")
    click.echo(textwrap.fill(plan.text, 88, initial_indent="  ", subsequent_indent="  "))
    click.echo(f"Sources:    {', '.join(plan.sources)}")
    if plan.namespaces:
        click.echo(f"Namespaces: {' '.join(plan.namespaces)}")
    target = "an alternate [targets.NAME]" if plan.alternate_target else "the original hosts"
    click.echo(f"Target:     {target}")
    verified = " (verified)" if choice.verified else ""
    click.echo(f"Backup:     {backup_id or 'none'}{verified}")
    if choice.reason:
        click.echo(
            textwrap.fill(choice.reason, 88, initial_indent="  why: ", subsequent_indent="       ")
        )
    for warning in choice.warnings:
        click.echo(f"  warning: {warning}")
    for note in plan.notes:
        click.echo(textwrap.fill(note, 88, initial_indent="  - ", subsequent_indent="    "))
    click.echo(f"Afterwards: checklist {plan.checklist}")
    click.echo(f"Next:       {shlex.join(command)}")

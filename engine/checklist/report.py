"""A checklist run as a report fit for an incident document (Markdown) or for tools (JSON)."""

from __future__ import annotations

import json

from engine.checklist.run import NOT_APPLICABLE, ChecklistRun
from engine.repo.manifest import Manifest

RESULT_WORDS = {
    "passed": "PASSED",
    "failed": "FAILED",
    "ticked": "DONE (manual)",
    "waived": "WAIVED",
    "pending": "not run",
    "running": "not finished",
    "not_applicable": "N/A",
}


def to_json(run: ChecklistRun) -> str:
    return json.dumps(run.to_dict(), indent=2) + "\n"


def to_markdown(run: ChecklistRun, manifest: Manifest | None = None) -> str:
    lines = [f"# {run.title} ({run.checklist})", ""]
    lines.append(f"- Run: `{run.id}`, started {run.started}")
    if manifest is not None:
        label = f" ({manifest.label})" if manifest.label else ""
        lines.append(
            f"- Backup: `{manifest.id}`{label}, taken {manifest.created_at:%Y-%m-%d %H:%M}Z "
            f"by {manifest.operator}; sources {', '.join(manifest.scope)}"
        )
    elif run.backup:
        lines.append(f"- Backup: `{run.backup}`")
    if run.restore:
        restored = ", ".join(run.restore.get("sources", []))
        where = run.restore.get("target") or ", ".join(run.restore.get("hosts", []))
        lines.append(f"- Restored: {restored}" + (f" onto {where}" if where else ""))
        if run.restore.get("namespaces"):
            lines.append(f"- Namespaces: {' '.join(run.restore['namespaces'])}")
        if run.restore.get("safety_backup"):
            lines.append(f"- State before the restore: backup `{run.restore['safety_backup']}`")
    skipped = [item.id for item in run.items if item.status == NOT_APPLICABLE]
    if skipped:
        lines.append(
            f"- Not applicable (bound to sources not restored, not run): {', '.join(skipped)}"
        )
    lines += ["", "| Item | Result | Detail |", "|---|---|---|"]
    for item in run.items:
        required = "" if item.required else " (optional)"
        detail = item.waiver and f"waived: {item.waiver}" or item.note or item.detail
        lines.append(
            f"| {_cell(item.title)}{required} | {RESULT_WORDS.get(item.status, item.status)} "
            f"| {_cell(detail)} |"
        )
    lines += ["", "## Evidence", ""]
    for item in run.items:
        when = f", {item.seconds:g} s" if item.seconds is not None else ""
        lines.append(f"### {item.title}")
        lines.append("")
        if item.status == NOT_APPLICABLE:
            lines.append("N/A: not run")
        else:
            lines.append(f"{RESULT_WORDS.get(item.status, item.status)}{when} at {item.at or '-'}")
        for label, text in (("Note", item.note), ("Waiver", item.waiver), ("Detail", item.detail)):
            if text:
                lines.append(f"{label}: {text}")
        if item.evidence:
            lines += ["", "```", *item.evidence, "```"]
        lines.append("")
    if run.signoff:
        client = f" (SSH client {run.signoff.client})" if run.signoff.client else ""
        lines.append(
            f"**Signed off** by {run.signoff.operator} on {run.signoff.host}{client} at "
            f"{run.signoff.at}."
        )
    else:
        lines.append("**Not signed off.**")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")

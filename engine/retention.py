"""Prune: decide which backups to remove, then remove only those, under the write lock.

Only directories that are backups (an id-shaped name with a manifest) are ever considered;
anything else under ``backups/`` is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine import audit
from engine.errors import UsageError
from engine.manifest import Manifest
from engine.repository import Repository


@dataclass(frozen=True)
class PrunePlan:
    keep: tuple[Manifest, ...]
    remove: tuple[Manifest, ...]


def plan_keep_last(manifests: list[Manifest], keep: int) -> PrunePlan:
    """Keep the ``keep`` newest backups, remove the older ones."""
    if keep < 1:
        raise UsageError(f"--keep must be at least 1, got {keep}")
    ordered = sorted(manifests, key=lambda m: m.id, reverse=True)
    return PrunePlan(tuple(ordered[:keep]), tuple(ordered[keep:]))


def delete_backup(repo: Repository, backup_id: str, operator: str) -> None:
    """Delete one backup under the write lock and record it in the audit log."""
    with repo.lock("delete", operator):
        repo.delete(backup_id)
        audit.record(repo.path, operator, "backup.delete", backup=backup_id)


def prune(repo: Repository, keep: int, operator: str, *, dry_run: bool) -> PrunePlan:
    """Apply :func:`plan_keep_last`; with ``dry_run`` only report what would go."""
    if dry_run:
        return plan_keep_last(repo.list_backups()[0], keep)
    with repo.lock("prune", operator):
        plan = plan_keep_last(repo.list_backups()[0], keep)
        for manifest in plan.remove:
            repo.delete(manifest.id)
            audit.record(repo.path, operator, "backup.prune", backup=manifest.id, keep=keep)
        return plan

"""``backup prune --remote``: a remote's own retention policy over its copies.

The decisions and their reasons are a local prune's (``engine.repo.retention``), under
``[remotes.NAME.retention]``. A copy the policy would remove is kept when it is the last copy
of that backup anywhere (the repository holds none, nor does any other remote that answers),
unless ``prune_last_copy = true``. Each removal is recorded in the audit log.
"""

from __future__ import annotations

from dataclasses import replace

from engine.config.model import Config
from engine.errors import LifeboatError, UsageError
from engine.offsite.connect import connected, remote_config
from engine.offsite.copies import record_copy
from engine.offsite.listing import list_remote
from engine.repo import audit
from engine.repo.repository import Repository
from engine.repo.retention import Decision, PrunePlan, plan_copies


async def prune_remote(config: Config, repo: Repository, name: str, *, dry_run: bool) -> PrunePlan:
    """Plan, and unless ``dry_run`` remove, the copies ``[remotes.<name>.retention]`` keeps not."""
    settings = remote_config(config, name)
    rules = settings.retention
    if rules is None or not rules.has_rules:
        raise UsageError(
            f"remotes.{name} has no retention policy; add [remotes.{name}.retention] "
            "keep_daily = 7 (see README, Retention)"
        )
    async with connected(config, name) as remote:
        listing = await list_remote(remote)
        table = f"remotes.{name}.retention"
        plan = plan_copies(table, table, rules, listing.manifests)
        if not settings.prune_last_copy and plan.remove:
            plan = _keep_last_copies(plan, await _held_elsewhere(config, repo, name), name)
        if not dry_run:
            for decision in plan.decisions:
                if not decision.keep:
                    await remote.delete_backup(decision.manifest.id)
                    record_copy(repo, name, decision.manifest, removed=True)
                    audit.record(
                        repo.path,
                        config.operator,
                        "remote.prune",
                        remote=name,
                        backup=decision.manifest.id,
                        reasons=list(decision.reasons),
                    )
    return plan


async def _held_elsewhere(config: Config, repo: Repository, name: str) -> set[str]:
    """Ids of the backups the repository or another remote holds whole; a remote that does
    not answer holds nothing here, so that its copies are never counted on."""
    held = set(repo.backup_ids())
    for other in config.remotes:
        if other == name:
            continue
        try:
            async with connected(config, other) as remote:
                held |= {b.id for b in await remote.backups() if b.complete}
        except LifeboatError:
            continue
    return held


def _keep_last_copies(plan: PrunePlan, elsewhere: set[str], name: str) -> PrunePlan:
    reason = (
        "the last copy anywhere (neither the repository nor another remote holds it); "
        f"remotes.{name}.prune_last_copy = true lets the policy remove it"
    )
    return replace(
        plan,
        decisions=tuple(
            d if d.keep or d.manifest.id in elsewhere else Decision(d.manifest, True, (reason,))
            for d in plan.decisions
        ),
    )

"""Apply a validated restore plan: hold the targets, save their current state, restore.

Every step goes to the audit log: the confirmation, the safety backup (its id, or the reason
it was skipped, or why it failed), the start and the end of the restore. The safety backup
is an ordinary backup (trigger ``pre-restore``) of the same sources as they are on the
target now, so a mistaken restore can itself be undone by restoring it. A record in the
repository (``engine.restore.journal``) keeps a restore that did not succeed in view, even
one killed with -9, until it is resolved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from engine.config.model import Config
from engine.config.sources import FilesSourceConfig, MongoSourceConfig, SourceConfig
from engine.errors import LifeboatError, describe_error
from engine.events import (
    Emit,
    Event,
    JobFinished,
    JobStarted,
    LogLine,
    Progress,
    SourceFailed,
    StageChanged,
)
from engine.interrupts import stop_reason
from engine.jobs import BackupRequest, JobFailedError, run_backup
from engine.notify import Notice, notify
from engine.remote.hostfacts import probe_path
from engine.remote.ssh import ConnectionPool
from engine.repo import audit
from engine.repo.repository import Repository
from engine.restore import journal
from engine.restore.locks import TargetLocks
from engine.restore.plan import SAFETY, RestorePlan, RestoreRequest
from engine.sources import SourceContext, source_from


class SafetyBackupError(LifeboatError):
    """The current state could not be saved, so nothing was restored."""

    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(
            f"the safety backup of the target's current state failed, so nothing was "
            f"restored: {cause}"
        )


async def apply_plan(
    config: Config,
    repo: Repository,
    plan: RestorePlan,
    request: RestoreRequest,
    locks: TargetLocks,
    emit: Emit,
    down: Mapping[str, str] | None = None,
) -> str | None:
    """Restore ``plan`` (already validated and confirmed); returns the safety backup's id.
    The safety backup leaves out the sources in ``down``: the validator found they do not
    answer at all (an etcd after a lost quorum), so there is no current state to read."""
    backup_id = plan.manifest.id
    audit.record(
        repo.path,
        config.operator,
        "restore.confirm",
        backup=backup_id,
        target=plan.target,
        hosts=list(plan.hosts),
        confirmed=list(request.confirm),
    )
    async with AsyncExitStack() as held:
        for host in plan.hosts:  # in a thread: etcd may be reached through a tunnel on this loop
            lock = locks.hold(host, config.operator)
            await asyncio.to_thread(lock.__enter__)
            held.push_async_callback(asyncio.to_thread, lock.__exit__, None, None, None)
        safety_id = await _safety_backup(config, repo, plan, request, emit, down or {})
        try:
            await _restore(config, repo, plan, safety_id, emit)
        except LifeboatError as exc:
            await _tell(config, plan, safety_id, emit, describe_error(exc))
            raise
    await _tell(config, plan, safety_id, emit)
    return safety_id


async def _tell(
    config: Config, plan: RestorePlan, safety_id: str | None, emit: Emit, error: str = ""
) -> None:
    """``restore.applied`` to the channels that want it: that it ended, well or not."""
    where = f"backup {plan.manifest.id} onto {plan.target or 'its own hosts'}"
    title = f"restore of {where} FAILED" if error else f"restore of {where} applied"
    undo = f"safety backup: {safety_id}" if safety_id else "no safety backup"
    body = f"by {config.operator}; {undo}" + (f"\n{error}" if error else "")
    await notify(config, Notice("restore.applied", title, body, failure=bool(error)), emit)


async def _safety_backup(
    config: Config,
    repo: Repository,
    plan: RestorePlan,
    request: RestoreRequest,
    emit: Emit,
    down: Mapping[str, str],
) -> str | None:
    backup_id = plan.manifest.id

    def record(**details: Any) -> None:
        audit.record(
            repo.path, config.operator, "restore.safety-backup", backup=backup_id, **details
        )

    if not request.safety_backup:
        record(result="skipped", reason=request.skip_reason)
        emit(LogLine("restore", "warning", f"safety backup skipped: {request.skip_reason}"))
        return None
    emit(StageChanged("restore", SAFETY))
    unsaved = {name: down[name] for name in (step.source for step in plan.steps) if name in down}
    for name, why in unsaved.items():
        emit(LogLine("restore", "warning", f"safety backup: {name} is left out: {why}"))
    sources = await _current_state_sources(config, plan, set(unsaved))
    if not sources:
        record(result="nothing to save", **({"left_out": unsaved} if unsaved else {}))
        emit(LogLine("restore", "info", "safety backup: nothing on the target to save"))
        return None
    saving = config.model_copy(update={"sources": dict(config.sources) | sources})
    request_ = BackupRequest(
        tuple(sources), label=f"pre-restore-{backup_id}", trigger="pre-restore"
    )
    try:
        manifest = await run_backup(saving, repo, request_, _as_safety(emit))
    except Exception as exc:
        record(result="failed", error=describe_error(exc))
        raise SafetyBackupError(describe_error(exc)) from None
    record(result="ok", safety_backup=manifest.id, **({"left_out": unsaved} if unsaved else {}))
    emit(LogLine("restore", "info", f"safety backup {manifest.id} holds the state before"))
    return manifest.id


async def _current_state_sources(
    config: Config, plan: RestorePlan, left_out: set[str]
) -> dict[str, SourceConfig]:
    """Each planned source but ``left_out``, pointed at what the restore will overwrite on
    the target.

    Files: the destination paths that exist now (nothing to save for the rest). Mongo: the
    namespaces the restore writes (after a rename, the renamed ones).
    """
    sources: dict[str, SourceConfig] = {}
    pool = ConnectionPool(dict(config.hosts))
    try:
        for step in plan.steps:
            if step.source in left_out:
                continue
            current = step.config
            if isinstance(current, FilesSourceConfig):
                host = await pool.get(step.target_host)
                root = str(step.options.target_dir or "/").rstrip("/")
                existing = [
                    Path(root + str(path))
                    for path in current.paths
                    if (await probe_path(host, root + str(path))).exists
                ]
                if not existing:
                    continue
                current = current.model_copy(update={"paths": tuple(existing)})
            elif isinstance(current, MongoSourceConfig):
                options = step.options
                written = (options.ns_to,) if options.ns_to else options.namespaces
                if written:
                    current = current.model_copy(update={"include": written, "exclude": ()})
            sources[step.source] = current
    finally:
        await pool.close()
    return sources


def _as_safety(emit: Emit) -> Emit:
    """The safety backup's events in the restore job, as rows ``<source> (safety backup)``."""

    def relay(event: Event) -> None:
        if isinstance(event, JobStarted | JobFinished):
            return
        if isinstance(event, StageChanged | Progress | LogLine):
            event = replace(event, source=f"{event.source} ({SAFETY})")
        emit(event)

    return relay


async def _restore(
    config: Config, repo: Repository, plan: RestorePlan, safety_id: str | None, emit: Emit
) -> None:
    manifest = plan.manifest
    running = journal.begin(  # before anything is written to a target: kill -9 cannot hide it
        repo.path,
        backup=manifest.id,
        target=plan.target or ", ".join(plan.hosts),
        steps=tuple((step.source, step.target_host) for step in plan.steps),
        operator=config.operator,
        safety_backup=safety_id,
    )
    audit.record(
        repo.path,
        config.operator,
        "restore.start",
        backup=manifest.id,
        sources=[step.source for step in plan.steps],
        hosts=list(plan.hosts),
        target=plan.target,
        safety_backup=safety_id,
        run=running.run,
        **plan.selection(),
    )
    emit(StageChanged("restore", "restoring"))
    pool = ConnectionPool(dict(config.hosts))
    failures: list[SourceFailed] = []
    result = "cancelled"
    try:
        for step in plan.steps:  # one at a time: a restore is no place for surprises
            emit(StageChanged(step.source, "connecting"))
            try:
                host = await pool.get(step.target_host)
                record = partial(
                    audit.record, repo.path, config.operator, backup=manifest.id, source=step.source
                )
                ctx = SourceContext(
                    step.source,
                    host,
                    repo.backup_dir(manifest.id),
                    emit,
                    record,
                    keyring=plan.keyring,
                )
                await source_from(step.source, step.config).restore(
                    step.artifact, ctx, step.options
                )
            except Exception as exc:
                emit(StageChanged(step.source, "failed"))
                emit(LogLine(step.source, "error", describe_error(exc)))
                failures.append(SourceFailed(step.source, describe_error(exc)))
                break
            emit(StageChanged(step.source, "done"))
        result = "failed" if failures else "ok"
    finally:
        await pool.close()
        errors = [f"{f.source}: {f.error}" for f in failures]
        cleared = running.resolves() if result == "ok" else []
        audit.record(
            repo.path,
            config.operator,
            "restore.finish",
            backup=manifest.id,
            result=result,
            errors=errors,
            safety_backup=safety_id,
            run=running.run,
            cleared=cleared,
            **({"reason": stop_reason()} if result == "cancelled" else {}),
        )
        running.close(result, errors, cleared)  # after the audit: a crash between the two
        # leaves a record to acknowledge, never a finished restore without one
        if result != "ok":
            emit(LogLine("restore", "error", _undo_hint(result, safety_id)))
    if failures:
        raise JobFailedError(tuple(failures), hint=_undo_hint(result, safety_id))


def _undo_hint(result: str, safety_id: str | None) -> str:
    before = (
        "no safety backup was taken"
        if safety_id is None
        else f"the state before it is in backup {safety_id}"
    )
    return (
        f"the restore {'was cancelled' if result == 'cancelled' else 'failed'} part way: "
        f"the target may hold part old, part restored data; {before}"
    )

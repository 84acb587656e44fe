"""Backup and verify jobs: run sources, report events, and leave nothing half-written.

A backup holds the repository's write lock, runs its sources concurrently (bounded) into a
staging directory and commits it in one rename. A failed source, an exception or a
cancellation leaves nothing under ``backups/``: staging is removed (cancel) or kept under
``.failed/`` for diagnosis (failure); what a kill -9 leaves there is removed by the next
backup (``engine.repo.leftovers``). A cancel is recorded in the audit log
(``backup.cancelled``, naming the signal that stopped the process, if one did). Each job is
one batch of the repository's write hook: the catalog, if there is one, is brought up to date
once, off the event loop, after the lock is released; when it does not answer, that is a
warning log line, never a failed job.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from engine import __version__
from engine.config.model import Config
from engine.crypto.age import Recipient
from engine.errors import (
    BackupNotFoundError,
    DiskFullError,
    LifeboatError,
    ManifestError,
    RepositoryLockedError,
    describe_error,
)
from engine.events import (
    Emit,
    JobFinished,
    JobStarted,
    LogLine,
    ProgressMeter,
    SourceFailed,
    StageChanged,
)
from engine.interrupts import stop_reason
from engine.notify import Notice, notify
from engine.remote.ssh import ConnectionPool
from engine.repo import audit, leftovers
from engine.repo.content import NO_KEYS, Keyring
from engine.repo.manifest import (
    SCHEMA_ENCRYPTED,
    Artifact,
    Encryption,
    Manifest,
    iso_z,
    utc_now,
)
from engine.repo.repository import MANIFEST, Repository, VerifyRecord, new_backup_id
from engine.repo.verify import FileProblem, VerifyPolicy, VerifyResult, verify_backup_async
from engine.repo.write_hook import Warn
from engine.sources import SourceContext, make_source, resolve_scope

MAX_PARALLEL_SOURCES = 4


class JobFailedError(LifeboatError):
    """A job ran and failed; ``errors`` has one entry per failed source, ``hint`` what next."""

    def __init__(
        self,
        errors: tuple[SourceFailed, ...],
        kept_at: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.errors = errors
        self.kept_at = kept_at
        by_error: dict[str, list[str]] = {}
        for failure in errors:  # one line per distinct error (a dead host fails all its sources)
            by_error.setdefault(failure.error, []).append(failure.source)
        lines = [_named(sources, error) for error, sources in by_error.items()]
        if kept_at:
            lines.append(f"the partial backup was kept for diagnosis in {kept_at}")
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


def _named(sources: list[str], error: str) -> str:
    """``error`` after the sources it failed, said once (a source's own message may already
    start with its name)."""
    names = ", ".join(sources)
    return f"{names}: {error.removeprefix(f'{names}: ')}"


@dataclass(frozen=True)
class BackupRequest:
    scope: tuple[str, ...] = ()
    label: str | None = None
    trigger: str = "manual"


def catalog_warning(emit: Emit) -> Warn:
    """A job's write hook warnings (the catalog missed a change), as its log lines."""
    return lambda text: emit(LogLine("catalog", "warning", text))


async def run_backup(
    config: Config, repo: Repository, request: BackupRequest, emit: Emit
) -> Manifest:
    """Run one backup to completion and return its manifest; raise JobFailedError on failure.
    A failure is sent to the channels that want ``backup.failed`` (not a repository another
    job holds: the scheduler tries again, and a person sees it at once)."""
    names = resolve_scope(config, request.scope)
    try:
        async with repo.write_hook.batch_async(catalog_warning(emit)):
            manifest = await _backup(config, repo, names, request, emit)
    except RepositoryLockedError:
        raise
    except LifeboatError as exc:
        title = f"backup of {', '.join(names)} failed"
        body = f"{request.trigger} by {config.operator}:\n{describe_error(exc)}"
        await notify(config, Notice("backup.failed", title, body), emit)
        raise
    return manifest


async def _backup(
    config: Config, repo: Repository, names: tuple[str, ...], request: BackupRequest, emit: Emit
) -> Manifest:
    with repo.lock("backup", config.operator):
        stuck: list[str] = []
        removed = leftovers.remove(repo, config.operator, stuck)  # before our staging exists
        backup_id = new_backup_id()
        staging = repo.create_staging(backup_id)
        created = utc_now()
        emit(JobStarted(backup_id, "backup", names))
        for leftover in removed:
            emit(LogLine("backup", "info", leftover.removed()))
        for problem in stuck:  # it stays, and status keeps reporting it
            emit(LogLine("backup", "warning", problem))
        pool = ConnectionPool(dict(config.hosts))
        limit = asyncio.Semaphore(MAX_PARALLEL_SOURCES)
        recipients = config.encryption.all_recipients() if config.encryption else ()

        async def one(name: str) -> Artifact:
            async with limit:
                source = make_source(config, name)
                emit(StageChanged(name, "connecting"))
                started = time.monotonic()
                try:
                    host = await pool.get(config.sources[name].host)
                    ctx = SourceContext(name, host, staging, emit, recipients=recipients)
                    artifact = await source.backup(ctx)
                except Exception as exc:
                    emit(StageChanged(name, "failed"))
                    emit(LogLine(name, "error", describe_error(exc)))
                    raise
                emit(StageChanged(name, "done"))
                return _timed(artifact, time.monotonic() - started)

        try:
            results = await asyncio.gather(*(one(n) for n in names), return_exceptions=True)
        except BaseException:  # cancelled (Ctrl-C, a hang-up, the console's cancel): nothing
            await pool.close()  # survives, and the audit log says why it stopped
            repo.abandon(staging, keep_for_diagnosis=False)
            _record_cancel(config, repo, backup_id, names, emit)
            emit(JobFinished(backup_id, ok=False, cancelled=True))
            raise
        await pool.close()
        errors = {n: r for n, r in zip(names, results, strict=True) if isinstance(r, BaseException)}
        failures = tuple(SourceFailed(name, describe_error(r)) for name, r in errors.items())
        if failures:
            # A partial backup is kept for diagnosis, unless keeping it would keep the disk full.
            disk_full = any(isinstance(r, DiskFullError) for r in errors.values())
            kept = repo.abandon(staging, keep_for_diagnosis=not disk_full)
            kept_at = str(kept) if kept else None
            emit(JobFinished(backup_id, ok=False, errors=failures, kept_at=kept_at))
            raise JobFailedError(failures, kept_at)
        manifest = Manifest(
            id=backup_id,
            label=request.label,
            created_at=created,
            finished_at=utc_now(),
            trigger=request.trigger,
            operator=config.operator,
            tool_version=__version__,
            scope=names,
            artifacts=tuple(r for r in results if isinstance(r, Artifact)),
            **encrypted_to(recipients),
        )
        repo.commit(staging, manifest)
    emit(JobFinished(backup_id, ok=True, manifest_id=backup_id))
    return manifest


def _timed(artifact: Artifact, seconds: float) -> Artifact:
    """``artifact`` with how long its source took (sources run side by side: the backup's
    own duration says little of each)."""
    return artifact.model_copy(update={"meta": {**artifact.meta, "seconds": round(seconds, 3)}})


def encrypted_to(recipients: tuple[Recipient, ...]) -> dict[str, Any]:
    """A manifest's fields for a backup encrypted to ``recipients`` (none when there are
    none: a plaintext backup keeps schema 1)."""
    if not recipients:
        return {}
    return {
        "schema_version": SCHEMA_ENCRYPTED,
        "encryption": Encryption(recipients=tuple(str(r) for r in recipients)),
    }


def _record_cancel(
    config: Config, repo: Repository, backup_id: str, names: tuple[str, ...], emit: Emit
) -> None:
    """``backup.cancelled`` with the reason (``SIGHUP``, ``SIGTERM``, ``SIGINT`` or
    ``cancelled``); a log that cannot be written is a warning: the cancel stands."""
    try:
        audit.record(
            repo.path,
            config.operator,
            "backup.cancelled",
            backup=backup_id,
            sources=list(names),
            reason=stop_reason(),
        )
    except Exception as exc:
        emit(
            LogLine(
                "backup", "warning", f"the cancel is not in the audit log: {describe_error(exc)}"
            )
        )


async def run_verify(
    repo: Repository,
    backup_id: str,
    emit: Emit,
    sources: tuple[str, ...] | None = None,
    *,
    config: Config | None = None,
    keyring: Keyring = NO_KEYS,
) -> VerifyResult:
    """Verify one backup, reporting progress as the ``verify`` pseudo-source; with ``config``,
    its sources' allowances apply (``allow_setid``); with an identity in ``keyring``, encrypted
    files are decrypted and checked deeply (without, as stored). A damaged manifest is a failed
    verify, like a damaged file. A backup deleted (or pruned) while it was verified raises
    BackupNotFoundError and records nothing: its files went missing on purpose."""
    async with repo.write_hook.batch_async(catalog_warning(emit)):
        result = await _verify(repo, backup_id, emit, sources, config, keyring)
    return result


async def _verify(
    repo: Repository,
    backup_id: str,
    emit: Emit,
    sources: tuple[str, ...] | None,
    config: Config | None,
    keyring: Keyring,
) -> VerifyResult:
    try:
        manifest = repo.load(backup_id)
    except ManifestError as exc:
        emit(JobStarted(backup_id, "verify", ()))
        result = VerifyResult(backup_id, problems=[FileProblem("manifest", MANIFEST, str(exc))])
    else:
        emit(JobStarted(backup_id, "verify", manifest.scope))
        meter = ProgressMeter("verify", emit, manifest.size)
        result = await verify_backup_async(
            repo.backup_dir(backup_id),
            manifest,
            sources,
            lambda done, _total: meter.update(done),
            VerifyPolicy.of(config.sources) if config is not None else VerifyPolicy(),
            keyring,
        )
        meter.finish()
    if not result.ok and not repo.has_entry(backup_id):
        emit(JobFinished(backup_id, ok=False, cancelled=True))
        raise BackupNotFoundError(
            f"backup {backup_id} was deleted while it was being verified; nothing was recorded"
        )
    outcome = VerifyRecord(
        backup_id, iso_z(utc_now()), result.ok, tuple(str(p) for p in result.problems)
    )
    await asyncio.to_thread(repo.record_verify, outcome)  # an fsync: off the loop
    for problem in result.problems:
        emit(LogLine(problem.source, "error", str(problem)))
    emit(JobFinished(backup_id, ok=result.ok))
    if config is not None and not result.ok:
        lines = "\n".join(str(problem) for problem in result.problems)
        title = f"verify of backup {backup_id} found damage"
        await notify(config, Notice("verify.failed", title, lines), emit)
    return result

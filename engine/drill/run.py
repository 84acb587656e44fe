"""A DR drill: seed markers, back up, verify, destroy, restore, check, and time it.

Only sources (and a target) flagged ``drill = true`` are touched; anything else is refused
before the first write, with the reason. The drill's backup is an ordinary verified backup
(trigger ``drill``). The restore is the real one (validator, then apply; the safety backup is
skipped with a recorded reason, since the drill destroyed the data on purpose). The measured
RTO is the restore's seconds until every restored source answers again with its markers.
The result goes to ``drills.jsonl`` and the audit log, passed or not. The drill is one batch
of the repository's write hook: the catalog, when there is one, learns of the backup, its
verify, the checklist run and the drill's record once, at the end.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from engine.checklist.model import checklists_for
from engine.checklist.run import now_text
from engine.checklist.session import ChecklistSession
from engine.config.model import Config
from engine.config.sources import EtcdSourceConfig, RedisSourceConfig
from engine.crypto.age import Recipient
from engine.drill import history
from engine.drill.history import DrillRecord
from engine.drill.markers import Drill, MarkerCheck, Markers, markers_for, unmarkable
from engine.errors import LifeboatError, RepositoryLockedError, UsageError, describe_error
from engine.events import Emit, Event, JobFinished, JobStarted, LogLine, SourceFailed, StageChanged
from engine.jobs import BackupRequest, catalog_warning, run_backup, run_verify
from engine.notify import Notice, notify
from engine.remote.ssh import ConnectionPool
from engine.repo import audit, locks
from engine.repo.atomic import make_private_dir
from engine.repo.content import IDENTITY_HINT, NO_KEYS, Keyring
from engine.repo.manifest import Manifest
from engine.repo.repository import Repository, new_backup_id
from engine.restore.plan import RestorePlan, RestoreRequest, build_plan
from engine.restore.run import run_restore
from engine.sources import RestoreOptions

READY_SECONDS = 60.0  # how long restored sources may take to answer again (etcd restarts)
RETRY_SECONDS = 0.5
STAGE = "drill"  # the pseudo-source drill stages are reported on
Placed = tuple[Markers, list[str], str]  # a source's markers, where they went, on which host


@dataclass(frozen=True)
class DrillRequest:
    sources: tuple[str, ...] = ()  # default: every source flagged drill = true
    target: str | None = None  # a [targets.NAME] flagged drill = true; None: in place
    confirm: tuple[str, ...] = ()  # the names typed: the target's, or each host's
    keyring: Keyring = NO_KEYS  # opens the drill's backup when [encryption] is set


@dataclass(frozen=True)
class DrillPlan:
    sources: tuple[str, ...]
    target: str | None
    confirm_names: tuple[str, ...]
    destroys: tuple[str, ...]  # what the drill will destroy, one line per source
    keyring: Keyring = NO_KEYS  # opens the drill's backup when [encryption] is set

    @property
    def scenario(self) -> str:
        where = f"onto target {self.target}" if self.target else "in place"
        return f"restore {', '.join(self.sources)} {where}"


def plan_drill(config: Config, request: DrillRequest) -> DrillPlan:
    """What a drill would touch; every reason to refuse it at once (UsageError)."""
    problems: list[str] = []
    names = request.sources or tuple(n for n, s in config.sources.items() if s.drill)
    if not names:
        raise UsageError(
            "no source is flagged for drills: a drill destroys a source's data to prove the "
            "restore, so it only touches sources with drill = true; set it on the "
            "[sources.NAME] of a staging or drill system"
        )
    for name in names:
        source = config.sources.get(name)
        if source is None:
            problems.append(f"unknown source {name!r}; configured: {', '.join(config.sources)}")
        elif not source.drill:
            problems.append(
                f"sources.{name} is not flagged for drills: a drill destroys its data. Set "
                f"drill = true on [sources.{name}] only if that data may be destroyed"
            )
    target = config.targets.get(request.target) if request.target else None
    if request.target and target is None:
        known = ", ".join(config.targets) or "none"
        problems.append(f"unknown target {request.target!r}; configured: {known}")
    elif request.target and target is not None and not target.drill:
        problems.append(
            f"targets.{request.target} is not flagged for drills: a drill destroys its data. "
            f"Set drill = true on [targets.{request.target}] only if that data may be destroyed"
        )
    if problems:
        raise UsageError("drill refused, nothing was touched:\n" + "\n".join(problems))
    destroys, hosts = [], []
    for name in names:
        source = config.sources[name]
        entry = target.sources.get(name) if target else None
        if target is not None and entry is None:
            problems.append(f"targets.{request.target} does not say where {name} goes")
            continue
        host = (entry.host if entry else None) or source.host
        hosts.append(host)
        if source.kind not in DESTROYS:
            problems.append(unmarkable(name, source.kind))
            continue
        if isinstance(source, EtcdSourceConfig) and not (source.stop and source.start):
            problems.append(
                f"sources.{name}: a drill restores etcd live (--swap), which needs stop and "
                'start commands, e.g. stop = ["systemctl", "stop", "etcd"]'
            )
        if isinstance(source, RedisSourceConfig) and not (
            source.rdb_path and source.stop and source.start
        ):
            problems.append(
                f"sources.{name}: a drill restores redis with the server stopped, which needs "
                'rdb_path, stop and start, e.g. stop = ["systemctl", "stop", "redis-server"]'
            )
        destroys.append(f"{name} on {host}: {DESTROYS[source.kind]}")
    checklist = config.drill.checklist
    if checklist is not None and checklist not in checklists_for(config):
        problems.append(f"drill.checklist: no checklist {checklist!r}")
    if config.encryption is not None:
        problems += _identity_problems(config.encryption.all_recipients(), request.keyring)
    if problems:
        raise UsageError("drill refused, nothing was touched:\n" + "\n".join(problems))
    confirm = (request.target,) if request.target else tuple(dict.fromkeys(hosts))
    return DrillPlan(tuple(names), request.target, confirm, tuple(destroys), request.keyring)


def _identity_problems(recipients: tuple[Recipient, ...], keyring: Keyring) -> list[str]:
    """Why the identities given could not open the drill's (encrypted) backup, if they could not."""
    names = [str(recipient) for recipient in recipients]
    to = ", ".join(names)
    if not keyring.identities:
        return [f"[encryption] encrypts the drill's backup to {to}; {IDENTITY_HINT}"]
    if not keyring.opens(names):
        return [
            f"the identity given is not one of [encryption]'s recipients ({to}): the drill "
            "could not restore its own backup; give one of their identities"
        ]
    return []


DESTROYS = {
    "mongo": "every collection it backs up is dropped",
    "etcd": "every key is deleted, then the member is stopped, swapped and started",
    "files": "every path it backs up is removed",
    "redis": "every key is deleted (FLUSHALL), then the server is stopped, its snapshot "
    "replaced and started",
    "postgres": "every database it backs up is dropped (DROP DATABASE ... WITH (FORCE)), then "
    "created and restored",
}


async def run_drill(
    config: Config, repo: Repository, request: DrillRequest, emit: Emit
) -> DrillRecord:
    """Run one drill to its verdict (recorded whatever happens); refuses with UsageError."""
    plan = plan_drill(config, request)
    if set(request.confirm) != set(plan.confirm_names):
        raise UsageError(
            "a drill destroys data on "
            + ", ".join(plan.confirm_names)
            + "; confirm by typing each name: "
            + " ".join(f"--confirm {name}" for name in plan.confirm_names)
        )
    drill = Drill(new_backup_id(), secrets.token_hex(8), config.drill.markers)
    record = DrillRecord(
        drill.id, now_text(), config.operator, list(plan.sources), plan.target, plan.scenario
    )
    async with repo.write_hook.batch_async(catalog_warning(emit)):
        await _locked(config, repo, plan, drill, record, emit)
    if not record.passed:
        title = f"drill {record.id} failed: {plan.scenario}"
        await notify(config, Notice("drill.failed", title, "\n".join(record.problems)), emit)
    return record


async def _locked(
    config: Config,
    repo: Repository,
    plan: DrillPlan,
    drill: Drill,
    record: DrillRecord,
    emit: Emit,
) -> None:
    with _drill_lock(repo, config.operator):
        emit(JobStarted(drill.id, "drill", plan.sources))
        audit.record(
            repo.path,
            config.operator,
            "drill.start",
            drill=drill.id,
            scenario=plan.scenario,
            destroys=list(plan.destroys),
        )
        pool = ConnectionPool(dict(config.hosts))
        try:
            await _drill(config, repo, plan, drill, record, pool, emit)
        except LifeboatError as exc:
            record.problems.append(describe_error(exc))
        except BaseException:
            record.problems.append("stopped by the operator before the end")
            _finish(config, repo, record, emit)
            raise
        finally:
            await pool.close()
        _finish(config, repo, record, emit)


def _finish(config: Config, repo: Repository, record: DrillRecord, emit: Emit) -> None:
    record.verdict = "failed" if record.problems else "passed"
    record.finished = now_text()
    history.append(repo.path, record)
    repo.write_hook.wrote()
    audit.record(
        repo.path,
        config.operator,
        "drill.finish",
        drill=record.id,
        verdict=record.verdict,
        backup=record.backup_id,
        backup_seconds=record.backup_seconds,
        restore_seconds=record.restore_seconds,
        problems=record.problems,
    )
    errors = tuple(SourceFailed(STAGE, problem) for problem in record.problems)
    emit(JobFinished(record.id, ok=record.passed, errors=errors))


@contextmanager
def _drill_lock(repo: Repository, operator: str) -> Iterator[None]:
    directory = repo.path / "locks"
    make_private_dir(directory)
    try:
        with locks.hold(directory / "drill.lock", "drill", operator):
            yield
    except locks.LockBusy as busy:
        raise RepositoryLockedError(f"another drill is running: {busy.holder}") from None


async def _drill(
    config: Config,
    repo: Repository,
    plan: DrillPlan,
    drill: Drill,
    record: DrillRecord,
    pool: ConnectionPool,
    emit: Emit,
) -> None:
    def say(text: str, level: str = "info") -> None:
        emit(LogLine(STAGE, level, text))

    emit_inner = _nested(emit)

    emit(StageChanged(STAGE, "seeding markers"))
    seeded: dict[str, Placed] = {}
    for name in plan.sources:
        markers = markers_for(name, config.sources[name], drill)
        host_name = config.sources[name].host
        host = await pool.get(host_name)
        places = await markers.places(host)
        seeded[name] = (markers, places, host_name)
        count = await markers.seed(host, places)
        say(f"{name}: seeded {count} markers in {', '.join(places)}")
    try:
        manifest = await _backup_and_verify(config, repo, plan, drill, record, emit_inner)
    except BaseException:
        await _clean(pool, seeded)
        raise
    if manifest is None:
        await _clean(pool, seeded)
        return
    request = RestoreRequest(
        manifest.id,
        scope=plan.sources,
        target=plan.target,
        options=RestoreOptions(swap=any(config.sources[n].kind == "etcd" for n in plan.sources)),
        apply=True,
        confirm=plan.confirm_names,
        safety_backup=False,
        skip_reason=f"drill {drill.id}: the data is destroyed on purpose; backup {manifest.id} "
        "holds it",
        keyring=plan.keyring,
    )
    restore_plan = build_plan(config, manifest, request)
    at_target = {
        step.source: (
            markers_for(step.source, step.config, drill, step.options.target_dir),
            seeded[step.source][1],
            step.target_host,
        )
        for step in restore_plan.steps
    }
    emit(StageChanged(STAGE, "destroying"))
    try:
        for name, (markers, _places, host_name) in at_target.items():
            artifact = manifest.artifact(name)
            assert artifact is not None
            done = await markers.destroy(await pool.get(host_name), artifact)
            audit.record(repo.path, config.operator, "drill.destroy", drill=drill.id,
                         source=name, host=host_name, destroyed=done)  # fmt: skip
            say(f"{name} on {host_name}: {'; '.join(done)}")
        emit(StageChanged(STAGE, "restoring"))
        started = time.monotonic()
        await run_restore(config, repo, request, emit_inner)
    except LifeboatError as exc:
        record.problems.append(
            f"the drill stopped after destroying data on the drill target: "
            f"{describe_error(exc)}; backup {manifest.id} holds it: lifeboat restore "
            f"{manifest.id} --dry-run, then --apply"
        )
        return
    checks = await _markers_back(pool, at_target)
    record.restore_seconds = round(time.monotonic() - started, 3)
    record.markers = [
        {"source": c.source, "expected": c.expected, "found": c.found, "missing": list(c.missing)}
        for c in checks
    ]
    for check in checks:
        say(check.describe(), "info" if check.ok else "error")
        if not check.ok:
            record.problems.append(f"markers missing after the restore: {check.describe()}")
    await _checklist(config, restore_plan, manifest, record, repo, emit)
    if not record.problems:
        await _clean(pool, at_target)
        if plan.target:
            await _clean(pool, seeded)
        await _drop_swapped_aside(restore_plan, manifest.id, pool)


def _nested(emit: Emit) -> Emit:
    """The drill is one job around a backup, a verify and a restore: their starts and ends
    become log lines, so that a listener sees one job from its start to its verdict."""

    def forward(event: Event) -> None:
        if isinstance(event, JobStarted):
            emit(LogLine(STAGE, "info", f"{event.kind} {event.job_id} started"))
        elif isinstance(event, JobFinished):
            verdict = "finished" if event.ok else "FAILED"
            emit(LogLine(STAGE, "info" if event.ok else "error", f"{event.job_id} {verdict}"))
        else:
            emit(event)

    return forward


async def _backup_and_verify(
    config: Config,
    repo: Repository,
    plan: DrillPlan,
    drill: Drill,
    record: DrillRecord,
    emit: Emit,
) -> Manifest | None:
    """The drill's backup, timed and verified (None, with the problem recorded, when the
    verify fails: nothing is destroyed then)."""
    emit(StageChanged(STAGE, "backing up"))
    started = time.monotonic()
    request = BackupRequest(scope=plan.sources, label=f"drill {drill.id}", trigger="drill")
    manifest = await run_backup(config, repo, request, emit)
    record.backup_seconds = round(time.monotonic() - started, 3)
    record.backup_id = manifest.id
    emit(StageChanged(STAGE, "verifying"))
    started = time.monotonic()
    result = await run_verify(repo, manifest.id, emit, config=config, keyring=plan.keyring)
    record.verify_seconds = round(time.monotonic() - started, 3)
    if not result.ok:
        record.problems.append(
            f"backup {manifest.id} does not verify, so nothing was destroyed: "
            + "; ".join(str(problem) for problem in result.problems)
        )
        return None
    return manifest


async def _markers_back(pool: ConnectionPool, at_target: dict[str, Placed]) -> list[MarkerCheck]:
    """Each source's markers, once it answers (a restarted etcd takes a moment)."""
    deadline = time.monotonic() + READY_SECONDS
    checks = []
    for markers, places, host_name in at_target.values():
        while True:
            try:
                checks.append(await markers.check(await pool.get(host_name), places))
                break
            except (LifeboatError, OSError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(RETRY_SECONDS)
    return checks


async def _checklist(
    config: Config,
    restore_plan: RestorePlan,
    manifest: Manifest,
    record: DrillRecord,
    repo: Repository,
    emit: Emit,
) -> None:
    name = config.drill.checklist
    if name is None:
        return
    emit(StageChanged(STAGE, f"checklist {name}"))
    loaded = checklists_for(config)[name]
    restore = {"sources": list(record.sources), "target": record.target,
               "hosts": list(restore_plan.hosts), "drill": record.id}  # fmt: skip
    target = restore_plan.target_config(config)
    session = await asyncio.to_thread(
        ChecklistSession.start, target, repo, loaded, manifest, restore
    )
    await session.check()
    run = session.run
    record.checklist, record.checklist_run = name, run.id
    record.checklist_failed = [
        f"{item.id}: {item.detail}"
        for item in run.items
        if item.required and item.status == "failed"
    ]
    for failure in record.checklist_failed:
        record.problems.append(f"checklist {name}: {failure}")


async def _clean(pool: ConnectionPool, markers: dict[str, Placed]) -> None:
    for each, places, host_name in markers.values():
        await each.clean(await pool.get(host_name), places)


async def _drop_swapped_aside(plan: RestorePlan, backup_id: str, pool: ConnectionPool) -> None:
    """An etcd swap keeps the data dir it replaced: after a drill that is the destroyed
    state, not worth keeping (a restored member's first WAL alone is 64 MiB)."""
    for step in plan.steps:
        if isinstance(step.config, EtcdSourceConfig) and step.config.data_dir is not None:
            aside = f"{step.config.data_dir}.before-{backup_id}"
            await (await pool.get(step.target_host)).capture(["rm", "-rf", "--", aside])

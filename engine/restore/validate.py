"""The restore validator: runs before every apply, changes nothing, reports every check.

Each check is ok, warning or fail, and says what to do. They arrive through ``report`` as
they finish (the console shows them live), each with its place in this fixed order, the
order of the list returned: the backup, what the plan lacks, each source's options, the
encryption, the backup's age against its tiers' RPO and unfinished restores; the checksums
and structure of every artifact used (one read); then each target host in turn, over SSH,
with each source's own read-only preflight (datastore answers, versions, free space, restore
dir, CA); last the per-target restore locks. The checksums and the hosts run at once.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from engine.checks import Check, Status
from engine.config.model import Config
from engine.errors import describe_error
from engine.events import Emit, ProgressMeter
from engine.remote.ssh import ConnectionPool, SSHHost
from engine.repo.content import IDENTITY_HINT, Keyring, recipients_text
from engine.repo.repository import Repository
from engine.repo.verify import VerifyPolicy, verify_backup_async
from engine.restore import journal
from engine.restore.locks import TargetLocks
from engine.restore.plan import RestorePlan, RestoreStep
from engine.restore.scenario import age_warnings
from engine.sources import source_from
from engine.sources.base import Preflight

Report = Callable[[Check, tuple[int, int]], None]  # a check and its place in the order
Add = Callable[[Check], None]


class CheckOrder:
    """The checks, kept in the validator's fixed order whatever order they end in. Each
    group (up-front checks, checksums, one per host, locks) numbers its own checks."""

    def __init__(self, report: Report) -> None:
        self.checks: list[tuple[tuple[int, int], Check]] = []
        self._report = report

    def group(self, group: int) -> Add:
        numbers = itertools.count()

        def add(check: Check) -> None:
            order = (group, next(numbers))
            bisect.insort(self.checks, (order, check), key=lambda item: item[0])
            self._report(check, order)

        return add

    def listed(self) -> list[Check]:
        return [check for _order, check in self.checks]


async def validate(
    config: Config,
    repo: Repository,
    plan: RestorePlan,
    locks: TargetLocks,
    report: Report,
    emit: Emit,
    now: datetime,
) -> list[Check]:
    """Run every check of ``plan``; returns them all, in order (``report`` saw each as it
    came)."""
    checks = CheckOrder(report)
    add = checks.group(0)
    manifest = plan.manifest
    by = f" by {manifest.operator}" if manifest.operator else ""
    add(
        Check.ok(
            "backup",
            f"{manifest.id}{f' ({manifest.label})' if manifest.label else ''}, taken "
            f"{manifest.created_at:%Y-%m-%d %H:%M}Z{by}; manifest schema "
            f"{manifest.schema_version} is known",
        )
    )
    for problem in plan.problems:
        add(problem)
    for step in plan.steps:
        for reason in source_from(step.source, step.config).restore_problems(
            step.artifact, step.options
        ):
            add(Check.fail(f"options {step.source}", reason))
    keyring = plan.keyring  # checks the content once it opens; without, what is stored
    if (encryption := encryption_check(plan)) is not None:
        add(encryption)
        if encryption.status is Status.FAIL:
            keyring = replace(keyring, identities=())
    for check in _age_checks(config, plan, now):
        add(check)
    for check in _unfinished_checks(repo, plan):
        add(check)
    if not plan.steps:
        return checks.listed()
    pool = ConnectionPool(dict(config.hosts))
    try:
        await asyncio.gather(
            _checksums(repo, plan, keyring, checks.group(1), emit),
            *(
                _host_checks(pool, plan, host, config, repo, checks.group(2 + number))
                for number, host in enumerate(plan.hosts)
            ),
        )
    finally:
        await pool.close()
    add = checks.group(2 + len(plan.hosts))
    for host in plan.hosts:
        holder = await asyncio.to_thread(locks.holder, host)  # etcd may be behind a tunnel
        if holder is None:
            add(Check.ok(f"lock {host}", "no other restore holds this target"))
        else:
            add(
                Check.fail(
                    f"lock {host}",
                    f"another restore holds {host}: {holder}; wait for it to finish",
                )
            )
    return checks.listed()


async def _checksums(
    repo: Repository, plan: RestorePlan, keyring: Keyring, add: Add, emit: Emit
) -> None:
    names = tuple(step.source for step in plan.steps)
    meter = ProgressMeter("verify", emit, sum(step.artifact.size for step in plan.steps))
    result = await verify_backup_async(
        repo.backup_dir(plan.manifest.id),
        plan.manifest,
        names,
        lambda done, _total: meter.update(done),
        VerifyPolicy.of({step.source: step.config for step in plan.steps}),
        keyring,
    )
    meter.finish()
    if result.ok and result.sealed:
        add(
            Check.ok(
                "checksums",
                f"{len(names)} artifact(s): the stored files' sizes and sha256 "
                "good (encrypted: their content is checked once an identity opens them)",
            )
        )
    elif result.ok:
        add(Check.ok("checksums", f"{len(names)} artifact(s): sizes, sha256 and structure good"))
    for problem in result.problems:
        add(Check.fail("checksums", f"{problem}; this backup cannot be trusted: choose another"))


async def _host_checks(
    pool: ConnectionPool,
    plan: RestorePlan,
    host_name: str,
    config: Config,
    repo: Repository,
    add: Add,
) -> None:
    try:
        host = await pool.get(host_name)
    except Exception as exc:  # any failure to connect is this check's verdict
        add(Check.fail(f"ssh {host_name}", describe_error(exc)))
        return
    add(Check.ok(f"ssh {host_name}", f"reachable as {host.config.user}"))
    steps = [step for step in plan.steps if step.target_host == host_name]
    for step in steps:
        for check in await _preflight(host, step, plan, config, repo):
            add(check)


async def _preflight(
    host: SSHHost, step: RestoreStep, plan: RestorePlan, config: Config, repo: Repository
) -> list[Check]:
    backup_id, keyring = plan.manifest.id, plan.keyring
    source = source_from(step.source, step.config)
    check = Preflight(
        host,
        step.artifact,
        step.options,
        backup_id,
        config.restore.free_space_margin,
        repo.backup_dir(backup_id),
        keyring,
    )
    try:
        return await source.preflight(check)
    except Exception as exc:  # a probe that broke is a failed check, not a crashed validator
        return [Check.fail(f"preflight {step.source}", describe_error(exc))]


def encryption_check(plan: RestorePlan) -> Check | None:
    """Whether the identities given open an encrypted backup (None: it is in plaintext)."""
    if plan.manifest.encryption is None:
        return None
    recipients = plan.manifest.encryption.recipients
    to = f"encrypted to {recipients_text(recipients)}"
    given = {str(identity.recipient) for identity in plan.keyring.identities}
    if not given:
        return Check.fail("encryption", f"{to}; {IDENTITY_HINT}")
    if not plan.keyring.opens(recipients):
        return Check.fail(
            "encryption",
            f"{to}; the identity given is for {', '.join(sorted(given))}: give one of the "
            "recipients' identities",
        )
    return Check.ok("encryption", f"{to}; the identity given opens it")


def _age_checks(config: Config, plan: RestorePlan, now: datetime) -> list[Check]:
    """A warning per tier whose RPO the backup is older than (it may lose more than agreed)."""
    restored = tuple(step.source for step in plan.steps)
    return [
        Check.warning("age", f"{text}: data written since is lost; is there a newer backup?")
        for text in age_warnings(config, plan.manifest, restored, now)
    ]


def _unfinished_checks(repo: Repository, plan: RestorePlan) -> list[Check]:
    """A warning per earlier restore onto these hosts that did not succeed (or whose record is
    unreadable): the target may hold part old, part restored data. Not a failure: restoring
    again is how it is resolved, and this restore clears it if it covers what it touched."""
    steps = tuple((step.source, step.target_host) for step in plan.steps)
    checks = []
    for record in journal.unfinished(repo.path):
        if record.steps and not set(record.hosts) & set(plan.hosts):
            continue
        outcome = (
            "this restore covers what it touched and clears it when it succeeds"
            if record.covered_by(steps)
            else "this restore does not cover all it touched: acknowledge it once resolved"
        )
        checks.append(Check.warning("unfinished restore", f"{record.describe()}; {outcome}"))
    return checks


def failed(checks: list[Check]) -> list[Check]:
    return [check for check in checks if check.status is Status.FAIL]

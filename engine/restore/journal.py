"""Unfinished restores, recorded in the repository so that not even kill -9 hides one.

Before a restore writes anything to a target it writes ``restores/<run>.json``: which backup,
which sources onto which hosts, when, by whom, and the safety backup that holds the state
before. It holds a flock on that file while it runs (taken before the file appears, so no
reader ever sees it unheld). A restore that succeeds removes its record, and the records of
earlier restores it covers (the same sources onto the same hosts: it replaced what they left).
One that fails or is cancelled rewrites its record with the outcome; one that is killed leaves
it as it was. A record nobody holds is an unfinished restore: ``lifeboat status`` reports it
(exit 1), the dashboard shows it and the validator warns about it, until a restore covering
it succeeds or an operator acknowledges it (audited).

Records are read back as untrusted: anything malformed is reported as an unreadable record,
by file name, and can still be acknowledged.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.errors import LifeboatError, RepositoryError, UsageError
from engine.repo import audit, locks
from engine.repo.atomic import atomic_write, fsync_dir, make_private_dir
from engine.repo.manifest import BACKUP_ID, iso_z, utc_now
from engine.repo.repository import new_backup_id

DIRECTORY = "restores"
INTERRUPTED = "interrupted"  # the outcome of a record nobody closed: its restore was killed
UNREADABLE = "unreadable"
MAX_TEXT = 500  # characters of any text field; an error is cut to this when recorded
WHAT_HAPPENED = {
    INTERRUPTED: "was interrupted part way (Lifeboat was killed or crashed)",
    "failed": "failed part way",
    "cancelled": "was cancelled part way",
}


@dataclass(frozen=True)
class RestoreRecord:
    """One restore that touched targets and did not succeed (or is running)."""

    run: str
    backup: str
    target: str  # what the operator confirmed: the [targets.NAME], or the hosts
    steps: tuple[tuple[str, str], ...]  # (source, host) pairs, in order
    started_at: str
    operator: str
    safety_backup: str | None
    outcome: str = INTERRUPTED
    error: str = ""

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(host for _source, host in self.steps))

    def covered_by(self, steps: tuple[tuple[str, str], ...]) -> bool:
        """Whether a restore of ``steps`` rewrites everything this one touched."""
        return bool(self.steps) and set(self.steps) <= set(steps)

    def describe(self) -> str:
        """What happened, where the state before is, and how to resolve it: one line."""
        if self.outcome == UNREADABLE:
            return (
                f"the record {DIRECTORY}/{self.run}.json of a restore that did not succeed is "
                f"unreadable ({self.error}); check its targets, then run `lifeboat restore "
                f"acknowledge {self.run} --reason TEXT`"
            )
        why = f" ({self.error})" if self.error else ""
        return (
            f"restore {self.run} of backup {self.backup} onto {self.target} "
            f"{WHAT_HAPPENED.get(self.outcome, self.outcome)}{why}: started {self.started_at} "
            f"by {self.operator}; the target may hold part old, part restored data; "
            f"{self.before()}. Resolve it by restoring onto "
            f"{self.target} again, or with `lifeboat restore acknowledge {self.run} "
            "--reason TEXT` once the target is checked"
        )

    def before(self) -> str:
        if self.safety_backup is None:
            return "no safety backup was taken"
        return f"the state before it is in backup {self.safety_backup}"

    def short(self) -> str:
        """One dashboard line (80 columns)."""
        if self.outcome == UNREADABLE:
            return f"RESTORE RECORD UNREADABLE {self.run}: see lifeboat status"
        when = self.started_at[5:16].replace("T", " ")
        before = self.safety_backup or "no safety backup"
        return f"RESTORE {self.outcome.upper()} onto {self.target} {when}Z · before: {before}"


class RunningRestore:
    """The open record of the restore in progress; hold it until ``close``."""

    def __init__(self, repo_path: Path, record: RestoreRecord, fd: int) -> None:
        self.repo_path = repo_path
        self.record = record
        self._fd = fd

    @property
    def run(self) -> str:
        return self.record.run

    def resolves(self) -> list[str]:
        """The unfinished restores this one covers: a success clears them."""
        return [
            other.run for other in unfinished(self.repo_path) if other.covered_by(self.record.steps)
        ]

    def close(self, outcome: str, errors: list[str], cleared: list[str]) -> None:
        """Remove the record (and ``cleared``) on ``"ok"``; else keep it with the outcome."""
        try:
            if outcome == "ok":
                for run in [*cleared, self.run]:
                    _path(self.repo_path, run).unlink(missing_ok=True)
                fsync_dir(self.repo_path / DIRECTORY)
            else:
                error = " ".join("; ".join(errors).split())[:MAX_TEXT]  # one printable line
                kept = replace(self.record, outcome=outcome, error=error)
                atomic_write(_path(self.repo_path, self.run), _encode(kept))
        except OSError as exc:  # the record stays as it was: reported as interrupted
            raise RepositoryError(
                f"cannot update the record of restore {self.run} in "
                f"{self.repo_path / DIRECTORY}: {exc}; `lifeboat status` reports it until "
                "it is acknowledged"
            ) from None
        finally:
            os.close(self._fd)


def begin(
    repo_path: Path,
    *,
    backup: str,
    target: str,
    steps: tuple[tuple[str, str], ...],
    operator: str,
    safety_backup: str | None,
) -> RunningRestore:
    """Write and hold the record of a restore about to write to its targets."""
    record = RestoreRecord(
        run=new_backup_id(),
        backup=backup,
        target=target,
        steps=steps,
        started_at=iso_z(utc_now().replace(microsecond=0)),
        operator=operator,
        safety_backup=safety_backup,
    )
    directory = repo_path / DIRECTORY
    final = _path(repo_path, record.run)
    tmp = final.with_name(f".{final.name}.tmp")
    try:
        make_private_dir(directory)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise _unrecorded(directory, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # before it has its name: never seen unheld
        os.write(fd, _encode(record))
        os.fsync(fd)
        os.rename(tmp, final)
        fsync_dir(directory)
    except BaseException as exc:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _unrecorded(directory, exc) from None
        raise
    return RunningRestore(repo_path, record, fd)


def _unrecorded(directory: Path, exc: OSError) -> RepositoryError:
    return RepositoryError(
        f"cannot record the restore in {directory}: {exc.strerror or exc}; nothing was "
        "restored: free space or fix that path, then retry"
    )


def unfinished(repo_path: Path) -> list[RestoreRecord]:
    """Every record no running restore holds, oldest first."""
    directory = repo_path / DIRECTORY
    if not directory.is_dir():
        return []
    records = []
    for path in sorted(directory.glob("*.json")):
        if BACKUP_ID.match(path.stem) and locks.holder_of(path) is None:
            records.append(_read(path))
    return records


def acknowledge(repo_path: Path, run: str, operator: str, reason: str) -> RestoreRecord:
    """Clear an unfinished restore an operator resolved by hand; recorded in the audit log."""
    if not reason.strip():
        raise UsageError("say what was checked or done: --reason TEXT (it goes to the audit log)")
    path = _path(repo_path, run) if BACKUP_ID.match(run) else None
    if path is None or not path.is_file():
        known = ", ".join(record.run for record in unfinished(repo_path)) or "none"
        raise UsageError(f"no unfinished restore {run!r}; unfinished restores: {known}")
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LifeboatError(f"restore {run} is still running; wait for it to finish") from None
        record = _read(path)
        audit.record(
            repo_path,
            operator,
            "restore.acknowledge",
            run=run,
            backup=record.backup,
            target=record.target,
            outcome=record.outcome,
            safety_backup=record.safety_backup,
            reason=reason,
        )
        path.unlink()
    finally:
        os.close(fd)
    return record


def _path(repo_path: Path, run: str) -> Path:
    return repo_path / DIRECTORY / f"{run}.json"


def _encode(record: RestoreRecord) -> bytes:
    return (json.dumps({"schema": 1, **asdict(record)}, indent=2) + "\n").encode()


def _read(path: Path) -> RestoreRecord:
    try:
        data = json.loads(path.read_bytes())
        return _decode(path.stem, data)
    except (OSError, ValueError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, ValueError) else type(exc).__name__
        return RestoreRecord(path.stem, "", "", (), "", "", None, UNREADABLE, reason[:MAX_TEXT])


def _decode(run: str, data: Any) -> RestoreRecord:
    """A record from untrusted JSON; ValueError naming the first thing that is wrong."""
    if not isinstance(data, dict) or data.get("schema") != 1:
        raise ValueError("not a schema 1 restore record")
    steps = data.get("steps")
    if not isinstance(steps, list) or not all(
        isinstance(step, list) and len(step) == 2 for step in steps
    ):
        raise ValueError("steps is not a list of [source, host] pairs")
    safety = data.get("safety_backup")
    if safety is not None and not (isinstance(safety, str) and BACKUP_ID.match(safety)):
        raise ValueError("safety_backup is not a backup id")
    backup = _text(data, "backup")
    if not BACKUP_ID.match(backup):
        raise ValueError("backup is not a backup id")
    started = _text(data, "started_at")
    datetime.fromisoformat(started.replace("Z", "+00:00"))  # ValueError when it is not a time
    outcome = _text(data, "outcome")
    if outcome not in WHAT_HAPPENED:
        raise ValueError(f"unknown outcome {outcome!r}")
    return RestoreRecord(
        run=run,
        backup=backup,
        target=_text(data, "target"),
        steps=tuple((_plain(s, "source"), _plain(h, "host")) for s, h in steps),
        started_at=started,
        operator=_text(data, "operator"),
        safety_backup=safety,
        outcome=outcome,
        error=_text(data, "error", allow_empty=True),
    )


def _text(data: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not (value or allow_empty):
        raise ValueError(f"{key} is missing or not text")
    return _plain(value, key)


def _plain(value: object, key: str) -> str:
    """Short printable text only: a record must not write control codes to a terminal."""
    if not isinstance(value, str) or len(value) > MAX_TEXT or not value.isprintable():
        raise ValueError(f"{key} is not short printable text")
    return value

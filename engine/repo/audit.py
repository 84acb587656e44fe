"""The repository's append-only, hash-chained audit log: one JSON line per notable step.

Each record is canonical JSON (sorted keys, no spaces) carrying ``n``, its line number, and
``prev``, the sha256 of the line before it (64 zeros for the first). ``audit.head`` holds the
number of lines and the sha256 of the last one, rewritten atomically after every append, so
that cutting lines off the end is detected as well as edits, deletions and reorderings in the
middle. The line number tells an edited line (reported at that line) from removed or moved
ones (reported where the numbers stop following on).

A crash between writing a line and ``audit.head`` leaves the head one line behind: ``verify``
accepts that (and says so), and the next write brings the head up to date. A head that
disagrees with the log in any other way is left as it is, for ``verify`` to report.

Whoever can write the repository can also rewrite the whole log, recomputing every hash and
the head. Only a copy of the head kept elsewhere shows that: an ``Anchor`` (etcd, the Mongo
catalog; ``engine.scaleout.anchors``). The anchors registered for a repository with
:func:`anchor_with` are brought up to date on every write, and ``verify`` checks the ones it
is given: an anchored line that is no longer in the log is reported, naming the anchor.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import socket
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from engine.errors import LifeboatError, describe_error
from engine.repo import jsonlines
from engine.repo.atomic import atomic_write
from engine.repo.manifest import iso_z, utc_now

AUDIT_FILE = "audit.jsonl"
HEAD_FILE = "audit.head"
GENESIS = "0" * 64
_TAIL = 64 * 1024  # bytes read from the end at first to find the last two lines
_log = logging.getLogger(__name__)


class Head(NamedTuple):
    """How many lines the log has, and the sha256 of the last one."""

    lines: int
    sha256: str

    def to_json(self) -> bytes:
        return canonical({"lines": self.lines, "sha256": self.sha256})

    @classmethod
    def parse(cls, data: object) -> Head | None:
        """A head from its JSON form (bytes, or already decoded); None when it is not one."""
        try:
            value: Any = json.loads(data) if isinstance(data, bytes | str) else data
            lines, sha = value["lines"], value["sha256"]
        except (ValueError, TypeError, KeyError):
            return None
        number = isinstance(lines, int) and not isinstance(lines, bool) and lines >= 0
        valid = number and isinstance(sha, str) and len(sha) == 64
        return cls(lines, sha) if valid else None


class Anchor(Protocol):
    """A copy of the head kept outside the repository."""

    @property
    def name(self) -> str:
        """Where it is, for messages: ``etcd at 10.0.0.7:2379``."""
        ...

    def read(self) -> Head | None:
        """The anchored head (None when none is); raises ``LifeboatError``."""
        ...

    def advance(self, head: Head, may_replace: Callable[[Head | None], bool]) -> bool:
        """Anchor ``head`` if ``may_replace(the anchored head)``; whether it did. Raises
        ``LifeboatError``."""
        ...


_anchors: dict[Path, tuple[Anchor, ...]] = {}


def anchor_with(repo_path: Path, anchors: Sequence[Anchor]) -> None:
    """Keep ``anchors`` up to date with every record this process writes to the log at
    ``repo_path`` (replacing the anchors registered before)."""
    _anchors[repo_path.resolve()] = tuple(anchors)


def canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _last_lines(fd: int) -> list[bytes]:
    """The log's last two lines (fewer when it has fewer), without their newlines."""
    size = os.fstat(fd).st_size
    window = min(size, _TAIL)
    while True:
        tail = os.pread(fd, window, size - window).rstrip(b"\n")
        lines = tail.split(b"\n")
        if len(lines) > 2 or window == size:
            return [line for line in lines[-2:] if line] if tail else []
        window = min(size, window * 4)


def _count_lines(fd: int) -> int:
    count = offset = 0
    while chunk := os.pread(fd, 1024 * 1024, offset):
        count += chunk.count(b"\n")
        offset += len(chunk)
    return count


def _lines_written(repo_path: Path, fd: int, tail: list[bytes]) -> tuple[int, Head | None]:
    """How many lines the log has, and the head to advance from (None: the head disagrees
    with the log and must be left for ``verify`` to report)."""
    head = read_head(repo_path)
    if head is None:  # a new log, or one from before the head file: count
        return _count_lines(fd), Head(0, GENESIS)
    hashes = [line_hash(line) for line in tail]
    if hashes and hashes[-1] == head.sha256:
        return head.lines, head
    if len(hashes) == 2 and hashes[0] == head.sha256:
        _log.warning(
            "%s was one line behind %s (Lifeboat stopped between writing a line and the "
            "head); brought up to date",
            HEAD_FILE,
            AUDIT_FILE,
        )
        return head.lines + 1, head
    _log.warning(
        "%s does not match the end of %s: left as it is; run `lifeboat audit verify`",
        HEAD_FILE,
        AUDIT_FILE,
    )
    return _count_lines(fd), None


def record(repo_path: Path, operator: str, action: str, **details: Any) -> dict[str, Any]:
    """Append one record (who, when, what), bring the head and the anchors up to date, and
    return the record."""
    with jsonlines.opened(repo_path / AUDIT_FILE) as fd:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when the descriptor closes
        tail = _last_lines(fd)
        lines, previous = _lines_written(repo_path, fd, tail)
        entry = {
            "ts": iso_z(utc_now()),
            "operator": operator,
            "host": socket.gethostname(),
            "action": action,
            **details,
            "n": lines + 1,
            "prev": line_hash(tail[-1]) if tail else GENESIS,
        }
        line = canonical(entry)
        jsonlines.write_line(fd, line)
        if previous is not None:
            head = Head(lines + 1, line_hash(line))
            atomic_write(repo_path / HEAD_FILE, head.to_json() + b"\n")
            _advance_anchors(repo_path, previous, head)
    return entry


def _advance_anchors(repo_path: Path, previous: Head, head: Head) -> None:
    """Anchor ``head`` where the anchored head is ``previous`` or still in the log; an
    anchor that disagrees with the log is kept as evidence. A failure is logged, never
    raised: the line is written."""

    def may_replace(anchored: Head | None) -> bool:
        return anchored in (None, previous) or _holds(repo_path, anchored)

    for anchor in _anchors.get(repo_path.resolve(), ()):
        try:
            if not anchor.advance(head, may_replace):
                _log.warning(
                    "the audit head anchored in %s is no longer in %s: left as evidence; "
                    "run `lifeboat audit verify`",
                    anchor.name,
                    AUDIT_FILE,
                )
        except Exception as exc:  # the record is written: an anchor must not undo it
            _log.warning(
                "could not anchor the audit head in %s (%s); the next write tries again",
                anchor.name,
                describe_error(exc),
            )


def _holds(repo_path: Path, head: Head | None) -> bool:
    """Whether line ``head.lines`` of the log has the hash ``head.sha256``."""
    if head is None:
        return False
    return line_hashes(repo_path, {head.lines}).get(head.lines) == head.sha256


def line_hashes(repo_path: Path, wanted: Collection[int]) -> dict[int, str]:
    """The sha256 of each line numbered in ``wanted`` that the log has."""
    found = {}
    with (repo_path / AUDIT_FILE).open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if number in wanted:
                found[number] = line_hash(raw.rstrip(b"\n"))
    return found


def read_head(repo_path: Path) -> Head | None:
    try:
        return Head.parse((repo_path / HEAD_FILE).read_bytes())
    except OSError:
        return None


@dataclass(frozen=True)
class Verdict:
    """``ok``, or what is wrong (and at which line, 1-based, when one can be named)."""

    lines: int
    bad_line: int | None = None
    problem: str = ""
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


def verify(repo_path: Path, anchors: Sequence[Anchor] = ()) -> Verdict:
    """Walk the chain, then compare its end with ``audit.head`` and each anchor. The first
    problem is named; what could not be checked is said in the note."""
    try:
        anchored = [(anchor.name, anchor.read()) for anchor in anchors]
    except LifeboatError as exc:
        return Verdict(0, problem=f"cannot check the anchored audit head: {exc}")
    head = read_head(repo_path)
    wanted = {h.lines for h in (head, *(a for _, a in anchored)) if h is not None}
    walked = _walk(repo_path, wanted)
    if isinstance(walked, Verdict):
        return walked
    count, hashes = walked
    notes = []
    local = _check_head(count, hashes, head, (repo_path / AUDIT_FILE).exists())
    if isinstance(local, Verdict):
        return local
    notes.extend(local)
    for name, value in anchored:
        against = _check_anchor(name, value, count, hashes)
        if isinstance(against, Verdict):
            return against
        notes.extend(against)
    if count == 0 and not notes:
        notes.append("no audit log yet")
    return Verdict(count, note="; ".join(notes))


def _walk(repo_path: Path, wanted: set[int]) -> Verdict | tuple[int, dict[int, str]]:
    """The number of lines and the hashes of the ``wanted`` ones (and of the last), or the
    verdict on the first line that does not follow from the one before."""
    path = repo_path / AUDIT_FILE
    hashes: dict[int, str] = {0: GENESIS}
    count = 0
    if not path.exists():
        return 0, hashes
    previous = GENESIS
    with path.open("rb") as handle:
        for count, raw in enumerate(handle, 1):  # noqa: B007 (count is used after the loop)
            line = raw.rstrip(b"\n")
            if bad := _line_problem(line, previous, count):
                return Verdict(count, *bad)
            previous = line_hash(line)
            if count in wanted:
                hashes[count] = previous
    hashes[count] = previous
    return count, hashes


def _line_problem(line: bytes, previous: str, number: int) -> tuple[int, str] | None:
    """What is wrong at line ``number`` (the line it is reported at, and why), if anything."""
    try:
        entry = json.loads(line)
    except ValueError:
        return number, "not a JSON record: the line was edited or damaged"
    if not isinstance(entry, dict) or canonical(entry) != line:
        return number, "not written by Lifeboat (not canonical JSON): the line was edited"
    written_as = entry.get("n")
    if written_as is not None and written_as != number:
        return number, (
            f"it was written as line {written_as}: lines before it were removed, added or moved"
        )
    if entry.get("prev") == previous:
        return None
    if number == 1:
        return 1, "its prev hash does not start a chain: the lines before it were removed"
    if written_as is not None:  # numbered: nothing was removed, so the line before changed
        return number - 1, f"it was edited: line {number} carries the hash of another line"
    return number - 1, (
        f"it was edited, or lines after it removed or moved: line {number} does not carry its hash"
    )


def _check_head(
    count: int, hashes: dict[int, str], head: Head | None, exists: bool
) -> Verdict | list[str]:
    """``audit.head`` against the log: a problem, or notes."""
    if head is None:
        if count == 0:
            return []
        return [f"no {HEAD_FILE}: lines cut off the end cannot be detected"]
    if not exists and head.lines:
        return Verdict(
            0,
            problem=f"{AUDIT_FILE} is missing but {HEAD_FILE} says it had {head.lines} lines: "
            "the log was deleted",
        )
    if count < head.lines:
        return Verdict(
            count,
            count + 1,
            f"missing: the log ends after line {count} but {HEAD_FILE} says it has "
            f"{head.lines} lines; the end was cut off",
        )
    if hashes.get(head.lines) != head.sha256:
        return Verdict(count, head.lines, f"line {head.lines} is not the last line Lifeboat wrote")
    if count == head.lines + 1:
        return [
            f"line {count} is not in {HEAD_FILE} yet (Lifeboat stopped between writing it and "
            "the head); the next write records it"
        ]
    if count > head.lines:
        return Verdict(
            count,
            head.lines + 1,
            f"line {head.lines + 1} and after are not in {HEAD_FILE} (it says {head.lines} "
            "lines): appended by hand",
        )
    return []


def _check_anchor(
    name: str, anchored: Head | None, count: int, hashes: dict[int, str]
) -> Verdict | list[str]:
    """One anchor against the log: a problem, or notes."""
    if anchored is None:
        return [f"no head anchored in {name} yet (the next write anchors it)"] if count else []
    if count < anchored.lines:
        return Verdict(
            count,
            problem=f"the log has {count} lines but {name} anchors line {anchored.lines}: "
            "lines were cut off, or the log was deleted or replaced",
        )
    if hashes.get(anchored.lines) != anchored.sha256:
        return Verdict(
            count,
            anchored.lines,
            f"it is not the line anchored in {name}: the log was rewritten up to here "
            f"(chain and {HEAD_FILE} recomputed)",
        )
    if anchored.lines < count:
        return [
            f"{name} anchors line {anchored.lines} of {count} (an update failed; the next "
            "write anchors the rest)"
        ]
    return []


def entries(repo_path: Path, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """The records, oldest first (``since``: only those at or after it); unreadable lines
    are skipped here; ``verify`` is what reports them."""
    path = repo_path / AUDIT_FILE
    for entry in jsonlines.read(path, lambda entry: entry, on_bad=_left_to_verify):
        if since is None or _at(entry) >= since:
            yield entry


def _left_to_verify(_bad: jsonlines.BadLine) -> None:
    """A damaged line is ``verify``'s to report, with what it means for the chain."""


def _at(entry: dict[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(entry.get("ts", "")).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=utc_now().tzinfo)

"""The hash-chained audit log: every kind of tampering is caught and its first bad line named."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_run import lifeboat, write_config
from helpers import stored_backup
from sshd import free_port
from timing import LEASE_TTL

from engine.config.load import parse_config
from engine.repo import audit
from engine.repo.manifest import utc_now
from engine.repo.repository import Repository
from engine.scaleout.anchors import anchor_audit_log, anchors_of

Tamper = Callable[[list[bytes]], list[bytes]]


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    repository = Repository.open(tmp_path / "repo")
    for number in range(1, 6):
        audit.record(repository.path, "alice", "backup.delete", backup=f"b{number}")
    return repository


def lines_of(repo: Repository) -> list[bytes]:
    return (repo.path / audit.AUDIT_FILE).read_bytes().splitlines(keepends=True)


def rewrite(repo: Repository, lines: list[bytes]) -> None:
    (repo.path / audit.AUDIT_FILE).write_bytes(b"".join(lines))


def edit_value(lines: list[bytes]) -> list[bytes]:
    """Line 2 names another backup, still canonical JSON with its original prev."""
    entry = json.loads(lines[1])
    entry["backup"] = "innocent"
    return [lines[0], audit.canonical(entry) + b"\n", *lines[2:]]


def reformat(lines: list[bytes]) -> list[bytes]:
    """Line 3 says the same thing with other spacing."""
    return [*lines[:2], json.dumps(json.loads(lines[2]), indent=1).replace("\n", " ").encode()
            + b"\n", *lines[3:]]  # fmt: skip


def delete_middle(lines: list[bytes]) -> list[bytes]:
    return [*lines[:2], *lines[3:]]


def swap(lines: list[bytes]) -> list[bytes]:
    return [lines[0], lines[2], lines[1], *lines[3:]]


def truncate(lines: list[bytes]) -> list[bytes]:
    return lines[:3]


def garble_last(lines: list[bytes]) -> list[bytes]:
    return [*lines[:4], lines[4][:20] + b"\n"]


def edit_last(lines: list[bytes]) -> list[bytes]:
    """The last line changed; no line after it carries its hash, only audit.head does."""
    entry = json.loads(lines[4])
    entry["operator"] = "mallory"
    return [*lines[:4], audit.canonical(entry) + b"\n"]


@pytest.mark.parametrize(
    ("tamper", "bad_line", "words"),
    [
        (edit_value, 2, "it was edited: line 3 carries the hash of another line"),
        (reformat, 3, "not canonical JSON"),
        (delete_middle, 3, "it was written as line 4: lines before it were removed"),
        (swap, 2, "it was written as line 3: lines before it were removed, added or moved"),
        (truncate, 4, "the end was cut off"),
        (garble_last, 5, "not a JSON record"),
        (edit_last, 5, "not the last line Lifeboat wrote"),
    ],
    ids=["edit", "reformat", "delete", "reorder", "truncate", "garble", "edit-last"],
)
def test_tampering_is_detected_at_its_first_bad_line(
    repo: Repository, tamper: Tamper, bad_line: int, words: str
) -> None:
    assert audit.verify(repo.path).ok
    rewrite(repo, tamper(lines_of(repo)))
    verdict = audit.verify(repo.path)
    assert not verdict.ok
    assert verdict.bad_line == bad_line
    assert words in verdict.problem


def test_an_intact_log_verifies_and_keeps_growing(repo: Repository) -> None:
    verdict = audit.verify(repo.path)
    assert (verdict.ok, verdict.lines, verdict.note) == (True, 5, "")
    audit.record(repo.path, "bob", "restore.start", backup="b9")
    assert audit.verify(repo.path).lines == 6
    assert [e["operator"] for e in audit.entries(repo.path)][-1] == "bob"
    head = json.loads((repo.path / audit.HEAD_FILE).read_text())
    assert head["lines"] == 6
    assert oct((repo.path / audit.HEAD_FILE).stat().st_mode & 0o777) == "0o600"


def test_a_log_from_before_the_head_file_verifies_with_a_note(repo: Repository) -> None:
    (repo.path / audit.HEAD_FILE).unlink()
    verdict = audit.verify(repo.path)
    assert verdict.ok
    assert "cut off the end cannot be detected" in verdict.note
    audit.record(repo.path, "bob", "restore.start")  # counts the lines to start the head
    assert audit.read_head(repo.path) == (6, audit.read_head(repo.path)[1])  # type: ignore[index]
    assert audit.verify(repo.path).ok


async def test_every_record_names_the_one_operator_lifeboat_operator_first(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$LIFEBOAT_OPERATOR over the config's operator, resolved once when the config is read:
    the delete's and the prune's audit records name it (the sign-off's too: test_checklist)."""
    monkeypatch.setenv("LIFEBOAT_OPERATOR", "carol")
    config = write_config(
        tmp_path / "lifeboat.toml", f'operator = "alice"\n[repository]\npath = "{repo.path}"\n'
    )
    older, newer = (stored_backup(repo, utc_now() - timedelta(days=d), {"db": b"x\n"}, str(d))
                    for d in (2, 1))  # fmt: skip
    deleted = await lifeboat("backup", "delete", newer.id, "--confirm", newer.id, config=config)
    assert deleted.rc == 0, deleted.stderr
    stored_backup(repo, utc_now(), {"db": b"y\n"}, "now")
    pruned = await lifeboat("backup", "prune", "--keep", "1", config=config)
    assert pruned.rc == 0, pruned.stderr
    records = list(audit.entries(repo.path))[-2:]
    assert [(e["action"], e["backup"], e["operator"]) for e in records] == [
        ("backup.delete", newer.id, "carol"), ("backup.prune", older.id, "carol")
    ]  # fmt: skip


async def test_cli_verify_and_show(repo: Repository, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "lifeboat.toml", f'operator = "alice"\n[repository]\npath = "{repo.path}"\n'
    )
    good = await lifeboat("audit", "verify", config=config)
    assert good.rc == 0, good.stderr
    assert "OK, 5 line(s)" in good.stdout
    shown = await lifeboat("audit", "show", config=config)
    assert shown.rc == 0
    assert shown.stdout.count("backup.delete") == 5
    assert "backup=b3" in shown.stdout
    recent = await lifeboat("audit", "show", "--since", "1h", "--json", config=config)
    assert [json.loads(line)["backup"] for line in recent.stdout.splitlines()] == [
        "b1", "b2", "b3", "b4", "b5"
    ]  # fmt: skip
    bad_since = await lifeboat("audit", "show", "--since", "soon", config=config)
    assert bad_since.rc == 2
    assert "--since 'soon'" in bad_since.stderr
    rewrite(repo, swap(lines_of(repo)))
    bad = await lifeboat("audit", "verify", config=config)
    assert bad.rc == 1
    assert "line 2: it was written as line 3" in bad.stderr
    assert "Traceback" not in bad.stderr


def rechain(entries: list[dict[str, object]], numbered: bool = True) -> list[bytes]:
    """Lines for ``entries`` with every ``prev`` (and ``n``) recomputed: a whole new chain."""
    lines, previous = [], audit.GENESIS
    for number, entry in enumerate(entries, 1):
        entry = {k: v for k, v in entry.items() if k != "n"} | ({"n": number} if numbered else {})
        line = audit.canonical({**entry, "prev": previous})
        lines.append(line + b"\n")
        previous = audit.line_hash(line)
    return lines


def forge(repo: Repository, line: int) -> None:
    """Rewrite the log as anyone who can write the repository can: line ``line`` names another
    backup, and every hash after it and audit.head are recomputed to match."""
    entries = [json.loads(raw) for raw in lines_of(repo)]
    entries[line - 1]["backup"] = "innocent"
    lines = rechain(entries)
    rewrite(repo, lines)
    head = audit.Head(len(lines), audit.line_hash(lines[-1].rstrip(b"\n")))
    (repo.path / audit.HEAD_FILE).write_bytes(head.to_json() + b"\n")


def test_an_edit_of_a_line_without_a_number_is_reported_at_that_line(repo: Repository) -> None:
    """Logs written before lines carried their number: an edited line is still named."""
    rewrite(repo, rechain([json.loads(raw) for raw in lines_of(repo)], numbered=False))
    (repo.path / audit.HEAD_FILE).unlink()
    assert audit.verify(repo.path).ok
    rewrite(repo, edit_value(lines_of(repo)))
    verdict = audit.verify(repo.path)
    assert verdict.bad_line == 2
    assert verdict.problem.startswith("it was edited, or lines after it removed or moved")


def test_a_deleted_log_is_reported_even_after_the_next_write(repo: Repository) -> None:
    (repo.path / audit.AUDIT_FILE).unlink()
    verdict = audit.verify(repo.path)
    assert (verdict.ok, verdict.bad_line) == (False, None)
    assert verdict.problem == (
        "audit.jsonl is missing but audit.head says it had 5 lines: the log was deleted"
    )
    audit.record(repo.path, "mallory", "backup.delete", backup="b9")  # a fresh log begins
    assert audit.read_head(repo.path) == (5, audit.read_head(repo.path)[1])  # type: ignore[index]
    verdict = audit.verify(repo.path)
    assert not verdict.ok
    assert "the log ends after line 1 but audit.head says it has 5 lines" in verdict.problem


def test_a_crash_between_a_line_and_the_head_is_recovered_by_the_next_write(
    repo: Repository,
) -> None:
    """Lifeboat killed after writing line 6 and before audit.head: the head is one line
    behind. That verifies (saying so), and the next write brings the head up to date."""
    head_before = (repo.path / audit.HEAD_FILE).read_bytes()
    audit.record(repo.path, "bob", "restore.start", backup="b6")
    (repo.path / audit.HEAD_FILE).write_bytes(head_before)  # as if the head was never written
    verdict = audit.verify(repo.path)
    assert (verdict.ok, verdict.lines) == (True, 6)
    assert verdict.note == (
        "line 6 is not in audit.head yet (Lifeboat stopped between writing it and the head); "
        "the next write records it"
    )
    audit.record(repo.path, "bob", "restore.finish", backup="b6")
    assert audit.verify(repo.path) == audit.Verdict(7)
    assert audit.read_head(repo.path) == (7, audit.line_hash(lines_of(repo)[6].rstrip(b"\n")))
    assert [json.loads(raw)["n"] for raw in lines_of(repo)] == [1, 2, 3, 4, 5, 6, 7]


def test_a_head_two_lines_behind_is_still_reported(repo: Repository) -> None:
    head_before = (repo.path / audit.HEAD_FILE).read_bytes()
    audit.record(repo.path, "bob", "restore.start")
    audit.record(repo.path, "bob", "restore.finish")
    (repo.path / audit.HEAD_FILE).write_bytes(head_before)
    verdict = audit.verify(repo.path)
    assert verdict.bad_line == 6
    assert "appended by hand" in verdict.problem


def test_a_rewritten_chain_passes_alone_and_fails_against_an_etcd_anchor(
    etcd_member: Any, tmp_path: Path
) -> None:
    config = parse_config(
        f'[repository]\npath = "{tmp_path / "repo"}"\n'
        f'[coordination]\netcd = "{etcd_member.endpoint}"\nlease_ttl = {LEASE_TTL}\n'
    )
    repo = Repository.open(config.repository.path)
    anchor_audit_log(config)
    for number in range(1, 6):
        audit.record(repo.path, "alice", "backup.delete", backup=f"b{number}")
    anchors = anchors_of(config)
    name = f"etcd at {etcd_member.endpoint}"
    assert [a.name for a in anchors] == [name]
    assert audit.verify(repo.path, anchors) == audit.Verdict(5)

    forge(repo, 2)
    assert audit.verify(repo.path).ok  # the chain and the head alone cannot tell
    verdict = audit.verify(repo.path, anchors)
    assert (verdict.ok, verdict.bad_line) == (False, 5)
    assert verdict.problem == (
        f"it is not the line anchored in {name}: the log was rewritten up to here "
        "(chain and audit.head recomputed)"
    )
    # The next honest write does not launder the rewrite: the anchor stays as evidence.
    audit.record(repo.path, "bob", "restore.start")
    assert audit.verify(repo.path, anchors).bad_line == 5


def test_an_anchor_left_behind_catches_up_on_the_next_write(
    etcd_member: Any, tmp_path: Path
) -> None:
    """A write that could not anchor (here: from a process without the config) leaves the
    anchor behind the log: a note, and the next anchored write brings it up to date."""
    config = parse_config(
        f'[repository]\npath = "{tmp_path / "repo"}"\n'
        f'[coordination]\netcd = "{etcd_member.endpoint}"\nlease_ttl = {LEASE_TTL}\n'
    )
    repo = Repository.open(config.repository.path)
    anchors = anchors_of(config)
    audit.anchor_with(repo.path, anchors)
    audit.record(repo.path, "alice", "backup.delete", backup="b1")
    audit.anchor_with(repo.path, [])
    audit.record(repo.path, "alice", "backup.delete", backup="b2")
    verdict = audit.verify(repo.path, anchors)
    assert verdict.ok
    name = f"etcd at {etcd_member.endpoint}"
    assert verdict.note == (
        f"{name} anchors line 1 of 2 (an update failed; the next write anchors the rest)"
    )
    audit.anchor_with(repo.path, anchors)
    audit.record(repo.path, "alice", "backup.delete", backup="b3")
    assert audit.verify(repo.path, anchors) == audit.Verdict(3)
    with etcd_member.client() as client:
        value, _meta = client.get(f"/lifeboat/{repo.repo_id()}/audit/head")
    assert audit.Head.parse(value) == audit.read_head(repo.path)


async def test_the_catalog_anchors_what_the_cli_writes_and_verify_names_it(
    mongo: Any, tmp_path: Path
) -> None:
    repo_path = tmp_path / "repo"
    repo = Repository.open(repo_path)
    backup = stored_backup(repo, utc_now(), {"db": b"x"})
    uri = mongo.uri
    config = write_config(
        tmp_path / "lifeboat.toml",
        f'operator = "alice"\n[repository]\npath = "{repo_path}"\n'
        f"[catalog]\nmongo_uri = {json.dumps(uri)}\ntimeout = 10\n",
    )
    deleted = await lifeboat("backup", "delete", backup.id, "--confirm", backup.id, config=config)
    assert deleted.rc == 0, deleted.stderr
    with mongo.client() as client:
        [anchored] = client.lifeboat.audit_heads.find({"_id": repo.repo_id()})
    assert (anchored["lines"], anchored["sha256"]) == audit.read_head(repo_path)
    good = await lifeboat("audit", "verify", "--json", config=config)
    assert good.rc == 0, good.stderr
    name = f"the catalog at 127.0.0.1:{mongo.port}"
    assert json.loads(good.stdout) | {"note": None} == {
        "ok": True, "lines": 1, "bad_line": None, "problem": None, "note": None,
        "anchors": [name],
    }  # fmt: skip

    forge(repo, 1)
    bad = await lifeboat("audit", "verify", config=config)
    assert bad.rc == 1
    assert f"line 1: it is not the line anchored in {name}: the log was rewritten" in bad.stderr
    (repo_path / audit.AUDIT_FILE).unlink()
    (repo_path / audit.HEAD_FILE).unlink()
    gone = await lifeboat("audit", "verify", config=config)
    assert gone.rc == 1
    assert f"the log has 0 lines but {name} anchors line 1" in gone.stderr
    assert "Traceback" not in gone.stderr


def test_an_anchor_that_does_not_answer_warns_on_write_and_fails_verify(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The record is written all the same (the operation it records happened); verify cannot
    vouch for the log without its anchor, and says which."""
    port = free_port()  # nothing listens there
    config = parse_config(
        f'[repository]\npath = "{tmp_path / "repo"}"\n'
        f'[catalog]\nmongo_uri = "mongodb://127.0.0.1:{port}/?directConnection=true"\n'
        "timeout = 0.2\n"
    )
    repo = Repository.open(config.repository.path)
    anchor_audit_log(config)
    audit.record(repo.path, "alice", "backup.delete", backup="b1")
    assert audit.verify(repo.path) == audit.Verdict(1)
    [warning] = [r.getMessage() for r in caplog.records if r.name == "engine.repo.audit"]
    assert warning.startswith(f"could not anchor the audit head in the catalog at 127.0.0.1:{port}")
    assert warning.endswith("the next write tries again")
    verdict = audit.verify(repo.path, anchors_of(config))
    assert (verdict.ok, verdict.bad_line) == (False, None)
    assert verdict.problem.startswith(
        f"cannot check the anchored audit head: catalog: 127.0.0.1:{port} does not answer"
    )

"""The hash-chained audit log: every kind of tampering is caught and its first bad line named."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from test_cli import lifeboat, write_config

from engine import audit
from engine.repository import Repository

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
        (edit_value, 3, "prev hash does not match"),
        (reformat, 3, "not canonical JSON"),
        (delete_middle, 3, "prev hash does not match"),
        (swap, 2, "prev hash does not match"),
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
    assert "line 2: its prev hash does not match" in bad.stderr
    assert "Traceback" not in bad.stderr

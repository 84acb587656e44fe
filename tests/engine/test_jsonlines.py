"""The JSON-lines appender and its tolerant reader, shared by the audit log, drill history and
verify outcomes: whole lines, private modes, and damage skipped and reported, never raised."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest

from engine.repo import jsonlines
from engine.repo.jsonlines import BadLine


def read_all(path: Path) -> tuple[list[dict[str, Any]], list[BadLine]]:
    bad: list[BadLine] = []
    return list(jsonlines.read(path, lambda record: record, on_bad=bad.append)), bad


def test_an_append_writes_one_whole_line_in_a_private_file_and_directory(
    tmp_path: Path,
) -> None:
    log = tmp_path / "new" / "log.jsonl"
    jsonlines.append(log, {"b": 1, "a": "x"})
    jsonlines.append(log, {"b": 2, "a": "y"}, sort_keys=True)
    assert log.read_bytes() == b'{"b": 1, "a": "x"}\n{"a": "y", "b": 2}\n'
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700


def test_an_append_after_a_line_cut_short_ends_that_line_first(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    jsonlines.append(log, {"n": 1})
    with log.open("ab") as handle:
        handle.write(b'{"n": 2, "tor')
    jsonlines.append(log, {"n": 3})
    records, bad = read_all(log)
    assert records == [{"n": 1}, {"n": 3}]
    assert [(b.number, b.problem) for b in bad] == [(2, "not JSON")]


def test_a_line_with_a_newline_is_refused(tmp_path: Path) -> None:
    with jsonlines.opened(tmp_path / "log.jsonl") as fd, pytest.raises(ValueError, match="newline"):
        jsonlines.write_line(fd, b'{"a":\n1}')
    assert (tmp_path / "log.jsonl").read_bytes() == b""


def test_a_torn_last_line_is_skipped_and_reported_as_cut_short(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    jsonlines.append(log, {"n": 1})
    jsonlines.append(log, {"n": 2})
    with log.open("ab") as handle:
        handle.write(b'{"n": 3, "at": "2026-')
    records, bad = read_all(log)
    assert records == [{"n": 1}, {"n": 2}]
    assert bad == [BadLine(log, 3, "cut short (a write stopped by a crash)")]
    assert str(bad[0]) == "log.jsonl line 3: cut short (a write stopped by a crash); skipped"


@pytest.mark.parametrize(
    ("garbage", "problem"),
    [
        (b"not json at all", "not JSON"),
        (b"\xff\xfe{}", "not JSON"),
        (b"[" * 100_000, "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"a string"', "not a JSON object"),
        (b"null", "not a JSON object"),
    ],
    ids=["text", "bad-utf8", "deep-nesting", "array", "string", "null"],
)
def test_a_garbage_line_is_skipped_and_reported_and_the_rest_read(
    tmp_path: Path, garbage: bytes, problem: str
) -> None:
    log = tmp_path / "log.jsonl"
    log.write_bytes(b'{"n": 1}\n' + garbage + b'\n{"n": 2}\n')
    records, bad = read_all(log)
    assert records == [{"n": 1}, {"n": 2}]
    assert bad == [BadLine(log, 2, problem)]


def test_an_object_the_parser_refuses_is_skipped_and_reported(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_bytes(b'{"id": "a"}\n{"other": 1}\n{"id": 5}\n')

    def parse(data: dict[str, Any]) -> str:
        if not isinstance(data["id"], str):
            raise TypeError("id is not a string")
        return data["id"]

    bad: list[BadLine] = []
    assert list(jsonlines.read(log, parse, on_bad=bad.append)) == ["a"]
    assert [b.number for b in bad] == [2, 3]
    assert all(b.problem.startswith("not a record of this log") for b in bad)


def test_an_empty_or_missing_log_reads_as_no_records(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert read_all(empty) == ([], [])
    assert read_all(tmp_path / "missing.jsonl") == ([], [])
    blank = tmp_path / "blank.jsonl"
    blank.write_bytes(b"\n  \n")
    assert read_all(blank) == ([], [])


def test_a_skipped_line_is_logged_as_a_warning_by_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "drills.jsonl"
    log.write_bytes(json.dumps({"n": 1}).encode() + b"\n{oops\n")
    with caplog.at_level(logging.WARNING, logger="engine.repo.jsonlines"):
        assert list(jsonlines.read(log, lambda record: record)) == [{"n": 1}]
    assert [r.getMessage() for r in caplog.records] == ["drills.jsonl line 2: not JSON; skipped"]

"""The repository's write hook (what keeps the catalog current): once per write or batch, the
write lock as a batch, async batches off the event loop, and where its warnings go."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import stored_backup

from engine.config.load import parse_config
from engine.repo import locks
from engine.repo.repository import Repository, VerifyRecord
from engine.repo.retention import delete_backup, prune

START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class Heard:
    """A hook that records each call: whether the repository's lock was free, and the thread."""

    def __init__(self, repo: Repository, warning: str | None = None) -> None:
        self.repo = repo
        self.warning = warning
        self.calls: list[tuple[bool, threading.Thread]] = []

    def __call__(self) -> str | None:
        self.calls.append(
            (locks.current_holder(self.repo.lock_path) is None, threading.current_thread())
        )
        return self.warning


def repository(tmp_path: Path) -> Repository:
    return Repository.open(tmp_path / "repo")


def test_each_write_runs_the_hook_once_and_a_locked_operation_is_one_batch(
    tmp_path: Path,
) -> None:
    repo = repository(tmp_path)
    stored_backup(repo, START, {"db": b"unheard\n"})  # no hook attached yet: nothing runs
    heard = Heard(repo)
    repo.write_hook.attach(heard)
    made = [
        stored_backup(repo, START + timedelta(hours=h), {"db": b"x\n"}, f"b{h}") for h in (1, 2, 3)
    ]
    assert len(heard.calls) == 3  # each commit
    repo.record_verify(VerifyRecord(made[0].id, "2026-11-21T13:00:00Z", True))
    assert len(heard.calls) == 4

    delete_backup(repo, made[0].id, "tester")
    assert len(heard.calls) == 5
    config = parse_config(
        f'operator = "tester"\n[repository]\npath = {json.dumps(str(repo.path))}\n'
    )
    plan = prune(config, repo, "tester", dry_run=False, keep_last=1)
    assert len(plan.remove) == 2
    assert len(heard.calls) == 6  # two deletes under one lock: one call
    assert all(free for free, _ in heard.calls)  # after the lock was released


def test_a_batch_runs_the_hook_at_its_end_even_when_it_raises_and_its_warn_wins(
    tmp_path: Path,
) -> None:
    repo = repository(tmp_path)
    hook = repo.write_hook
    hook.wrote()  # nothing attached: nothing happens
    with hook.batch():
        hook.wrote()
    heard = Heard(repo, "the catalog missed this change")
    attached: list[str] = []
    hook.attach(heard, attached.append)

    hook.wrote()
    assert (len(heard.calls), attached) == (1, ["the catalog missed this change"])

    outer: list[str] = []
    with hook.batch(outer.append):
        hook.wrote()
        with hook.batch(attached.append):  # inside a batch: part of it
            hook.wrote()
        hook.wrote()
        assert len(heard.calls) == 1
    assert len(heard.calls) == 2
    assert outer == ["the catalog missed this change"]
    assert len(attached) == 1

    with hook.batch():
        pass  # nothing written: nothing to tell
    assert len(heard.calls) == 2

    def fails_after_a_write() -> None:
        with hook.batch():
            hook.wrote()
            raise RuntimeError("after a write")

    with pytest.raises(RuntimeError):
        fails_after_a_write()
    assert len(heard.calls) == 3  # the write stands, so the hook hears of it
    assert len(attached) == 2


async def test_an_async_batch_runs_the_hook_in_a_thread_and_is_its_tasks_own(
    tmp_path: Path,
) -> None:
    repo = repository(tmp_path)
    heard = Heard(repo, "the catalog missed this change")
    repo.write_hook.attach(heard)
    loop_thread = threading.current_thread()
    warned: list[threading.Thread] = []

    def warn(_text: str) -> None:
        warned.append(threading.current_thread())

    entered, leave = asyncio.Event(), asyncio.Event()

    async def job() -> None:
        async with repo.write_hook.batch_async(warn):
            await asyncio.to_thread(repo.write_hook.wrote)  # a write in a thread of the job
            await asyncio.gather(asyncio.to_thread(repo.write_hook.wrote))  # and in a subtask
            entered.set()
            await leave.wait()

    running = asyncio.ensure_future(job())
    await entered.wait()
    assert heard.calls == []  # the job's writes wait for its end
    repo.write_hook.wrote()  # another task's write is not part of the job's batch
    assert [thread for _, thread in heard.calls] == [loop_thread]
    leave.set()
    await running
    assert len(heard.calls) == 2
    assert heard.calls[1][1] is not loop_thread  # the job's hook ran off the event loop
    assert warned == [loop_thread]  # and its warning came back to the loop

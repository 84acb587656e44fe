"""Shell completion as a shell asks for it (click's protocol through the environment): backup
ids from the repository, source names from the config, nothing (and no traceback) when the
config is broken; and the scripts ``lifeboat completion SHELL`` prints."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_run import LIFEBOAT
from helpers import stored_backup

from engine.repo.repository import Repository


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "lifeboat.toml"
    path.write_text(
        f'operator = "tester"\n[repository]\npath = "{tmp_path / "repo"}"\n'
        '[hosts.h1]\naddress = "127.0.0.1"\n'
        '[sources.app-db]\nkind = "command"\nhost = "h1"\nbackup = ["true"]\n'
        '[sources.app-logs]\nkind = "command"\nhost = "h1"\nbackup = ["true"]\n'
        '[sources.etcd]\nkind = "command"\nhost = "h1"\nbackup = ["true"]\n'
    )
    return path


def complete(config: Path, words: str) -> list[str]:
    """What bash would offer after ``words`` (the last word is being typed)."""
    env = {
        **os.environ,
        "LIFEBOAT_CONFIG": str(config),
        "_LIFEBOAT_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
    }
    done = subprocess.run([LIFEBOAT], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return [line.partition(",")[2] for line in done.stdout.splitlines() if line]


def test_backup_ids_and_source_names_complete(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    repo = Repository.open(tmp_path / "repo")
    now = datetime.now(UTC).replace(microsecond=0)
    older = stored_backup(repo, now - timedelta(days=1), {"app-db": b"x"}, label="a")
    newer = stored_backup(repo, now, {"app-db": b"y"}, label="b")
    assert complete(config, "lifeboat backup show ") == [newer.id, older.id]
    assert complete(config, f"lifeboat restore {newer.id[:12]}") == [newer.id]
    assert complete(config, "lifeboat backup create --scope app-") == ["app-db", "app-logs"]
    assert complete(config, "lifeboat drill --source e") == ["etcd"]


def test_a_broken_config_offers_nothing(tmp_path: Path) -> None:
    config = tmp_path / "lifeboat.toml"
    config.write_text("[repository\n")
    assert complete(config, "lifeboat backup show ") == []


@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "complete -o nosort -F _lifeboat_completion lifeboat"),
    ("zsh", "#compdef lifeboat"),
    ("fish", "complete --no-files --command lifeboat"),
])  # fmt: skip
def test_each_shell_gets_its_script(shell: str, marker: str) -> None:
    done = subprocess.run(
        [LIFEBOAT, "completion", shell], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert marker in done.stdout
    assert "_LIFEBOAT_COMPLETE" in done.stdout

"""`lifeboat key generate`: an identity file age reads, 0600, never written over; only the
public recipient is printed."""

from __future__ import annotations

import asyncio
import stat
import subprocess
from pathlib import Path

from cli_run import lifeboat


async def test_key_generate_writes_an_identity_age_reads_and_prints_its_recipient(
    tmp_path: Path,
) -> None:
    path = tmp_path / "backup-key.txt"
    made = await lifeboat("key", "generate", str(path))
    assert made.rc == 0, made.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = next(line for line in path.read_text().splitlines() if line.startswith("AGE-"))
    assert secret not in made.stdout + made.stderr
    public = await asyncio.to_thread(
        subprocess.run, ["age-keygen", "-y", str(path)], capture_output=True, text=True
    )
    assert made.stdout.strip() == public.stdout.strip()
    assert made.stdout.startswith("age1")
    assert "keep it off the bastion" in made.stderr

    again = await lifeboat("key", "generate", str(path))
    assert again.rc == 2
    assert f"{path} exists; a key file is never overwritten" in again.stderr
    assert path.read_text().count("AGE-SECRET-KEY-1") == 1
    nowhere = await lifeboat("key", "generate", str(tmp_path / "no" / "such" / "key.txt"))
    assert nowhere.rc == 2
    assert "is not a directory" in nowhere.stderr

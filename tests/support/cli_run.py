"""Running ``lifeboat`` as an operator would: a real process, its exit code and its output."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from timing import DEADLINE

LIFEBOAT = str(Path(sys.executable).with_name("lifeboat"))


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str

    def json_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]


async def lifeboat(*args: str, config: Path | None = None, cwd: Path | None = None) -> Run:
    argv = [LIFEBOAT, *(["--config", str(config)] if config else []), *args]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        cwd=cwd,
        env={**os.environ, "LIFEBOAT_CONFIG": ""},
    )
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def with_signals(argv: list[str], *, ignored: tuple[int, ...] = ()) -> list[str]:
    """``argv`` started with SIGINT, SIGHUP and SIGTERM at their defaults (a shell without job
    control may hand pytest some of them ignored), except ``ignored``, as ``nohup`` does."""
    setup = "; ".join(
        f"signal.signal({number}, signal.{'SIG_IGN' if number in ignored else 'SIG_DFL'})"
        for number in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)
    )
    reset = f"import os, signal, sys; {setup}; os.execv(sys.argv[1], sys.argv[1:])"
    return [sys.executable, "-c", reset, *argv]


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path

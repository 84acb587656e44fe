"""Running ``lifeboat`` as an operator would: a real process, its exit code and its output."""

from __future__ import annotations

import asyncio
import json
import os
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


def with_default_sigint(argv: list[str]) -> list[str]:
    """``argv`` started with SIGINT at its default, as from a terminal where Ctrl-C works.

    A shell that starts pytest in the background without job control hands it SIGINT
    ignored, and an ignored signal stays ignored across exec: the child would never see
    the Ctrl-C a test sends it.
    """
    reset = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", reset, *argv]


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path

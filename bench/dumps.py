"""What the database dump benchmarks share (``pg_dump.py``, ``redis_dump.py``): the system
sshd on loopback, the baseline (the dump tool run by OpenSSH's own client into a file) and
Lifeboat's side (``lifeboat backup create`` as a subprocess, timed whole), best of the runs.

The baseline runs exactly the command Lifeboat runs on the host (the same tool, flags and
password handling), so the ratio measures what Lifeboat adds: the SSH client, reading the
dump as it streams (the tables' rows, the RDB's keys), sha256, fsync and the manifest.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# tests/ is not a package: pytest puts it on sys.path for conftest.py. Doing the same here
# starts sshd and the database servers exactly as the tests do.
sys.path.insert(0, str(ROOT / "tests" / "support"))
from sshd import OpenSSHServer, SSHTestServer  # noqa: E402

from engine.demo.server import generate_keys  # noqa: E402

MB = 1_000_000
HOST = "loopback"


@dataclass(frozen=True)
class Run:
    seconds: float
    bytes: int  # what the dump held
    peak_rss: int = 0  # bytes (Lifeboat's side)


@contextmanager
def sshd(work: Path) -> Iterator[SSHTestServer]:
    (work / "sshd").mkdir()
    server = OpenSSHServer(generate_keys(work / "keys"), work / "sshd")
    server.start()
    try:
        yield server.describe(getpass.getuser())
    finally:
        server.stop()


def time_ssh(server: SSHTestServer, command: str, out: Path, stdin: bytes = b"") -> Run:
    """``ssh HOST COMMAND > out`` (``stdin`` fed to it), connection setup included."""
    argv = [
        "ssh", "-F", "/dev/null", "-i", str(server.identity),
        "-o", f"UserKnownHostsFile={server.known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "-p", str(server.port), f"{server.user}@{server.address}", command,
    ]  # fmt: skip
    with out.open("wb") as file:
        started = time.perf_counter()
        subprocess.run(argv, input=stdin, stdout=file, check=True)
        seconds = time.perf_counter() - started
    return Run(seconds, out.stat().st_size)


def config_text(server: SSHTestServer, repo: Path, source: str) -> str:
    return (
        f'operator = "bench"\n[repository]\npath = {json.dumps(str(repo))}\n\n'
        f"[hosts.{HOST}]\naddress = {json.dumps(server.address)}\nport = {server.port}\n"
        f"user = {json.dumps(server.user)}\nidentity = {json.dumps(str(server.identity))}\n"
        f"known_hosts = {json.dumps(str(server.known_hosts))}\n\n{source}"
    )


def time_lifeboat(config: Path, repo: Path) -> Run:
    """``lifeboat backup create --json`` once, timed whole (start-up to exit), with its peak
    RSS; the size of what it stored (its plaintext, when encrypted)."""
    lifeboat = Path(sys.executable).with_name("lifeboat")
    if not lifeboat.exists():
        raise SystemExit(f"{lifeboat} not found: run this with the project venv's python")
    argv = [str(lifeboat), "--config", str(config), "backup", "create", "--json"]
    started = time.perf_counter()
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL) as process:
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"lifeboat backup create exited with status {process.returncode}")
    (manifest,) = repo.glob("backups/*/manifest.json")
    (artifact,) = json.loads(manifest.read_text())["artifacts"]
    size = sum(f.get("plain_bytes", f["bytes"]) for f in artifact["files"])
    return Run(seconds, size, usage.ru_maxrss * 1024)


def alternate(
    runs: int, baseline: Callable[[], Run], lifeboat: Callable[[], Run]
) -> tuple[Run, Run]:
    """Each side ``runs`` times, alternating (which goes first swaps each round); the best
    run of each."""
    base: list[Run] = []
    ours: list[Run] = []
    for i in range(runs):
        order = [(base, baseline), (ours, lifeboat)]
        for results, side in order if i % 2 == 0 else order[::-1]:
            results.append(side())
    return min(base, key=lambda r: r.seconds), min(ours, key=lambda r: r.seconds)


def report(title: str, detail: str, baseline_name: str, base: Run, ours: Run, runs: int) -> None:
    base_rate, our_rate = base.bytes / base.seconds / MB, ours.bytes / ours.seconds / MB
    print(title)
    print(f"  {detail}; best of {runs} run(s) per side; MB = 10^6 bytes; target: ratio >= 0.90")
    print(f"  baseline {baseline_name:<34} {base_rate:8.1f} MB/s  ({base.seconds:.2f} s)")
    print(
        f"  lifeboat backup create {'':<20} {our_rate:8.1f} MB/s  ({ours.seconds:.2f} s whole "
        "process: start-up, connect, reading the dump, sha256, fsync, manifest)"
    )
    print(f"  lifeboat peak RSS {'':<25} {ours.peak_rss / MB:8.1f} MB")
    print(f"ratio={base.seconds / ours.seconds:.2f}")

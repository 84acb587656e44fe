"""How fast Lifeboat pulls bytes over SSH, against OpenSSH's own client in the same run.

It starts the system ``sshd`` on 127.0.0.1 with generated keys, writes an incompressible file
(``os.urandom``; 1 GiB by default) into a temporary directory, and times, each against the same
server, file and disk:

(a) ``ssh -c aes128-gcm@openssh.com user@127.0.0.1 cat FILE > out`` (the baseline), and
(b) ``lifeboat backup create`` of a ``command`` source running ``cat FILE``: no compression,
    with sha256, fsync and the manifest commit included. It runs as a subprocess so that its
    peak RSS is Lifeboat's alone, and it is timed as a whole (interpreter start, config load,
    SSH connection, transfer, fsync, commit), as cron would see it; the time from the job's
    first event to its last is printed too, for comparison.

Both sides read a file that is in the page cache, after an untimed warm-up copy of it. With
``--runs N`` each side runs N times, alternating, and the best run of each side counts. It
prints both rates (MB = 10^6 bytes), Lifeboat's peak RSS, and on its last line ``ratio=X.XX``
(Lifeboat rate / OpenSSH rate). Targets (issue 20): ratio >= 0.75, pipeline_ratio >= 2.0,
peak RSS < 100 MB for 1 GiB.

Two more figures, for information: the equal-work shell pipeline
``ssh HOST cat FILE | tee out | sha256sum && sync`` (what a script doing Lifeboat's work
would run; ``pipeline_ratio`` is Lifeboat's rate over its rate), and the restore direction:
``ssh HOST 'cat > FILE2' < out`` against ``lifeboat restore ID --apply`` of the same backup
into the same file (the backup verified first, as every restore does; no safety backup).

Why the ratio stops where it does: on loopback, sshd shares this machine's cores with the
client, so the bench also prints the CPU-seconds the whole machine spent on each side
(``/proc/stat``), what sha256 of the file costs on one core, and two ceilings: the ratio
Lifeboat would reach if its measured work were spread perfectly over every core, and the one
a client that only adds the sha256 to the baseline's work could reach, with no start-up.

Run it as root or as a user allowed to start sshd (it needs ``/run/sshd``)::

    .venv/bin/python bench/ssh_throughput.py --size 1G
    .venv/bin/python bench/ssh_throughput.py --size 256M --runs 3
    .venv/bin/python bench/ssh_throughput.py --transport asyncssh   # the in-process path

The temporary directory holds at most about three times ``--size`` and is removed at the end.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchargs import compile_project, human, parse_size, positive_int

from engine.demo.server import generate_keys

ROOT = Path(__file__).resolve().parent.parent
# tests/ is not a package: pytest puts it on sys.path for conftest.py. Doing the same here lets
# the bench start sshd exactly the way the interoperability tests do, instead of a second copy.
sys.path.insert(0, str(ROOT / "tests" / "support"))
from sshd import OpenSSHServer, SSHTestServer  # noqa: E402

CIPHER = "aes128-gcm@openssh.com"
CHUNK = 4 * 1024 * 1024
MB = 1_000_000


@dataclass(frozen=True)
class Timed:
    seconds: float
    busy: float  # CPU-seconds the whole machine spent meanwhile (sshd's share included)


@dataclass(frozen=True)
class LifeboatRun:
    seconds: float  # process start to exit
    engine_seconds: float  # first job event to the last one
    peak_rss: int  # bytes
    busy: float  # as in Timed


def busy_seconds() -> float:
    """CPU-seconds all cores have spent busy since boot (``/proc/stat``: user, nice, system,
    irq and softirq; not idle, iowait or time stolen by the hypervisor)."""
    with open("/proc/stat") as stat:
        ticks = [int(field) for field in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = ticks[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def sha256_seconds(size: int) -> float:
    """CPU-seconds this machine needs to sha256 ``size`` bytes on one core (from memory)."""
    chunk = os.urandom(CHUNK)
    digest = hashlib.sha256()
    rounds = max(1, size // CHUNK)
    started = time.thread_time()
    for _ in range(rounds):
        digest.update(chunk)
    return (time.thread_time() - started) * size / (rounds * CHUNK)


def hashing_ceiling(baseline: Timed, hash_seconds: float, cores: int) -> float:
    """The best ratio any client that also hashes could reach against ``baseline``, counting
    no start-up at all: the hash's CPU-seconds fit first into the cores the baseline left
    idle; the rest lengthens the run, spread perfectly over every core."""
    idle = max(0.0, cores * baseline.seconds - baseline.busy)
    extra = max(0.0, hash_seconds - idle) / cores
    return baseline.seconds / (baseline.seconds + extra)


def make_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path`` and return their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as file:
        left = size
        while left:
            chunk = os.urandom(min(CHUNK, left))
            digest.update(chunk)
            file.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def ssh_argv(server: SSHTestServer, *command: str) -> list[str]:
    return [
        "ssh", "-F", "/dev/null", "-i", str(server.identity),
        "-o", f"UserKnownHostsFile={server.known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "-p", str(server.port), "-c", CIPHER,
        f"{server.user}@{server.address}", *command,
    ]  # fmt: skip


def time_openssh(server: SSHTestServer, source: Path, out: Path) -> Timed:
    """``ssh ... cat source > out``, connection setup included."""
    argv = ssh_argv(server, "cat", str(source))
    with out.open("wb") as file:
        started, busy = time.perf_counter(), busy_seconds()
        subprocess.run(argv, stdout=file, stdin=subprocess.DEVNULL, check=True)
        timed = Timed(time.perf_counter() - started, busy_seconds() - busy)
    if out.stat().st_size != source.stat().st_size:
        raise RuntimeError(f"ssh wrote {out.stat().st_size} bytes, expected the whole file")
    return timed


def write_config(
    path: Path,
    server: SSHTestServer,
    repo: Path,
    source: Path,
    extra: str = "",
    transport: str = "auto",
) -> None:
    path.write_text(
        f"""operator = "bench"
[repository]
path = {json.dumps(str(repo))}

[hosts.loopback]
address = {json.dumps(server.address)}
port = {server.port}
user = {json.dumps(server.user)}
identity = {json.dumps(str(server.identity))}
known_hosts = {json.dumps(str(server.known_hosts))}
bulk_transport = {json.dumps(transport)}

[sources.blob]
kind = "command"
host = "loopback"
backup = ["cat", {json.dumps(str(source))}]
restore = ["sh", "-c", {json.dumps("cat > " + shlex.quote(str(source) + ".restored"))}]
"""
        + extra
    )


def time_pipeline(server: SSHTestServer, source: Path, out: Path) -> float:
    """Seconds for ``ssh ... cat source | tee out | sha256sum && sync``: Lifeboat's work
    (transfer, write, hash, make it durable) done by a shell."""
    script = f"{shlex.join(ssh_argv(server, 'cat', str(source)))} | tee {out} | sha256sum && sync"
    started = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", script], check=True, capture_output=True)
    return time.perf_counter() - started


def time_ssh_upload(server: SSHTestServer, local: Path, remote: Path) -> float:
    """Seconds for ``ssh HOST 'cat > remote' < local``."""
    with local.open("rb") as file:
        started = time.perf_counter()
        subprocess.run(
            ssh_argv(server, f"cat > {shlex.quote(str(remote))}"), stdin=file, check=True
        )
        return time.perf_counter() - started


def time_lifeboat_restore(config: Path, repo: Path, target: Path, size: int) -> float:
    """Seconds for ``lifeboat restore ID --apply`` of the one backup, whole process."""
    lifeboat = Path(sys.executable).with_name("lifeboat")
    (backup,) = (repo / "backups").iterdir()
    argv = [
        str(lifeboat), "--config", str(config), "restore", backup.name, "--apply",
        "--confirm", "loopback", "--skip-safety-backup", "--reason", "benchmark",
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    if target.stat().st_size != size:
        raise RuntimeError(f"the restore wrote {target.stat().st_size} bytes, expected {size}")
    return seconds


def time_lifeboat(config: Path, repo: Path, size: int, sha256: str) -> LifeboatRun:
    """Run ``lifeboat backup create --json`` once; check the manifest (the plaintext's size and
    sha256, when encrypted); time and measure it."""
    lifeboat = Path(sys.executable).with_name("lifeboat")
    if not lifeboat.exists():
        raise SystemExit(f"{lifeboat} not found: run this with the project venv's python")
    argv = [str(lifeboat), "--config", str(config), "backup", "create", "--json"]
    events: list[float] = []  # when each job event arrived
    started, busy = time.perf_counter(), busy_seconds()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL) as process:
        assert process.stdout is not None
        for line in process.stdout:  # one JSON event per line, then the manifest (indented)
            if line.startswith(b'{"event"'):
                events.append(time.perf_counter())
        # Reaped here rather than by Popen, for the child's own resource usage (peak RSS).
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds, busy = time.perf_counter() - started, busy_seconds() - busy
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"lifeboat backup create exited with status {process.returncode}")
    (manifest_path,) = repo.glob("backups/*/manifest.json")
    (artifact,) = json.loads(manifest_path.read_text())["artifacts"]
    (entry,) = artifact["files"]
    content = (entry.get("plain_bytes", entry["bytes"]), entry.get("plain_sha256", entry["sha256"]))
    if content != (size, sha256):
        raise RuntimeError(f"lifeboat's artifact does not match the file: {entry}")
    return LifeboatRun(seconds, events[-1] - events[0], usage.ru_maxrss * 1024, busy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"), help="e.g. 256M")
    parser.add_argument("--runs", type=positive_int, default=1, help="per side; the best counts")
    parser.add_argument(
        "--transport",
        choices=["auto", "asyncssh"],
        default="auto",
        help="the host's bulk_transport: the system ssh (auto) or asyncssh in-process",
    )
    args = parser.parse_args()
    size: int = args.size
    runs: int = args.runs
    compile_project()

    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as tmp:
        work = Path(tmp)
        (work / "sshd").mkdir()
        server = OpenSSHServer(generate_keys(work / "keys"), work / "sshd")
        server.start()
        try:
            described = server.describe(getpass.getuser())
            source, out, repo = work / "blob.bin", work / "ssh.out", work / "repo"
            sha256 = make_file(source, size)
            # Untimed warm-up: in a VM, the first writes into never-touched guest memory are
            # much slower than later ones, which would penalise whichever side goes first.
            shutil.copyfile(source, out)
            out.unlink()
            config = work / "lifeboat.toml"
            write_config(config, described, repo, source, transport=args.transport)
            openssh: list[Timed] = []
            pipeline: list[float] = []
            lifeboat: list[LifeboatRun] = []
            upload: list[float] = []
            restore: list[float] = []
            restored = Path(f"{source}.restored")
            for _ in range(runs):
                openssh.append(time_openssh(described, source, out))
                pipeline.append(time_pipeline(described, source, out))
                lifeboat.append(time_lifeboat(config, repo, size, sha256))
                upload.append(time_ssh_upload(described, out, restored))
                restored.unlink()
                restore.append(time_lifeboat_restore(config, repo, restored, size))
                restored.unlink()
                out.unlink()
                shutil.rmtree(repo)
        finally:
            server.stop()

    version = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    fastest = min(openssh, key=lambda run: run.seconds)
    best_ssh = fastest.seconds
    best = min(lifeboat, key=lambda run: run.seconds)
    ssh_rate, lifeboat_rate = size / best_ssh / MB, size / best.seconds / MB
    cores, hash_seconds = os.cpu_count() or 1, sha256_seconds(size)
    print(f"SSH throughput: {human(size)} of random bytes over 127.0.0.1, {CIPHER}")
    print(f"  Lifeboat's bulk_transport: {args.transport}")
    print(f"  {version}; best of {runs} run(s) per side; MB = 10^6 bytes")
    print("  targets: ratio >= 0.75; pipeline_ratio >= 2.0; Lifeboat peak RSS < 100 MB for 1 GiB")
    print(f"  openssh  ssh HOST cat FILE > out      {ssh_rate:8.1f} MB/s  ({best_ssh:.2f} s)")
    print(
        f"  lifeboat backup create (command)      {lifeboat_rate:8.1f} MB/s  ({best.seconds:.2f} s"
        " whole process: start-up, connect, sha256, fsync, manifest)"
    )
    print(
        f"  lifeboat job only (first..last event) {size / best.engine_seconds / MB:8.1f} MB/s"
        f"  ({best.engine_seconds:.2f} s)"
    )
    peak_rss = max(run.peak_rss for run in lifeboat) / MB
    print(f"  lifeboat peak RSS                     {peak_rss:8.1f} MB")
    pipeline_rate = size / min(pipeline) / MB
    pipeline_seconds = min(pipeline)
    pipeline_line = f"{pipeline_rate:8.1f} MB/s  ({pipeline_seconds:.2f} s)"
    print(f"  pipeline ssh|tee|sha256sum && sync    {pipeline_line}")
    upload_rate, restore_rate = size / min(upload) / MB, size / min(restore) / MB
    print(f"  restore: ssh HOST 'cat > F' < out     {upload_rate:8.1f} MB/s  ({min(upload):.2f} s)")
    print(
        f"  restore: lifeboat restore --apply     {restore_rate:8.1f} MB/s  ({min(restore):.2f} s"
        " whole process: verify first, then the transfer)"
    )
    print(f"  CPU, the whole machine ({cores} cores, sshd included):")
    for name, seconds, busy in (
        ("openssh ", best_ssh, fastest.busy),
        ("lifeboat", best.seconds, best.busy),
    ):
        share = busy / seconds / cores
        print(f"    {name} {busy:5.2f} CPU-s in {seconds:.2f} s: {share:4.0%} of the cores")
    print(f"    sha256 of {human(size)}: {hash_seconds:.2f} CPU-s on one core")
    work_ceiling = best_ssh / (best.busy / cores)
    print(f"  ceilings: lifeboat's work spread perfectly over the cores: ratio {work_ceiling:.2f}")
    hash_ceiling = hashing_ceiling(fastest, hash_seconds, cores)
    print(f"            the baseline plus only the sha256, no start-up:  ratio {hash_ceiling:.2f}")
    print(f"pipeline_ratio={lifeboat_rate / pipeline_rate:.2f}")
    print(f"restore_ratio={restore_rate / upload_rate:.2f}")
    print(f"ratio={lifeboat_rate / ssh_rate:.2f}")


if __name__ == "__main__":
    main()

"""Off-host copies to S3, each side against boto3 on the same file in the same run.

- Copy: ``lifeboat copy --all --to NAME`` (a whole process: start-up, multipart upload with
  per-part SHA-256, the read-back check, the manifest) of a backup holding one file of
  ``--size`` random bytes, against boto3's ``upload_file`` of that file (its default
  TransferConfig). Targets: a ratio of at least 1.0, Lifeboat's peak RSS under 200 MB.
- Fetch: bringing the backup back into an empty repository (``restore --from`` does this
  first: streamed, hashed and written in one pass) against boto3's ``download_file``.
  Target: a ratio of at least 1.0.

The server is moto's standalone S3 server on 127.0.0.1 (what the tests use), over HTTPS
as production endpoints are (over plain HTTP, S3's signature covers each part's payload,
which botocore hashes on the caller's thread: the event loop, for aiobotocore). It is the
slowest part here, so both sides are bounded by it.

Run: ``.venv/bin/python bench/copy_s3.py [--size 1G]``. Prints ``copy_ratio=…``,
``fetch_ratio=…`` and ``peak_rss_mb=…`` last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from benchargs import human, parse_size
from ssh_throughput import make_file

from engine.config.load import load_config
from engine.events import Event
from engine.offsite.fetch import fetch_from
from engine.repo.manifest import Artifact, ArtifactFile, Manifest, utc_now
from engine.repo.repository import Repository, new_backup_id

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))
from s3_server import BUCKET, S3Server, s3_remote_toml  # noqa: E402

MB = 1_000_000


def stored_backup(repo: Repository, size: int) -> Manifest:
    """A committed backup of one file of ``size`` random bytes (no host needed)."""
    backup_id = new_backup_id()
    staging = repo.create_staging(backup_id)
    sha256 = make_file(staging / "blob.out", size)
    entry = ArtifactFile(path="blob.out", bytes=size, sha256=sha256)
    now = utc_now()
    manifest = Manifest(
        id=backup_id, created_at=now, finished_at=now, trigger="manual", operator="bench",
        tool_version="bench", scope=("blob",),
        artifacts=(Artifact(source="blob", kind="command-output", host="local", files=(entry,)),),
    )  # fmt: skip
    repo.commit(staging, manifest)
    return manifest


def lifeboat_copy(config: Path) -> tuple[float, int]:
    """Seconds and peak RSS (bytes) of ``lifeboat copy --all --to offsite``."""
    argv = [str(Path(sys.executable).with_name("lifeboat")), "--config", str(config)]
    started = time.perf_counter()
    with subprocess.Popen([*argv, "copy", "--all", "--to", "offsite", "--json"],
                          stdout=subprocess.PIPE, stdin=subprocess.DEVNULL) as process:  # fmt: skip
        out = process.stdout.read() if process.stdout else b""
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"lifeboat copy exited with {process.returncode}")
    (outcome,) = json.loads(out.decode().strip().splitlines()[-1])
    if not outcome["sent"]:
        raise RuntimeError(f"lifeboat copy sent nothing: {outcome}")
    return seconds, usage.ru_maxrss * 1024


def ignore(_event: Event) -> None:
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"), help="e.g. 256M")
    args = parser.parse_args()
    size: int = args.size
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret")
    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as tmp:
        work = Path(tmp)
        (work / "s3").mkdir()
        server = S3Server(work / "s3", tls=True)
        server.start()
        try:
            client = boto3.client(
                "s3",
                endpoint_url=server.url,
                region_name="us-east-1",
                verify=str(server.certificate),
            )
            client.create_bucket(Bucket=BUCKET)
            config = work / "lifeboat.toml"
            config.write_text(f'[repository]\npath = "{work / "repo"}"\n' + s3_remote_toml(server))
            manifest = stored_backup(Repository.open(work / "repo"), size)
            blob = work / "repo" / "backups" / manifest.id / "blob.out"
            started = time.perf_counter()
            client.upload_file(str(blob), BUCKET, "boto3/blob.out")
            boto3_up = time.perf_counter() - started
            ours_up, peak_rss = lifeboat_copy(config)
            started = time.perf_counter()
            client.download_file(BUCKET, "boto3/blob.out", str(work / "boto3.out"))
            boto3_down = time.perf_counter() - started
            (work / "boto3.out").unlink()
            fresh = work / "fresh"
            config.write_text(f'[repository]\npath = "{fresh}"\n' + s3_remote_toml(server))
            loaded = load_config(config)
            started = time.perf_counter()
            asyncio.run(fetch_from(loaded, Repository.open(fresh), "offsite", manifest.id, ignore))
            ours_down = time.perf_counter() - started
        finally:
            server.stop()
    rate = {name: size / seconds / MB for name, seconds in (
        ("boto3_up", boto3_up), ("ours_up", ours_up),
        ("boto3_down", boto3_down), ("ours_down", ours_down),
    )}  # fmt: skip
    print(f"size {human(size)} of random bytes to moto's S3 server, HTTPS on 127.0.0.1; MB = 10^6")
    print(f"boto3 upload_file                  {rate['boto3_up']:8.1f} MB/s")
    print(f"lifeboat copy (whole process)      {rate['ours_up']:8.1f} MB/s")
    print(f"boto3 download_file                {rate['boto3_down']:8.1f} MB/s")
    print(f"lifeboat fetch into a repository   {rate['ours_down']:8.1f} MB/s")
    print(f"copy_ratio={rate['ours_up'] / rate['boto3_up']:.2f}")
    print(f"fetch_ratio={rate['ours_down'] / rate['boto3_down']:.2f}")
    print(f"peak_rss_mb={peak_rss / MB:.0f}")


if __name__ == "__main__":
    main()

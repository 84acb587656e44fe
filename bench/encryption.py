"""Encryption at rest, each side against a baseline measured in the same run.

- Backup: ``lifeboat backup create`` of a command source (``cat`` of a file of random bytes)
  through the system sshd on 127.0.0.1, with ``[encryption]`` against the same backup without
  it. Issue 17's target: a ratio of at least 0.8.
- Decrypt: reading the encrypted backup's file back as a restore does (``Keyring.open``, the
  one reader every restore and deep verify uses) against ``age -d`` (Debian's age CLI) on the
  same file, cached, both into /dev/null. Target: a ratio of at least 0.9.

Each side runs ``--runs`` times, alternating, and the best run of each counts.

Run: ``.venv/bin/python bench/encryption.py [--size 1G] [--runs 2]``. Prints
``backup_ratio=…`` and ``decrypt_ratio=…`` last.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchargs import human, parse_size, positive_int
from ssh_throughput import OpenSSHServer, make_file, time_lifeboat, write_config

from engine.crypto.age import Identity
from engine.demo.server import generate_keys
from engine.repo.content import Keyring
from engine.repo.repository import Repository

PIECE = 1024 * 1024
MB = 1_000_000


def read_back(repo_path: Path, identity: Identity) -> tuple[float, Path]:
    """Seconds to read the (only) backup's file decrypted, as a restore does; and its path.
    The file is read once before (untimed): the backup dropped it from the page cache as it
    wrote it, and both readers are to be timed on the same (cached) file."""
    repo = Repository.open(repo_path)
    (manifest,) = repo.list_backups()[0]
    (artifact,) = manifest.artifacts
    (entry,) = artifact.files
    directory = repo.backup_dir(manifest.id)
    keyring = Keyring((identity,)).for_backup(manifest)
    with (directory / entry.path).open("rb") as warm:
        while warm.read(PIECE):
            pass
    started = time.perf_counter()
    with keyring.open(directory, entry) as content, open(os.devnull, "wb") as sink:
        while piece := content.read(PIECE):
            sink.write(piece)
    return time.perf_counter() - started, directory / entry.path


def age_decrypt(sealed: Path, key: Path) -> float:
    argv = ["age", "-d", "-i", str(key), "-o", os.devnull, str(sealed)]
    started = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"), help="e.g. 256M")
    parser.add_argument("--runs", type=positive_int, default=2, help="per side; the best counts")
    args = parser.parse_args()
    size: int = args.size
    identity = Identity.generate()
    encryption = f'\n[encryption]\nrecipients = ["{identity.recipient}"]\n'
    plain_s: list[float] = []
    sealed_s: list[float] = []
    ours_s: list[float] = []
    age_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as tmp:
        work = Path(tmp)
        (work / "sshd").mkdir()
        key = work / "key.txt"
        key.write_text(identity.secret_text() + "\n")
        key.chmod(0o600)
        server = OpenSSHServer(generate_keys(work / "keys"), work / "sshd")
        server.start()
        try:
            described = server.describe(getpass.getuser())
            source, repo = work / "blob.bin", work / "repo"
            sha256 = make_file(source, size)
            plain, sealed = work / "plain.toml", work / "sealed.toml"
            write_config(plain, described, repo, source)
            write_config(sealed, described, repo, source, encryption)
            for _ in range(args.runs):
                plain_s.append(time_lifeboat(plain, repo, size, sha256).seconds)
                shutil.rmtree(repo)
                sealed_s.append(time_lifeboat(sealed, repo, size, sha256).seconds)
                seconds, stored = read_back(repo, identity)
                ours_s.append(seconds)
                age_s.append(age_decrypt(stored, key))
                shutil.rmtree(repo)
        finally:
            server.stop()
    rate = {
        name: size / min(runs) / MB
        for name, runs in (
            ("plain", plain_s),
            ("sealed", sealed_s),
            ("ours", ours_s),
            ("age", age_s),
        )
    }
    print(f"size {human(size)} of random bytes, best of {args.runs} run(s) per side; MB = 10^6")
    print(f"backup create, plaintext        {rate['plain']:8.1f} MB/s")
    print(f"backup create, encrypted (age)  {rate['sealed']:8.1f} MB/s")
    print(f"age -d of the stored file       {rate['age']:8.1f} MB/s")
    print(f"Lifeboat reading it back        {rate['ours']:8.1f} MB/s")
    print(f"backup_ratio={rate['sealed'] / rate['plain']:.2f}")
    print(f"decrypt_ratio={rate['ours'] / rate['age']:.2f}")


if __name__ == "__main__":
    main()

"""The age format's two rates, each against a baseline measured in the same run.

- Encrypting: Lifeboat's ``Encryptor`` on each hashed piece (what the repository sink does
  with each chunk) against the same hashing of the plaintext. Issue 17's target for a whole
  encrypted backup is a ratio of at least 0.8; this is the encryption's own cost, before SSH
  (slower than either side here) bounds a backup.
- Decrypting: Lifeboat's ``Decryptor`` against ``age -d`` (Debian's age CLI) on the same file.
  Target: a ratio of at least 0.9.

Outputs go to /dev/null, so that the disk does not decide; each side runs ``--runs`` times,
alternating, and the best run of each counts.

Run: ``.venv/bin/python bench/encryption.py [--size 1G]``. Prints ``encrypt_ratio=…`` and
``decrypt_ratio=…`` last.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchargs import human, parse_size, positive_int

from engine.crypto.age import Decryptor, Encryptor, Identity

PIECE = 1024 * 1024  # what a source hands the sink at a time


def timed(work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def hashed_write(source: Path, encryptor: Encryptor | None) -> None:
    """Read ``source`` in pieces, hash each (as the sink does), write it (encrypted)."""
    digest = hashlib.sha256()
    with source.open("rb") as reader, open(os.devnull, "wb") as writer:
        if encryptor is not None:
            writer.write(encryptor.header())
        while piece := reader.read(PIECE):
            digest.update(piece)
            writer.write(encryptor.update(piece) if encryptor else piece)
        if encryptor is not None:
            writer.write(encryptor.finish())


def lifeboat_decrypt(sealed: Path, identity: Identity) -> None:
    decryptor = Decryptor([identity])
    with sealed.open("rb") as reader, open(os.devnull, "wb") as writer:
        while piece := reader.read(PIECE):
            writer.write(decryptor.feed(piece))
        writer.write(decryptor.finish())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"))
    parser.add_argument("--runs", type=positive_int, default=3)
    args = parser.parse_args()
    size = args.size
    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as tmp:
        root = Path(tmp)
        plain, sealed = root / "plain", root / "sealed.age"
        with plain.open("wb") as out:
            for _ in range(0, size, PIECE):
                out.write(os.urandom(min(PIECE, size)))
        identity = Identity.generate()
        key = root / "key.txt"
        key.write_text(identity.secret_text() + "\n")
        encryptor = Encryptor([identity.recipient])
        with plain.open("rb") as reader, sealed.open("wb") as writer:
            writer.write(encryptor.header())
            while piece := reader.read(PIECE):
                writer.write(encryptor.update(piece))
            writer.write(encryptor.finish())
        age_argv = ["age", "-d", "-i", str(key), "-o", os.devnull, str(sealed)]
        plain_s, encrypted_s, age_s, ours_s = [], [], [], []
        for _ in range(args.runs):
            plain_s.append(timed(lambda: hashed_write(plain, None)))
            encrypted_s.append(timed(lambda: hashed_write(plain, Encryptor([identity.recipient]))))
            age_s.append(timed(lambda: subprocess.run(age_argv, check=True)))
            ours_s.append(timed(lambda: lifeboat_decrypt(sealed, identity)))
        check = subprocess.run(["age", "-d", "-i", str(key), str(sealed)], capture_output=True)
        same = check.stdout == plain.read_bytes()
    mib = size / 1024**2
    best = {
        name: min(runs)
        for name, runs in (
            ("plain", plain_s),
            ("encrypted", encrypted_s),
            ("age", age_s),
            ("ours", ours_s),
        )
    }
    print(f"size {human(size)}, best of {args.runs}; age -d reads what Lifeboat wrote: {same}")
    print(f"hashing, plain           {mib / best['plain']:8.0f} MiB/s")
    print(f"hashing and encrypting   {mib / best['encrypted']:8.0f} MiB/s")
    print(f"age -d                   {mib / best['age']:8.0f} MiB/s")
    print(f"Lifeboat decrypt         {mib / best['ours']:8.0f} MiB/s")
    print(f"encrypt_ratio={best['plain'] / best['encrypted']:.2f}")
    print(f"decrypt_ratio={best['age'] / best['ours']:.2f}")


if __name__ == "__main__":
    main()

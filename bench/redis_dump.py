"""How fast Lifeboat backs up Redis, against ``ssh HOST redis-cli --rdb - > file``.

It starts Debian's redis-server on loopback as the tests do (no saves of its own, the sync
without delay), fills it with ``DEBUG POPULATE``: ``--keys`` string keys of ``--value``
bytes in database 0, plus a tenth as many in database 1 with a TTL, then starts the system
sshd on loopback and times, against the same server and data:

(a) the baseline: OpenSSH's client running the very command Lifeboat runs on the host
    (``redis-cli -h 127.0.0.1 -p PORT --no-auth-warning --rdb -``) into a local file;
(b) ``lifeboat backup create`` of a ``redis`` source on that server, as a subprocess timed
    whole: start-up, the SSH connection, the snapshot read as it streams (every record
    stepped over, keys counted per database, the CRC-64), sha256, fsync, the manifest.

Both sides make the server fork and write a fresh snapshot for them. The sides alternate
``--runs`` times (default 2) and the best run of each counts. The last line is
``ratio=X.XX`` (baseline time / Lifeboat time). Target: ratio >= 0.9. Many small keys cost
the reader more than few large ones; ``--value 16`` shows the worst case::

    .venv/bin/python bench/redis_dump.py
    .venv/bin/python bench/redis_dump.py --keys 5000000 --value 16 --runs 3
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from benchargs import positive_int
from dumps import HOST, Run, alternate, config_text, report, sshd, time_lifeboat, time_ssh
from redis_server import RedisServer

from engine.config.load import parse_config
from engine.remote.commands import quote_command
from engine.sources.redis import RedisSource


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=positive_int, default=1_000_000, help="in database 0")
    parser.add_argument("--value", type=positive_int, default=200, help="bytes per value")
    parser.add_argument("--runs", type=positive_int, default=2, help="per side; the best counts")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as tmp:
        work = Path(tmp)
        (work / "redis").mkdir()
        redis = RedisServer(work / "redis", debug=True)
        redis.start()
        try:
            redis.cli("DEBUG", "POPULATE", str(args.keys), "key", str(args.value))
            expiring = max(args.keys // 10, 1)
            redis.cli(stdin=f"SELECT 1\nDEBUG POPULATE {expiring} ttl {args.value}\n")
            redis.cli(
                stdin="SELECT 1\n" + "".join(f"EXPIRE ttl:{i} 86400\n" for i in range(expiring))
            )
            with sshd(work) as server:
                source = f'[sources.cache]\nkind = "redis"\nhost = "{HOST}"\nport = {redis.port}\n'
                config, repo = work / "lifeboat.toml", work / "repo"
                config.write_text(config_text(server, repo, source))
                cache = RedisSource("cache", parse_config(config.read_text()).sources["cache"])
                command = quote_command(cache.cli_argv("--rdb", "-"))

                def baseline() -> Run:
                    return time_ssh(server, command, work / "ssh.rdb")

                def lifeboat() -> Run:
                    shutil.rmtree(repo, ignore_errors=True)
                    return time_lifeboat(config, repo)

                base, ours = alternate(args.runs, baseline, lifeboat)
        finally:
            redis.stop()
    detail = f"{args.keys:,} keys of {args.value} bytes (+{expiring:,} with a TTL in db 1)"
    report(
        "Redis snapshot over SSH (127.0.0.1)",
        detail,
        "ssh HOST redis-cli --rdb - > file",
        base,
        ours,
        args.runs,
    )


if __name__ == "__main__":
    main()

"""How fast Lifeboat backs up a PostgreSQL database, against ``ssh HOST pg_dump -Fc > file``.

It starts PostgreSQL on loopback as the tests do (Debian's server; as the ``postgres`` user
when run as root; password authentication over TCP), fills one database with
``pgbench -i --scale N`` (pgbench_accounts holds 100,000 rows per scale step) and an events
table of text (``--events`` rows: ids, times, md5 tokens and messages), starts the system
sshd on loopback and times, against the same server and data:

(a) the baseline: OpenSSH's client running the very command Lifeboat runs on the host
    (``pg_dump -Fc -h 127.0.0.1 -p PORT -U postgres -w -d bench``, the password read from
    stdin into PGPASSWORD) into a local file;
(b) ``lifeboat backup create`` of a ``postgres`` source on that database (``globals =
    false``: the same single dump), as a subprocess timed whole: start-up, the SSH
    connection, the dump read as it streams (its table of contents, every block inflated and
    its rows counted), sha256, fsync, the manifest.

The sides alternate ``--runs`` times (default 2) and the best run of each counts. The last
line is ``ratio=X.XX`` (baseline time / Lifeboat time). Target: ratio >= 0.9. pg_dump
compresses on one core; Lifeboat's reader inflates on another, so on a 2-core machine they
compete with sshd and the server::

    .venv/bin/python bench/pg_dump.py
    .venv/bin/python bench/pg_dump.py --scale 50 --events 2000000 --runs 3
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchargs import positive_int
from dumps import HOST, Run, alternate, config_text, report, sshd, time_lifeboat, time_ssh
from pg_server import PASSWORD, PostgresServer

from engine.config.load import parse_config
from engine.remote.commands import quote_command
from engine.sources.postgres import PostgresSource

DATABASE = "bench"
EVENTS = """CREATE TABLE events AS SELECT g AS id, now() - g * interval '1 second' AS at,
  md5(g::text) AS token, md5((g * 7)::text) || ' ' || md5((g * 13)::text) AS message
  FROM generate_series(1, {rows}) g"""


def seed(postgres: PostgresServer, scale: int, events: int) -> None:
    postgres.create_database(DATABASE)
    subprocess.run(
        [str(postgres.bin / "pgbench"), "-i", "-q", "--scale", str(scale), "-h",
         str(postgres.directory), "-p", str(postgres.port), "-U", "postgres", DATABASE],
        check=True, capture_output=True,
    )  # fmt: skip
    postgres.psql(DATABASE, EVENTS.format(rows=events))
    postgres.psql(DATABASE, "VACUUM ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=positive_int, default=10, help="pgbench's scale")
    parser.add_argument("--events", type=positive_int, default=500_000, help="rows of text")
    parser.add_argument("--runs", type=positive_int, default=2, help="per side; the best counts")
    args = parser.parse_args()

    postgres = PostgresServer()
    postgres.start()
    try:
        seed(postgres, args.scale, args.events)
        size = postgres.psql(DATABASE, f"SELECT pg_size_pretty(pg_database_size('{DATABASE}'))")
        with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as tmp:
            work = Path(tmp)
            (work / "pg.password").write_text(PASSWORD + "\n")
            with sshd(work) as server:
                source = (
                    f'[sources.pg]\nkind = "postgres"\nhost = "{HOST}"\nport = {postgres.port}\n'
                    f'databases = ["{DATABASE}"]\nbin_dir = "{postgres.bin}"\nglobals = false\n'
                    f'password_file = "{work / "pg.password"}"\n'
                )
                config, repo = work / "lifeboat.toml", work / "repo"
                config.write_text(config_text(server, repo, source))
                pg = PostgresSource("pg", parse_config(config.read_text()).sources["pg"])
                command = quote_command(pg.tool_argv("pg_dump", "-Fc", "-d", DATABASE))

                def baseline() -> Run:
                    return time_ssh(server, command, work / "ssh.dump", f"{PASSWORD}\n".encode())

                def lifeboat() -> Run:
                    shutil.rmtree(repo, ignore_errors=True)
                    return time_lifeboat(config, repo)

                base, ours = alternate(args.runs, baseline, lifeboat)
    finally:
        postgres.stop()
    detail = (
        f"pgbench scale {args.scale} + {args.events:,} event rows ({size} on disk), "
        f"PostgreSQL from {postgres.bin}"
    )
    report(
        "PostgreSQL dump over SSH (127.0.0.1)",
        detail,
        "ssh HOST pg_dump -Fc > file",
        base,
        ours,
        args.runs,
    )


if __name__ == "__main__":
    main()

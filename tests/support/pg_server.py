"""A PostgreSQL server on loopback for tests (Debian's ``postgresql``): random port, its
cluster in a temporary directory, run as the ``postgres`` user when the tests run as root
(the server refuses root). TCP connections need the password; the fixture's own ``psql``
comes through the socket, trusted."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sshd import free_port, terminate

from engine.demo.postgres import initdb_argv, psql_argv, server_argv, server_bin, server_user

PASSWORD = "pg-test-secret"
SHOP = """
CREATE SCHEMA billing;
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, note text);
INSERT INTO items (name, note)
  SELECT 'item' || g, CASE WHEN g % 3 = 0 THEN E'two\\nlines' END
  FROM generate_series(1, {items}) g;
CREATE INDEX items_name ON items (name);
CREATE TABLE billing.invoices (id int PRIMARY KEY, item int REFERENCES items (id), total numeric);
INSERT INTO billing.invoices SELECT g, g, g * 1.5 FROM generate_series(1, {invoices}) g;
CREATE TABLE empty_one (x int);
CREATE VIEW cheap AS SELECT * FROM items WHERE id < 10;
"""


class PostgresServer:
    def __init__(self) -> None:
        self.bin = server_bin()
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="lifeboat-pg-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.user = server_user()

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def start(self) -> None:
        if self.user is not None:
            shutil.chown(self.directory, self.user)
        password = self.directory / "pwfile"
        password.write_text(PASSWORD + "\n")
        if self.user is not None:
            shutil.chown(password, self.user)
        self._as_server_user(initdb_argv(self.bin, self.data, password))
        password.unlink()
        argv = server_argv(self.bin, self.data, self.port, self.directory)
        with (self.directory / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, user=self.user
            )
        self._until_answering()

    def _as_server_user(self, argv: list[str]) -> None:
        done = subprocess.run(argv, capture_output=True, user=self.user, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.decode(errors='replace')}")

    def _until_answering(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {self._log()}")
            if self.psql("postgres", "SELECT 1", check=False) == "1":
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"postgres did not answer: {self._log()}")

    def psql(self, database: str, sql: str, *, check: bool = True) -> str:
        """``sql`` in ``database`` through the socket; its output (unaligned), stripped."""
        done = subprocess.run(
            [*psql_argv(self.bin, self.directory, self.port, database), "-c", sql],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr}")
        return done.stdout.strip()

    def seeded(self, prefix: str, items: int, invoices: int, extra: str = "") -> str:
        """A fresh database of its own name: two schemas' tables, ``items`` rows (every third
        holding a line break) and ``invoices`` with a foreign key into them, an index, a
        sequence, a view, an empty table; then ``extra`` SQL."""
        name = f"{prefix}_{secrets.token_hex(3)}"
        self.create_database(name)
        self.psql(name, SHOP.format(items=items, invoices=invoices) + extra)
        return name

    def create_database(self, name: str) -> None:
        self.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.psql("postgres", f'CREATE DATABASE "{name}"')

    def _log(self) -> str:
        return (self.directory / "server.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        terminate(self.process)
        shutil.rmtree(self.directory, ignore_errors=True)

"""A MongoDB wire-protocol server on loopback for tests: ``mongod`` if installed, else nx-27017.

nx-27017 (from PyPI) is a real server speaking the MongoDB wire protocol over SQLite:
pymongo talks to it over TCP exactly as to mongod.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pymongo
from sshd import free_port, terminate


class MongoServer:
    """A server on 127.0.0.1 with its data in ``directory``; ``uri`` is as seen locally."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.log = directory / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.kind = "mongod" if shutil.which("mongod") else "nx-27017"

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def _argv(self) -> list[str]:
        data = self.directory / "data"
        data.mkdir(exist_ok=True)
        if self.kind == "mongod":
            return [
                "mongod",
                "--bind_ip",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dbpath",
                str(data),
            ]
        nx = Path(sys.executable).with_name("nx-27017")
        return [
            str(nx), "--data-dir", str(data), "--host", "127.0.0.1", "-p", str(self.port),
            "--log-file", str(self.log), "--pid-file", str(self.directory / "nx.pid"),
        ]  # fmt: skip

    def start(self, timeout: float = 20.0) -> None:
        with (self.directory / "stdout.log").open("ab") as out:
            self.process = subprocess.Popen(self._argv(), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited: {self._logs()}")
            try:
                with self.client(timeout_ms=500) as client:
                    client.admin.command("ping")
                return
            except pymongo.errors.PyMongoError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.kind} did not answer: {self._logs()}")

    def _logs(self) -> str:
        texts = [p.read_text(errors="replace")[-2000:] for p in self.directory.glob("*.log")]
        return "\n".join(texts)

    def client(self, timeout_ms: int = 5000) -> pymongo.MongoClient:
        return pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=timeout_ms)

    def stop(self) -> None:
        terminate(self.process)

"""A Redis server on loopback for tests (Debian's ``redis-server``), with ``redis-cli`` to
talk to it: random port, data in a temporary directory, nothing saved unless asked."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from sshd import free_port, terminate

from engine.demo.services import BackgroundService


class RedisServer:
    def __init__(self, directory: Path, *, debug: bool = False) -> None:
        self.directory = directory
        self.debug = debug  # DEBUG commands allowed (the benchmark's DEBUG POPULATE)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def rdb_path(self) -> Path:
        return self.directory / "dump.rdb"

    @property
    def argv(self) -> list[str]:
        """redis-server on its config file (written here: no empty argument, which a config's
        start command may not hold)."""
        conf = self.directory / "redis.conf"
        conf.write_text(
            f"bind 127.0.0.1\nport {self.port}\ndir {self.directory}\ndbfilename dump.rdb\n"
            'save ""\nappendonly no\nprotected-mode no\nrepl-diskless-sync-delay 0\n'
            + ("enable-debug-command yes\n" if self.debug else "")
        )
        return ["redis-server", str(conf)]

    def start(self) -> None:
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        self._until_answering()

    def start_as(self, service: BackgroundService) -> None:
        """Started by ``service``'s start command (so that its stop command stops it)."""
        subprocess.run(service.start, check=True, timeout=60)
        self._until_answering()

    def stop_service(self, service: BackgroundService) -> None:
        subprocess.run(service.stop, check=True, timeout=60)

    def _until_answering(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self._log()}")
            if self.cli("PING", check=False) == "PONG":
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer: {self._log()}")

    def cli(self, *args: str, check: bool = True, stdin: str | None = None) -> str:
        """``redis-cli`` against this server; its output, stripped."""
        done = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],
            input=stdin, capture_output=True, text=True, check=check, timeout=60,
        )  # fmt: skip
        return done.stdout.strip()

    def _log(self) -> str:
        return (self.directory / "redis.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        terminate(self.process)

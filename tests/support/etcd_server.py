"""A real etcd member on loopback for tests: random ports, a temp data dir, stopped after."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import etcd3
from sshd import free_port, terminate


class EtcdServer:
    """``etcd`` (Debian's etcd-server) with its client and peer ports on 127.0.0.1."""

    def __init__(self, directory: Path, name: str = "member1", data_dir: Path | None = None):
        if shutil.which("etcd") is None:
            raise RuntimeError("etcd is not installed; `make test` installs etcd-server")
        self.directory = directory
        self.name = name
        self.data_dir = data_dir or directory / f"{name}.etcd"
        self.client_port = free_port()
        self.peer_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / f"{name}.log"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 20.0) -> None:
        argv = [
            "etcd",
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", f"http://127.0.0.1:{self.client_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{self.client_port}",
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", f"{self.name}={self.peer_url}",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited: {self.log.read_text()[-2000:]}")
            try:
                with self.client() as client:
                    client.status()
                return
            except etcd3.exceptions.Etcd3Exception:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"etcd did not become ready: {self.log.read_text()[-2000:]}")

    def client(self) -> etcd3.Etcd3Client:
        return etcd3.client(host="127.0.0.1", port=self.client_port, timeout=5)

    def stop(self) -> None:
        terminate(self.process)

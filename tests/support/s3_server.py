"""An S3-compatible server on loopback for tests: moto's standalone server (``moto_server``),
which serves the S3 API over HTTP with multipart uploads and checksums (DESIGN.md).

moto accepts any credentials and stores what it is sent without checking checksums; the
tests check Lifeboat's own verification against it (tampered objects, missing manifests).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
from sshd import free_port, terminate
from tls import self_signed

BUCKET = "lifeboat-test"  # DNS-valid: moto refuses names of fewer than 3 characters


class S3Server:
    """With ``tls``, served over HTTPS at ``localhost`` with a self-signed certificate
    (``certificate``), as production endpoints are. With ``checked_keys``, the server checks
    credentials as S3 does, once ``user_keys`` made the one user it knows."""

    def __init__(self, directory: Path, *, tls: bool = False, checked_keys: bool = False) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        # moto checks credentials after this many requests: the three that make the user
        self._env = {"INITIAL_NO_AUTH_ACTION_COUNT": "3"} if checked_keys else {}
        self.certificate: Path | None = None
        self._tls_args: list[str] = []
        if tls:
            self.certificate, key = self_signed(directory, "localhost")
            self._tls_args = ["-c", str(self.certificate), "-k", str(key)]

    @property
    def url(self) -> str:
        if self.certificate is not None:
            return f"https://localhost:{self.port}"
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        moto = str(Path(sys.executable).with_name("moto_server"))
        argv = [moto, "-H", "127.0.0.1", *self._tls_args]
        with (self.directory / "moto.log").open("ab") as log:
            self.process = subprocess.Popen(
                [*argv, "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={"PATH": "/usr/bin:/bin", "TMPDIR": str(self.directory), **self._env},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited: {self._log()}")
            try:
                self.reset()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto_server did not answer: {self._log()}")

    def reset(self) -> None:
        """Forget every bucket and object (between tests)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", data=b"", method="POST")
        trust = ssl.create_default_context(cafile=self.certificate) if self.certificate else None
        with urllib.request.urlopen(request, timeout=5, context=trust) as answer:
            answer.read()

    def user_keys(self) -> tuple[str, str]:
        """A user allowed everything, and its access key and secret (``checked_keys``)."""
        iam = boto3.client(
            "iam", endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id="setup", aws_secret_access_key="setup",
        )  # fmt: skip
        iam.create_user(UserName="lifeboat")
        key = iam.create_access_key(UserName="lifeboat")["AccessKey"]
        everything = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}
        ]}  # fmt: skip
        iam.put_user_policy(
            UserName="lifeboat", PolicyName="all", PolicyDocument=json.dumps(everything)
        )
        return str(key["AccessKeyId"]), str(key["SecretAccessKey"])

    def _log(self) -> str:
        return (self.directory / "moto.log").read_text(errors="replace")[-2000:]

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (``kill``: at once, with SIGKILL, as a crash would)."""
        if kill and self.process is not None:
            self.process.kill()
        terminate(self.process)


def s3_remote_toml(server: S3Server, name: str = "offsite", prefix: str = "prod") -> str:
    trust = f'ca_bundle = "{server.certificate}"\n' if server.certificate else ""
    return (
        f'[remotes.{name}]\nkind = "s3"\nbucket = "{BUCKET}"\nprefix = "{prefix}"\n'
        f'endpoint = "{server.url}"\npath_style = true\n{trust}'
    )

"""The files in deploy/ are valid for the tools that read them: the systemd unit for
``systemd-analyze verify`` (where it is installed), the sshd drop-in for ``sshd -t``, the
sudoers drop-in for ``visudo -c`` (where it is installed), the wrapper for ``sh -n``; and the
paths they name agree with one another."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.demo.server import generate_keys

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
INSTALLED = "/usr/local/bin/lifeboat"
LIFEBOAT = str(Path(sys.executable).with_name("lifeboat"))


def test_the_scheduler_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    unit = tmp_path / "lifeboat-scheduler.service"
    # verify checks that the command exists: point it at this checkout's lifeboat.
    unit.write_text((DEPLOY / unit.name).read_text().replace(INSTALLED, LIFEBOAT))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    complaints = [line for line in done.stderr.splitlines() if unit.name in line]
    assert complaints == []  # verify only warns about a bad directive: none is allowed


def test_the_scheduler_unit_is_hardened_and_runs_the_scheduler() -> None:
    text = (DEPLOY / "lifeboat-scheduler.service").read_text()
    settings = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#"
    )
    command = f"{INSTALLED} --config /etc/lifeboat/lifeboat.toml"
    assert settings["ExecStart"] == f"{command} scheduler run"
    assert settings["User"] == "lifeboat"
    for key, value in {
        "NoNewPrivileges": "yes", "PrivateTmp": "yes", "ProtectSystem": "strict",
        "ProtectHome": "yes", "KillSignal": "SIGTERM", "UMask": "0077",
    }.items():  # fmt: skip
        assert settings[key] == value, key


def test_the_sshd_drop_in_is_accepted_by_sshd(tmp_path: Path) -> None:
    sshd = Path("/usr/sbin/sshd")
    if not sshd.exists():
        pytest.skip("OpenSSH's sshd is not installed here")
    # sshd's privilege-separation directory, normally made by the package's service.
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    keys = generate_keys(tmp_path / "keys")
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {keys.host_key}\nInclude {DEPLOY / 'sshd-lifeboat-console.conf'}\n")
    done = subprocess.run(
        [str(sshd), "-t", "-f", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    text = (DEPLOY / "sshd-lifeboat-console.conf").read_text()
    assert "ForceCommand /usr/local/bin/lifeboat-console" in text


def test_the_sudoers_drop_in_and_the_wrapper_agree() -> None:
    sudoers = (DEPLOY / "sudoers-lifeboat-console").read_text()
    wrapper = (DEPLOY / "lifeboat-console").read_text()
    command = f"{INSTALLED} --config /etc/lifeboat/lifeboat.toml"
    assert f"NOPASSWD: {command}\n" in sudoers  # exactly what the wrapper runs, nothing more
    assert wrapper.rstrip().endswith(command)
    assert subprocess.run(["sh", "-n", str(DEPLOY / "lifeboat-console")]).returncode == 0
    visudo = shutil.which("visudo")
    if visudo is not None:
        checked = subprocess.run(
            [visudo, "-cf", str(DEPLOY / "sudoers-lifeboat-console")], capture_output=True
        )
        assert checked.returncode == 0, checked.stderr


def test_the_wrapper_refuses_a_command() -> None:
    done = subprocess.run(
        ["sh", str(DEPLOY / "lifeboat-console")],
        env={"SSH_ORIGINAL_COMMAND": "cat /etc/shadow", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "opens the Lifeboat console only" in done.stderr

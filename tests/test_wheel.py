"""The installable package: a wheel built from a clean copy of the sources installs into a
fresh virtual environment (the way ``pipx install`` does) and works from a directory far from
the repository: ``--help``, ``--version``, and ``lifeboat demo --no-tui``, which needs the
runbooks and checklists inside the package; the console's stylesheets are inside too.

The dependencies are the runtime ones uv.lock pins, from uv's cache (``--offline``): `make
test` filled the cache when it made .venv, and a new release elsewhere changes nothing here.
A runtime dependency missing from pyproject.toml fails here (the test extra is not installed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UV = ROOT / ".uv" / "bin" / "uv"
SOURCES = ("pyproject.toml", "README.md", "engine", "tui", "themes", "runbooks")


def run(argv: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done.stdout


def build_wheel(work: Path) -> Path:
    """Build the wheel from a copy of the sources (no stale build/ or egg-info of the checkout)."""
    tree = work / "src"
    tree.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tree / name)
    dist = work / "dist"
    hook = f"import setuptools.build_meta as b; print(b.build_wheel({str(dist)!r}))"
    name = run([sys.executable, "-c", hook], cwd=tree).strip().splitlines()[-1]
    return dist / name


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``lifeboat`` command of a fresh venv that holds the wheel and its dependencies."""
    if not UV.exists():
        pytest.skip(f"{UV} is missing: `make test` installs it")
    work = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(work)
    venv = work / "venv"
    # The locked runtime dependencies (no extras, no groups) into a venv of its own...
    env = os.environ | {"UV_PROJECT_ENVIRONMENT": str(venv)}
    run(
        [UV, "sync", "--quiet", "--locked", "--offline", "--no-dev", "--no-install-project",
         "--python", sys.executable],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    # ...then the wheel, as pipx would install it (its dependencies are all there already).
    run(
        [UV, "pip", "install", "--quiet", "--offline", "--python", venv / "bin" / "python",
         wheel],
        cwd=work,
    )  # fmt: skip
    return venv / "bin" / "lifeboat"


def far_away_env(home: Path) -> dict[str, str]:
    """An environment that cannot see the checkout: no PYTHONPATH, another HOME, no config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LIFEBOAT_"))}
    return env | {"HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}


def test_the_wheel_holds_the_data_files(installed: Path) -> None:
    (wheel,) = (installed.parent.parent.parent / "dist").glob("lifeboat-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in (
        "runbooks/restore.toml",
        "runbooks/checklists/post-restore.toml",
        "tui/console/screens/dashboard.tcss",
        "tui/console/screens/wizard.tcss",
    ):
        assert data in names, data
    assert not [name for name in names if name.startswith("tests/")]


def test_help_version_and_the_demo_run_from_the_installed_package(
    installed: Path, tmp_path: Path
) -> None:
    env = far_away_env(tmp_path / "home")
    assert "backup" in run([installed, "--help"], cwd=tmp_path, env=env)
    assert run([installed, "--version"], cwd=tmp_path, env=env).strip() == "lifeboat, version 0.1.0"
    where = run(
        [installed.parent / "python", "-c", "import engine, runbooks; print(engine.__file__)"],
        cwd=tmp_path,
        env=env,
    )
    assert not where.startswith(str(ROOT))  # the installed copy, not the checkout
    out = run([installed, "demo", "--no-tui", "--dir", tmp_path / "demo"], cwd=tmp_path, env=env)
    assert "verify" in out.lower()
    assert (tmp_path / "demo" / "lifeboat.toml").exists()

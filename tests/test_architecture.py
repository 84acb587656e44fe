"""The engine stays headless: importing it loads no Textual module."""

from __future__ import annotations

import subprocess
import sys


def test_engine_imports_no_textual() -> None:
    code = (
        "import sys, engine.jobs, engine.restore.run, engine.demo.sandbox, engine.repo.retention\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] == 'textual')\n"
        "print(','.join(leaked))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""

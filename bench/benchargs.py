"""Helpers the benchmarks share: sizes like ``512M``, positive counts, compiled bytecode.

The benchmarks run as scripts (``python bench/NAME.py``), so this sits beside them and is
imported by plain name, before anything imports asyncssh: importing it silences asyncssh's
DSA deprecation warning as the ``lifeboat`` command does (``tui.entry``).
"""

from __future__ import annotations

import argparse
import compileall
import re
from pathlib import Path

from tui.entry import silence_known_warnings

silence_known_warnings()

ROOT = Path(__file__).resolve().parent.parent
UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """``1G``, ``256M``, ``512k``, ``1GiB`` or a byte count, as bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    size = int(float(match[1]) * UNITS[match[2].upper()]) if match else 0
    if size <= 0:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}; e.g. 1G, 256M or 1048576")
    return size


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def human(size: int) -> str:
    return f"{size / 1024**3:g} GiB" if size >= 1024**3 else f"{size / 1024**2:g} MiB"


def compile_project() -> None:
    """Write the project's bytecode, as installing a package does: with
    PYTHONDONTWRITEBYTECODE set (as in CI), every timed ``lifeboat`` would compile it again."""
    for package in ("engine", "tui", "themes"):
        compileall.compile_dir(ROOT / package, quiet=1)

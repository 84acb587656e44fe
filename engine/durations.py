"""Durations as operators write them (``15m``, ``24h``, ``1h30m``, ``7d``) and read them back."""

from __future__ import annotations

import re
from datetime import timedelta

UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)([wdhms])")
MAX_DAYS = 36500  # 100 years: longer is a typo, and dates that far back do not exist


def parse_duration(text: str) -> timedelta:
    """``"1h30m"`` -> 90 minutes; raises ValueError naming the accepted form."""
    compact = text.replace(" ", "").lower()
    parts = _PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"must be a duration like 15m, 24h, 1h30m or 7d, got {_short(text)!r}")
    # A number of more digits than the longest duration in seconds is too long: say so
    # before int() meets thousands of digits.
    digits = len(str(MAX_DAYS * UNITS["d"]))
    too_long = any(len(number.lstrip("0")) > digits for number, _unit in parts)
    seconds = 0 if too_long else sum(int(number) * UNITS[unit] for number, unit in parts)
    if too_long or seconds > MAX_DAYS * UNITS["d"]:
        raise ValueError(f"must be at most {MAX_DAYS}d (100 years), got {_short(text)!r}")
    if seconds <= 0:
        raise ValueError(f"must be longer than zero, got {text!r}")
    return timedelta(seconds=seconds)


def _short(text: str) -> str:
    """``text`` cut to fit in a message."""
    return text if len(text) <= 40 else text[:37] + "..."


def format_duration(value: timedelta) -> str:
    """The two largest units: ``1d 2h``, ``45m``, ``30s``."""
    seconds = int(value.total_seconds())
    if seconds < 0:
        return "-" + format_duration(-value)
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, UNITS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts[:2]) or "0s"

"""Fuzzing the config loader: random mutations of a valid file (byte flips, truncations, deep
nesting, huge numbers, a BOM, wrong types, crons that never fire, lost or repeated lines) go
through ``load_config`` in-process, and a few through the real ``lifeboat config check``.

Every input must either load or fail with ``ConfigError`` (exit 2 from the CLI) whose every
line names the file or a key path: never another exception, never a traceback. Seeded and
bounded, so a failure reproduces with its seed and input number.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

from cli_run import lifeboat

from engine.config.load import load_config
from engine.config.model import Config
from engine.errors import ConfigError

SEED = 14
INPUTS = 800  # in-process inputs: about three seconds on a loaded two-core machine
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOP_KEYS = tuple(key for key in Config.model_fields if key != "path")

BASE = """\
operator = "alice"

[repository]
path = "{repo}"

[hosts.db1]
address = "10.0.0.5"
port = 22
user = "backup"
identity = "~/.ssh/id_ed25519"
connect_timeout = 10
keepalive_interval = 15
bulk_transport = "auto"

[hosts.cp1]
address = "10.0.0.6"
trust_on_first_use = true

[sources.config]
kind = "files"
host = "db1"
paths = ["/etc/prexorcloud", "/srv/app"]

[sources.pg]
kind = "command"
host = "db1"
backup = ["pg_dump", "-Fc", "app"]
restore = ["pg_restore", "--clean", "-d", "app"]

[sources.mongo]
kind = "mongo"
host = "db1"
uri = "mongodb://backup@127.0.0.1:27017/?authSource=admin"
include = ["app.*"]
parallel = 4

[sources.etcd]
kind = "etcd"
host = "cp1"
endpoint = "127.0.0.1:2379"
data_dir = "/var/lib/etcd"
timeout = 600

[tiers.gold]
rpo = "24h"
rto = "1h"
sources = ["mongo", "config"]

[restore]
free_space_margin = 1.2

[checklists.values]
controller = "cp1"

[targets.staging]
description = "the staging cluster"
drill = true

[targets.staging.sources.mongo]
host = "cp1"
uri = "mongodb://127.0.0.1:27017"

[drill]
markers = 100

[schedules.nightly]
cron = "0 2 * * *"
timezone = "Europe/Berlin"
scope = ["mongo", "config"]
overdue_after = "30m"

[schedules.nightly.retention]
keep_daily = 7

[schedules.often]
cron = "*/30 * * * * *"

[retention]
keep_last = 3
keep_within = "2d"
pin = ["pre-*"]

[coordination]
etcd = "127.0.0.1:2379"
lease_ttl = 10

[catalog]
mongo_uri = "mongodb://catalog.example:27017"
timeout = 5
"""

HUGE = [
    "99999999999999999999999999999999",
    "-99999999999999999999",
    "1e308",
    "-1e308",
    "inf",
    "-inf",
    "nan",
    "0",
    "-1",
    '"1000000000d"',
    '"99999999999h"',
    '"99999999999999999999w"',
    '"0s"',
    '"9' + "9" * 400 + 's"',
    "9" * 5000,
    '"' + "9" * 5000 + 'd"',
]
WRONG = [
    "true",
    "1",
    "1.5",
    '"x"',
    '""',
    "[]",
    "{}",
    '[1, "a"]',
    "{ a = 1 }",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    '"/etc/passwd"',
    '"relative/path"',
    '"\\u0000"',
    '"~nosuchuser/x"',
    '[""]',
    '"' + "x" * 5000 + '"',
]
NEVER = ["0 2 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 0 31 2 *", "0 0 2 30 2 *"]
CRON_TOKENS = ["*", "*/0", "*/7", "0", "61", "31", "2", "L", "5#5", "?", "1-5", "MON", "@daily",
               "@often", "JAN", "-1", ","]  # fmt: skip

Mutator = Callable[[random.Random, bytes], bytes]


def _value_line(rng: random.Random, text: bytes) -> int | None:
    """A random line holding ``key = value``."""
    lines = text.split(b"\n")
    candidates = [i for i, line in enumerate(lines) if b" = " in line]
    return rng.choice(candidates) if candidates else None


def _replace_value(rng: random.Random, text: bytes, value: str) -> bytes:
    lines = text.split(b"\n")
    index = _value_line(rng, text)
    if index is None:
        return text
    key = lines[index].split(b" = ", 1)[0]
    lines[index] = key + b" = " + value.encode()
    return b"\n".join(lines)


def flip_bytes(rng: random.Random, text: bytes) -> bytes:
    data = bytearray(text or b"\n")
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def truncate(rng: random.Random, text: bytes) -> bytes:
    return text[: rng.randrange(len(text) + 1)]


def deep_nesting(rng: random.Random, text: bytes) -> bytes:
    depth = rng.choice([3, 50, 200, 400, 1000, 100_000])
    opening, closing = rng.choice([("[", "]"), ("{ a = ", " }"), ("[{ a = ", " }]")])
    return _replace_value(rng, text, opening * depth + "1" + closing * depth)


def huge_number(rng: random.Random, text: bytes) -> bytes:
    return _replace_value(rng, text, rng.choice(HUGE))


def byte_order_mark(rng: random.Random, text: bytes) -> bytes:
    return rng.choice([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]) + text


def wrong_type(rng: random.Random, text: bytes) -> bytes:
    return _replace_value(rng, text, rng.choice(WRONG))


def never_firing_cron(rng: random.Random, text: bytes) -> bytes:
    if rng.random() < 0.5:
        cron = rng.choice(NEVER)
    else:
        cron = " ".join(rng.choice(CRON_TOKENS) for _ in range(rng.choice([1, 4, 5, 6, 7])))
    return text.replace(b'cron = "0 2 * * *"', f"cron = {json.dumps(cron)}".encode())


def lose_or_repeat_a_line(rng: random.Random, text: bytes) -> bytes:
    lines = text.split(b"\n")
    index = rng.randrange(len(lines))
    if rng.random() < 0.5:
        del lines[index]
    else:
        lines.insert(rng.randrange(len(lines)), lines[index])
    return b"\n".join(lines)


def rename_a_key(rng: random.Random, text: bytes) -> bytes:
    lines = text.split(b"\n")
    index = _value_line(rng, text)
    if index is None:
        return text
    key, value = lines[index].split(b" = ", 1)
    new = rng.choice([key + b"x", key[:-1], b'"' + key + b' y"', key.upper(), b"a.b." + key])
    lines[index] = new + b" = " + value
    return b"\n".join(lines)


MUTATORS: list[Mutator] = [
    flip_bytes,
    truncate,
    deep_nesting,
    huge_number,
    byte_order_mark,
    wrong_type,
    never_firing_cron,
    lose_or_repeat_a_line,
    rename_a_key,
]


def mutate(rng: random.Random, base: bytes) -> tuple[str, bytes]:
    """One or two mutations of ``base``; the first one's name."""
    first = rng.choice(MUTATORS)
    data = first(rng, base)
    if rng.random() < 0.25:
        data = rng.choice(MUTATORS)(rng, data)
    return first.__name__, data


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def names_its_place(line: str, file: Path, data: bytes) -> bool:
    """Whether a problem line starts with the file or with a key path of the input."""
    if line.startswith(f"{file}: ") or any(re.match(rf"{t}[.\[:]", line) for t in _TOP_KEYS):
        return True
    try:
        tops = [_key(k) for k in tomllib.loads(data.decode("utf-8-sig"))]
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError):
        tops = []
    return any(re.match(re.escape(top) + r"[.\[:]", line) for top in tops)


def check_one(file: Path, data: bytes) -> tuple[bool, str | None]:
    """Load ``data`` from ``file``: whether it was refused, and what is wrong with the
    outcome (None when nothing)."""
    file.write_bytes(data)
    try:
        load_config(file)
    except ConfigError as exc:
        if not exc.problems:
            return True, "a ConfigError without a problem"
        for line in exc.problems:
            if "\n" in line or not names_its_place(line, file, data):
                return True, f"a problem naming neither the file nor a key path: {line!r}"
        return True, None
    except Exception as exc:  # the whole point: nothing else may escape
        return True, f"{type(exc).__name__}: {exc}"
    return False, None


def test_mutated_configs_load_or_fail_with_named_problems(tmp_path: Path) -> None:
    base = BASE.format(repo=tmp_path / "repo").encode()
    file = tmp_path / "lifeboat.toml"
    assert check_one(file, base) == (False, None)  # the base itself is valid
    rng = random.Random(SEED)
    escaped: list[str] = []
    refused = 0
    for number in range(INPUTS):
        kind, data = mutate(rng, base)
        failed, wrong = check_one(file, data)
        refused += failed
        if wrong is not None:
            escaped.append(f"input {number} ({kind}): {wrong}")
    assert escaped == [], "\n".join(escaped[:20])
    assert refused > INPUTS // 2  # the mutations do break the file, most of the time


async def test_the_cli_gives_one_message_per_problem_and_exit_2(tmp_path: Path) -> None:
    """One refused input per kind of mutation, through the real ``lifeboat config check``."""
    base = BASE.format(repo=tmp_path / "repo").encode()
    rng = random.Random(SEED + 1)
    chosen: dict[str, bytes] = {}
    probe = tmp_path / "probe.toml"
    while len(chosen) < 5:
        kind, data = mutate(rng, base)
        if kind in chosen:
            continue
        if check_one(probe, data)[0]:
            chosen[kind] = data
    files = {}
    for kind, data in chosen.items():
        files[kind] = tmp_path / f"{kind}.toml"
        files[kind].write_bytes(data)
    runs = await asyncio.gather(*(lifeboat("config", "check", config=f) for f in files.values()))
    for (kind, file), run in zip(files.items(), runs, strict=True):
        assert run.rc == 2, (kind, run.stderr)
        assert "Traceback" not in run.stderr, (kind, run.stderr)
        lines = run.stderr.splitlines()
        assert lines, kind
        for line in lines:
            assert line.startswith("lifeboat: error: "), (kind, line)
            assert names_its_place(line.removeprefix("lifeboat: error: "), file, chosen[kind])

"""The RDB reader (engine/redis_rdb.py) on snapshots a real redis-server wrote, holding every
kind of value it encodes (small and large, compressed, expiring, streams with consumer groups,
a function library), and on damaged ones."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_server import RedisServer

from engine.redis_rdb import RdbFormatError, summarize


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def seed(server: RedisServer) -> None:
    rng = random.Random(7)
    lines = ["SELECT 0"]
    lines += [f"SET s:{i} value-{i}" for i in range(200)]
    lines += ["SET number 12345", "SET compressible " + "a" * 20_000]
    lines += [f"SET random {''.join(rng.choice('xyz0123') for _ in range(5000))}"]
    lines += ["RPUSH small-list a b c", *(f"RPUSH big-list item-{i}" for i in range(2000))]
    lines += ["SADD ints 1 2 3", "SADD names ann bob", *(f"SADD big-set m{i}" for i in range(600))]
    lines += ["ZADD small-z 1 a 2 b", *(f"ZADD big-z {i} m{i}" for i in range(300))]
    lines += ["HSET small-h f v", *(f"HSET big-h f{i} {'v' * 80}" for i in range(300))]
    lines += [f"SET ttl:{i} x EX 3600" for i in range(20)]
    lines += [f"XADD events * n {i}" for i in range(50)]
    lines += [
        "XGROUP CREATE events workers 0",
        "XREADGROUP GROUP workers w1 COUNT 5 STREAMS events >",
    ]
    lines += ["SELECT 3", *(f"SET other:{i} {i}" for i in range(30))]
    server.cli(stdin="\n".join(lines) + "\n")
    library = "#!lua name=lifeboat\nredis.register_function('hello', function() return 1 end)"
    server.cli("FUNCTION", "LOAD", library)
    assert server.cli("SAVE") == "OK"


def dbsize(server: RedisServer, db: int) -> int:
    return int(server.cli("-n", str(db), "DBSIZE"))


def test_a_real_snapshot_reads_whole_with_its_keys_per_database(redis: RedisServer) -> None:
    seed(redis)
    with redis.rdb_path.open("rb") as snapshot:
        summary = summarize(snapshot)
    assert summary.keys == {0: dbsize(redis, 0), 3: dbsize(redis, 3)}
    assert summary.keys[3] == 30
    assert summary.expiring == {0: 20}  # the keys set with EX
    assert summary.aux["redis-ver"].startswith(("7.", "8."))
    assert summary.version >= 9


def test_damage_is_caught_and_named(redis: RedisServer) -> None:
    seed(redis)
    data = redis.rdb_path.read_bytes()
    flipped = bytearray(data)
    inside_a_value = data.index(b"random") + 100  # raw text: only the checksum can tell
    flipped[inside_a_value] ^= 0x01
    with pytest.raises(RdbFormatError, match="CRC-64 .* does not match its content"):
        summarize(io.BytesIO(bytes(flipped)))
    with pytest.raises(RdbFormatError, match="truncated"):
        summarize(io.BytesIO(data[:-100]))
    with pytest.raises(RdbFormatError, match="bytes follow the end"):
        summarize(io.BytesIO(data + b"x"))
    with pytest.raises(RdbFormatError, match="not an RDB snapshot"):
        summarize(io.BytesIO(b"MONGO" + data[5:]))

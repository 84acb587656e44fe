"""The custom-format dump reader and the selective restore's choice of entries, on dumps a
real pg_dump wrote: exact rows per table, compressed or not; truncation, damage, trailing
bytes and foreign formats named; a table's dependents chosen with it."""

from __future__ import annotations

import contextlib
import io
import random
import subprocess

import pytest
from pg_server import PostgresServer

from engine.pg_archive import PgArchiveError, summarize, table_of_contents
from engine.sources.pg_selection import restore_list, select_entries

ROWS = {"billing.invoices": 70, "public.empty_one": 0, "public.items": 500}


def dump(postgres: PostgresServer, database: str, *flags: str) -> bytes:
    done = subprocess.run(
        [str(postgres.bin / "pg_dump"), "-Fc", *flags, "-h", str(postgres.directory),
         "-p", str(postgres.port), "-U", "postgres", "-d", database],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    return done.stdout


@pytest.fixture(scope="module")
def dumps(postgres: PostgresServer) -> dict[str, bytes]:
    """The same database dumped compressed (the default) and not (-Z0)."""
    name = postgres.seeded(
        "archive", items=500, invoices=70, extra="SELECT lo_from_bytea(0, 'a large object');"
    )
    return {"gzip": dump(postgres, name), "none": dump(postgres, name, "-Z0")}


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_rows_are_counted_exactly_from_the_data(dumps: dict[str, bytes], compression: str) -> None:
    summary = summarize(io.BytesIO(dumps[compression]))
    assert summary.compression == compression
    assert summary.tables() == ROWS  # a row holding an escaped line break counts once
    assert summary.version[:2] == (1, 14)
    assert summary.database.startswith("archive_")
    assert summary.server_version.split(".")[0] == summary.dump_version.split(".")[0]


def test_a_truncated_dump_is_named_wherever_it_ends(dumps: dict[str, bytes]) -> None:
    whole = dumps["gzip"]
    for end in (3, 40, len(whole) // 3, len(whole) // 2, len(whole) - 1):
        with pytest.raises(PgArchiveError, match="truncated"):
            summarize(io.BytesIO(whole[:end]))


def test_damage_foreign_formats_and_trailing_bytes_are_refused(dumps: dict[str, bytes]) -> None:
    whole = dumps["gzip"]
    with pytest.raises(PgArchiveError, match="no PGDMP header"):
        summarize(io.BytesIO(b"--\n-- PostgreSQL database dump\n"))
    with pytest.raises(PgArchiveError, match="archive version 1.99: this Lifeboat reads"):
        summarize(io.BytesIO(whole[:5] + bytes([1, 99, 0]) + whole[8:]))
    with pytest.raises(PgArchiveError, match="data block type|no data or had one"):
        summarize(io.BytesIO(whole + b"\x07trailing"))
    data = whole.index(b"\x01", len(whole) - 2000)  # inside the data blocks
    flipped = bytearray(whole)
    for at in range(data, len(whole), 97):
        flipped[at] ^= 0x55
    with pytest.raises(PgArchiveError):
        summarize(io.BytesIO(bytes(flipped)))
    rng = random.Random(7)  # whatever the damage: PgArchiveError or a sound read, nothing else
    for _ in range(300):
        damaged = bytearray(whole)
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        with contextlib.suppress(PgArchiveError):
            summarize(io.BytesIO(bytes(damaged)))


def test_a_table_comes_with_what_depends_on_it(dumps: dict[str, bytes]) -> None:
    toc = table_of_contents(io.BytesIO(dumps["gzip"]))
    db = toc.database
    chosen = {
        (e.desc, e.qualified) for e in select_entries(db, toc.entries, [f"{db}.public.items"])
    }
    assert {
        ("TABLE", "public.items"),
        ("TABLE DATA", "public.items"),
        ("INDEX", "public.items_name"),
        ("CONSTRAINT", "public.items items_pkey"),
        ("FK CONSTRAINT", "billing.invoices invoices_item_fkey"),  # so items may be dropped
        ("VIEW", "public.cheap"),
        ("SEQUENCE", "public.items_id_seq"),
        ("SEQUENCE SET", "public.items_id_seq"),
        ("DEFAULT", "public.items id"),
    } <= chosen
    assert not {name for _, name in chosen} & {"billing.invoices", "public.empty_one"}
    schema = select_entries(db, toc.entries, [f"{db}.billing.*"])
    assert {e.qualified for e in schema if e.desc == "TABLE"} == {"billing.invoices"}
    assert select_entries(db, toc.entries, ["other.public.*"]) == []
    listed = restore_list(schema).decode().splitlines()
    assert listed == [f"{e.dump_id};" for e in schema]

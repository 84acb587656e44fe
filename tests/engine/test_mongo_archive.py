"""The mongodump archive reader/writer and the parallel gzip writer, without any server.

Real archives written by mongodump (3.4, 4.0, 5.0) prove the reader reads what the official
tools write; crafted damage proves every broken promise of the format is refused with a
message naming the byte and the namespace; round trips (fixed and hypothesis-generated) prove
the writer and reader agree, and one test proves the writer reproduces mongodump's own bytes.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anycrc
import bson
import pytest
from bson.int64 import Int64
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.mongo_archive import (
    ArchiveFormatError,
    ArchiveReader,
    ArchiveWriter,
    NamespaceMeta,
    ParallelGzipWriter,
    iter_documents,
    pgzip,
    summarize,
)
from engine.mongo_archive.format import MAGIC, TERMINATOR
from engine.mongo_archive.writer import count_documents

# Real mongodump archives (from mongo-tools, Apache 2.0; see the README beside them).
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mongodump-archives"

# What each real archive holds: namespace -> documents (counted by hand from the bytes).
EXPECTED: dict[str, dict[str, int]] = {
    "test.bar.archive": {"admin.system.version": 1, "test.bar": 1},
    "dump-w-oplog.archive": {"admin.system.version": 1, "test.foo": 25, "oplog": 18},
    "timeseries.archive": {
        "admin.system.version": 1,
        "admin.system.views": 0,
        "timeseries_test.system.buckets.foo_ts": 10,
    },
}


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


class Trickle:
    """A stream with only ``read`` (no ``peek``) that returns a few bytes at a time, like a
    slow pipe: the reader must not assume full reads."""

    def __init__(self, data: bytes, seed: int = 1) -> None:
        self._data = data
        self._pos = 0
        self._random = random.Random(seed)

    def read(self, size: int = -1, /) -> bytes:
        size = len(self._data) if size < 0 else size
        step = min(size, self._random.randint(1, 7))
        chunk = self._data[self._pos : self._pos + step]
        self._pos += len(chunk)
        return chunk


def doc_counts(data: bytes) -> dict[str, int]:
    return {n: s.documents for n, s in summarize(io.BytesIO(data)).namespaces.items()}


def two_members(data: bytes) -> bytes:
    """The same bytes as a gzip stream of two members, as parallel gzip writes them."""
    half = len(data) // 2
    return gzip.compress(data[:half]) + gzip.compress(data[half:])


# --------------------------------------------------------------------------- real archives


def test_crc64_is_crc64_xz() -> None:
    crc = anycrc.Model("CRC64-XZ")
    assert crc.calc(b"123456789") == 0x995DC9BBDF1939FA
    assert crc.calc(b"56789", crc.calc(b"1234")) == 0x995DC9BBDF1939FA
    assert crc.calc(b"123456789", 0) == 0x995DC9BBDF1939FA  # 0 = the CRC of nothing


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_archive_reads_with_every_crc_valid(name: str) -> None:
    summary = summarize(io.BytesIO(fixture_bytes(name)))
    assert {n: s.documents for n, s in summary.namespaces.items()} == EXPECTED[name]
    assert summary.header["version"] == "0.1"
    assert summary.archive_bytes == len(fixture_bytes(name))
    assert not summary.compressed
    documents = list(iter_documents(io.BytesIO(fixture_bytes(name))))
    assert len(documents) == sum(EXPECTED[name].values())
    for _namespace, raw in documents:
        assert isinstance(bson.decode(raw), dict)


def test_real_archive_details() -> None:
    old = summarize(io.BytesIO(fixture_bytes("test.bar.archive")))
    assert old.server_version == "3.4.3"
    assert [(m.name, m.type) for m in old.prelude] == [
        ("test.bar", ""),
        ("admin.system.version", ""),
    ]
    assert old.prelude[0].indexes[0]["name"] == "_id_"
    assert old.prelude[0].uuid is None

    oplog = summarize(io.BytesIO(fixture_bytes("dump-w-oplog.archive")))
    assert [m.name for m in oplog.prelude] == ["test.foo", "oplog", "admin.system.version"]
    assert oplog.prelude[1].metadata == ""
    assert oplog.prelude[1].parsed() == {}
    assert oplog.prelude[0].uuid == "d6b7b0bd5dce41c498aa03f115533254"
    assert list(oplog.namespaces)[-1] == "oplog"  # the oplog comes last
    assert oplog.namespaces["test.foo"].crc >= 1 << 63  # stored as a negative int64

    series = summarize(io.BytesIO(fixture_bytes("timeseries.archive")))
    types = {m.name: m.type for m in series.prelude}
    assert types == {
        "admin.system.views": "collection",
        "timeseries_test.foo_ts": "timeseries",
        "admin.system.version": "collection",
    }
    buckets = series.namespaces["timeseries_test.system.buckets.foo_ts"]
    assert buckets.meta is not None
    assert buckets.meta.name == "timeseries_test.foo_ts"
    assert buckets.meta.options["timeseries"]["timeField"] == "ts"
    assert series.namespaces["admin.system.views"].crc == 0  # empty namespace: CRC 0


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("wrap", [gzip.compress, two_members], ids=["gzip", "two-members"])
def test_gzipped_archive_reads_the_same(name: str, wrap: Callable[[bytes], bytes]) -> None:
    data = fixture_bytes(name)
    plain = summarize(io.BytesIO(data))
    packed = summarize(io.BytesIO(wrap(data)))
    assert packed.compressed
    assert packed.namespaces == plain.namespaces
    assert packed.prelude == plain.prelude


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_stream_without_peek_in_tiny_reads(name: str) -> None:
    data = fixture_bytes(name)
    assert doc_counts(data) == EXPECTED[name]
    reader = ArchiveReader(Trickle(gzip.compress(data)), chunk_size=64)
    assert {n: s.documents for n, s in reader.summary().namespaces.items()} == EXPECTED[name]


def test_bad_format_archive_is_refused_clearly() -> None:
    with pytest.raises(ArchiveFormatError) as caught:
        summarize(io.BytesIO(fixture_bytes("bad-format.archive")))
    message = str(caught.value)
    assert "namespace test.ixtest" in message
    assert "metadata is not valid Extended JSON" in message
    assert "at byte 106" in message  # where that prelude entry starts


def test_flipped_byte_in_a_document_is_a_crc_mismatch_naming_the_namespace() -> None:
    data = bytearray(fixture_bytes("dump-w-oplog.archive"))
    _, first = next(iter_documents(io.BytesIO(bytes(data)), lambda ns: ns == "test.foo"))
    where = bytes(data).index(bytes(first)) + len(first) // 2
    data[where] ^= 0x01
    with pytest.raises(ArchiveFormatError) as caught:
        summarize(io.BytesIO(bytes(data)))
    message = str(caught.value)
    assert "namespace test.foo: CRC mismatch (stored 0x9cc6a0e47a6d6d82, computed 0x" in message
    assert message.startswith("archive is damaged at byte ")
    # iter_documents yields the damaged documents, then raises at the namespace's EOF block
    with pytest.raises(ArchiveFormatError, match="test.foo: CRC mismatch"):
        list(iter_documents(io.BytesIO(bytes(data)), lambda ns: ns == "test.foo"))


@pytest.mark.parametrize("name", ["test.bar.archive", "dump-w-oplog.archive"])
def test_every_truncation_is_refused(name: str) -> None:
    data = fixture_bytes(name)
    for cut in range(len(data)):
        with pytest.raises(ArchiveFormatError):
            summarize(io.BytesIO(data[:cut]))


def test_truncation_messages() -> None:
    data = fixture_bytes("timeseries.archive")
    with pytest.raises(ArchiveFormatError, match=r"truncated at byte 20000: namespace "):
        summarize(io.BytesIO(data[:20000]))
    # a cut exactly after a block still lacks namespaces the prelude promised
    boundary = data.index(TERMINATOR, data.index(b"system.views", 1200)) + 4
    boundary = data.index(TERMINATOR, boundary) + 4  # after system.views' EOF block
    with pytest.raises(ArchiveFormatError, match=r"prelude lists timeseries_test.foo_ts"):
        summarize(io.BytesIO(data[:boundary]))
    with pytest.raises(ArchiveFormatError, match="gzip stream ends early"):
        summarize(io.BytesIO(gzip.compress(data)[:-9]))


# --------------------------------------------------------------------------- crafted damage


def block(db: str, coll: str, *docs: bytes, eof: bool = False, crc: Any = None) -> bytes:
    value = Int64(0) if crc is None else crc
    header = bson.encode({"db": db, "collection": coll, "EOF": eof, "CRC": value})
    return header + b"".join(docs) + TERMINATOR


def crafted(*blocks: bytes, prelude: tuple[dict[str, Any], ...] = (), header: Any = None) -> bytes:
    header = header or {
        "concurrent_collections": 4,
        "version": "0.1",
        "server_version": "7.0.0",
        "tool_version": "lifeboat-test",
    }
    parts = [MAGIC, bson.encode(header)]
    parts += [bson.encode(entry) for entry in prelude]
    return b"".join([*parts, TERMINATOR, *blocks])


CRC64 = anycrc.Model("CRC64-XZ")
# A document whose CRC has the high bit set: stored, it is a negative int64.
DOC = next(
    raw
    for raw in (bson.encode({"_id": i, "name": "x"}) for i in range(100))
    if CRC64.calc(raw) >= 1 << 63
)
DOC_CRC = Int64(CRC64.calc(DOC) - (1 << 64))


def test_crafted_valid_archive_reads() -> None:
    data = crafted(block("a", "b", DOC), block("a", "b"), block("a", "b", eof=True, crc=DOC_CRC))
    assert doc_counts(data) == {"a.b": 1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the stream is empty"),
        (b"PK\x03\x04rest", "starts with 50 4b 03 04"),
        (MAGIC, "stream ends inside the archive header"),
        (crafted(header={"version": "0.2", "concurrent_collections": 1,
                         "server_version": "", "tool_version": ""}), "version '0.2'"),
        (crafted(header={"version": "0.1"}), "'concurrent_collections' is missing"),
        (crafted(block("a", "b", DOC)), "before the EOF block of a.b"),
        (crafted(block("a", "b", DOC)) + TERMINATOR, "two terminators in a row"),
        (crafted(block("a", "b", DOC))[:-2], "ends inside a document or terminator"),
        (crafted(block("a", "b", DOC[:-1] + b"\x01")), "does not end with a 0x00 byte"),
        (crafted(block("a", "b", b"\x04\x00\x00\x00")), "4 is neither a BSON document length"),
        (crafted(block("a", "b", b"\x01\x00\x00\x01")), "16777217 is neither"),
        (crafted(block("a", "b", eof=True, crc=Int64(5))), "a.b: CRC mismatch (stored 0x0000"),
        (crafted(block("a", "b", eof=True, crc=0)), "int64 CRC"),
        (crafted(block("a", "b", eof=True, crc=Int64(0)), block("a", "b", DOC)),
         "a.b: a block after the namespace's EOF block"),
        (crafted(block("a", "b", DOC, eof=True, crc=Int64(0))), "a document inside the"),
        (crafted(bson.encode({"collection": "b", "db": "a", "EOF": True, "CRC": Int64(0)})
                 + TERMINATOR), "not db, collection, EOF, CRC in that order"),
        (crafted(block("a", "", eof=True, crc=Int64(0))), "(non-empty) collection"),
        (crafted(block("a", "b", eof=True, crc=Int64(0)),
                 prelude=({"db": "a", "collection": "c", "metadata": "", "size": 0},)),
         "the prelude lists a.c"),
        (crafted(prelude=({"db": "a", "collection": "c", "metadata": "{", "size": 0},)),
         "namespace a.c: prelude metadata is not valid Extended JSON"),
        (crafted(prelude=({"db": "a", "collection": "c"},)), "no string 'metadata'"),
        (crafted(prelude=({"db": "a", "collection": "c", "size": 0,
                           "metadata": '{"options": {"max": {"$numberDecimal": "many"}}}'},)),
         "namespace a.c: prelude metadata is not valid Extended JSON (InvalidOperation"),
        (crafted(prelude=({"db": "a", "collection": "c", "size": 0,
                           "metadata": '{"a":' * 5000 + "1" + "}" * 5000},)),
         "namespace a.c: prelude metadata is nested too deeply"),
        (crafted(prelude=({"db": "a", "collection": "c", "metadata": '{"indexes": 5}',
                           "size": 0},)),
         "namespace a.c: prelude metadata's indexes are not a list of documents"),
        (crafted(prelude=({"db": "a", "collection": "c", "metadata": '{"options": [1]}',
                           "size": 0},)),
         "namespace a.c: prelude metadata's options are not a document"),
    ],
    ids=lambda value: value if isinstance(value, str) else "archive",
)  # fmt: skip
def test_crafted_damage_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ArchiveFormatError) as caught:
        summarize(io.BytesIO(data))
    assert message in str(caught.value)


def test_damage_offsets_point_at_the_block() -> None:
    good = crafted(block("a", "b", DOC))
    data = good + block("a", "b", eof=True, crc=Int64(7))
    with pytest.raises(ArchiveFormatError) as caught:
        summarize(io.BytesIO(data))
    assert caught.value.offset == len(good)
    assert caught.value.namespace == "a.b"
    with pytest.raises(ArchiveFormatError, match="of the decompressed stream"):
        summarize(io.BytesIO(gzip.compress(data)))


# --------------------------------------------------------------------------- writing


def encode_all(docs: list[dict[str, Any]]) -> bytes:
    return b"".join(bson.encode(doc) for doc in docs)


def read_back(data: bytes) -> tuple[ArchiveReader, dict[str, list[bytes]]]:
    reader = ArchiveReader(io.BytesIO(data))
    found: dict[str, list[bytes]] = {}
    for namespace, raw in reader.documents():
        found.setdefault(namespace, []).append(bytes(raw))
    return reader, found


def test_writer_round_trip_interleaved() -> None:
    users = [{"_id": i, "name": f"user {i}", "tags": ["a", "b"][: i % 3]} for i in range(50)]
    groups = [{"_id": bson.ObjectId(), "n": i * 1.5, "nested": {"x": i}} for i in range(7)]
    prelude = [
        NamespaceMeta.build(
            "app",
            "users",
            indexes=[{"v": 2, "key": {"_id": 1}, "name": "_id_"}],
            uuid="0123456789abcdef0123456789abcdef",
        ),
        NamespaceMeta.build("app", "groups", options={"capped": True, "size": 4096}),
        NamespaceMeta.build("app", "empty"),
        NamespaceMeta.build(
            "app", "active", options={"viewOn": "users", "pipeline": []}, type="view"
        ),
    ]
    out = io.BytesIO()
    writer = ArchiveWriter(out.write, server_version="7.0.5", tool_version="t", prelude=prelude)
    assert writer.write_batch("app", "users", encode_all(users[:20])) == 20
    assert writer.write_batch("app", "groups", memoryview(encode_all(groups[:3]))) == 3
    assert writer.write_batch("app", "users", b"") == 0
    writer.write_batch("app", "users", encode_all(users[20:]))
    writer.end_namespace("app", "empty")
    writer.write_batch("app", "groups", bytearray(encode_all(groups[3:])))
    writer.end_namespace("app", "users")
    writer.end_namespace("app", "active")
    writer.end_namespace("app", "groups")
    written = writer.close()

    reader, found = read_back(out.getvalue())
    assert found == {
        "app.users": [bson.encode(d) for d in users],
        "app.groups": [bson.encode(d) for d in groups],
    }
    assert reader.prelude == tuple(prelude)
    assert reader.header["server_version"] == "7.0.5"
    assert type(reader.header["concurrent_collections"]) is int  # int32
    summary = reader.summary()
    assert summary.namespaces == written
    assert summary.namespaces["app.empty"].documents == 0
    assert summary.namespaces["app.empty"].crc == 0
    assert written["app.users"].bytes == len(encode_all(users))
    users_meta = reader.prelude[0]
    assert users_meta.uuid == "0123456789abcdef0123456789abcdef"
    assert users_meta.indexes == [{"v": 2, "key": {"_id": 1}, "name": "_id_"}]
    assert '"v":{"$numberInt":"2"}' in users_meta.metadata  # canonical, compact
    assert reader.prelude[3].options == {"viewOn": "users", "pipeline": []}
    assert summary.manifest_meta()["namespaces"]["app.users"]["documents"] == 50


def test_writer_stores_crc_as_int64_with_the_same_bits() -> None:
    out = io.BytesIO()
    writer = ArchiveWriter(out.write, server_version="7", tool_version="t")
    writer.write_batch("a", "b", DOC)
    stats = writer.end_namespace("a", "b")
    assert stats.crc >= 1 << 63
    eof_header = block("a", "b", eof=True, crc=DOC_CRC)
    assert out.getvalue().endswith(eof_header)


def test_writer_reproduces_mongodump_bytes() -> None:
    """Fed what mongodump 5.0 read, the writer writes mongodump's own bytes (less the empty
    data segment mongodump writes before an empty namespace's EOF block)."""
    data = fixture_bytes("timeseries.archive")
    reader = ArchiveReader(io.BytesIO(data))
    ends: list[tuple[str, str]] = []
    docs: dict[str, list[bytes]] = {}
    for namespace, raw in reader.documents(
        on_namespace_end=lambda s: ends.append((s.db, s.collection))
    ):
        docs.setdefault(namespace, []).append(bytes(raw))
    out = io.BytesIO()
    writer = ArchiveWriter(
        out.write,
        server_version=reader.header["server_version"],
        tool_version=reader.header["tool_version"],
        prelude=reader.prelude,
        concurrent_collections=reader.header["concurrent_collections"],
    )
    for db, coll in ends:
        writer.write_batch(db, coll, b"".join(docs.get(f"{db}.{coll}", [])))
        writer.end_namespace(db, coll)
    writer.close()
    empty_segment = block("admin", "system.views")
    assert data.count(empty_segment) == 1
    assert out.getvalue() == data.replace(empty_segment, b"")


def test_writer_misuse() -> None:
    with pytest.raises(ValueError, match="twice"):
        ArchiveWriter(
            print, server_version="7", tool_version="t",
            prelude=[NamespaceMeta("a", "b"), NamespaceMeta("a", "b")],
        )  # fmt: skip
    sink = io.BytesIO()
    prelude = [NamespaceMeta.build("a", "b"), NamespaceMeta.build("a", "ts", type="timeseries")]
    writer = ArchiveWriter(sink.write, server_version="7", tool_version="t", prelude=prelude)
    with pytest.raises(ArchiveFormatError, match="namespace a.b: a batch is not a sequence"):
        writer.write_batch("a", "b", DOC + b"\x05\x00")
    with pytest.raises(ArchiveFormatError, match="does not end with 0x00"):
        writer.write_batch("a", "b", DOC[:-1] + b"\x01")
    writer.write_batch("a", "c", DOC)
    with pytest.raises(ValueError, match=r"not ended.*a\.c, a\.b, a\.ts"):
        writer.close()
    writer.end_namespace("a", "b")
    writer.end_namespace("a", "c")
    writer.end_namespace("a", "system.buckets.ts")  # a timeseries ends as its buckets
    with pytest.raises(ValueError, match="already ended"):
        writer.write_batch("a", "b", DOC)
    stats = writer.close()
    assert stats["a.system.buckets.ts"].meta == prelude[1]
    assert doc_counts(sink.getvalue()) == {"a.b": 0, "a.c": 1, "a.system.buckets.ts": 0}


def test_count_documents() -> None:
    assert count_documents(b"") == 0
    assert count_documents(DOC * 3) == 3
    with pytest.raises(ArchiveFormatError, match="at byte 0 of 3"):
        count_documents(b"\x05\x00\x00")


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8).filter(lambda k: "\0" not in k), children, max_size=4)
    ),
    max_leaves=12,
)
documents = st.dictionaries(
    st.text(min_size=1, max_size=10).filter(lambda k: "\0" not in k), values, max_size=6
)
namespaces = st.sampled_from([("db1", "c1"), ("db1", "c2"), ("db2", "c1"), ("", "oplog")])


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(st.tuples(namespaces, st.lists(documents, max_size=6)), max_size=12),
    compress=st.booleans(),
)
def test_round_trip_property(
    batches: list[tuple[tuple[str, str], list[dict[str, Any]]]], compress: bool
) -> None:
    out = io.BytesIO()
    gz = ParallelGzipWriter(out.write, member_size=97, workers=2) if compress else None
    sink = gz.write if gz else out.write
    writer = ArchiveWriter(sink, server_version="7", tool_version="t")
    expected: dict[str, list[bytes]] = {}
    for (db, coll), docs in batches:
        raw = encode_all(docs)
        writer.write_batch(db, coll, raw)
        if docs:
            expected.setdefault(f"{db}.{coll}" if db else coll, []).extend(
                bson.encode(d) for d in docs
            )
    for db, coll in {ns for ns, _ in batches}:
        writer.end_namespace(db, coll)
    written = writer.close()
    if gz:
        gz.close()
    reader, found = read_back(out.getvalue())
    assert found == expected
    assert reader.summary().namespaces == written


# --------------------------------------------------------------------------- parallel gzip


def chunks(data: bytes, rng: random.Random) -> Iterator[bytes | bytearray | memoryview]:
    pos = 0
    while pos < len(data):
        step = rng.randint(1, 3000)
        piece = data[pos : pos + step]
        yield rng.choice([bytes, bytearray, memoryview])(piece)
        pos += step


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 3007, 20_000])
def test_parallel_gzip_decompresses_to_the_input(size: int) -> None:
    rng = random.Random(size)
    data = bytes(rng.choice(b"abcdefgh \n") for _ in range(size))
    out: list[bytes] = []
    threads: set[int] = set()

    def sink(member: bytes) -> None:
        threads.add(threading.get_ident())
        out.append(member)

    with ParallelGzipWriter(sink, member_size=1000, workers=3, max_pending=2) as gz:
        for piece in chunks(data, rng):
            gz.write(piece)
    stream = b"".join(out)
    assert gzip.decompress(stream) == data
    assert gz.members == max(1, -(-size // 1000))
    assert gz.bytes_in == size
    assert gz.bytes_out == len(stream)
    assert threads <= {threading.get_ident()}  # out only ever runs in the caller's thread


@pytest.mark.skipif(shutil.which("gzip") is None, reason="no gzip on PATH")
@pytest.mark.parametrize("size", [0, 5000])
def test_parallel_gzip_passes_gzip_t(tmp_path: Path, size: int) -> None:
    path = tmp_path / "out.gz"
    with path.open("wb") as file, ParallelGzipWriter(file.write, member_size=1024) as gz:
        gz.write(os.urandom(size // 2) + b"x" * (size // 2))
    subprocess.run(["gzip", "-t", str(path)], check=True)


def test_parallel_gzip_reraises_worker_errors_in_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(pieces: list[memoryview], level: int) -> bytes:
        raise RuntimeError("deflate failed")

    monkeypatch.setattr(pgzip, "compress_member", broken)
    with pytest.raises(ValueError, match="level 42"):
        ParallelGzipWriter(io.BytesIO().write, level=42)
    gz = ParallelGzipWriter(io.BytesIO().write, member_size=10, workers=2)
    with pytest.raises(RuntimeError, match="deflate failed"):
        gz.write(b"x" * 100)  # 10 members, more than max_pending: waits on a failed one
    assert gz.closed
    with pytest.raises(ValueError, match="closed"):
        gz.write(b"more")


def test_parallel_gzip_keeps_bytes_and_copies_mutable_input() -> None:
    out = io.BytesIO()
    buffer = bytearray(b"a" * 100)
    with ParallelGzipWriter(out.write, member_size=1 << 20, workers=1) as gz:
        gz.write(buffer)
        buffer[:] = b"b" * 100  # the caller reuses its buffer before the member is compressed
    assert gzip.decompress(out.getvalue()) == b"a" * 100


def write_pipeline(path: Path) -> dict[str, int]:
    """ArchiveWriter -> ParallelGzipWriter -> file, as a driver-based dump does."""
    with path.open("wb") as file, ParallelGzipWriter(file.write, member_size=4096) as gz:
        prelude = [NamespaceMeta.build("app", "users"), NamespaceMeta.build("app", "logs")]
        writer = ArchiveWriter(gz.write, server_version="7.0.5", tool_version="t", prelude=prelude)
        for start in range(0, 600, 100):
            for coll in ("users", "logs"):
                docs = [
                    {"_id": i, "coll": coll, "pad": "x" * (i % 90)}
                    for i in range(start, start + 100)
                ]
                writer.write_batch("app", coll, encode_all(docs))
        writer.end_namespace("app", "users")
        writer.end_namespace("app", "logs")
        writer.close()
    return {"app.users": 600, "app.logs": 600}


def test_pipeline_output_is_a_gzipped_archive(tmp_path: Path) -> None:
    path = tmp_path / "mongo.archive.gz"
    expected = write_pipeline(path)
    with path.open("rb") as file:
        summary = summarize(file)
    assert summary.compressed
    assert {n: s.documents for n, s in summary.namespaces.items()} == expected
    if shutil.which("gzip"):
        subprocess.run(["gzip", "-t", str(path)], check=True)


@pytest.mark.skipif(shutil.which("mongorestore") is None, reason="mongorestore is not on PATH")
def test_mongorestore_accepts_our_archive(tmp_path: Path) -> None:
    path = tmp_path / "mongo.archive.gz"
    write_pipeline(path)
    uri = os.environ.get("LIFEBOAT_TEST_MONGO_URI", "mongodb://127.0.0.1:27017")
    result = subprocess.run(
        ["mongorestore", f"--uri={uri}", f"--archive={path}", "--gzip", "--dryRun", "-v"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 and ("connect" in output.lower() or "server selection" in output):
        pytest.skip(f"mongorestore found no server at {uri}")
    assert result.returncode == 0, output
    assert "corruption" not in output
    assert "CRC mismatch" not in output

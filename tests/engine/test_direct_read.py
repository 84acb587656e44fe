"""The read-ahead reader verify uses: every byte in order whatever the read sizes (across its
4 MiB buffers, at an unaligned end), and a reader closed early stops its thread."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from engine.repo.direct_read import BUFFER_SIZE, DirectReader

SIZES = [4093, 4096, 1024 * 1024, BUFFER_SIZE - 1, BUFFER_SIZE + 7, 3 * 1024 * 1024 + 5]


def read_all(reader: DirectReader, size: int) -> bytes:
    parts = []
    while chunk := reader.read(size):
        assert len(chunk) == size or not reader.read(1)  # short only at the end
        parts.append(chunk)
    return b"".join(parts)


@pytest.mark.parametrize("size", SIZES)
def test_every_byte_in_order_whatever_the_read_size(tmp_path: Path, size: int) -> None:
    data = os.urandom(2 * BUFFER_SIZE + 12345)  # not a whole number of blocks
    (tmp_path / "file").write_bytes(data)
    with DirectReader((tmp_path / "file").open("rb", buffering=0)) as reader:
        assert read_all(reader, size) == data


def test_read_without_a_size_reads_to_the_end_and_an_empty_file_is_empty(tmp_path: Path) -> None:
    data = os.urandom(BUFFER_SIZE + 1)
    (tmp_path / "file").write_bytes(data)
    with DirectReader((tmp_path / "file").open("rb", buffering=0)) as reader:
        assert reader.read(10) == data[:10]
        assert reader.read() == data[10:]
        assert reader.read(1) == b""
    (tmp_path / "empty").write_bytes(b"")
    with DirectReader((tmp_path / "empty").open("rb", buffering=0)) as reader:
        assert reader.read(100) == b""


def test_closing_early_stops_the_thread_and_closes_the_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(os.urandom(8 * BUFFER_SIZE))
    handle = (tmp_path / "file").open("rb", buffering=0)
    reader = DirectReader(handle)
    assert len(reader.read(100)) == 100
    reader.close()
    assert handle.closed
    assert not [t for t in threading.enumerate() if t.name == "lifeboat-read-ahead"]

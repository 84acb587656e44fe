"""MongoDB support for Lifeboat's engine: the mongodump archive format and its gzip stream.

A Mongo backup is always one mongodump archive, gzipped (``mongo.archive.gz``), whichever
method wrote it: our driver-based dumper or a remote ``mongodump --archive --gzip``. Keeping
the format in one package means verify and restore read both kinds with the same code, and
the official ``mongorestore --archive --gzip`` can read what we write.
"""

from engine.mongo_archive.format import (
    ArchiveFormatError,
    ArchiveSummary,
    NamespaceMeta,
    NamespaceStats,
    namespace_name,
)
from engine.mongo_archive.pgzip import ParallelGzipWriter
from engine.mongo_archive.reader import ArchiveReader, iter_documents, summarize
from engine.mongo_archive.stream import open_archive
from engine.mongo_archive.writer import ArchiveWriter

__all__ = [
    "ArchiveFormatError",
    "ArchiveReader",
    "ArchiveSummary",
    "ArchiveWriter",
    "NamespaceMeta",
    "NamespaceStats",
    "ParallelGzipWriter",
    "iter_documents",
    "namespace_name",
    "open_archive",
    "summarize",
]

"""Which entries of a dump's table of contents a selective PostgreSQL restore takes.

The operator names tables by globs over ``database.schema.table`` (``shop.public.items``,
``shop.billing.*``), the same shape as Mongo's ``db.collection``. A selected table brings
its data and everything that depends on it, transitively: indexes, constraints (a foreign
key that points at it included, so that ``--clean`` may drop and recreate the table),
triggers, defaults, comments, grants, views over it. A sequence a selected table owns comes
too, with its value, since dropping the table drops the sequence. The result is the list
``pg_restore -L`` reads: one entry id a line.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from engine.pg_archive import TocEntry

TABLE_KINDS = ("TABLE", "TABLE DATA")


def matches(database: str, entry: TocEntry, globs: Iterable[str]) -> bool:
    """Whether the table ``entry`` names is one of ``globs`` (``db.schema.table``)."""
    name = f"{database}.{entry.namespace}.{entry.tag}"
    return any(fnmatchcase(name, glob) for glob in globs)


def databases_named(globs: Iterable[str], databases: Iterable[str]) -> list[str]:
    """The databases some glob may select a table of (its part before the first dot)."""
    heads = [glob.split(".", 1)[0] for glob in globs]
    return [db for db in databases if any(fnmatchcase(db, head) for head in heads)]


def select_entries(database: str, entries: list[TocEntry], globs: Iterable[str]) -> list[TocEntry]:
    """The entries restoring the tables of ``database`` that ``globs`` name, in dump order."""
    globs = tuple(globs)
    chosen = {e.dump_id for e in entries if e.desc in TABLE_KINDS and matches(database, e, globs)}
    if not chosen:
        return []
    tables = {e.dump_id for e in entries if e.desc == "TABLE" and e.dump_id in chosen}
    changed = True
    while changed:  # everything that depends on what is chosen, until nothing more does
        changed = False
        for entry in entries:
            if entry.dump_id not in chosen and any(dep in chosen for dep in entry.deps):
                chosen.add(entry.dump_id)
                changed = True
    chosen |= _owned_sequences(entries, tables, chosen)
    return [e for e in entries if e.dump_id in chosen]


def _owned_sequences(entries: list[TocEntry], tables: set[int], chosen: set[int]) -> set[int]:
    """The sequences (and their values) that a chosen table owns."""
    by_id = {e.dump_id: e for e in entries}
    owned = set()
    for entry in entries:
        if entry.desc == "SEQUENCE OWNED BY" and tables & set(entry.deps):
            for dep in entry.deps:
                if by_id.get(dep) is not None and by_id[dep].desc == "SEQUENCE":
                    owned.add(dep)
    names = {(by_id[s].namespace, by_id[s].tag) for s in owned}
    values = {
        e.dump_id
        for e in entries
        if e.desc == "SEQUENCE SET" and (e.namespace, e.tag) in names and e.dump_id not in chosen
    }
    return owned | values


def restore_list(entries: Iterable[TocEntry]) -> bytes:
    """``pg_restore -L``'s list: an entry id a line (names stay out: they may hold anything,
    a line break included)."""
    return "".join(f"{e.dump_id};\n" for e in entries).encode()

"""Validation checklists as data: TOML files of items an operator or Lifeboat checks.

A file holds one checklist: ``name``, ``title`` and ``[[items]]``. Item kinds: ``http`` (a URL,
optionally reached through an SSH tunnel from a host; expected status; body substring),
``mongo_count`` (a namespace glob whose counts equal the backup's, or are at least ``min``),
``mongo_query`` (filter, sort, limit: at least ``min`` rows, shown), ``etcd_keys`` (a prefix's
key count, equal to the backup's for the whole keyspace, or at least ``min``), ``redis_keys``
(a database's keys matching a pattern: the backup's count for ``*``, or at least ``min``),
``pg_count`` (a table's rows: the backup's, or at least ``min``), ``pg_query`` (a read-only
query: its first value equals ``expect``, or it returns at least ``min`` rows), ``etcd_health``
(the member answers a Status call and has a leader), ``command`` (a remote argv that must
exit 0, optional stdout regex) and ``manual`` (an instruction ticked with a note). Strings may
name ``{values}`` from ``[checklists.values]`` in the config, so the built-in checklist takes
its hosts and URLs from there; an item whose value is not set is reported as not configured
when it runs (and can be waived).

An item bound to a source (one with ``source``) checks that source. When a run validates a
restore, an item whose source was not restored (or whose source value is not set) is not
applicable (``not_applicable``): it does not run and does not hold the sign-off. Items
without a source (http, command, manual) always apply.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictInt, ValidationError, field_validator

from engine.config.messages import key_path
from engine.config.model import Config
from engine.config.types import MODEL_CONFIG, Command, NonEmptyStr, Seconds
from engine.errors import ConfigError

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
ONE_NAMESPACE = re.compile(r"[^.*?\[]+\.[^*?\[]+")
SOURCE_KIND_OF_ITEM = {
    "mongo_count": "mongo",
    "mongo_query": "mongo",
    "etcd_keys": "etcd",
    "etcd_health": "etcd",
    "redis_keys": "redis",
    "pg_count": "postgres",
    "pg_query": "postgres",
}


class _Item(BaseModel):
    model_config = MODEL_CONFIG
    id: NonEmptyStr
    title: NonEmptyStr
    required: bool = True
    timeout: Seconds = 30.0


class HttpItem(_Item):
    kind: Literal["http"]
    url: NonEmptyStr
    via: NonEmptyStr | None = None
    """A configured host to reach the URL from (through an SSH tunnel)."""
    status: StrictInt = 200
    body: str | None = None
    """A substring the response body must contain."""


class MongoCountItem(_Item):
    kind: Literal["mongo_count"]
    source: NonEmptyStr
    namespace: NonEmptyStr
    """``db.collection``; a glob checks every matching namespace of the backup."""
    min: StrictInt | None = None
    """At least this many documents; without it, exactly as many as in the backup."""


class MongoQueryItem(_Item):
    kind: Literal["mongo_query"]
    source: NonEmptyStr
    namespace: NonEmptyStr
    filter: dict[str, Any] = Field(default_factory=dict)
    sort: dict[str, Literal[1, -1]] = Field(default_factory=dict)
    limit: StrictInt = Field(20, gt=0, le=1000)
    min: StrictInt = 1


class EtcdKeysItem(_Item):
    kind: Literal["etcd_keys"]
    source: NonEmptyStr
    prefix: str = ""
    min: StrictInt | None = None
    """At least this many keys; without it (whole keyspace only), as many as in the backup."""


class RedisKeysItem(_Item):
    kind: Literal["redis_keys"]
    source: NonEmptyStr
    pattern: NonEmptyStr = "*"
    """A key pattern (redis-cli --scan --pattern); ``*`` is every key of the database."""
    db: StrictInt = Field(0, ge=0, le=1023)
    min: StrictInt | None = None
    """At least this many keys; without it (pattern ``*`` only), as many as the backup's
    database held (less at most its keys with a TTL, which may have expired)."""


class PgCountItem(_Item):
    kind: Literal["pg_count"]
    source: NonEmptyStr
    database: NonEmptyStr
    table: NonEmptyStr
    """``schema.table`` (``table`` alone: in ``public``)."""
    min: StrictInt | None = None
    """At least this many rows; without it, exactly as many as the backup's dump held."""

    @property
    def qualified(self) -> str:
        return self.table if "." in self.table else f"public.{self.table}"


class PgQueryItem(_Item):
    kind: Literal["pg_query"]
    source: NonEmptyStr
    database: NonEmptyStr
    sql: NonEmptyStr
    """One query, run in a read-only transaction."""
    expect: str | None = None
    """The first column of the first row, as psql prints it; without it, ``min`` rows."""
    min: StrictInt = 1


class EtcdHealthItem(_Item):
    kind: Literal["etcd_health"]
    source: NonEmptyStr


class CommandItem(_Item):
    kind: Literal["command"]
    host: NonEmptyStr
    argv: Command
    stdout: str | None = None
    """A regular expression the output must match."""

    @field_validator("stdout")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value


class ManualItem(_Item):
    kind: Literal["manual"]
    instruction: NonEmptyStr
    note: Literal["required", "optional"] = "optional"


Item = Annotated[
    HttpItem
    | MongoCountItem
    | MongoQueryItem
    | EtcdKeysItem
    | EtcdHealthItem
    | RedisKeysItem
    | PgCountItem
    | PgQueryItem
    | CommandItem
    | ManualItem,
    Field(discriminator="kind"),
]


class Checklist(BaseModel):
    model_config = MODEL_CONFIG
    name: NonEmptyStr
    title: NonEmptyStr
    items: tuple[Item, ...]

    @field_validator("items", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        # Checked on the input: a length limit on the field counts the items that validated,
        # and would add "at least 1 item" to the error of a file whose only item is wrong.
        if isinstance(value, list | tuple) and not value:
            raise ValueError("a checklist needs at least one [[items]] table")
        return value

    def item(self, item_id: str) -> Item:
        return next(item for item in self.items if item.id == item_id)


@dataclass(frozen=True)
class Loaded:
    """A checklist and, per item id, the ``{values}`` it names that the config does not set."""

    checklist: Checklist
    missing: Mapping[str, tuple[str, ...]]


def load_checklists(
    extra_paths: Iterable[Path],
    values: Mapping[str, str],
    hosts: Iterable[str],
    sources: Mapping[str, str],
) -> dict[str, Loaded]:
    """The built-in checklists, then the config's (same name replaces); ``sources`` maps each
    source name to its kind. Raises ``ConfigError`` listing every problem in every file."""
    files: list[tuple[str, str]] = [
        (f"runbooks/checklists/{item.name}", item.read_text(encoding="utf-8"))
        for item in sorted(resources.files("runbooks.checklists").iterdir(), key=lambda i: i.name)
        if item.name.endswith(".toml")
    ]
    problems: list[str] = []
    built_in = len(files)
    for path in extra_paths:
        try:
            files.append((str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot read ({exc}); fix checklists.paths")
    # A replaced built-in is not checked: the values may be meant for its replacement.
    replaced = {_declared_name(text) for _, text in files[built_in:]}
    files = [f for f in files[:built_in] if _declared_name(f[1]) not in replaced] + files[built_in:]
    found: dict[str, Loaded] = {}
    for where, text in files:
        loaded = parse_checklist(text, where, values, set(hosts), sources, problems)
        if loaded is not None:
            found[loaded.checklist.name] = loaded
    if problems:
        raise ConfigError(problems)
    return found


def not_applicable(item: Item, restored: Collection[str]) -> str | None:
    """Why ``item`` does not apply to a run that validates a restore of ``restored`` (the
    source names), or None when it applies. Only an item bound to a source can fail to apply:
    when its source is not among the restored ones, or its ``{value}`` for the source is not
    set. A run that validates no restore (``restored`` empty) runs every item."""
    source = getattr(item, "source", None)
    if not restored or not isinstance(source, str) or source in restored:
        return None
    was = f"the restore was of {', '.join(restored)}"
    unset = PLACEHOLDER.findall(source)
    if unset:
        names = ", ".join(f"checklists.values.{name}" for name in unset)
        return f"not applicable: its source ({names}) is not set; {was}"
    return f"not applicable: {source} was not restored ({was})"


def _declared_name(text: str) -> object:
    try:
        return tomllib.loads(text).get("name")
    except tomllib.TOMLDecodeError:
        return None


def parse_checklist(
    text: str,
    where: str,
    values: Mapping[str, str],
    hosts: set[str],
    sources: Mapping[str, str],
    problems: list[str],
) -> Loaded | None:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{where}: {exc}; fix the TOML syntax")
        return None
    missing: dict[str, tuple[str, ...]] = {}
    raw_items = data.get("items")
    if isinstance(raw_items, list):
        for raw in raw_items:
            if isinstance(raw, dict):
                unset = _fill(raw, values)
                if unset and isinstance(raw.get("id"), str):
                    missing[raw["id"]] = tuple(unset)
    try:
        checklist = Checklist.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = _location(error["loc"])
            problems.append(f"{where}: {loc or 'file'}: {error['msg']}")
        return None
    found = [f"{where}: {line}" for line in _reference_problems(checklist, missing, hosts, sources)]
    problems.extend(found)
    return None if found else Loaded(checklist, missing)


def _fill(raw: dict[str, Any], values: Mapping[str, str]) -> list[str]:
    """Replace ``{name}`` in the item's strings (in place); return the names not set."""
    unset: list[str] = []

    def one(text: str) -> str:
        def value(match: re.Match[str]) -> str:
            if match[1] in values:
                return values[match[1]]
            unset.append(match[1])
            return match[0]

        return PLACEHOLDER.sub(value, text)

    for key, field_value in raw.items():
        if isinstance(field_value, str):
            raw[key] = one(field_value)
        elif isinstance(field_value, list):
            raw[key] = [one(v) if isinstance(v, str) else v for v in field_value]
    return list(dict.fromkeys(unset))


def _location(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as a key path, without the kind tag pydantic puts after an item's
    index (``items[2].url``)."""
    if len(loc) > 2 and loc[0] == "items":
        loc = (*loc[:2], *loc[3:])
    return key_path("", loc)


def _reference_problems(
    checklist: Checklist,
    missing: Mapping[str, tuple[str, ...]],
    hosts: set[str],
    sources: Mapping[str, str],
) -> list[str]:
    problems = []
    seen: set[str] = set()
    for index, item in enumerate(checklist.items):
        where = f"items[{index}]"
        if item.id in seen:
            problems.append(f"{where}.id: {item.id!r} is used twice; give each item its own id")
        seen.add(item.id)
        if item.id in missing:
            continue  # not configured: said when it runs
        host = getattr(item, "host", None) or getattr(item, "via", None)
        if host is not None and host not in hosts:
            field = "host" if isinstance(item, CommandItem) else "via"
            known = ", ".join(sorted(hosts)) or "none are configured"
            problems.append(f"{where}.{field}: unknown host {host!r}; configured hosts: {known}")
        wanted = SOURCE_KIND_OF_ITEM.get(item.kind)
        source = getattr(item, "source", None)
        if wanted and source is not None and sources.get(source) != wanted:
            choices = ", ".join(n for n, k in sources.items() if k == wanted) or "none"
            article = "an" if wanted == "etcd" else "a"
            problems.append(
                f"{where}.source: {source!r} is not {article} {wanted} source; "
                f"{wanted} sources: {choices}"
            )
        if (
            isinstance(item, MongoCountItem | MongoQueryItem)
            and (isinstance(item, MongoQueryItem) or item.min is not None)
            and not ONE_NAMESPACE.fullmatch(item.namespace)
        ):
            problems.append(
                f"{where}.namespace: {item.namespace!r} must name one collection as "
                "db.collection, without * ? [ (only mongo_count without min takes a glob, "
                "compared with the backup)"
            )
        if isinstance(item, RedisKeysItem) and item.min is None and item.pattern != "*":
            problems.append(
                f"{where}.min: a pattern needs min = N (the backup records each database's "
                "count only)"
            )
        if isinstance(item, EtcdKeysItem) and item.min is None and item.prefix:
            problems.append(
                f"{where}.min: a prefix needs min = N (the backup records the whole "
                "keyspace's count only)"
            )
    return problems


def checklists_for(config: Config) -> dict[str, Loaded]:
    """Every checklist the config can run, with its values filled in."""
    return load_checklists(
        config.checklists.paths,
        config.checklists.values,
        config.hosts,
        {name: source.kind for name, source in config.sources.items()},
    )

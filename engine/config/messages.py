"""How a config problem is worded: ``<key path>: <problem>; <fix>``, one line each."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import ErrorDetails

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")  # TOML keys that need no quotes
_EXPECTED = {  # pydantic error type -> what the value must be
    **dict.fromkeys(("int_type", "int_parsing", "int_from_float"), "an integer"),
    **dict.fromkeys(("float_type", "float_parsing"), "a number"),
    **dict.fromkeys(("tuple_type", "list_type"), "a list"),
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "string_type": "a string",
    "path_type": "a path (a string)",
}


def toml_keys(model: type[BaseModel]) -> tuple[str, ...]:
    """The keys an operator may write in ``model``'s table (fields set by the loader are not)."""
    hidden: frozenset[str] = getattr(model, "NOT_TOML_KEYS", frozenset())
    return tuple(key for key in model.model_fields if key not in hidden)


def describe_error(model: type[BaseModel], prefix: str, error: ErrorDetails) -> list[str]:
    """One line per problem in one pydantic error, in our words."""
    loc, kind, value, ctx = error["loc"], error["type"], error["input"], error.get("ctx", {})
    where = key_path(prefix, loc)
    field = loc[0] if loc and isinstance(loc[0], str) and loc[0] in model.model_fields else None
    examples = model.model_fields[field].examples if field else None
    example = f"{field} = {show_value(examples[0])}" if examples else ""
    got = f", got {show_value(value)}"
    if kind == "missing":
        return [
            f"{where}: missing; add {example} under [{prefix}]" if example else f"{where}: missing"
        ]
    if kind == "extra_forbidden":
        return [unknown_key(where, toml_keys(model))]
    if kind in ("model_type", "dict_type"):
        return [f"{where}: must be a table{got}; write it as [{where}]"]
    if kind == "duplicate_path":
        return [
            f"{where}[{i}]: duplicate path {show_value(path)} (already {where}[{j}]); "
            "list each path once"
            for i, path, j in ctx["duplicates"]
        ]
    if kind == "nul_path":
        return [f"{where}: {error['msg']}{got}; remove it"]
    if kind == "relative_path":
        full = examples[0] if examples else "/var/backups/lifeboat"
        full = full if isinstance(full, str) else full[0]  # the example of a list of paths
        return [
            f"{where}: must be an absolute path{got}; write the full path, e.g. {show_value(full)}"
        ]
    if kind in ("too_short", "string_too_short"):
        # pydantic also calls a list "too short" when its items failed: those are reported
        problem = "must not be empty" if not value else ""
    elif kind == "greater_than":
        problem = (
            f"must be a positive number{got}" if ctx["gt"] == 0 else f"must be > {ctx['gt']}{got}"
        )
    elif kind == "less_than_equal":
        limit = ctx["le"]  # a float field's limit comes as 604800.0: shown as written
        problem = f"must be at most {int(limit) if limit == int(limit) else limit}{got}"
    elif kind == "value_error":
        problem = str(ctx["error"])
    else:
        problem = f"must be {_EXPECTED[kind]}{got}" if kind in _EXPECTED else f"is invalid{got}"
    if not problem:
        return []
    return [f"{where}: {problem}; e.g. {example}" if example else f"{where}: {problem}"]


def unknown_key(where: str, valid: Collection[str]) -> str:
    key = where.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"{where}: unknown key; {hint}valid keys: {', '.join(valid)}"


def syntax_problem(source: str, message: str) -> str:
    """tomllib's message as ``<file>: line N: <message>; <fix>``."""
    where = ""
    if match := re.search(r"\s*\(at line (\d+), column (\d+)\)$", message):
        where, message = f"line {match[1]}, column {match[2]}: ", message[: match.start()]
    elif match := re.search(r"\s*\(at end of document\)$", message):
        where, message = "end of file: ", message[: match.start()]
    # "Cannot declare ('hosts', 'db1') twice" -> "Cannot declare [hosts.db1] twice"
    message = re.sub(
        r"\(('[^']*'(?:, '[^']*')*)\)",
        lambda m: "[" + ".".join(re.findall(r"'([^']*)'", m[1])) + "]",
        message,
    )
    return f"{source}: {where}{message}; fix the TOML syntax"


def key_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    """A pydantic location as a key path: ``hosts.db1.port``, ``sources.x.paths[1]``."""
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text = f"{text}.{quote_key(part)}" if text else quote_key(part)
    return text


def quote_key(name: str) -> str:
    """A key as written in TOML: bare when it can be, quoted otherwise."""
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def show_value(value: object, depth: int = 0) -> str:
    """A value as it would be written in TOML, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | Path):
        text = json.dumps(str(value), ensure_ascii=False)
    elif isinstance(value, list | tuple):  # deep nesting: shown as [...] past two levels
        items = ", ".join(show_value(item, depth + 1) for item in value) if depth < 2 else "..."
        text = f"[{items}]"
    elif isinstance(value, dict):
        text = "a table"
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def unknown_host(
    name: str, host: str, hosts: Collection[str], table: str = "sources"
) -> str | None:
    """The problem with ``[table.name] host`` naming no ``[hosts]`` entry (None: it does)."""
    if host in hosts:
        return None
    others = f" or use one of: {', '.join(quote_key(h) for h in sorted(hosts))}" if hosts else ""
    where = f"{table}.{quote_key(name)}.host"
    return f"{where}: unknown host {show_value(host)}; define [hosts.{quote_key(host)}]{others}"

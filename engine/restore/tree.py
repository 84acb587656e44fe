"""Restore decision trees: data (TOML) that says which restore fits an incident.

A tree file holds one tree: ``name``, ``title``, ``start`` and ``[nodes.<id>]`` tables of four
kinds. A *question* offers choices, each leading to another node; an *input* asks for free
text (namespace globs, say) kept under its ``key``; *advice* ends the walk without a restore
(what to do instead, with the command to run); an *outcome* ends it with a plan: sources (by
name or by kind), namespace globs, where to restore, notes and the checklist to run after.

Loading validates every tree and reports every mistake at once as ``file: key path: problem;
fix`` (a ``ConfigError``): unknown node references, cycles, unreachable nodes, outcomes naming
unknown sources or kinds, inputs nobody asks for.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationError

from engine.config.messages import key_path
from engine.config.model import SOURCE_KINDS
from engine.config.types import MODEL_CONFIG, NonEmptyStr
from engine.errors import ConfigError, UsageError

BUILT_IN = "restore"


class Choice(BaseModel):
    model_config = MODEL_CONFIG
    value: NonEmptyStr
    """What ``--answer KEY=VALUE`` types to pick this choice."""
    label: NonEmptyStr
    next: NonEmptyStr


class QuestionNode(BaseModel):
    model_config = MODEL_CONFIG
    kind: Literal["question"]
    key: NonEmptyStr
    text: NonEmptyStr
    help: str = ""
    choices: tuple[Choice, ...] = Field(min_length=2)


class InputNode(BaseModel):
    model_config = MODEL_CONFIG
    kind: Literal["input"]
    key: NonEmptyStr
    text: NonEmptyStr
    help: str = ""
    placeholder: str = ""
    next: NonEmptyStr


class AdviceNode(BaseModel):
    model_config = MODEL_CONFIG
    kind: Literal["advice"]
    title: NonEmptyStr
    text: NonEmptyStr
    command: str | None = None
    notes: tuple[str, ...] = ()


class OutcomeNode(BaseModel):
    model_config = MODEL_CONFIG
    kind: Literal["outcome"]
    title: NonEmptyStr
    text: NonEmptyStr
    sources: tuple[NonEmptyStr, ...] = ()
    """Source names from the config."""
    kinds: tuple[NonEmptyStr, ...] = ()
    """Source kinds: every configured source of these kinds."""
    namespaces: tuple[NonEmptyStr, ...] = ()
    """Mongo namespace globs to restore (all when empty)."""
    namespaces_from: NonEmptyStr | None = None
    """The key of an input node whose answer holds the globs (space separated)."""
    target: Literal["original", "alternate"] = "original"
    notes: tuple[str, ...] = ()
    checklist: NonEmptyStr = "post-restore"


Node = Annotated[QuestionNode | InputNode | AdviceNode | OutcomeNode, Field(discriminator="kind")]
Asking = QuestionNode | InputNode
Ending = AdviceNode | OutcomeNode


class Tree(BaseModel):
    model_config = MODEL_CONFIG
    name: NonEmptyStr
    title: NonEmptyStr
    start: NonEmptyStr
    nodes: dict[str, Node] = Field(min_length=1)

    def scenarios(self) -> tuple[Choice, ...]:
        """The first question's choices (``--scenario`` picks one)."""
        first = self.nodes[self.start]
        return first.choices if isinstance(first, QuestionNode) else ()


@dataclass
class Walk:
    """Where a set of answers leads: the steps taken, then an ending or the next question."""

    tree: Tree
    steps: list[tuple[str, Asking, str]] = field(default_factory=list)  # node id, node, answer
    ending: Ending | None = None
    ending_id: str | None = None
    pending: Asking | None = None

    @property
    def answers(self) -> dict[str, str]:
        return {node.key: answer for _, node, answer in self.steps}


def walk(tree: Tree, answers: Mapping[str, str]) -> Walk:
    """Follow ``answers`` (question key -> choice value or input text) from the start.

    Stops at the first question without an answer (``pending``) or at an ending. A value that
    is not one of a question's choices raises ``UsageError`` listing them.
    """
    result = Walk(tree)
    node_id = tree.start
    while True:  # validated trees have no cycles
        node = tree.nodes[node_id]
        if isinstance(node, AdviceNode | OutcomeNode):
            result.ending, result.ending_id = node, node_id
            return result
        answer = answers.get(node.key)
        if answer is None:
            result.pending = node
            return result
        if isinstance(node, InputNode):
            result.steps.append((node_id, node, answer))
            node_id = node.next
            continue
        choice = next((c for c in node.choices if c.value == answer), None)
        if choice is None:
            raise UsageError(
                f"{node.key}={answer!r} is not an answer to {node.text!r}; choose one of: "
                + ", ".join(f"{c.value} ({c.label})" for c in node.choices)
            )
        result.steps.append((node_id, node, answer))
        node_id = choice.next


def load_trees(
    extra_paths: Iterable[Path] = (), source_names: Iterable[str] | None = None
) -> dict[str, Tree]:
    """The built-in trees, then the config's files (a tree of the same name replaces one).

    With ``source_names``, outcomes must name only those sources. Raises ``ConfigError``
    listing every problem in every file.
    """
    known = set(source_names) if source_names is not None else None
    trees: dict[str, Tree] = {}
    problems: list[str] = []
    built_in = resources.files("runbooks")
    files: list[tuple[str, str | None]] = [
        (f"runbooks/{item.name}", item.read_text(encoding="utf-8"))
        for item in sorted(built_in.iterdir(), key=lambda item: item.name)
        if item.name.endswith(".toml")
    ]
    for path in extra_paths:
        try:
            files.append((str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot read ({exc}); fix runbooks.paths")
    for where, text in files:
        tree = parse_tree(text or "", where, problems, known, set(SOURCE_KINDS))
        if tree is not None:
            trees[tree.name] = tree
    if problems:
        raise ConfigError(problems)
    return trees


def check_tree_file(path: Path, source_names: Iterable[str] | None = None) -> Tree:
    """Validate one tree file (``lifeboat runbook check``); raises ``ConfigError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read ({exc})"]) from None
    problems: list[str] = []
    known = set(source_names) if source_names is not None else None
    tree = parse_tree(text, str(path), problems, known, set(SOURCE_KINDS))
    if tree is None or problems:
        raise ConfigError(problems)
    return tree


def parse_tree(
    text: str, where: str, problems: list[str], sources: set[str] | None, kinds: set[str]
) -> Tree | None:
    """Parse and validate one file, appending ``where: ...`` lines to ``problems``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{where}: {exc}; fix the TOML syntax")
        return None
    try:
        tree = Tree.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = _location(error["loc"])
            problems.append(f"{where}: {loc or 'file'}: {_message(error['msg'])}")
        return None
    found = [f"{where}: {line}" for line in tree_problems(tree, sources, kinds)]
    problems.extend(found)
    return None if found else tree


_KIND_TAGS = {"question", "input", "advice", "outcome"}


def _location(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as a key path (``nodes.x.choices[0].next``), without the union's
    kind tag that pydantic inserts after the node id (a node may itself be named ``outcome``)."""
    if len(loc) > 2 and loc[0] == "nodes" and loc[2] in _KIND_TAGS:
        loc = (*loc[:2], *loc[3:])
    return key_path("", loc)


def _message(text: str) -> str:
    if text.startswith("Extra inputs"):
        return "unknown key; see the node kinds in README (question, input, advice, outcome)"
    if text.startswith("Input tag"):
        return f"{text}; set kind to question, input, advice or outcome"
    return text


def tree_problems(tree: Tree, sources: set[str] | None, kinds: set[str]) -> list[str]:
    """Dangling references, cycles, unreachable nodes, unknown sources; one line each."""
    ids = ", ".join(tree.nodes)
    problems = []
    if tree.start not in tree.nodes:
        return [f"start: unknown node {tree.start!r}; nodes are: {ids}"]
    edges: dict[str, list[str]] = {}
    for node_id, node in tree.nodes.items():
        where = f"nodes.{node_id}"
        if isinstance(node, QuestionNode):
            edges[node_id] = [c.next for c in node.choices]
            values = [c.value for c in node.choices]
            for i, choice in enumerate(node.choices):
                if choice.next not in tree.nodes:
                    problems.append(
                        f"{where}.choices[{i}].next: unknown node {choice.next!r}; nodes are: {ids}"
                    )
                if values.index(choice.value) != i:
                    problems.append(
                        f"{where}.choices[{i}].value: {choice.value!r} is used twice; "
                        "give each choice its own value"
                    )
        elif isinstance(node, InputNode):
            edges[node_id] = [node.next]
            if node.next not in tree.nodes:
                problems.append(f"{where}.next: unknown node {node.next!r}; nodes are: {ids}")
        elif isinstance(node, OutcomeNode):
            problems.extend(_outcome_problems(tree, node_id, node, sources, kinds))
    if problems:
        return problems
    cycle = _find_cycle(tree.start, edges)
    if cycle:
        path = " -> ".join(f"nodes.{n}" for n in cycle)
        return [f"{path}: a cycle; every path must end at an advice or outcome node"]
    reachable = _reachable(tree.start, edges)
    return [
        f"nodes.{node_id}: unreachable from start {tree.start!r}; lead a choice to it or remove it"
        for node_id in tree.nodes
        if node_id not in reachable
    ]


def _outcome_problems(
    tree: Tree, node_id: str, node: OutcomeNode, sources: set[str] | None, kinds: set[str]
) -> list[str]:
    where = f"nodes.{node_id}"
    problems = []
    if not node.sources and not node.kinds:
        problems.append(f"{where}: names no sources; add sources = [...] or kinds = [...]")
    if sources is not None:
        for source in node.sources:
            if source not in sources:
                known = ", ".join(sorted(sources)) or "none are configured"
                problems.append(
                    f"{where}.sources: unknown source {source!r}; configured sources: {known}"
                )
    for kind in node.kinds:
        if kind not in kinds:
            problems.append(
                f"{where}.kinds: unknown kind {kind!r}; kinds are: {', '.join(sorted(kinds))}"
            )
    inputs = {n.key for n in tree.nodes.values() if isinstance(n, InputNode)}
    if node.namespaces_from is not None and node.namespaces_from not in inputs:
        problems.append(
            f"{where}.namespaces_from: no input node has key {node.namespaces_from!r}; "
            "add an input node that asks for it"
        )
    return problems


def _find_cycle(start: str, edges: dict[str, list[str]]) -> list[str] | None:
    """The first cycle reachable from ``start``, as a node path that ends where it began."""
    path: list[str] = []
    state: dict[str, str] = {}  # "open" while on the path, "done" once fully explored

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for successor in edges.get(node, []):
            if state.get(successor) == "open":
                return [*path[path.index(successor) :], successor]
            if successor not in state and (found := visit(successor)):
                return found
        path.pop()
        state[node] = "done"
        return None

    return visit(start)


def _reachable(start: str, edges: dict[str, list[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for successor in edges.get(todo.pop(), []):
            if successor not in seen:
                seen.add(successor)
                todo.append(successor)
    return seen

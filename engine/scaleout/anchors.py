"""The audit log's head anchored outside the repository: etcd when ``[coordination]`` is set,
the Mongo catalog when ``[catalog]`` is.

Anyone who can write the repository can rewrite the whole audit log, recomputing every hash
and ``audit.head``; the chain alone cannot show that. A copy of the head (``{"lines": N,
"sha256": ...}`` under the repository's id) kept where the repository's writers cannot reach
it does: ``lifeboat audit verify`` reports a log that no longer holds an anchored line, naming
the anchor. ``engine.repo.audit.record`` keeps the anchors registered by :func:`anchor_audit_log`
up to date, and never overwrites one that disagrees with the log (it is the evidence).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from engine.config.model import Config
from engine.errors import LifeboatError
from engine.repo import audit
from engine.repo.audit import Anchor, Head
from engine.repo.repository import Repository

if TYPE_CHECKING:
    from engine.scaleout.catalog import Catalog
    from engine.scaleout.coordination import Coordinator

T = TypeVar("T")


def anchors_of(config: Config) -> list[Anchor]:
    """The anchors ``config`` offers for its repository's audit log (none, one or two)."""
    repo = Repository(config.repository.path)
    anchors: list[Anchor] = []
    if config.coordination is not None:
        anchors.append(EtcdAnchor(config, repo))
    if config.catalog is not None:
        anchors.append(CatalogAnchor(config, repo))
    return anchors


def anchor_audit_log(config: Config) -> None:
    """Keep ``config``'s anchors up to date with every audit record this process writes."""
    audit.anchor_with(config.repository.path, anchors_of(config))


def _parsed(value: object, name: str) -> Head:
    head = Head.parse(value)
    if head is None:
        raise LifeboatError(
            f"the audit head anchored in {name} is unreadable ({str(value)[:80]}): someone "
            "changed it; compare the audit log with a backup of the repository"
        )
    return head


class EtcdAnchor:
    """The head under ``/lifeboat/<repo id>/audit/head`` in the ``[coordination]`` etcd."""

    def __init__(self, config: Config, repo: Repository) -> None:
        assert config.coordination is not None
        self._config, self._repo = config, repo
        self.name = f"etcd at {config.coordination.etcd}"

    def read(self) -> Head | None:
        value = self._call(lambda coordinator: coordinator.audit_head())
        return None if value is None else _parsed(value, self.name)

    def advance(self, head: Head, may_replace: Callable[[Head | None], bool]) -> bool:
        def decide(current: bytes | None) -> bytes | None:
            anchored = None if current is None else _parsed(current, self.name)
            return head.to_json() if may_replace(anchored) else None

        return self._call(lambda coordinator: coordinator.swap_audit_head(decide))

    def _call(self, use: Callable[[Coordinator], T]) -> T:
        """``use(coordinator)`` on a coordinator opened for it (through the SSH tunnel when
        one is configured), in an event loop of its own: audit records are written from
        plain functions and from inside event loops alike."""
        from engine.scaleout.coordination import open_coordinator

        async def run() -> T:
            async with open_coordinator(self._config, self._repo) as coordinator:
                assert coordinator is not None  # [coordination] is set
                return await asyncio.to_thread(use, coordinator)

        with ThreadPoolExecutor(1, thread_name_prefix="lifeboat-audit-anchor") as pool:
            return pool.submit(asyncio.run, run()).result()


class CatalogAnchor:
    """The head in the ``audit_heads`` collection of the ``[catalog]``, by repository id."""

    def __init__(self, config: Config, repo: Repository) -> None:
        self._config, self._repo = config, repo

    @cached_property
    def name(self) -> str:
        with self._open() as catalog:
            return f"the catalog at {catalog.where}"

    def read(self) -> Head | None:
        from engine.scaleout.catalog import audit_head

        with self._open() as catalog:
            document = audit_head(catalog, self._repo.repo_id())
        return None if document is None else _parsed(document, self.name)

    def advance(self, head: Head, may_replace: Callable[[Head | None], bool]) -> bool:
        from engine.scaleout.catalog import swap_audit_head

        def decide(current: dict[str, Any] | None) -> dict[str, Any] | None:
            anchored = None if current is None else _parsed(current, self.name)
            return head._asdict() if may_replace(anchored) else None

        with self._open() as catalog:
            return swap_audit_head(catalog, self._repo.repo_id(), decide)

    def _open(self) -> Catalog:
        from engine.scaleout.catalog import open_catalog

        catalog = open_catalog(self._config)
        assert catalog is not None  # [catalog] is set
        return catalog

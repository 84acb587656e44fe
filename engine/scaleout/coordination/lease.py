"""etcd leases kept alive from a daemon thread, and etcd failures as ``CoordinationError``."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from engine.scaleout.coordination.model import CoordinationError

if TYPE_CHECKING:
    import etcd3

T = TypeVar("T")


def etcd_failures() -> tuple[type[Exception], ...]:
    """What a failed etcd request raises (imported late: grpc is heavy)."""
    import grpc
    from etcd3.exceptions import Etcd3Exception

    return grpc.RpcError, Etcd3Exception


def _lease_failures() -> tuple[type[Exception], ...]:
    """What a lease refresh or revoke raises: an etcd failure, or ValueError once the
    client's channel is closed."""
    return (*etcd_failures(), ValueError)


def failure_detail(exc: Exception) -> str:
    """A one-line description of a failed etcd request."""
    import grpc

    if isinstance(exc, grpc.RpcError) and isinstance(exc, grpc.Call):
        return f"{exc.code().name}: {exc.details()}"
    return str(exc) or type(exc).__name__


def etcd_call(call: Callable[[], T]) -> T:
    """``call()``, with a failed etcd request raised as ``CoordinationError``."""
    try:
        return call()
    except etcd_failures() as exc:
        raise CoordinationError(
            f"coordination: etcd request failed ({failure_detail(exc)})"
        ) from None


class KeptLease:
    """A lease granted on creation and refreshed every third of its TTL until ``stop``.

    ``lost`` turns True, for good, when a refresh finds the lease gone or when no refresh has
    succeeded for a whole TTL (etcd has expired it by then, even if we could not hear so);
    refreshing stops then, since the keys may already be someone else's.
    """

    def __init__(self, client: etcd3.MultiEndpointEtcd3Client, ttl: float) -> None:
        self._client = client
        asked = time.monotonic()
        lease = etcd_call(lambda: client.lease(math.ceil(ttl)))
        self.id: int = lease.id
        self.ttl: int = lease.ttl  # as granted: etcd may raise a TTL below its minimum
        self._refreshed = asked  # when the last successful grant or refresh was sent
        self._lost = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._keep_alive, name=f"lifeboat-lease-{self.id:x}", daemon=True
        )
        self._thread.start()

    @property
    def lost(self) -> bool:
        if not self._lost and time.monotonic() - self._refreshed >= self.ttl:
            self._lost = True
        return self._lost

    def _keep_alive(self) -> None:
        failures = _lease_failures()
        while not self._stopping.wait(self.ttl / 3) and not self.lost:
            sent = time.monotonic()
            try:
                answers = list(self._client.refresh_lease(self.id))
            except failures:
                continue  # etcd unreachable for now: ``lost`` turns True after a TTL
            if answers and answers[-1].TTL > 0:
                self._refreshed = sent
            else:
                self._lost = True

    def stop(self, *, revoke: bool) -> None:
        """Stop refreshing; ``revoke`` deletes the lease and its keys at once (best effort:
        when etcd cannot be reached the lease expires by itself within its TTL)."""
        self._stopping.set()
        self._thread.join(self.ttl)  # a refresh in flight ends by the client's timeout
        if revoke:
            try:
                self._client.revoke_lease(self.id)
            except _lease_failures():
                pass  # already gone, or etcd unreachable: it expires by itself

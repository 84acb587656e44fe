"""Schedule tick claims and restore locks in etcd, built on leases and transactions.

etcd3's ``Lock`` is not used: ``with client.lock()`` runs its block even when acquiring
failed. Every lock here is a key put by a transaction that first checks the key is absent,
under a lease this process keeps alive, so a holder that dies loses it within the TTL.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from engine.errors import RepositoryLockedError
from engine.scaleout.coordination.lease import KeptLease, etcd_call
from engine.scaleout.coordination.model import Keys, LockInfo, iso_utc

if TYPE_CHECKING:
    import etcd3

Op = Any  # an etcd3.transactions operation (Put, Get, Delete, Txn)


class _LeaseIs:
    """A transaction compare: ``key`` exists under lease ``lease_id`` (etcd3 offers none)."""

    def __init__(self, key: str, lease_id: int) -> None:
        self.key = key
        self.lease_id = lease_id

    def build_message(self) -> Any:
        from etcd3 import etcdrpc

        return etcdrpc.Compare(
            key=self.key.encode(),
            target=etcdrpc.Compare.LEASE,
            result=etcdrpc.Compare.EQUAL,
            lease=self.lease_id,
        )


def _if_done_before(
    t: etcd3.Transactions, done: str, fire: str, then: list[Op], otherwise: list[Op]
) -> Op:
    """A nested transaction running ``then`` when the done marker is absent or older than
    ``fire``, else ``otherwise`` (etcd fails a value compare on a missing key, hence two)."""
    absent = t.txn(compare=[t.version(done) == 0], success=then, failure=otherwise)
    return t.txn(compare=[t.value(done) < fire], success=then, failure=[absent])


def _took_then(response: Any) -> bool:
    """Whether the ``_if_done_before`` that gave ``response`` ran its ``then``."""
    txn = response.response_txn
    return bool(txn.succeeded or txn.responses[0].response_txn.succeeded)


def _lock_in(found: list[tuple[bytes, Any]]) -> LockInfo | None:
    """The lock in a transaction's get result, if the key existed."""
    if not found:
        return None
    value, meta = found[0]
    return LockInfo.from_json(meta.key.decode(), value)


def _refusal(
    fire: str,
    running: list[tuple[bytes, Any]],
    tick: list[tuple[bytes, Any]],
    done: list[tuple[bytes, Any]],
) -> str:
    """Why a claim of the tick at ``fire`` failed, from the keys its transaction read."""
    if done and done[0][0].decode() >= fire:
        return "tick already done"
    claimed = _lock_in(tick)
    if claimed is not None:
        return f"claimed by {claimed.describe()}"
    going = _lock_in(running)
    assert going is not None  # the transaction failed, so the tick or running exists
    return f"previous run still going on {going.describe()}"


class Coordinator:
    """This instance's view of the locks under ``/lifeboat/<repo_id>/`` (thread-safe).

    Calls block on etcd: from asyncio, run them with ``asyncio.to_thread`` (which a tunnelled
    client needs anyway, since its event loop carries the tunnel).
    """

    def __init__(
        self, client: etcd3.MultiEndpointEtcd3Client, repo_id: str, instance: str, ttl: float
    ) -> None:
        self.client = client
        self.keys = Keys.of_repository(repo_id)
        self.instance = instance
        self.ttl = ttl
        self._leases: set[KeptLease] = set()
        self._guard = threading.Lock()

    def _lock_info(
        self,
        key: str,
        kind: str,
        name: str,
        *,
        fire: str | None = None,
        operator: str | None = None,
    ) -> LockInfo:
        return LockInfo(
            key=key,
            kind=kind,
            name=name,
            instance=self.instance,
            host=socket.gethostname(),
            pid=os.getpid(),
            since=iso_utc(datetime.now(UTC)),
            fire=fire,
            operator=operator,
        )

    def _grant(self) -> KeptLease:
        lease = KeptLease(self.client, self.ttl)
        with self._guard:
            self._leases.add(lease)
        return lease

    def _drop(self, lease: KeptLease) -> None:
        with self._guard:
            self._leases.discard(lease)
        lease.stop(revoke=True)

    def claim_tick(self, schedule: str, fire: datetime) -> TickClaim | str:
        """Claim the run of ``schedule`` due at ``fire``, or say why not, in one transaction:
        no run of the schedule in progress, this tick unclaimed, the done marker older."""
        when = iso_utc(fire)
        running, tick = self.keys.running(schedule), self.keys.tick(schedule, when)
        done = self.keys.done(schedule)
        info = self._lock_info(running, "schedule", schedule, fire=when)
        t = self.client.transactions
        value = info.to_json()
        lease = self._grant()
        take = [t.put(running, value, lease.id), t.put(tick, value, lease.id)]
        try:
            ok, responses = etcd_call(
                lambda: self.client.transaction(
                    compare=[t.version(running) == 0, t.version(tick) == 0],
                    success=[_if_done_before(t, done, when, take, [])],
                    failure=[t.get(running), t.get(tick), t.get(done)],
                )
            )
        except BaseException:
            self._drop(lease)
            raise
        if ok and _took_then(responses[0]):
            return TickClaim(self, info, tick, done, lease)
        self._drop(lease)
        return "tick already done" if ok else _refusal(when, *responses)

    def holders(self) -> list[LockInfo]:
        """Every live lock of the repository: running schedules and restores, by key. Keys of
        an expired lease are gone (etcd deletes them), so everything listed is held."""
        found = etcd_call(lambda: list(self.client.get_prefix(self.keys.prefix)))
        return [
            LockInfo.from_json(key, value)
            for value, meta in found
            if self.keys.is_lock(key := meta.key.decode())
        ]

    def swap_audit_head(self, decide: Callable[[bytes | None], bytes | None]) -> bool:
        """Replace the anchored audit head with ``decide(the current value)`` unless that is
        None, in one transaction that fails if the value changed meanwhile (then decided
        again); whether it was replaced."""
        key, t = self.keys.audit_head, self.client.transactions
        while True:
            current, meta = etcd_call(lambda: self.client.get(key))
            new = decide(current)
            if new is None:
                return False
            same = t.version(key) == 0 if meta is None else t.mod(key) == meta.mod_revision
            if self._put_if(same, key, new):
                return True

    def _put_if(self, compare: Op, key: str, value: bytes) -> bool:
        """Put ``value`` at ``key`` if ``compare`` holds, in one transaction."""
        t = self.client.transactions
        ok, _ = etcd_call(
            lambda: self.client.transaction(
                compare=[compare], success=[t.put(key, value)], failure=[]
            )
        )
        return bool(ok)

    def audit_head(self) -> bytes | None:
        """The anchored audit head, as stored (None when there is none)."""
        value, _meta = etcd_call(lambda: self.client.get(self.keys.audit_head))
        return None if value is None else bytes(value)

    def target_locks(self) -> EtcdTargetLocks:
        return EtcdTargetLocks(self)

    def close(self) -> None:
        """Give up every claim and lock still held, then close the client."""
        with self._guard:
            leases = list(self._leases)
            self._leases.clear()
        for lease in leases:
            lease.stop(revoke=True)
        self.client.close()


class TickClaim:
    """A claimed tick: its lease is kept alive until ``finish`` or ``release``."""

    def __init__(
        self, coordinator: Coordinator, info: LockInfo, tick: str, done: str, lease: KeptLease
    ) -> None:
        self.info = info
        self._coordinator = coordinator
        self._tick = tick
        self._done = done
        self._lease = lease
        self._ended = False
        self._guard = threading.Lock()

    @property
    def lost(self) -> bool:
        """True once the lease is known or bound to be gone: the lock may be someone else's."""
        return self._lease.lost

    def _end(self) -> bool:
        """Mark the claim ended; False if it already was."""
        with self._guard:
            ended, self._ended = self._ended, True
        return not ended

    def finish(self) -> None:
        """The run is over: advance the done marker to this tick (never backwards), delete
        the claim's keys if they are still ours, and revoke the lease."""
        if not self._end():
            raise RuntimeError(f"the claim of {self.info.name} at {self.info.fire} has ended")
        coordinator, fire = self._coordinator, self.info.fire
        assert fire is not None
        t = coordinator.client.transactions
        ours = [t.delete(self.info.key), t.delete(self._tick)]
        try:
            etcd_call(
                lambda: coordinator.client.transaction(
                    compare=[_LeaseIs(self.info.key, self._lease.id)],
                    success=[
                        _if_done_before(t, self._done, fire, [t.put(self._done, fire), *ours], ours)
                    ],
                    failure=[_if_done_before(t, self._done, fire, [t.put(self._done, fire)], [])],
                )
            )
        finally:
            coordinator._drop(self._lease)

    def release(self) -> None:
        """Give the tick up without marking it done (another instance may run it)."""
        if self._end():
            self._coordinator._drop(self._lease)

    def __enter__(self) -> TickClaim:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


class EtcdTargetLocks:
    """``TargetLocks`` in etcd: ``restore/<target>`` under a kept-alive lease while held."""

    def __init__(self, coordinator: Coordinator) -> None:
        self._coordinator = coordinator

    def holder(self, target: str) -> str | None:
        key = self._coordinator.keys.restore(target)
        value, _meta = etcd_call(lambda: self._coordinator.client.get(key))
        return None if value is None else LockInfo.from_json(key, value).describe()

    @contextmanager
    def hold(self, target: str, operator: str) -> Iterator[None]:
        coordinator = self._coordinator
        key = coordinator.keys.restore(target)
        info = coordinator._lock_info(key, "restore", target, operator=operator)
        t = coordinator.client.transactions
        lease = coordinator._grant()
        try:
            ok, responses = etcd_call(
                lambda: coordinator.client.transaction(
                    compare=[t.version(key) == 0],
                    success=[t.put(key, info.to_json(), lease.id)],
                    failure=[t.get(key)],
                )
            )
            if not ok:
                holder = _lock_in(responses[0])
                assert holder is not None  # read in the same transaction as the compare
                raise RepositoryLockedError(
                    f"another restore holds {target}: {holder.describe()}; wait for it to finish"
                )
            yield
        finally:
            coordinator._drop(lease)

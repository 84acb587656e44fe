"""etcd coordination between Lifeboat instances sharing a repository (DESIGN.md "Scale-out").

Each scheduled tick runs once across instances, and two restores never write to the same
target at once. Keys, under ``/lifeboat/<repo_id>/`` (names percent-encoded):

- ``schedules/<name>/running``: the run in progress (LockInfo JSON, leased);
- ``schedules/<name>/ticks/<fire>``: the claim of the tick due at ``fire`` (same value and
  lease as ``running``);
- ``schedules/<name>/done``: the fire time of the last finished tick (no lease);
- ``restore/<target>``: the restore writing to ``target`` (LockInfo JSON, leased).

Leased keys vanish when their holder stops refreshing for a TTL, so a dead instance never
keeps a lock.
"""

from engine.scaleout.coordination.connect import open_coordinator
from engine.scaleout.coordination.coordinator import Coordinator, EtcdTargetLocks, TickClaim
from engine.scaleout.coordination.model import CoordinationError, LockInfo

__all__ = [
    "CoordinationError",
    "Coordinator",
    "EtcdTargetLocks",
    "LockInfo",
    "TickClaim",
    "open_coordinator",
]

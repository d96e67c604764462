"""Replication lag, in bytes and in seconds, from LSNs.

Bytes: the primary's current WAL position minus what the replica has replayed; exact.

Seconds: how long the replica has been missing WAL that the primary already had. The monitor
records the primary's position at each probe (:class:`PrimaryWalHistory`); a replica at replay
position R has been behind since the first sample in which the primary was past R. So:

- a replica that has replayed everything the primary wrote has zero lag, whatever the clock
  says and however long ago the last transaction was (the idle-cluster false alarm that
  ``now() - pg_last_xact_replay_timestamp()`` raises);
- a replica whose replay is paused keeps growing in lag while the primary writes, which
  ``pg_stat_replication.replay_lag`` does not show.

The error is at most one probe interval, and always on the low side. Probe the primary
before its replicas: a replica probed later can only be further along, never spuriously behind.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

from replicadb_operator.dataplane.lsn import Lsn, lsn_distance
from replicadb_operator.dataplane.probe import ProbeResult


class PrimaryWalHistory:
    """When the primary was first seen at each WAL position (monotonic seconds).

    Only changes of position are kept, so an idle primary adds nothing; the oldest samples
    are dropped past ``max_samples``, after which lag older than the window is reported as
    the age of the oldest sample (a lower bound).
    """

    def __init__(self, max_samples: int = 4096) -> None:
        self._times: deque[float] = deque(maxlen=max_samples)
        self._lsns: deque[Lsn] = deque(maxlen=max_samples)

    def record(self, at: float, lsn: Lsn) -> None:
        if self._lsns and lsn < self._lsns[-1]:
            # Another primary (failover) or a restored one: the old history means nothing.
            self.clear()
        if self._lsns and lsn == self._lsns[-1]:
            return
        self._times.append(at)
        self._lsns.append(lsn)

    def clear(self) -> None:
        self._times.clear()
        self._lsns.clear()

    def behind_since(self, lsn: Lsn) -> float | None:
        """The first time the primary was seen past ``lsn``; None if it never was."""
        index = bisect.bisect_right(self._lsns, lsn)
        if index >= len(self._lsns):
            return None
        return self._times[index]

    def __len__(self) -> int:
        return len(self._lsns)


@dataclass(frozen=True)
class ReplicaLag:
    """Lag of one replica against the primary, at the moment of the primary's probe."""

    name: str
    replay_bytes: int | None
    receive_bytes: int | None
    seconds: float | None

    @property
    def known(self) -> bool:
        return self.replay_bytes is not None


UNKNOWN_LAG_FIELDS = {"replay_bytes": None, "receive_bytes": None, "seconds": None}


def replica_lag(
    primary: ProbeResult, replica: ProbeResult, history: PrimaryWalHistory, now: float
) -> ReplicaLag:
    """Lag of ``replica`` behind ``primary``; unknown (None) when either was not reachable or
    the replica is not in recovery."""
    if not primary.is_primary or primary.current_lsn is None or not replica.is_replica:
        return ReplicaLag(name=replica.name, **UNKNOWN_LAG_FIELDS)
    if replica.replay_lsn is None:
        return ReplicaLag(name=replica.name, **UNKNOWN_LAG_FIELDS)
    replay_bytes = lsn_distance(primary.current_lsn, replica.replay_lsn)
    receive_bytes = (
        None
        if replica.receive_lsn is None
        else lsn_distance(primary.current_lsn, replica.receive_lsn)
    )
    seconds = 0.0
    if replay_bytes > 0:
        since = history.behind_since(replica.replay_lsn)
        seconds = 0.0 if since is None else max(0.0, now - since)
    return ReplicaLag(
        name=replica.name,
        replay_bytes=replay_bytes,
        receive_bytes=receive_bytes,
        seconds=seconds,
    )

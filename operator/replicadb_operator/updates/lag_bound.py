"""Whether a replica is close enough to the primary: to serve the read-only Service
(``spec.readOnly``), and to count as caught up in a roll (that bound and the failover's)."""

from __future__ import annotations

from replicadb_operator.builders import names
from replicadb_operator.dataplane.lag import ReplicaLag
from replicadb_operator.spec import DatabaseSpec


def within_read_bound(db: DatabaseSpec, lag: ReplicaLag | None) -> bool:
    """True when spec.readOnly sets no bound; else the lag must be known and within it."""
    bound = db.read_only
    if bound.max_lag_bytes is None and bound.max_lag_seconds is None:
        return True
    if lag is None or lag.replay_bytes is None:
        return False  # a replica whose lag is not known yet joins once it is measured
    if bound.max_lag_bytes is not None and lag.replay_bytes > bound.max_lag_bytes:
        return False
    seconds = lag.seconds or 0.0
    return bound.max_lag_seconds is None or seconds <= bound.max_lag_seconds


def caught_up(db: DatabaseSpec, lag: ReplicaLag | None) -> bool:
    """Back in a roll: within the read bound, and close enough to be switched over to."""
    if lag is None or lag.replay_bytes is None:
        return False
    return lag.replay_bytes <= db.failover.max_lag_bytes and within_read_bound(db, lag)


def lag_label(db: DatabaseSpec, lag: ReplicaLag | None) -> str:
    """The ``replicadb.io/lag`` label of a replica: the read-only Service selects only
    ``within-bound``, so a replica over the bound leaves it (and the read-only pooler)."""
    return names.LAG_WITHIN_BOUND if within_read_bound(db, lag) else names.LAG_OVER_BOUND

"""When a plan starts, and for which target. Pure: the monitor's snapshot and the spec in,
a decision out; the daemon records it with the ``begin`` or ``block`` transition."""

from __future__ import annotations

from dataclasses import dataclass

from replicadb_operator.dataplane.failover import failover_policy
from replicadb_operator.dataplane.failover_target import choose_failover_target
from replicadb_operator.dataplane.lsn import format_lsn
from replicadb_operator.dataplane.monitor import TopologySnapshot
from replicadb_operator.spec import DatabaseSpec


@dataclass(frozen=True)
class Decision:
    """``target`` None: nobody may be promoted, and ``why`` says why."""

    target: str | None
    why: str
    lag_bytes: int | None = None
    old_last_lsn: str | None = None


def failover_target(db: DatabaseSpec, snapshot: TopologySnapshot) -> Decision:
    if not db.failover.enabled:
        return Decision(None, "automatic failover is disabled (spec.failover.enabled)")
    policy = failover_policy(snapshot, db.replication, db.failover.max_lag_bytes)
    choice = choose_failover_target(snapshot.candidates, policy)
    last = format_lsn(snapshot.last_primary_lsn) if snapshot.last_primary_lsn else None
    if choice.target is None:
        reasons = "; ".join(f"{n}: {why}" for n, why in sorted(choice.rejected.items()))
        return Decision(None, f"no replica may be promoted: {choice.reason}. {reasons}")
    return Decision(choice.target, choice.reason, choice.lag_bytes, last)


def switchover_refusal(
    db: DatabaseSpec, snapshot: TopologySnapshot, target: str, force: bool
) -> str | None:
    """Why a requested switchover to ``target`` is refused, or None."""
    probe = snapshot.probes.get(target)
    if probe is None or not probe.is_replica:
        return f"{target} is not a healthy replica"
    if not snapshot.primary_probe.is_primary:
        return f"{snapshot.primary} does not answer as a primary: a failover's rules apply"
    lag = snapshot.lags.get(target)
    behind = (lag.replay_bytes or 0) if lag is not None else 0
    if not force and behind > db.failover.max_lag_bytes:
        return (
            f"{target} is {behind} bytes behind, more than spec.failover.maxLagBytes; "
            "annotate replicadb.io/force=true to force"
        )
    return None

"""Draining the primary's node: which replica takes over first (pure)."""

from __future__ import annotations

from dataclasses import replace

from replicadb_operator.builders import desired
from replicadb_operator.dataplane.lag import ReplicaLag
from replicadb_operator.dataplane.monitor import TopologySnapshot
from replicadb_operator.dataplane.probe import ProbeResult
from replicadb_operator.monitoring.drain import drain_target
from replicadb_operator.monitoring.pods import InstancePod
from replicadb_operator.spec import parse_spec

DB = parse_spec("db", "ns", {})


def pod(name: str, node: str, ready: bool = True) -> InstancePod:
    return InstancePod(name, "10.0.0.1", ready, "Running", node, None, False)


PODS = {
    "db-primary-0": pod("db-primary-0", "n1"),
    "db-replica-0": pod("db-replica-0", "n2"),
    "db-replica-1": pod("db-replica-1", "n3"),
}


def snapshot(lags: dict[str, int]) -> TopologySnapshot:
    probes = {
        "db-primary-0": ProbeResult("db-primary-0", True, 0.0, 0.0, in_recovery=False),
        **{n: ProbeResult(n, True, 0.0, 0.0, in_recovery=True) for n in lags},
    }
    return TopologySnapshot(
        primary="db-primary-0", taken_at=0.0, probes=probes,
        lags={n: lag_of(n, b) for n, b in lags.items()}, primary_failures=0,
        last_primary_lsn=None, primary_timeline=1,
    )  # fmt: skip


def lag_of(name: str, replay_bytes: int) -> ReplicaLag:
    return ReplicaLag(name, replay_bytes, replay_bytes, 0.0)


BOTH = {"db-replica-0": 300, "db-replica-1": 100}


def test_a_schedulable_primary_node_is_left_alone() -> None:
    assert drain_target(DB, snapshot(BOTH), PODS, {"n2"}) is None


def test_the_least_lagging_replica_elsewhere_takes_over() -> None:
    assert drain_target(DB, snapshot(BOTH), PODS, {"n1"}) == "db-replica-1"


def test_never_to_a_replica_on_a_node_also_cordoned_or_not_ready() -> None:
    assert drain_target(DB, snapshot(BOTH), PODS, {"n1", "n3"}) == "db-replica-0"
    unready = {**PODS, "db-replica-0": replace(PODS["db-replica-0"], ready=False)}
    assert drain_target(DB, snapshot(BOTH), unready, {"n1", "n3"}) is None


def test_never_to_a_replica_further_behind_than_the_failover_bound() -> None:
    far = {"db-replica-0": DB.failover.max_lag_bytes + 1, "db-replica-1": 0}
    assert drain_target(DB, snapshot(far), PODS, {"n1", "n3"}) is None


def test_the_primary_cannot_be_evicted_and_replicas_go_one_at_a_time() -> None:
    budgets = {
        o["metadata"]["name"]: o["spec"]
        for o in desired.desired_objects(DB)
        if o["kind"] == "PodDisruptionBudget"
    }
    assert budgets["db-primary"]["maxUnavailable"] == 0
    assert budgets["db-primary"]["selector"]["matchLabels"]["replicadb.io/role"] == "primary"
    assert budgets["db-instances"]["maxUnavailable"] == 1
    # No pod may match both: the eviction API refuses pods with more than one budget.
    roles = {b["selector"]["matchLabels"]["replicadb.io/role"] for b in budgets.values()}
    assert roles == {"primary", "replica"}

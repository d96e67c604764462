"""Status: what kubectl shows, and when it is worth a write."""

from __future__ import annotations

from replicadb_operator.dataplane.probe import ProbeResult
from replicadb_operator.monitoring import status_model
from replicadb_operator.spec import parse_spec

from router_lib.status_contract import INSTANCE_FIELDS, InstanceEntry, parse_lsn

DB = parse_spec("shop", "prod", {"replicas": 2})


def inst(name: str, role: str, ready: bool = True, lag: int = 0) -> InstanceEntry:
    entry = InstanceEntry(name=name, role=role, ready=ready, state="streaming")
    if role == "replica":
        entry |= {"lagBytes": lag, "lagSeconds": 0.0, "replayedLsn": f"0/{lag:X}"}
    return entry


def test_healthy_topology_reads_two_of_two() -> None:
    instances = [inst("p", "primary"), inst("r1", "replica"), inst("r2", "replica", lag=2048)]
    out = status_model.summary(DB, "p", instances, [])
    assert out["phase"] == "Healthy"
    assert out["readyReplicas"] == "2/2"
    assert out["maxLagBytes"] == 2048
    assert out["maxLag"] == "2.0 KiB, 0.0s"
    ready = next(c for c in out["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"


def test_degraded_and_primary_unavailable() -> None:
    down = [inst("p", "primary"), inst("r1", "replica"), inst("r2", "unknown", ready=False)]
    assert status_model.summary(DB, "p", down, [])["phase"] == "Degraded"
    no_primary = [inst("p", "unknown", ready=False), inst("r1", "replica")]
    assert status_model.summary(DB, "p", no_primary, [])["phase"] == "PrimaryUnavailable"


def test_lag_beyond_the_promotion_limit_raises_replica_lagging() -> None:
    limit = DB.failover.max_lag_bytes
    instances = [inst("p", "primary"), inst("r1", "replica", lag=limit + 1), inst("r2", "replica")]
    out = status_model.summary(DB, "p", instances, [])
    lagging = next(c for c in out["conditions"] if c["type"] == "ReplicaLagging")
    assert lagging["status"] == "True"
    assert "r1" in lagging["message"]


def test_condition_keeps_its_transition_time_while_unchanged() -> None:
    before = [{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}]
    same = status_model.condition(before, "Ready", True, "x", "")
    flipped = status_model.condition(before, "Ready", False, "x", "")
    assert same["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert flipped["lastTransitionTime"] != "2020-01-01T00:00:00Z"


def test_writes_are_immediate_for_roles_and_bounded_for_lag() -> None:
    instances = [inst("p", "primary"), inst("r1", "replica"), inst("r2", "replica")]
    old = status_model.summary(DB, "p", instances, [])
    moved = status_model.summary(
        DB,
        "p",
        [inst("p", "primary"), inst("r1", "replica", lag=100), inst("r2", "replica")],
        old["conditions"],
    )
    assert not status_model.needs_write(old, old, 100.0)
    assert not status_model.needs_write(old, moved, 1.0)
    assert status_model.needs_write(old, moved, status_model.VOLATILE_WRITE_INTERVAL_S)
    role_change = status_model.summary(
        DB,
        "r1",
        [inst("p", "unknown", ready=False), inst("r1", "primary"), inst("r2", "replica")],
        old["conditions"],
    )
    assert status_model.needs_write(old, role_change, 0.0)


def test_first_write_from_an_empty_status() -> None:
    new = status_model.summary(DB, "p", [inst("p", "primary")], [])
    assert status_model.needs_write({"instances": None}, new, 0.0)
    assert status_model.needs_write({}, new, 0.0)


def replica_probe(received: str, replayed: str) -> ProbeResult:
    return ProbeResult(
        name="shop-replica-0",
        reachable=True,
        probed_at=0.0,
        duration_s=0.01,
        in_recovery=True,
        timeline=2,
        receive_lsn=parse_lsn(received),
        replay_lsn=parse_lsn(replayed),
    )


def test_received_position_is_never_shown_below_the_replayed_one() -> None:
    """Right after a restart pg_last_wal_receive_lsn() starts at the segment streaming
    resumed from (0/6000000) while replay is already past it (0/64DA990)."""
    probe = replica_probe("0/6000000", "0/64DA990")
    entry = status_model.instance_entry("shop-replica-0", None, probe, None, None, None)
    assert entry["receivedLsn"] == "0/64DA990"
    assert entry["replayedLsn"] == "0/64DA990"
    ahead = replica_probe("0/7000000", "0/64DA990")
    assert status_model.instance_entry("r", None, ahead, None, None, None)["receivedLsn"] == (
        "0/7000000"
    )


def test_volatile_instance_keys_are_fields_of_the_status_contract() -> None:
    assert status_model.VOLATILE_INSTANCE_KEYS <= INSTANCE_FIELDS


def test_a_primary_that_does_not_answer_keeps_its_last_known_position() -> None:
    """An operator that starts while the primary is down has nothing else to go by."""
    down = ProbeResult(name="shop-primary-0", reachable=False, probed_at=0.0, duration_s=0.5)
    last = parse_lsn("0/5000060")
    entry = status_model.instance_entry("shop-primary-0", None, down, None, None, None, last)
    assert entry["currentLsn"] == "0/5000060"
    assert "currentLsn" not in status_model.instance_entry("p", None, down, None, None, None)

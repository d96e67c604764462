"""Three ways an operator that starts from status used to get a failover wrong (issue 12):
each scenario leaves status and the instances as a dead operator would have, then starts a
new operator and checks what it does."""

from __future__ import annotations

import psycopg
import pytest
from replicadb_operator.dataplane.lsn import format_lsn, parse_lsn

from tests.apiserver.cluster import KubeTopology, wait_for
from tests.apiserver.invariants import WritableSampler

pytestmark = [pytest.mark.apiserver, pytest.mark.postgres]
PRIMARY, TARGET = "shop-primary-0", "shop-replica-0"


def scalar(dsn: str, query: str) -> object:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as conn:
        row = conn.execute(query).fetchone()
        return None if row is None else row[0]


def writable(dsn: str) -> bool:
    try:
        return scalar(dsn, "SELECT NOT pg_is_in_recovery()") is True
    except psycopg.OperationalError:
        return False


def recorded_sync_states(cluster: KubeTopology) -> bool:
    instances = cluster.status().get("instances") or []
    return sum(1 for i in instances if i.get("syncState") == "quorum") == 2


def test_an_operator_that_starts_with_the_primary_gone_fails_over_on_recorded_positions(
    kube_topology: KubeTopology,
) -> None:
    cluster = kube_topology
    first = cluster.start_operator()
    cluster.wait_healthy()
    wait_for(lambda: recorded_sync_states(cluster), 20, "sync states recorded in status")
    # The operator and the primary are lost together (a node that dies with both on it).
    first.kill()
    cluster.topology.kill("pg-0")
    cluster.set_pod(PRIMARY, ready=False, container_running=False)
    cluster.start_operator()
    status = wait_for(
        lambda: (s := cluster.status()).get("primary") not in (None, PRIMARY) and s,
        40,
        "a failover by an operator that never saw the primary alive",
    )
    assert status["lastFailover"]["basis"] == "recorded"
    assert writable(cluster.dsn(status["primary"]))
    reasons = [reason for reason, _ in cluster.events()]
    assert "DecidedOnRecordedPositions" in reasons


def test_a_primary_cut_off_while_its_pod_looks_ready_is_failed_over_on_recorded_positions(
    kube_topology: KubeTopology,
) -> None:
    """As on the cluster, where a primary cut off the network stays Ready until the kubelet's
    probes fail: the new operator writes status meanwhile, and status must keep what the
    primary last said (sync states, position), or the failover is refused ("not a
    synchronous standby"). And an old primary that cannot be stopped from inside is not
    taken as fenced: its pod is deleted, so that it comes back as a replica."""
    cluster = kube_topology
    first = cluster.start_operator()
    cluster.wait_healthy()
    wait_for(lambda: recorded_sync_states(cluster), 20, "sync states recorded in status")
    old_uid = cluster.core.read_namespaced_pod(PRIMARY, cluster.namespace).metadata.uid
    first.kill()
    cluster.topology.kill("pg-0")  # unreachable; Kubernetes does not know yet
    cluster.start_operator()

    def primary_entry() -> dict[str, object]:
        entries = cluster.status().get("instances") or []
        return next((i for i in entries if i.get("name") == PRIMARY), {})

    wait_for(lambda: primary_entry().get("state") == "down", 20, "status written, primary down")
    assert recorded_sync_states(cluster)
    assert primary_entry().get("currentLsn")
    cluster.set_pod(PRIMARY, ready=False)  # the kubelet's readiness probe fails at last
    status = wait_for(
        lambda: (s := cluster.status()).get("primary") not in (None, PRIMARY) and s,
        40,
        "a failover by an operator that never saw the primary alive",
    )
    assert status["lastFailover"]["basis"] == "recorded"
    assert writable(cluster.dsn(status["primary"]))
    pods = {p.metadata.name: p.metadata.uid for p in cluster.core.list_namespaced_pod(
        cluster.namespace).items}  # fmt: skip
    assert pods.get(PRIMARY) != old_uid, "the old primary's pod was not replaced"


def test_resume_stops_an_old_primary_labelled_fenced_but_still_running(
    kube_topology: KubeTopology,
) -> None:
    cluster = kube_topology
    first = cluster.start_operator()
    cluster.wait_healthy()
    first.kill()
    # The dead operator recorded its decision and labelled the old primary fenced, but died
    # before it stopped postgres there.
    cluster.write_status(
        {
            "targetPrimary": TARGET,
            "phase": "FailingOver",
            "failover": {
                "kind": "failover",
                "from": PRIMARY,
                "to": TARGET,
                "reason": "test",
                "since": "2025-01-01T00:00:00Z",
                "stepsDone": ["decide"],
            },
        }
    )
    cluster.set_role_label(PRIMARY, "fenced")
    assert writable(cluster.dsn(PRIMARY))
    sampler = WritableSampler(cluster.dsns())
    sampler.start()
    try:
        cluster.start_operator()
        wait_for(lambda: cluster.primary_or_none() == TARGET, 40, "the resumed failover")
        wait_for(lambda: writable(cluster.dsn(TARGET)), 10, "the target accepting writes")
    finally:
        sampler.stop()
    assert not writable(cluster.dsn(PRIMARY))
    assert sampler.dual == []


def test_an_interrupted_switchover_resumes_as_a_switchover_with_its_catch_up_wait(
    kube_topology: KubeTopology,
) -> None:
    cluster = kube_topology
    first = cluster.start_operator()
    cluster.wait_healthy()
    first.kill()
    old, target = cluster.dsn(PRIMARY), cluster.dsn(TARGET)
    # The target falls behind in replay (it still receives and acknowledges); then the old
    # primary is demoted as the dead operator's switchover did, its final position recorded.
    scalar(target, "SELECT pg_wal_replay_pause()")
    with psycopg.connect(old, autocommit=True) as conn:
        conn.execute("INSERT INTO acked SELECT generate_series(1, 1000)")
        conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        conn.execute("SELECT pg_reload_conf()")
    final = parse_lsn(str(scalar(old, "SELECT pg_current_wal_lsn()::text")))
    cluster.set_role_label(PRIMARY, "fenced")
    cluster.write_status(
        {
            "targetPrimary": TARGET,
            "phase": "SwitchingOver",
            "failover": {
                "kind": "switchover",
                "from": PRIMARY,
                "to": TARGET,
                "reason": "switchover requested",
                "since": "2025-01-01T00:00:00Z",
                "stepsDone": ["decide", "demote"],
                "finalLsn": format_lsn(final),
            },
        }
    )
    cluster.start_operator()
    # The new operator waits for the target to replay the old primary's final position...
    waiting = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'replicadb-operator' "
        "AND query LIKE '%pg_last_wal_replay_lsn%'"
    )
    wait_for(lambda: scalar(target, waiting) == 1, 30, "the operator waiting for catch-up")
    assert scalar(target, "SELECT pg_is_in_recovery()") is True
    # ... and promotes it once it has.
    scalar(target, "SELECT pg_wal_replay_resume()")
    wait_for(lambda: cluster.primary_or_none() == TARGET, 40, "the resumed switchover")
    status = cluster.status()
    assert status["lastFailover"]["kind"] == "switchover"
    assert scalar(target, "SELECT count(*) FROM acked") == 1000
    assert not writable(old)

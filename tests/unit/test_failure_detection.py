"""When the monitor calls the primary failed: probes plus Kubernetes' word."""

from __future__ import annotations

from dataclasses import replace

from replicadb_operator.dataplane.monitor import TopologySnapshot
from replicadb_operator.dataplane.probe import ProbeResult, WalReceiver
from replicadb_operator.monitoring.failure_detection import PrimaryFailureDetector
from replicadb_operator.monitoring.pods import InstancePod
from replicadb_operator.spec import parse_spec

DB = parse_spec("db", "ns", {"failover": {"failureThreshold": 3}})
POD = InstancePod(
    name="db-primary-0",
    ip="10.0.0.2",
    ready=True,
    phase="Running",
    node="n",
    role_label="primary",
    deleting=False,
    uid="uid-1",
    restarts=0,
)


def snap(failures: int) -> TopologySnapshot:
    return TopologySnapshot(
        primary="db-primary-0",
        taken_at=0.0,
        probes={},
        lags={},
        primary_failures=failures,
        last_primary_lsn=None,
        primary_timeline=1,
    )


def run(steps: list[tuple[int, InstancePod | None]]) -> list[str | None]:
    detector = PrimaryFailureDetector()
    return [detector.verdict(DB, snap(f), pod) for f, pod in steps]


def test_unreachable_but_ready_never_fails_over() -> None:
    assert run([(0, POD), (1, POD), (5, POD), (9, POD)]) == [None] * 4


def test_not_ready_fails_over_at_the_threshold() -> None:
    down = replace(POD, ready=False)
    verdicts = run([(0, POD), (1, down), (2, down), (3, down)])
    assert verdicts[:3] == [None, None, None]
    assert verdicts[3] is not None
    assert "not Ready" in verdicts[3]


def test_a_killed_postgres_fails_over_even_once_it_is_back() -> None:
    crashed = replace(POD, ready=False, container_down=True)
    back = replace(POD, ready=False, restarts=1)
    verdicts = run([(0, POD), (1, crashed), (0, back)])
    assert verdicts[0] is None
    assert verdicts[1] is not None
    assert verdicts[2] is not None
    assert "died" in verdicts[2]


def test_a_replaced_pod_fails_over_after_one_failed_probe() -> None:
    replaced = replace(POD, uid="uid-2", ready=False)
    assert run([(0, POD), (1, replaced)])[1] == "db-primary-0's pod was deleted and replaced"


def test_a_restart_between_two_probes_is_still_a_failure() -> None:
    restarted = replace(POD, restarts=1, ready=False)
    verdicts = run([(0, POD), (0, restarted)])
    assert verdicts[0] is None
    assert verdicts[1] is not None
    assert "died" in verdicts[1]


def test_a_restart_seen_while_ready_and_answering_is_history() -> None:
    restarted = replace(POD, restarts=1)
    assert run([(0, restarted), (1, restarted)]) == [None, None]


def replica(name: str, status: str | None, silent_s: float | None = None) -> ProbeResult:
    receiver = (
        None
        if status is None
        else WalReceiver(status, "10.0.0.2", 5432, 1, None, silent_s=silent_s)
    )
    return ProbeResult(name, True, 0.0, 0.01, in_recovery=True, wal_receiver=receiver)


def node_snap(failures: int, *replicas: ProbeResult) -> TopologySnapshot:
    down = ProbeResult("db-primary-0", failures == 0, 0.0, 1.0)
    return replace(snap(failures), probes={"db-primary-0": down, **{r.name: r for r in replicas}})


def judge(*snaps: TopologySnapshot) -> list[str | None]:
    """A lost node's pod stays Ready in the API: only the replicas can confirm."""
    detector = PrimaryFailureDetector()
    return [detector.verdict(DB, s, POD) for s in snaps]


def test_a_lost_node_fails_over_once_every_replica_stopped_hearing_the_primary() -> None:
    verdicts = judge(
        node_snap(0, replica("r0", "streaming", 0.2), replica("r1", "streaming", 0.3)),
        node_snap(3, replica("r0", "streaming", 3.0), replica("r1", "streaming", 3.1)),
        node_snap(5, replica("r0", "streaming", 5.2), replica("r1", None)),
    )
    assert verdicts[:2] == [None, None]
    assert verdicts[2] is not None
    assert "no replica has heard from it" in verdicts[2]


def test_one_replica_still_hearing_the_primary_is_a_cut_between_operator_and_primary() -> None:
    verdicts = judge(
        node_snap(0, replica("r0", "streaming", 0.2)),
        node_snap(9, replica("r0", "streaming", 9.0), replica("r1", "streaming", 0.4)),
    )
    assert verdicts == [None, None]


def test_silent_replicas_without_failed_probes_prove_nothing() -> None:
    assert judge(node_snap(0, replica("r0", "streaming", 30.0)))[0] is None
    assert judge(node_snap(2, replica("r0", "streaming", 30.0)))[0] is None  # below threshold


def test_no_replica_answering_is_no_confirmation() -> None:
    unreachable = ProbeResult("r0", False, 0.0, 1.0)
    assert judge(node_snap(0), node_snap(9, unreachable)) == [None, None]

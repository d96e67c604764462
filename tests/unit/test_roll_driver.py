"""The roll as the monitor carries it out, with the Kubernetes calls replaced by recorders:
which pod is deleted, what status transitions and Events go out, and the primary's in-place
restart followed from status (so that a new operator follows it too)."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import pytest
from replicadb_operator.builders import names, statefulsets
from replicadb_operator.dataplane.lag import ReplicaLag
from replicadb_operator.dataplane.monitor import TopologySnapshot
from replicadb_operator.dataplane.probe import ProbeResult, WalReceiver
from replicadb_operator.failover import transitions as t
from replicadb_operator.failover.writer import Transition
from replicadb_operator.kube import apply as kube_apply
from replicadb_operator.kube import status as kube_status
from replicadb_operator.monitoring.pods import InstancePod
from replicadb_operator.spec import parse_spec
from replicadb_operator.updates import driver

DB = parse_spec("db", "ns", {"replicas": 1, "updates": {"primaryUpdateMethod": "restart"}})
NEW = statefulsets.revision(DB)
P, R = "db-primary-0", "db-replica-0"


def pod(name: str, revision: str = "old", uid: str = "u1", ready: bool = True) -> InstancePod:
    return InstancePod(name=name, ip="10.0.0.1", ready=ready, phase="Running", node="n",
                       role_label=None, deleting=False, uid=uid, revision=revision)  # fmt: skip


def snapshot(primary_up: bool = True) -> TopologySnapshot:
    streaming = WalReceiver("streaming", "h", 5432, 1, None)
    probes = {
        P: ProbeResult(P, primary_up, 0.0, 0.01, in_recovery=False if primary_up else None),
        R: ProbeResult(R, True, 0.0, 0.01, in_recovery=True, wal_receiver=streaming),
    }
    lags = {R: ReplicaLag(R, replay_bytes=0, receive_bytes=0, seconds=0.0)}
    return TopologySnapshot(
        primary=P,
        taken_at=0.0,
        probes=probes,
        lags=lags,
        primary_failures=0,
        last_primary_lsn=None,
        primary_timeline=1,
    )


class Recorder:
    def __init__(self, status: dict[str, Any]) -> None:
        self.status = status
        self.events: list[str] = []
        self.deleted: list[str] = []

    async def apply(self, transition: Transition, what: str = "") -> dict[str, Any]:
        self.status = t.merged(self.status, transition(self.status))
        return self.status

    async def event(self, kind: str, reason: str, message: str) -> None:
        self.events.append(reason)


@pytest.fixture
def rec(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder({"primary": P, "targetPrimary": P})

    def delete(namespace: str, name: str, grace: int | None = 0) -> bool:
        recorder.deleted.append(name)
        return True

    def read(obj: dict[str, Any]) -> dict[str, Any]:
        template = {"metadata": {"annotations": {names.ANNOTATION_REVISION: NEW}}}
        return {"metadata": {"generation": 2}, "spec": {"template": template},
                "status": {"observedGeneration": 2}}  # fmt: skip

    monkeypatch.setattr(kube_status, "delete_pod", delete)
    monkeypatch.setattr(kube_apply, "read", read)
    return recorder


def roll_once(rec: Recorder, pods: dict[str, InstancePod], snap: TopologySnapshot) -> None:
    roller = driver.RollDriver("ns", rec.apply, rec.event)

    async def no_switchover(target: str, reason: str) -> None:
        raise AssertionError("the restart method never switches over")

    asyncio.run(roller.step(DB, rec.status, snap, pods, no_switchover))


def test_the_outdated_replica_goes_first_then_the_primary_restarts_in_place(rec: Recorder) -> None:
    roll_once(rec, {P: pod(P), R: pod(R)}, snapshot())
    assert rec.deleted == [R]
    assert rec.status["rollingUpdate"]["state"] == "RollingReplicas"
    assert rec.events == ["RollingUpdate", "RestartingReplica"]
    roll_once(rec, {P: pod(P), R: pod(R, NEW)}, snapshot())
    assert rec.deleted == [R, P]
    assert rec.status["rollingUpdate"]["primaryRestart"]["uid"] == "u1"
    assert rec.status["rollingUpdate"]["updatedInstances"] == [R]


def test_a_recorded_primary_restart_is_followed_until_the_new_pod_answers(rec: Recorder) -> None:
    roller = driver.RollDriver("ns", rec.apply, rec.event)
    begun = partial(t.primary_restart_begun, pod=P, uid="u1", now=driver._now())
    rec.status = t.merged(rec.status, begun(rec.status))
    follow = partial(roller.follow_primary_restart, snapshot=snapshot(primary_up=False))
    # A new operator finds the old pod still running: it deletes it (again).
    assert asyncio.run(follow(rec.status, pod_map={P: pod(P, uid="u1")}))
    assert rec.deleted == [P]
    assert asyncio.run(follow(rec.status, pod_map={P: pod(P, uid="u2", ready=False)}))
    back = roller.follow_primary_restart(rec.status, snapshot(), {P: pod(P, uid="u2")})
    assert not asyncio.run(back)
    assert "primaryRestart" not in rec.status["rollingUpdate"]
    assert rec.events == ["PrimaryRestarted"]


def test_a_primary_restart_that_takes_too_long_gives_way_to_failover(rec: Recorder) -> None:
    roller = driver.RollDriver("ns", rec.apply, rec.event)
    old = {"pod": P, "uid": "u1", "since": "2000-01-01T00:00:00Z"}
    rec.status = {**rec.status, "rollingUpdate": {"primaryRestart": old}}
    waiting = {P: pod(P, uid="u2", ready=False)}
    assert not asyncio.run(roller.follow_primary_restart(rec.status, snapshot(False), waiting))
    assert rec.events == ["PrimaryRestartTimedOut"]
    assert driver.primary_restart(rec.status) is None

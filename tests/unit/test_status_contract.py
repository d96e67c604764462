"""The status contract: what the operator's status model writes, router_lib reads back.

The status goes through JSON on its way (the API server stores it), so the round trip here
does too.
"""

from __future__ import annotations

import json
from typing import Any

from replicadb_operator.dataplane.lag import ReplicaLag
from replicadb_operator.dataplane.probe import ProbeResult
from replicadb_operator.monitoring import status_model
from replicadb_operator.monitoring.pods import InstancePod
from replicadb_operator.spec import parse_spec

from router_lib.conninfo import ConnectionSettings
from router_lib.endpoints import Role, Via, topology_from_status
from router_lib.sources import StatusSource
from router_lib.status_contract import INSTANCE_FIELDS, read_instance_entry

DB = parse_spec("shop", "prod", {"replicas": 2, "pooler": {"enabled": True}})
SETTINGS = ConnectionSettings(user="app", password="s3cret", dbname="shop")


def pod(name: str, ip: str | None, ready: bool = True) -> InstancePod:
    return InstancePod(
        name=name,
        ip=ip,
        ready=ready,
        phase="Running",
        node="node-a",
        role_label=None,
        deleting=False,
    )


def probe(name: str, *, primary: bool, lsn: int) -> ProbeResult:
    if primary:
        return ProbeResult(name, True, 0.0, 0.01, in_recovery=False, timeline=4, current_lsn=lsn)
    return ProbeResult(
        name, True, 0.0, 0.01, in_recovery=True, timeline=4, receive_lsn=lsn, replay_lsn=lsn
    )


def operator_status() -> dict[str, Any]:
    """A status as the monitoring daemon builds it: primary, a streaming replica in zone b,
    a replica whose pod is not ready and that cannot be probed."""
    entries = [
        status_model.instance_entry(
            "shop-primary-0",
            pod("shop-primary-0", "10.0.0.10"),
            probe("shop-primary-0", primary=True, lsn=0x3000148),
            None,
            "a",
            None,
        ),
        status_model.instance_entry(
            "shop-replica-0",
            pod("shop-replica-0", "10.0.0.11"),
            probe("shop-replica-0", primary=False, lsn=0x3000100),
            ReplicaLag("shop-replica-0", replay_bytes=72, receive_bytes=0, seconds=0.25),
            "b",
            "async",
        ),
        status_model.instance_entry(
            "shop-replica-1",
            pod("shop-replica-1", "10.0.0.12", ready=False),
            None,
            None,
            None,
            None,
        ),
    ]
    status = status_model.summary(DB, "shop-primary-0", entries, [])
    status["timeline"] = 4  # set by the daemon from the primary's probe
    decoded: dict[str, Any] = json.loads(json.dumps(status))
    return decoded


def test_router_reads_back_what_the_operator_writes() -> None:
    topology = topology_from_status(operator_status(), SETTINGS)
    assert topology.timeline == 4
    primary = topology.primary
    assert primary is not None
    assert (primary.name, primary.role, primary.host, primary.port, primary.zone) == (
        "shop-primary-0",
        Role.PRIMARY,
        "10.0.0.10",
        5432,
        "a",
    )
    # shop-replica-1 was not probed: its role is unknown, so it is no replica to read from.
    (replica,) = topology.replicas
    assert (replica.name, replica.host, replica.zone, replica.ready) == (
        "shop-replica-0",
        "10.0.0.11",
        "b",
        True,
    )
    assert replica.status_replay_lsn == 0x3000100
    assert (replica.status_lag_bytes, replica.status_lag_seconds) == (72, 0.25)


def test_a_replica_whose_pod_is_not_ready_is_kept_but_marked_unready() -> None:
    status = operator_status()
    status["instances"][2] |= {"role": "replica"}  # last seen as a replica, pod not ready
    replicas = topology_from_status(status, SETTINGS).replicas
    assert [(r.name, r.ready) for r in replicas] == [
        ("shop-replica-0", True),
        ("shop-replica-1", False),
    ]


def test_router_writes_through_the_services_the_operator_publishes() -> None:
    status = operator_status()
    service = topology_from_status(status, SETTINGS, Via.SERVICE).primary
    assert service is not None
    assert (service.host, service.port) == ("shop-rw.prod.svc", 5432)
    pooler = topology_from_status(status, SETTINGS, Via.POOLER).primary
    assert pooler is not None
    assert (pooler.host, pooler.port) == ("shop-pooler-rw.prod.svc", 6432)


def test_status_source_publishes_the_operator_status() -> None:
    source = StatusSource(SETTINGS)
    seen: list[object] = []
    source.start(seen.append)
    source.publish(operator_status())
    assert len(seen) == 1


def test_every_field_the_operator_writes_is_in_the_contract() -> None:
    for entry in operator_status()["instances"]:
        assert set(entry) <= INSTANCE_FIELDS


def test_fields_of_the_wrong_type_are_dropped_not_believed() -> None:
    entry = read_instance_entry(
        {"name": "r", "port": "5433", "ready": "yes", "lagBytes": True, "lagSeconds": 1, "x": 1}
    )
    assert entry == {"name": "r", "lagSeconds": 1}
    assert read_instance_entry({"role": "replica"}) is None
    assert read_instance_entry("not an object") is None

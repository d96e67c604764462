from __future__ import annotations

from replicadb_operator.instance.cluster_view import ClusterView, wait_for_target


def test_a_former_primary_waits_until_the_failover_away_from_it_is_recorded() -> None:
    views = iter(
        [
            ClusterView(target_primary=None, current_primary=None, initialized=False),
            ClusterView(target_primary="b", current_primary="a", initialized=True),
            ClusterView(target_primary="b", current_primary="b", initialized=True),
        ]
    )
    said: list[str] = []
    view = wait_for_target(lambda: next(views), said.append, "a", poll_s=0)
    assert view.current_primary == "b"
    assert said == [
        "waiting for the operator to name a primary",
        "waiting: a failover away from this instance is under way",
    ]


def test_others_do_not_wait_for_a_failover_they_are_not_leaving() -> None:
    view = ClusterView(target_primary="b", current_primary="a", initialized=True)
    assert wait_for_target(lambda: view, lambda m: None, "c", poll_s=0) is view


def test_from_status() -> None:
    view = ClusterView.from_status({"targetPrimary": "x", "primary": "y", "initialized": True})
    assert (view.target_primary, view.current_primary, view.initialized) == ("x", "y", True)


def test_failure_detection_time_comes_from_the_spec_or_the_defaults() -> None:
    spec = {"monitoring": {"probeIntervalSeconds": 2}, "failover": {"failureThreshold": 3}}
    view = ClusterView.from_object({"spec": spec, "status": {"targetPrimary": "a"}})
    assert view.failure_detection_s == 2 * (3 + 1) + 1
    assert view.target_primary == "a"
    assert ClusterView.from_object({}).failure_detection_s == 1 * (2 + 1) + 1


def test_addresses_come_from_the_status_instances() -> None:
    view = ClusterView.from_status(
        {
            "instances": [
                {"name": "db-primary-0", "address": "10.0.0.7"},
                {"name": "db-replica-0"},  # not probed yet: no address
                "odd",
            ]
        }
    )
    assert view.addresses == {"db-primary-0": "10.0.0.7"}

"""The fence agent's rule: an isolated primary stops itself before anyone is promoted."""

from __future__ import annotations

from replicadb_operator.instance.cluster_view import ClusterView
from replicadb_operator.instance.isolation import IsolationGuard

ME = "db-primary-0"
MINE = ClusterView(target_primary=ME, current_primary=ME, initialized=True)


def guard() -> IsolationGuard:
    return IsolationGuard(ME, isolation_s=3.0)


def test_cut_off_from_api_and_peers_stops_after_the_bound() -> None:
    g = guard()
    assert g.observe(0.0, True, MINE, 2, True) is None
    assert g.observe(1.0, True, None, 2, False) is None
    assert g.observe(2.9, True, None, 2, False) is None
    reason = g.observe(3.0, True, None, 2, False)
    assert reason is not None
    assert "neither the API server nor any of 2" in reason


def test_a_peer_or_the_api_answering_resets_the_clock() -> None:
    g = guard()
    assert g.observe(0.0, True, MINE, 2, True) is None
    assert g.observe(2.5, True, None, 2, True) is None  # API down, a replica reachable
    assert g.observe(5.0, True, None, 2, False) is None
    assert g.observe(5.4, True, MINE, 0, False) is None  # API back
    assert g.observe(8.0, True, None, 2, False) is None
    assert g.observe(8.4, True, None, 2, False) is not None


def test_a_single_instance_is_never_stopped_for_isolation() -> None:
    g = guard()
    assert all(g.observe(t, True, None, 0, False) is None for t in (0.0, 10.0, 100.0))


def test_a_replica_is_never_stopped() -> None:
    g = guard()
    assert g.observe(0.0, False, None, 2, False) is None
    assert g.observe(30.0, False, None, 2, False) is None
    # and its time as a replica does not count once it is promoted
    assert g.observe(31.0, True, None, 2, False) is None


def test_status_naming_another_primary_stops_it_at_once() -> None:
    g = guard()
    replaced = ClusterView(target_primary="db-replica-0", current_primary="db-replica-0",
                           initialized=True)  # fmt: skip
    reason = g.observe(0.0, True, replaced, 2, True)
    assert reason == "the status names db-replica-0 primary"


def test_a_switchover_to_it_or_a_fresh_status_is_not_a_reason() -> None:
    g = guard()
    coming = ClusterView(target_primary=ME, current_primary="db-replica-0", initialized=True)
    assert g.observe(0.0, True, coming, 2, True) is None  # being promoted: status catches up
    unset = ClusterView(target_primary=ME, current_primary=None, initialized=False)
    assert g.observe(1.0, True, unset, 2, True) is None

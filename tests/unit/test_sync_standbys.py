from __future__ import annotations

from replicadb_operator.dataplane.failover_target import SyncMethod
from replicadb_operator.dataplane.probe import ReplicationPeer
from replicadb_operator.dataplane.sync_standbys import (
    Durability,
    SyncMode,
    SyncSettings,
    confirming_standbys,
    required_sync_standbys,
    sync_requirement,
    synchronous_standby_names,
)

REPLICAS = ["db-1", "db-2", "db-0"]


def test_off_is_empty() -> None:
    assert synchronous_standby_names(SyncSettings(), REPLICAS, REPLICAS) == ""


def test_on_and_quorum_quote_and_sort_names() -> None:
    on = SyncSettings(SyncMode.ON, 2)
    assert synchronous_standby_names(on, REPLICAS, REPLICAS) == 'FIRST 2 ("db-0", "db-1", "db-2")'
    quorum = SyncSettings(SyncMode.QUORUM, 1)
    assert synchronous_standby_names(quorum, ["x"], ["x"]) == 'ANY 1 ("x")'


def test_required_durability_keeps_unhealthy_members_so_commits_wait() -> None:
    settings = SyncSettings(SyncMode.QUORUM, 2, Durability.REQUIRED)
    assert synchronous_standby_names(settings, REPLICAS, ["db-1"]) == (
        'ANY 2 ("db-0", "db-1", "db-2")'
    )


def test_preferred_durability_follows_health_down_to_asynchronous() -> None:
    settings = SyncSettings(SyncMode.QUORUM, 2, Durability.PREFERRED)
    assert synchronous_standby_names(settings, REPLICAS, ["db-1"]) == 'ANY 1 ("db-1")'
    assert synchronous_standby_names(settings, REPLICAS, []) == ""
    requirement = sync_requirement(settings, REPLICAS, ["db-2", "db-1"])
    assert requirement is not None
    assert (requirement.method, requirement.num_sync) == (SyncMethod.ANY, 2)


def test_names_with_quotes_are_escaped() -> None:
    settings = SyncSettings(SyncMode.ON, 1)
    assert synchronous_standby_names(settings, ['a"b'], ['a"b']) == 'FIRST 1 ("a""b")'


def peer(name: str, state: str, sync_state: str) -> ReplicationPeer:
    return ReplicationPeer(name, None, state, None, None, None, None, None, sync_state)


def test_confirming_standbys_count_streaming_sync_and_quorum_members_only() -> None:
    peers = [
        peer("a", "streaming", "quorum"),
        peer("b", "streaming", "sync"),
        peer("c", "streaming", "potential"),
        peer("d", "catchup", "quorum"),
        peer("e", "streaming", "async"),
    ]
    assert confirming_standbys(peers) == 2
    assert confirming_standbys([]) == 0


def test_required_sync_standbys_is_what_the_spec_asks_for() -> None:
    assert required_sync_standbys(SyncSettings()) == 0
    assert required_sync_standbys(SyncSettings(SyncMode.QUORUM, 2)) == 2
    preferred = SyncSettings(SyncMode.ON, 1, Durability.PREFERRED)
    assert required_sync_standbys(preferred) == 1

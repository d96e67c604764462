"""A monitor that starts with the primary gone judges the replicas on what status recorded."""

from __future__ import annotations

from replicadb_operator.dataplane.lsn import parse_lsn
from replicadb_operator.dataplane.monitor import TopologyMonitor


async def test_seeding_again_with_less_keeps_what_the_monitor_knows() -> None:
    """Seeded every round from status: a status written while the primary was down once
    lacked the sync states, and the next seed wiped them (every standby then counted as
    async and the failover was refused)."""
    monitor = TopologyMonitor({}, "shop-primary-0")
    monitor.seed(parse_lsn("0/5000060"), 1, {"r0": "quorum", "r1": "quorum"}, {"r0": 1})
    monitor.seed(None, None, {}, {})
    snapshot = await monitor.sample()  # the primary has no address: as good as down
    assert snapshot.sync_states == {"r0": "quorum", "r1": "quorum"}
    assert snapshot.last_primary_lsn == parse_lsn("0/5000060")
    assert snapshot.primary_timeline == 1

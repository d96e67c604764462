"""A monitor that starts with the primary gone judges the replicas on what status recorded."""

from __future__ import annotations

from replicadb_operator.dataplane.lsn import parse_lsn
from replicadb_operator.dataplane.monitor import TopologyMonitor
from replicadb_operator.dataplane.probe import ProbeResult
from replicadb_operator.monitoring.status_model import instance_entry


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


def test_a_replica_s_timeline_is_never_lowered_by_a_later_seed_or_status() -> None:
    """Seen on kind: after a node loss's failover to timeline 2, the new primary's node was
    cut off. The operator that took over probed replicas whose WAL receivers were down, so
    their probes gave their last checkpoint's timeline (1); status recorded that, the next
    seed lowered what was known to 1, and every candidate was refused as "on timeline 1,
    primary was on 2": no failover for minutes."""
    monitor = TopologyMonitor({}, "p")
    monitor.seed(None, 2, {}, {"r0": 2})
    monitor.seed(None, 2, {}, {"r0": 1})  # written from a receiver-less probe
    checkpoint_only = ProbeResult("r0", True, 0.0, 0.0, in_recovery=True, timeline=1)
    assert monitor._candidate(checkpoint_only).timeline == 2
    entry = instance_entry("r0", None, checkpoint_only, None, None, None, None, 2)
    assert entry["timeline"] == 2

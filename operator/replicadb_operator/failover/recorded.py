"""What an earlier monitor recorded in status, read back for a monitor that starts now:
the primary's last position and timeline, and each standby's sync state and timeline. An
operator that starts while the primary is already gone has nothing else to go by."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from replicadb_operator.dataplane.lsn import Lsn, parse_lsn
from replicadb_operator.dataplane.monitor import TopologyMonitor


@dataclass(frozen=True)
class RecordedTopology:
    primary: str | None
    last_primary_lsn: Lsn | None
    primary_timeline: int | None
    sync_states: dict[str, str] = field(default_factory=dict)
    timelines: dict[str, int] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> RecordedTopology:
        primary = status.get("primary") or None
        instances = [i for i in status.get("instances") or [] if isinstance(i, Mapping)]
        by_name = {str(i.get("name")): i for i in instances}
        entry = by_name.get(str(primary)) or {}
        lsn = entry.get("currentLsn")
        timeline = status.get("timeline") or entry.get("timeline")
        return cls(
            primary=primary,
            last_primary_lsn=parse_lsn(lsn) if isinstance(lsn, str) else None,
            primary_timeline=int(timeline) if timeline is not None else None,
            sync_states={n: str(i["syncState"]) for n, i in by_name.items() if i.get("syncState")},
            timelines={
                n: int(i["timeline"])
                for n, i in by_name.items()
                if n != primary and i.get("timeline") is not None
            },
            addresses={n: str(i["address"]) for n, i in by_name.items() if i.get("address")},
        )

    def seed(self, monitor: TopologyMonitor) -> None:
        monitor.seed(self.last_primary_lsn, self.primary_timeline, self.sync_states, self.timelines)

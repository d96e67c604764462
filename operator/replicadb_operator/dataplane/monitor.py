"""Probe a whole topology at once and keep what failover needs to remember.

One sample probes the primary first, then every replica concurrently (see ``lag`` for why
that order), computes each replica's lag, and counts consecutive failed primary probes.
The monitor remembers across samples what a dead primary can no longer tell: its last WAL
position and timeline, and which standbys it last listed as synchronous.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from replicadb_operator.dataplane.failover_target import Candidate
from replicadb_operator.dataplane.lag import PrimaryWalHistory, ReplicaLag, replica_lag
from replicadb_operator.dataplane.lsn import Lsn
from replicadb_operator.dataplane.probe import InstanceProber, ProbeResult, ProbeTimeouts


@dataclass(frozen=True)
class TopologySnapshot:
    primary: str
    taken_at: float  # monotonic
    probes: dict[str, ProbeResult]
    lags: dict[str, ReplicaLag]
    primary_failures: int  # consecutive failed probes of the primary
    last_primary_lsn: Lsn | None
    primary_timeline: int | None
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)
    # Each standby's sync state as the primary last listed it (or as status recorded it):
    # what status must keep saying while the primary does not answer.
    sync_states: dict[str, str] = field(default_factory=dict)

    @property
    def primary_probe(self) -> ProbeResult:
        return self.probes[self.primary]

    @property
    def writable(self) -> list[str]:
        """Every instance that said it is not in recovery (more than one is split brain)."""
        return sorted(name for name, p in self.probes.items() if p.is_primary)

    @property
    def max_lag_bytes(self) -> int | None:
        known = [lag.replay_bytes for lag in self.lags.values() if lag.replay_bytes is not None]
        return max(known) if known else None


class TopologyMonitor:
    def __init__(
        self,
        dsns: Mapping[str, str],
        primary: str,
        timeouts: ProbeTimeouts | None = None,
    ) -> None:
        self._timeouts = timeouts or ProbeTimeouts()
        self._probers: dict[str, InstanceProber] = {}
        self.primary = primary
        self.history = PrimaryWalHistory()
        self._failures = 0
        self._last_primary_lsn: Lsn | None = None
        self._primary_timeline: int | None = None
        self._timelines: dict[str, int] = {}
        self._sync_states: dict[str, str] = {}
        # False until this monitor itself saw the primary accept writes: what it knows of the
        # primary's position and standbys then comes from status (see ``seed``).
        self.primary_seen_alive = False
        self._add_probers(dsns)

    def seed(
        self,
        last_primary_lsn: Lsn | None,
        primary_timeline: int | None,
        sync_states: Mapping[str, str],
        timelines: Mapping[str, int],
    ) -> None:
        """Start from what an earlier monitor recorded in status, so that a monitor started
        while the primary is already gone can still judge the replicas; its own probes
        override all of it as soon as the primary answers. Called every round: it adds what
        status knows and never replaces what this monitor knows with less (a status written
        while the primary was down once lacked the sync states, and the next round's seed
        wiped them: every standby then counted as async and failover was refused)."""
        if self.primary_seen_alive:
            return
        if last_primary_lsn is not None:
            self._last_primary_lsn = max(self._last_primary_lsn or 0, last_primary_lsn)
        if primary_timeline is not None:
            self._primary_timeline = primary_timeline
        self._sync_states.update(sync_states)
        for name, timeline in timelines.items():  # never lowered: see instance_entry
            self._timelines[name] = max(self._timelines.get(name, 0), timeline)

    def _add_probers(self, dsns: Mapping[str, str]) -> None:
        for name, dsn in dsns.items():
            if name not in self._probers:
                self._probers[name] = InstanceProber(name, dsn, self._timeouts)

    async def set_instances(self, dsns: Mapping[str, str]) -> None:
        """Follow scaling: new instances get a prober, removed or moved ones lose theirs."""
        gone = [n for n, p in self._probers.items() if n not in dsns or p.dsn != dsns[n]]
        await asyncio.gather(*(self._probers.pop(name).close() for name in gone))
        self._add_probers(dsns)

    def dsn_of(self, name: str) -> str | None:
        prober = self._probers.get(name)
        return None if prober is None else prober.dsn

    def set_primary(self, name: str) -> None:
        """After a failover or switchover: a new history, a fresh failure count."""
        self.primary = name
        self.history.clear()
        self._failures = 0
        self._last_primary_lsn = None
        self._sync_states.clear()
        self.primary_seen_alive = False

    def _remember_primary(self, probe: ProbeResult) -> None:
        if probe.is_primary and probe.current_lsn is not None:
            self.primary_seen_alive = True
            self._failures = 0
            self._last_primary_lsn = probe.current_lsn
            self._primary_timeline = probe.timeline
            self.history.record(probe.probed_at, probe.current_lsn)
            # Merged, not replaced: a standby missing for a moment (reconnecting after a
            # restart of the primary) may still hold acknowledged commits.
            self._sync_states.update({p.application_name: p.sync_state for p in probe.replication})
            # A standby the primary itself streams to follows its timeline, whatever the
            # standby's received_tli says (it lags until WAL of the new timeline arrives).
            for peer in probe.replication:
                if peer.state == "streaming" and probe.timeline is not None:
                    self._timelines[peer.application_name] = probe.timeline
        else:
            self._failures += 1

    def _candidate(self, probe: ProbeResult) -> Candidate:
        if probe.streaming and probe.timeline is not None:
            known = self._timelines.get(probe.name, 0)
            self._timelines[probe.name] = max(known, probe.timeline)
        return Candidate(
            name=probe.name,
            healthy=probe.is_replica,
            timeline=self._timelines.get(probe.name, probe.timeline),
            receive_lsn=probe.receive_lsn,
            replay_lsn=probe.replay_lsn,
            sync_state=self._sync_states.get(probe.name, "async"),
        )

    def _down(self, why: str) -> ProbeResult:
        return ProbeResult(
            name=self.primary,
            reachable=False,
            probed_at=time.monotonic(),
            duration_s=0.0,
            error=why,
        )

    async def _probe_primary(self) -> ProbeResult:
        prober = self._probers.get(self.primary)
        if prober is None:  # no address (pod gone or not scheduled): as good as down
            return self._down("no address")
        return await prober.probe()

    async def sample(self, primary_known_down: bool = False) -> TopologySnapshot:
        """Probe every instance. ``primary_known_down``: the primary was just fenced, so it is
        not asked (a probe of an unreachable host costs the whole probe deadline)."""
        primary_probe = self._down("fenced") if primary_known_down else await self._probe_primary()
        self._remember_primary(primary_probe)
        others = [p for name, p in self._probers.items() if name != self.primary]
        replica_probes = await asyncio.gather(*(p.probe() for p in others))
        now = time.monotonic()
        probes = {primary_probe.name: primary_probe}
        probes.update({p.name: p for p in replica_probes})
        lags = {p.name: replica_lag(primary_probe, p, self.history, now) for p in replica_probes}
        return TopologySnapshot(
            primary=self.primary,
            taken_at=now,
            probes=probes,
            lags=lags,
            primary_failures=self._failures,
            last_primary_lsn=self._last_primary_lsn,
            primary_timeline=self._primary_timeline,
            candidates=tuple(self._candidate(p) for p in replica_probes),
            sync_states=dict(self._sync_states),
        )

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self._probers.values()))

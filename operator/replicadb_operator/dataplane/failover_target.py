"""Which replica to promote when the primary is gone. Pure: no I/O, property-tested.

Rules, in order:
1. only healthy replicas (reachable, still in recovery);
2. only replicas that were streaming on the primary's timeline;
3. in synchronous mode only synchronous standbys, and with quorum commit (``ANY n``) only when
   enough of the quorum is reachable that the union of reachable members is sure to hold
   every acknowledged commit (at least ``members - n + 1`` of them);
4. a candidate behind the primary's last known position by more than the allowed lag is
   refused (data would be lost); ``force`` lifts rules 3 and 4, never 1 and 2;
5. among those left, the most WAL wins (received or replayed, whichever is further: nothing
   it has flushed is lost), then the highest replayed LSN (it is ready to serve sooner), then
   the name (determinism).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from replicadb_operator.dataplane.lsn import Lsn, lsn_distance


class SyncMethod(StrEnum):
    FIRST = "FIRST"  # priority: each commit is on the first n connected standbys
    ANY = "ANY"  # quorum: each commit is on some n of the members


@dataclass(frozen=True)
class SyncRequirement:
    method: SyncMethod
    num_sync: int
    members: frozenset[str]

    @property
    def reachable_members_needed(self) -> int:
        if self.method is SyncMethod.FIRST:
            return 1
        return max(1, len(self.members) - self.num_sync + 1)


@dataclass(frozen=True)
class Candidate:
    """A replica as the monitor last saw it. ``timeline`` is the one it last streamed on;
    ``sync_state`` is its pg_stat_replication.sync_state at the last primary probe."""

    name: str
    healthy: bool
    timeline: int | None
    receive_lsn: Lsn | None
    replay_lsn: Lsn | None
    sync_state: str = "async"

    @property
    def synchronous(self) -> bool:
        return self.sync_state in ("sync", "quorum")


@dataclass(frozen=True)
class FailoverPolicy:
    primary_timeline: int | None
    last_primary_lsn: Lsn | None
    max_lag_bytes: int | None = None
    synchronous: SyncRequirement | None = None
    force: bool = False


@dataclass(frozen=True)
class FailoverChoice:
    """The target (None when nobody may be promoted), how many bytes of the primary's last
    known WAL it lacks, and why each other replica was passed over."""

    target: str | None
    lag_bytes: int | None
    rejected: dict[str, str] = field(default_factory=dict)
    reason: str = ""


def wal_end(candidate: Candidate) -> int:
    """How much WAL the standby holds: received, or replayed when that is further (after a
    restart pg_last_wal_receive_lsn() restarts at the segment where streaming resumes,
    below WAL already on disk and replayed)."""
    return max(candidate.receive_lsn or 0, candidate.replay_lsn or 0)


def _position(candidate: Candidate) -> tuple[int, int]:
    return (wal_end(candidate), candidate.replay_lsn or 0)


def _lag(candidate: Candidate, policy: FailoverPolicy) -> int | None:
    if policy.last_primary_lsn is None or candidate.receive_lsn is None:
        return None
    return lsn_distance(policy.last_primary_lsn, wal_end(candidate))


def _rejection(candidate: Candidate, policy: FailoverPolicy) -> str | None:
    if not candidate.healthy:
        return "not healthy"
    if candidate.receive_lsn is None:
        return "no received WAL position"
    if policy.primary_timeline is not None and candidate.timeline != policy.primary_timeline:
        return f"on timeline {candidate.timeline}, primary was on {policy.primary_timeline}"
    if policy.force:
        return None
    if policy.synchronous is not None and not (
        candidate.synchronous and candidate.name in policy.synchronous.members
    ):
        return "not a synchronous standby"
    if policy.max_lag_bytes is not None and policy.synchronous is None:
        lag = _lag(candidate, policy)
        if lag is None:
            return "primary position unknown, lag cannot be bounded"
        if lag > policy.max_lag_bytes:
            return f"behind by {lag} bytes, more than the allowed {policy.max_lag_bytes}"
    return None


def choose_failover_target(
    candidates: list[Candidate] | tuple[Candidate, ...], policy: FailoverPolicy
) -> FailoverChoice:
    rejected: dict[str, str] = {}
    eligible: list[Candidate] = []
    for candidate in candidates:
        why = _rejection(candidate, policy)
        if why is None:
            eligible.append(candidate)
        else:
            rejected[candidate.name] = why

    sync = policy.synchronous
    if sync is not None and not policy.force:
        reachable = sum(1 for c in eligible if c.name in sync.members)
        if reachable < sync.reachable_members_needed:
            for candidate in eligible:
                rejected[candidate.name] = "too few synchronous standbys reachable to be sure"
            return FailoverChoice(
                target=None,
                lag_bytes=None,
                rejected=rejected,
                reason=(
                    f"only {reachable} of {len(sync.members)} synchronous standbys are "
                    f"eligible; {sync.reachable_members_needed} are needed to be sure no "
                    f"acknowledged commit is lost ({sync.method.value} {sync.num_sync})"
                ),
            )
    if not eligible:
        return FailoverChoice(
            target=None,
            lag_bytes=None,
            rejected=rejected,
            reason="no eligible replica" if rejected else "no replicas",
        )
    best_position = max(_position(c) for c in eligible)
    best = min((c for c in eligible if _position(c) == best_position), key=lambda c: c.name)
    for candidate in eligible:
        if candidate is not best:
            rejected[candidate.name] = "less advanced than " + best.name
    return FailoverChoice(
        target=best.name,
        lag_bytes=_lag(best, policy),
        rejected=rejected,
        reason=f"{best.name} has the highest received WAL position",
    )

"""The routing decision for a read: which endpoint, why, and what the connection must prove.

Pure: it reads the endpoint states it is given and the clock value it is passed, performs no
I/O, and is shared by the sync and async routers. Writes always go to the primary; reads:

- STRONG: the primary.
- EVENTUAL: any usable replica.
- BOUNDED(max_lag_seconds, max_lag_bytes): a replica whose last measured replay position P
  satisfies both limits: the primary was at or below P less than ``max_lag_seconds`` ago
  (:meth:`PrimaryHistory.included_before`), and the primary's latest sampled position is at
  most ``max_lag_bytes`` past P. The connection used must be known to have replayed P.
- READ_YOUR_WRITES: a replica known to have replayed the session's last commit position W;
  otherwise the most replayed usable replica, which the executor polls until it reaches W or
  the wait bound passes, then the primary.

With no usable replica every level falls back to the primary.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass

from router_lib.balancing import Strategy, least_outstanding, pick, prefer_zone
from router_lib.consistency import LSN_UNKNOWN, Consistency, Level
from router_lib.health import EndpointState, PrimaryHistory

# Reasons for reads (metric label values): the level's name, or why the primary served it.
EVENTUAL = Level.EVENTUAL.value
BOUNDED = Level.BOUNDED.value
READ_YOUR_WRITES = Level.READ_YOUR_WRITES.value
STRONG = Level.STRONG.value
FALLBACK_NO_REPLICA = "fallback_no_replica"
FALLBACK_REPLICA_ERROR = "fallback_replica_error"
FALLBACK_RYW = "fallback_ryw"
READ_ONLY_TRANSACTION = "read_only_transaction"


@dataclass(frozen=True, slots=True)
class ReadPolicy:
    strategy: Strategy = Strategy.ROUND_ROBIN
    zone: str | None = None
    primary_weight: float = 0.0  # against 1.0 per eligible replica


# Spreads the primary's share evenly over the ticks (a low-discrepancy sequence): over any
# run of reads its count stays within one of the share, with no state beyond the tick.
GOLDEN = 0.6180339887498949


def primary_takes(tick: int, replicas: int, weight: float) -> bool:
    """Does read number ``tick`` go to the primary, which has ``weight`` against 1.0 for
    each of the ``replicas`` eligible ones?"""
    return weight > 0 and (tick * GOLDEN) % 1.0 < weight / (replicas + weight)


@dataclass(slots=True)  # not frozen: frozen dataclasses are slow to build, and this is per read
class ReadChoice:
    state: EndpointState
    reason: str
    fallback: bool = False
    # The connection must be known to have replayed this position (0: no requirement).
    required_lsn: int = 0
    # Read-your-writes: the replica has not been seen at ``required_lsn`` yet; poll it.
    may_wait: bool = False


def within_bounds(
    state: EndpointState, consistency: Consistency, history: PrimaryHistory, now: float
) -> bool:
    """BOUNDED eligibility from the router's own measurements, or from the status figures
    when the router has not probed this replica (probe disabled)."""
    if state.replay_lsn:
        return lsn_within_bounds(state.replay_lsn, consistency, history, now)
    if state.probed_at:
        return False  # probed, yet nothing known: not provably fresh
    max_s, max_bytes = consistency.max_lag_seconds, consistency.max_lag_bytes
    lag_s, lag_bytes = state.endpoint.status_lag_seconds, state.endpoint.status_lag_bytes
    if max_s is not None and (lag_s is None or lag_s > max_s):
        return False
    return max_bytes is None or (lag_bytes is not None and lag_bytes <= max_bytes)


def lsn_within_bounds(
    lsn: int, consistency: Consistency, history: PrimaryHistory, now: float
) -> bool:
    """Is data that includes everything up to ``lsn`` within the level's limits now?"""
    max_s, max_bytes = consistency.max_lag_seconds, consistency.max_lag_bytes
    if max_s is not None:
        since = history.included_before(lsn)
        if since is None or now - since > max_s:
            return False
    if max_bytes is not None:
        latest = history.latest()
        if latest is None or latest[0] - lsn > max_bytes:
            return False
    return True


def choose_read(
    primary: EndpointState | None,
    replicas: Sequence[EndpointState],
    consistency: Consistency,
    session_lsn: int,
    history: PrimaryHistory,
    policy: ReadPolicy,
    now: float,
    tick: int,
    exclude: Container[EndpointState] = (),
) -> ReadChoice | None:
    """None when nothing can serve the read (no usable replica and no usable primary)."""
    level = consistency.level
    if level is Level.STRONG:
        return _primary(primary, STRONG, False, exclude)
    if level is Level.READ_YOUR_WRITES and session_lsn == LSN_UNKNOWN:
        return _primary(primary, FALLBACK_RYW, True, exclude)
    usable = [s for s in replicas if s.usable(now) and s not in exclude]
    required = 0
    may_wait = False
    if level is Level.BOUNDED:
        usable = [s for s in usable if within_bounds(s, consistency, history, now)]
    elif level is Level.READ_YOUR_WRITES and session_lsn:
        required = session_lsn
        reached = [s for s in usable if s.replay_lsn >= session_lsn]
        if reached:
            usable = reached
        elif usable:
            # Nobody has been seen there yet: wait on the one that is furthest along.
            best = max(s.replay_lsn for s in usable)
            usable = [s for s in usable if s.replay_lsn == best]
            may_wait = True
    if policy.zone is not None:
        usable = prefer_zone(usable, policy.zone)
    if not usable:
        reason = FALLBACK_REPLICA_ERROR if _excluded_any(replicas, exclude) else FALLBACK_NO_REPLICA
        return _primary(primary, reason, True, exclude)
    sharing = (
        policy.primary_weight > 0
        and primary is not None
        and primary not in exclude
        and not primary.retired
    )
    if policy.strategy is Strategy.LEAST_OUTSTANDING:
        state = _least_outstanding(usable, primary if sharing else None, policy, tick)
    elif sharing and primary and primary_takes(tick, len(usable), policy.primary_weight):
        state = primary
    elif policy.strategy is Strategy.ROUND_ROBIN:
        state = usable[tick % len(usable)]
    else:
        state = pick(usable, policy.strategy, tick)
    if state is primary:
        # The primary has every commit: fresh enough for any level, nothing to wait for.
        shared: ReadChoice | None = state.plain_choices.get(consistency.name)
        if shared is None:
            shared = state.plain_choices[consistency.name] = ReadChoice(state, consistency.name)
        return shared
    if level is Level.BOUNDED:
        required = state.replay_lsn
    elif not required:
        # Nothing to prove: the same answer every time, built once per endpoint and level.
        choice: ReadChoice | None = state.plain_choices.get(consistency.name)
        if choice is None:
            choice = state.plain_choices[consistency.name] = ReadChoice(state, consistency.name)
        return choice
    return ReadChoice(state, consistency.name, False, required, may_wait)


def _least_outstanding(
    usable: list[EndpointState], primary: EndpointState | None, policy: ReadPolicy, tick: int
) -> EndpointState:
    """The replica (or the primary, when it shares reads) with the fewest statements in
    flight for its weight."""
    candidates = usable if primary is None else [*usable, primary]
    weights = [1.0] * len(usable) + ([] if primary is None else [policy.primary_weight])
    index = least_outstanding([s.in_use for s in candidates], weights, tick)
    return candidates[index]


def primary_fallback(
    primary: EndpointState | None, reason: str, exclude: Container[EndpointState] = ()
) -> ReadChoice | None:
    return _primary(primary, reason, True, exclude)


def _primary(
    primary: EndpointState | None, reason: str, fallback: bool, exclude: Container[EndpointState]
) -> ReadChoice | None:
    if primary is None or primary in exclude or primary.retired:
        return None
    return ReadChoice(primary, reason, fallback)


def _excluded_any(replicas: Sequence[EndpointState], exclude: Container[EndpointState]) -> bool:
    return any(s in exclude for s in replicas)

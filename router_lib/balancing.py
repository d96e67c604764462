"""Which of the eligible replicas serves a read: zone first, then round robin, least lag, or
least outstanding (the fewest statements in flight, weighed; the primary may take part).

Zone preference narrows the choice to replicas in the caller's zone when any of them is
eligible (cross-zone traffic costs latency and money), and falls back to every eligible
replica otherwise: a zone without a fresh replica must not send reads to the primary.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from router_lib.health import EndpointState


class Strategy(enum.Enum):
    ROUND_ROBIN = "round_robin"
    LEAST_LAG = "least_lag"
    # Each read to the endpoint with the fewest statements in flight for its weight (1.0 a
    # replica, primary_read_weight the primary): a server slowed by its other work (the
    # primary's writes, a replica's replay, a CPU limit) holds more in flight and gets fewer.
    LEAST_OUTSTANDING = "least_outstanding"


def prefer_zone(candidates: list[EndpointState], zone: str | None) -> list[EndpointState]:
    if zone is None:
        return candidates
    local = [state for state in candidates if state.endpoint.zone == zone]
    return local or candidates


def _freshness(state: EndpointState) -> tuple[int, int]:
    return (state.replay_lsn, -(state.endpoint.status_lag_bytes or 0))


def pick(candidates: Sequence[EndpointState], strategy: Strategy, tick: int) -> EndpointState:
    """``candidates`` is not empty. ``tick`` grows by one per read (round-robin position)."""
    if strategy is Strategy.LEAST_LAG and len(candidates) > 1:
        # Most replayed first (the status lag when the probe has not measured yet); ties
        # rotate so that equally fresh replicas share the load.
        best = max(_freshness(state) for state in candidates)
        candidates = [state for state in candidates if _freshness(state) == best]
    return candidates[tick % len(candidates)]


def least_outstanding(in_flight: Sequence[int], weights: Sequence[float], tick: int) -> int:
    """The index whose (in flight + 1) / weight is lowest; ties rotate with ``tick``.
    ``in_flight`` is not empty and every weight is above 0."""
    count = len(in_flight)
    best, best_load = 0, float("inf")
    for offset in range(count):
        index = (tick + offset) % count
        load = (in_flight[index] + 1) / weights[index]
        if load < best_load:
            best, best_load = index, load
    return best

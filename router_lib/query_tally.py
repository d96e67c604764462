"""The per-query counter (statements by target and reason), without a lock per increment.

prometheus_client's ``Counter.inc`` takes a lock and goes through three Python calls: about a
third of the router's own time on a point select. Each thread here keeps its own tally, which
only it writes; Prometheus sums the tallies when it collects. Tallies of threads that have
ended are kept (counters never go down). It needs nothing of prometheus_client;
:mod:`router_lib.prometheus_metrics` exports it.
"""

from __future__ import annotations

import threading

Tally = dict[tuple[str, str], int]


class QueryTally:
    name = "replicadb_router_queries"
    documentation = "Statements routed, by target (primary, replica) and reason"

    def __init__(self) -> None:
        self._local = threading.local()
        self._tallies: list[Tally] = []
        self._lock = threading.Lock()

    def add(self, target: str, reason: str) -> None:
        try:
            tally: Tally = self._local.tally
        except AttributeError:
            tally = self._local.tally = {}
            with self._lock:
                self._tallies.append(tally)
        key = (target, reason)
        tally[key] = tally.get(key, 0) + 1

    def totals(self) -> Tally:
        with self._lock:
            tallies = list(self._tallies)
        totals: Tally = {}
        for tally in tallies:
            for key, count in dict(tally).items():  # a copy: its thread may be adding
                totals[key] = totals.get(key, 0) + count
        return totals

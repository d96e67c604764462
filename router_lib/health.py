"""What the router knows about each endpoint: reachable or ejected, and how far it has replayed.

Replay knowledge is a lower bound with a timestamp. A replica's replay position only grows
while its server keeps running; a restart (or a crash-and-reinitialize) can make it serve
older data for a while, but it also breaks every connection opened before. Hence the rule
used everywhere (:func:`known_replay`): an observation made at time T (the moment the
observing query was sent) holds for a pooled connection opened before T that still works.
A connection that fails returns an error, never stale rows.

The primary's positions over time (:class:`PrimaryHistory`) turn a replay position into a
staleness bound: if the primary reported position P at time T (sampled before the query was
sent) and a replica has replayed P, the replica holds every transaction committed before T.
"""

from __future__ import annotations

import bisect
import threading
from operator import itemgetter
from typing import Any, Protocol

from router_lib.endpoints import Endpoint

_FIRST = itemgetter(0)


class PrimaryHistory:
    """(position, latest monotonic time the primary was seen at it), ascending by position.

    Appends and the last-entry update are single list operations and trimming swaps in a new
    list, so readers in other threads need no lock.
    """

    def __init__(self, max_samples: int = 4096) -> None:
        self.max_samples = max_samples
        self._samples: list[tuple[int, float]] = []

    def record(self, lsn: int, sent_at: float) -> None:
        samples = self._samples
        if samples and lsn < samples[-1][0]:
            # Another primary, or a restored one: older positions mean nothing any more.
            self._samples = [(lsn, sent_at)]
        elif samples and lsn == samples[-1][0]:
            samples[-1] = (lsn, sent_at)
        else:
            samples.append((lsn, sent_at))
            if len(samples) > self.max_samples:
                self._samples = samples[len(samples) // 2 :]

    def clear(self) -> None:
        self._samples = []

    def latest(self) -> tuple[int, float] | None:
        samples = self._samples
        return samples[-1] if samples else None

    def included_before(self, replay_lsn: int) -> float | None:
        """The latest time T such that a replica at ``replay_lsn`` holds every transaction
        committed on the primary before T; None when no sample is that old."""
        samples = self._samples
        index = bisect.bisect_right(samples, replay_lsn, key=_FIRST)
        return samples[index - 1][1] if index else None


class EndpointState:
    """Mutable per-endpoint knowledge; one object per endpoint identity, replaced when the
    endpoint changes (so its pools and knowledge go with it)."""

    __slots__ = (
        "awaiting_probe",
        "ejected_until",
        "endpoint",
        "failures",
        "in_recovery",
        "in_use",
        "in_use_lock",
        "plain_choices",
        "probed_at",
        "replay_lsn",
        "replay_seen_at",
        "retired",
        "target",
    )

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.target = endpoint.role.value  # the metric label, as a plain string
        self.ejected_until = 0.0
        self.awaiting_probe = False  # ejected: wait for a successful probe, not only for time
        self.failures = 0
        self.in_recovery: bool | None = None  # None: not probed yet
        self.replay_lsn = 0  # 0: nothing known
        self.replay_seen_at = 0.0
        self.probed_at = 0.0
        self.retired = False
        # Callers waiting for or holding a connection of this endpoint's pools: statements
        # outstanding there, for least-outstanding balancing (router_lib.pools counts them).
        self.in_use = 0
        self.in_use_lock = threading.Lock()
        # Routing decisions with nothing to prove, by level name (router_lib.routing).
        self.plain_choices: dict[str, Any] = {}

    def took(self) -> None:
        with self.in_use_lock:
            self.in_use += 1

    def gave_back(self) -> None:
        with self.in_use_lock:
            self.in_use -= 1

    def usable(self, now: float) -> bool:
        """May this replica serve reads now? (Not asked of the primary.)"""
        return (
            not self.retired
            and self.endpoint.ready
            and self.ejected_until <= now
            and not self.awaiting_probe
            and self.in_recovery is not False  # promoted or misconfigured: not a replica
        )

    def note_replay(self, lsn: int, sent_at: float) -> None:
        """Record a replay position observed by a query sent at ``sent_at``. The latest
        observation wins (a lower one after a restart is the truth now)."""
        if sent_at >= self.replay_seen_at:
            self.replay_lsn = lsn
            self.replay_seen_at = sent_at

    def forget_replay(self) -> None:
        self.replay_lsn = 0
        self.replay_seen_at = 0.0

    def eject(self, now: float, base_s: float, max_s: float, wait_for_probe: bool) -> bool:
        """Stop choosing this replica: for a back-off that doubles with each ejection (reset
        once it has stayed in use for ``max_s``), and until a probe succeeds when
        ``wait_for_probe``. Failures while already ejected change nothing. Returns True
        when this call ejected it."""
        if self.ejected_until > now or self.awaiting_probe:
            return False
        if now - self.ejected_until > max_s:
            self.failures = 0
        self.failures += 1
        self.ejected_until = now + min(max_s, base_s * (2 ** (self.failures - 1)))
        self.awaiting_probe = wait_for_probe
        self.forget_replay()
        return True

    def probe_succeeded(self) -> None:
        """Reachable again: back in use once the back-off has passed."""
        self.awaiting_probe = False


class ReplayAware(Protocol):
    """A pooled connection that remembers when it was opened and what it has confirmed."""

    established_at: float
    confirmed_lsn: int


def known_replay(conn: ReplayAware, state: EndpointState) -> int:
    """The replay position a query on ``conn`` is guaranteed to see (0: nothing known)."""
    lsn = conn.confirmed_lsn
    if state.replay_lsn > lsn and conn.established_at < state.replay_seen_at:
        return state.replay_lsn
    return lsn

"""Which operator replica acts: Kopf peering priorities.

Kopf lets only the operator with the highest priority act and pauses the others (their
daemons stop too); when two share the highest priority, all of them freeze. Replicas of one
Deployment start from the same pod template, so each draws its own priority at start-up
unless ``RDB_PEERING_PRIORITY`` sets one. When the acting replica exits, it removes itself
from the peering object and the next-highest resumes at once; when it dies without exiting,
the others resume once its peering record expires (``PEERING_LIFETIME_S``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping

PRIORITY_ENV = "RDB_PEERING_PRIORITY"
PRIORITY_RANGE = 2**30
# An acting operator that dies with its node (no exit, no goodbye) is replaced this long
# after its last keep-alive (Kopf touches the record every second at this lifetime). A lost
# node's primary and operator then fail over within about this plus two probes: measured
# on kind, 12.2 s at 8 s, where a primary's node alone took 4-8 s (30 s here would make a
# node loss that takes both a 30-40 s outage).
PEERING_LIFETIME_S = 6


def peering_priority(env: Mapping[str, str], draw: Callable[[int], int] = secrets.randbelow) -> int:
    """The priority from the environment, or a fresh one in 1..2**30 (ties: 1 in 10**9)."""
    configured = env.get(PRIORITY_ENV, "").strip()
    if configured:
        try:
            return int(configured)
        except ValueError:
            raise ValueError(f"{PRIORITY_ENV} must be an integer, not {configured!r}") from None
    return draw(PRIORITY_RANGE) + 1

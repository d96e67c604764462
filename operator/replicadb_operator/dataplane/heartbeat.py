"""The primary's heartbeat, and the two time bounds that make losing a node safe.

A node that dies or is cut off leaves its pods Ready in the API until the node controller
gives up on it (50 s and more). The operator does not wait for that; it fails over when its
own probes fail and every replica it can reach has heard nothing from the primary for
``PRIMARY_SILENT_S``: the replicas are a second, independent view of the primary, so a
network fault between the operator and the primary alone never causes a failover.

An idle primary sends its standbys nothing (they report every second, so it never needs to
ask them): the fence agent beside postgres writes a WAL record every
``HEARTBEAT_INTERVAL_S`` so that a replica's last message is never older than about that
while the primary lives and reaches it.

The same agent stops a primary that has reached neither the API server nor any other
instance for ``ISOLATION_S``: before any replica can be promoted in its place, since
``ISOLATION_S`` plus one check and the stop stay under ``PRIMARY_SILENT_S``.
"""

from __future__ import annotations

HEARTBEAT_INTERVAL_S = 1.0
PRIMARY_SILENT_S = 5.0
ISOLATION_S = 3.0
CHECK_INTERVAL_S = 0.5

# Transactional, so that the commit flushes it at once; ``synchronous_commit = local`` on
# the agent's session, so that a primary cut off from its standbys never waits on them.
HEARTBEAT_SQL = "SELECT pg_logical_emit_message(true, 'replicadb.heartbeat', now()::text)"

"""When a primary must stop itself (pure): the rule the fence agent applies each check.

A primary on a node that is cut off keeps running, and deleting its pod from the API does
not stop it. It must stop on its own, before a replica can be promoted in its place:
- when it has reached neither the API server nor any other instance for ``isolation_s``
  (it cannot know whether a failover is under way, so it must assume one is);
- when the status names another instance primary (a failover finished while it was frozen
  or cut off, and it is back).
A database without other instances has nobody to fail over to: it is never stopped for
isolation.
"""

from __future__ import annotations

from dataclasses import dataclass

from replicadb_operator.instance.cluster_view import ClusterView


@dataclass
class IsolationGuard:
    name: str
    isolation_s: float
    last_contact: float | None = None

    def observe(
        self,
        now: float,
        is_primary: bool,
        view: ClusterView | None,
        peers_known: int,
        peer_reached: bool,
    ) -> str | None:
        """The reason to stop postgres now, or None. ``view`` is the status as just read
        (None: the API server did not answer); ``peer_reached``: some other instance
        accepted a connection."""
        if not is_primary:
            self.last_contact = now
            return None
        if view is not None:
            self.last_contact = now
            other = view.current_primary
            if other is not None and other != self.name and view.target_primary != self.name:
                return f"the status names {other} primary"
            return None
        if peer_reached or peers_known == 0:
            self.last_contact = now
            return None
        if self.last_contact is None:
            self.last_contact = now
        cut_off = now - self.last_contact
        if cut_off >= self.isolation_s:
            return (
                f"reached neither the API server nor any of {peers_known} other instances "
                f"for {cut_off:.1f} s"
            )
        return None

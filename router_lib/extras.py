"""The optional parts of router_lib and the error raised when one is not installed.

``pip install replicadb-router`` brings what routing needs (psycopg, psycopg-pool, pglast).
Each extra adds one feature: ``kube`` the ReplicatedDatabase watch, ``redis`` the shared
result cache, ``metrics`` the Prometheus export. Modules that need an extra import it at
their top inside ``try`` and raise :class:`MissingExtra` from the ImportError, so the
message says what to install instead of which module was not found.
"""

from __future__ import annotations


class MissingExtra(ImportError):
    """A feature was asked for whose extra of replicadb-router is not installed."""

    def __init__(self, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the {extra!r} extra of replicadb-router: "
            f"pip install 'replicadb-router[{extra}]'"
        )
        self.extra = extra

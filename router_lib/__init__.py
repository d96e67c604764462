"""router_lib: consistency-aware read/write routing for PostgreSQL replica topologies.

Writes go to the primary; reads go to replicas that are fresh enough for the consistency
level asked for. Use the module functions (``router_lib.query``, ``router_lib.transaction``)
for a process-wide router configured from ``REPLICADB_*`` variables, or build a
:class:`Router` / :class:`AsyncRouter` yourself. See the README section "router_lib".
"""

from router_lib.api import (
    close,
    configure,
    execute,
    get_router,
    query,
    query_one,
    session,
    transaction,
)
from router_lib.async_router import AsyncRouter
from router_lib.async_session import AsyncSession
from router_lib.balancing import Strategy
from router_lib.cache import CachedResult
from router_lib.classify import Classification, Classifier
from router_lib.config import CacheConfig, RouterConfig
from router_lib.conninfo import ConnectionSettings
from router_lib.consistency import (
    BOUNDED,
    EVENTUAL,
    READ_YOUR_WRITES,
    STRONG,
    Consistency,
    Level,
)
from router_lib.endpoints import Endpoint, Role, Topology, Via
from router_lib.errors import (
    ConfigurationError,
    NoEndpointAvailable,
    NoPrimaryAvailable,
    RouterError,
    SessionStateLost,
    SessionStateNotAllowed,
    StalePrimary,
    TransactionControlNotAllowed,
    WriteOutcomeUnknown,
)
from router_lib.router import Router
from router_lib.session import Session
from router_lib.sources import StaticSource, StatusSource, TopologySource
from router_lib.transaction import AsyncTransaction, Transaction

__all__ = [
    "BOUNDED",
    "EVENTUAL",
    "READ_YOUR_WRITES",
    "STRONG",
    "AsyncRouter",
    "AsyncSession",
    "AsyncTransaction",
    "CacheConfig",
    "CachedResult",
    "Classification",
    "Classifier",
    "ConfigurationError",
    "ConnectionSettings",
    "Consistency",
    "Endpoint",
    "Level",
    "NoEndpointAvailable",
    "NoPrimaryAvailable",
    "Role",
    "Router",
    "RouterConfig",
    "RouterError",
    "Session",
    "SessionStateLost",
    "SessionStateNotAllowed",
    "StalePrimary",
    "StaticSource",
    "StatusSource",
    "Strategy",
    "Topology",
    "TopologySource",
    "Transaction",
    "TransactionControlNotAllowed",
    "Via",
    "WriteOutcomeUnknown",
    "close",
    "configure",
    "execute",
    "get_router",
    "query",
    "query_one",
    "session",
    "transaction",
]

"""SQLAlchemy 2.0 on replicadb: writes and transactions on the primary, reads on replicas
fresh enough for the consistency level, read-your-writes per Session, failover followed.

Usage (README, "SQLAlchemy")::

    db = RoutedDatabase("postgresql+psycopg://app:secret@/app", RouterConfig(
        primary_dsn="host=db-0", replica_dsns=("host=db-1",), consistency=READ_YOUR_WRITES))
    Sessions = sessionmaker(class_=RoutingSession, replicadb=db)
    with Sessions() as session:
        session.add(Item(name="x")); session.commit()
        session.scalars(select(Item))                  # a replica that has the commit
        session.scalars(select(Item).execution_options(replicadb_consistency=EVENTUAL))

asyncio: ``RoutedDatabase(url, config, asyncio=True)`` and
``async_sessionmaker(sync_session_class=RoutingSession, replicadb=db)``.
"""

from router_lib.extras import MissingExtra

try:
    import sqlalchemy  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is installed where tests run
    raise MissingExtra("sqlalchemy", "the SQLAlchemy integration") from exc

from router_lib.contrib.sqlalchemy_routing.database import RoutedDatabase
from router_lib.contrib.sqlalchemy_routing.session import CONSISTENCY_OPTION, RoutingSession

__all__ = ["CONSISTENCY_OPTION", "RoutedDatabase", "RoutingSession"]

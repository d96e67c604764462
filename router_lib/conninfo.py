"""Credentials and TLS settings of the application, combined with addresses from elsewhere.

The ReplicatedDatabase status says where instances are, never who the application is: user,
password, database, sslmode and CA come from the application's own configuration and are
added to every address the router connects to. libpq's own quoting (psycopg's
``make_conninfo``) builds the strings; passwords never appear in endpoint names or logs.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg.conninfo import conninfo_to_dict, make_conninfo


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    user: str | None = None
    password: str | None = None
    dbname: str | None = None
    sslmode: str | None = None  # disable, allow, prefer, require, verify-ca, verify-full
    sslrootcert: str | None = None  # CA bundle path, for verify-ca / verify-full
    sslcert: str | None = None
    sslkey: str | None = None
    connect_timeout_s: int = 2  # libpq's minimum effective value is 2 s
    application_name: str | None = "router_lib"
    # A server that vanishes from the network (a primary cut off, a pod deleted with its
    # address) sends no reset: without these a request in flight hangs for TCP's minutes.
    # Data unacknowledged this long fails the connection; an idle wait is checked by
    # keepalives (idle, interval, count). Neither cuts short a long query on a live server.
    tcp_user_timeout_ms: int | None = 5000
    keepalives_idle_s: int | None = 5
    keepalives_interval_s: int = 1
    keepalives_count: int = 3

    def _values(self) -> dict[str, str | int]:
        values: dict[str, str | int | None] = {
            "user": self.user,
            "password": self.password,
            "dbname": self.dbname,
            "sslmode": self.sslmode,
            "sslrootcert": self.sslrootcert,
            "sslcert": self.sslcert,
            "sslkey": self.sslkey,
            "connect_timeout": self.connect_timeout_s,
            "application_name": self.application_name,
            "tcp_user_timeout": self.tcp_user_timeout_ms,
        }
        if self.keepalives_idle_s is not None:
            values |= {
                "keepalives": 1,
                "keepalives_idle": self.keepalives_idle_s,
                "keepalives_interval": self.keepalives_interval_s,
                "keepalives_count": self.keepalives_count,
            }
        return {key: value for key, value in values.items() if value is not None}

    def for_address(self, host: str, port: int) -> str:
        """A conninfo for an address taken from status (instance, Service or pooler)."""
        return make_conninfo("", host=host, port=port, **self._values())

    def complete(self, dsn: str) -> str:
        """A configured DSN, with the settings filling what it does not say itself."""
        given = conninfo_to_dict(dsn)
        missing = {key: value for key, value in self._values().items() if key not in given}
        return make_conninfo(dsn, **missing)


def describe_address(dsn: str) -> tuple[str, int]:
    """(host, port) of a DSN, for names and metrics; never the credentials."""
    values = conninfo_to_dict(dsn)
    host = str(values.get("host") or values.get("hostaddr") or "localhost")
    return host, int(values.get("port") or 5432)

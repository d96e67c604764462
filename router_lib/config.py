"""Router configuration, from code (:class:`RouterConfig`) or from ``REPLICADB_*`` variables.

Every setting has a default that works for a small service; the README lists the variables
and ``router_lib.env.example`` shows them in use. Invalid values fail at start-up with a
:class:`ConfigurationError` naming the variable, not later at the first query.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from router_lib.balancing import Strategy
from router_lib.conninfo import ConnectionSettings
from router_lib.consistency import READ_YOUR_WRITES, Consistency, parse_consistency
from router_lib.endpoints import Via
from router_lib.errors import ConfigurationError

PREFIX = "REPLICADB_"
CACHE_MODES = ("off", "memory", "redis", "memory+redis")
DEFAULT_PREPARE_THRESHOLD: int | None = 5  # psycopg's default


@dataclass(frozen=True, slots=True)
class CacheConfig:
    mode: str = "off"  # off | memory | redis | memory+redis
    ttl_s: float = 30.0
    max_entries: int = 10_000  # in-process layer
    redis_url: str | None = None
    prefix: str = "replicadb:cache:"
    # Cache every eligible read, not only calls that pass cache=True.
    by_default: bool = False

    def __post_init__(self) -> None:
        if self.mode not in CACHE_MODES:
            raise ConfigurationError(f"cache mode {self.mode!r} is not one of {CACHE_MODES}")
        if "redis" in self.mode and not self.redis_url:
            raise ConfigurationError("a redis cache needs redis_url (REPLICADB_REDIS_URL)")
        if self.ttl_s <= 0 or self.max_entries <= 0:
            raise ConfigurationError("cache ttl and max entries must be positive")

    @property
    def memory(self) -> bool:
        return self.mode in ("memory", "memory+redis")

    @property
    def redis(self) -> bool:
        return self.mode in ("redis", "memory+redis")


@dataclass(frozen=True, slots=True)
class RouterConfig:
    # Endpoints: static DSNs, or a ReplicatedDatabase to watch (kube_name set).
    primary_dsn: str | None = None
    replica_dsns: tuple[str, ...] = ()
    kube_name: str | None = None
    kube_namespace: str | None = None  # default: the pod's own namespace
    kubeconfig: str | None = None  # default: in-cluster, then ~/.kube/config
    write_via: Via = Via.INSTANCE
    connection: ConnectionSettings = field(default_factory=ConnectionSettings)
    # Pools (psycopg_pool), per endpoint.
    primary_pool_min: int = 1
    primary_pool_max: int = 10
    replica_pool_min: int = 1
    replica_pool_max: int = 10
    pool_timeout_s: float = 5.0
    prepare_threshold: int | None = 5  # None through PgBouncer in transaction mode
    statement_timeout_ms: int | None = None
    # Routing.
    consistency: Consistency = READ_YOUR_WRITES
    ryw_wait_s: float = 0.1
    ryw_poll_s: float = 0.002  # longest pause between replay checks (they start at 0.1 ms)
    balancing: Strategy = Strategy.LEAST_OUTSTANDING
    zone: str | None = None
    # The primary's share of the reads replicas could serve, as a weight against 1.0 per
    # eligible replica (0: replicas only). With a write-light load the primary has CPU to
    # spare; 1.0 spreads reads evenly over every instance.
    primary_read_weight: float = 0.0
    write_functions: frozenset[str] = frozenset()
    lag_probe_interval_s: float = 0.5  # 0: no probe (status figures only)
    eject_base_s: float = 1.0
    eject_max_s: float = 30.0
    read_attempts: int = 3
    failover_wait_s: float = 2.0
    classification_cache_size: int = 10_000
    cache: CacheConfig = field(default_factory=CacheConfig)

    def __post_init__(self) -> None:
        if self.kube_name is not None and (self.primary_dsn or self.replica_dsns):
            raise ConfigurationError("use either static DSNs or kube_name, not both")
        for name in ("primary_pool_max", "replica_pool_max", "read_attempts"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1")
        for name in ("primary_pool_min", "replica_pool_min"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} cannot be negative")
        if self.primary_pool_min > self.primary_pool_max:
            raise ConfigurationError("primary_pool_min is larger than primary_pool_max")
        if self.replica_pool_min > self.replica_pool_max:
            raise ConfigurationError("replica_pool_min is larger than replica_pool_max")
        for name in ("pool_timeout_s", "ryw_poll_s", "eject_base_s"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive")
        for name in (
            "ryw_wait_s",
            "lag_probe_interval_s",
            "failover_wait_s",
            "primary_read_weight",
        ):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} cannot be negative")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RouterConfig:
        return _from_env(os.environ if environ is None else environ)


T = TypeVar("T")


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def text(self, name: str) -> str | None:
        value = self.environ.get(PREFIX + name, "").strip()
        return value or None

    def parsed(self, name: str, parse: Callable[[str], T], default: T) -> T:
        value = self.text(name)
        if value is None:
            return default
        try:
            return parse(value)
        except (ValueError, ConfigurationError) as exc:
            raise ConfigurationError(f"{PREFIX}{name}={value!r}: {exc}") from None

    def number(self, name: str, default: float) -> float:
        return self.parsed(name, float, default)

    def integer(self, name: str, default: int) -> int:
        return self.parsed(name, int, default)

    def flag(self, name: str, default: bool) -> bool:
        return self.parsed(name, _boolean, default)

    def items(self, name: str) -> tuple[str, ...]:
        value = self.text(name)
        return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "off", "disabled") else int(text)


def _password(env: _Env) -> str | None:
    path = env.text("PASSWORD_FILE")
    if path is not None:
        # A mounted Secret: the password never sits in the process environment.
        try:
            return Path(path).read_text().rstrip("\n")
        except OSError as exc:
            raise ConfigurationError(f"{PREFIX}PASSWORD_FILE: {exc}") from None
    return env.text("PASSWORD")


def _from_env(environ: Mapping[str, str]) -> RouterConfig:
    env = _Env(environ)
    connection = ConnectionSettings(
        user=env.text("USER"),
        password=_password(env),
        dbname=env.text("DBNAME"),
        sslmode=env.text("SSLMODE"),
        sslrootcert=env.text("SSLROOTCERT"),
        sslcert=env.text("SSLCERT"),
        sslkey=env.text("SSLKEY"),
        connect_timeout_s=env.integer("CONNECT_TIMEOUT", 2),
        application_name=env.text("APPLICATION_NAME") or "router_lib",
        tcp_user_timeout_ms=env.integer("TCP_USER_TIMEOUT_MS", 5000) or None,
        keepalives_idle_s=env.integer("KEEPALIVES_IDLE", 5) or None,
    )
    cache = CacheConfig(
        mode=env.text("CACHE") or "off",
        ttl_s=env.number("CACHE_TTL", 30.0),
        max_entries=env.integer("CACHE_MAX_ENTRIES", 10_000),
        redis_url=env.text("REDIS_URL"),
        prefix=env.text("CACHE_PREFIX") or "replicadb:cache:",
        by_default=env.flag("CACHE_BY_DEFAULT", False),
    )
    max_lag_seconds = env.parsed("MAX_LAG_SECONDS", float, None)
    max_lag_bytes = env.parsed("MAX_LAG_BYTES", int, None)
    consistency = env.parsed(
        "CONSISTENCY",
        lambda text: parse_consistency(text, max_lag_seconds, max_lag_bytes),
        READ_YOUR_WRITES,
    )
    namespace = env.text("NAMESPACE") or _pod_namespace()
    return RouterConfig(
        primary_dsn=env.text("PRIMARY_DSN"),
        replica_dsns=env.items("REPLICA_DSNS"),
        kube_name=env.text("NAME"),
        kube_namespace=namespace,
        kubeconfig=env.text("KUBECONFIG"),
        write_via=env.parsed("WRITE_VIA", Via, Via.INSTANCE),
        connection=connection,
        primary_pool_min=env.integer("PRIMARY_POOL_MIN", 1),
        primary_pool_max=env.integer("PRIMARY_POOL_MAX", 10),
        replica_pool_min=env.integer("REPLICA_POOL_MIN", 1),
        replica_pool_max=env.integer("REPLICA_POOL_MAX", 10),
        pool_timeout_s=env.number("POOL_TIMEOUT", 5.0),
        prepare_threshold=env.parsed("PREPARE_THRESHOLD", _optional_int, DEFAULT_PREPARE_THRESHOLD),
        statement_timeout_ms=env.parsed("STATEMENT_TIMEOUT_MS", _optional_int, None),
        consistency=consistency,
        ryw_wait_s=env.integer("RYW_WAIT_MS", 100) / 1000,
        balancing=env.parsed("BALANCING", Strategy, Strategy.LEAST_OUTSTANDING),
        zone=env.text("ZONE"),
        primary_read_weight=env.number("PRIMARY_READ_WEIGHT", 0.0),
        write_functions=frozenset(env.items("WRITE_FUNCTIONS")),
        lag_probe_interval_s=env.number("LAG_PROBE_INTERVAL", 0.5),
        eject_base_s=env.number("EJECT_BASE", 1.0),
        eject_max_s=env.number("EJECT_MAX", 30.0),
        read_attempts=env.integer("READ_ATTEMPTS", 3),
        failover_wait_s=env.number("FAILOVER_WAIT", 2.0),
        classification_cache_size=env.integer("CLASSIFICATION_CACHE_SIZE", 10_000),
        cache=cache,
    )


_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _pod_namespace() -> str | None:
    try:
        return _NAMESPACE_FILE.read_text().strip() or None
    except OSError:
        return None

"""Typed view of a ReplicatedDatabase spec, with every default applied.

The CRD schema (crd.py) refuses what it can at admission; this module turns what was
admitted into frozen dataclasses that the builders take, so that no builder reads raw dicts
and no default lives in two places: the schema's defaults are these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from replicadb_operator.dataplane.failover import (
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_PROBE_INTERVAL_S,
)
from replicadb_operator.dataplane.sync_standbys import Durability, SyncMode, SyncSettings

T = TypeVar("T")
DEFAULT_IMAGE = "localhost/replicadb/instance:dev"
DEFAULT_POOLER_IMAGE = ""  # empty: the PostgreSQL image, which carries PgBouncer too
DEFAULT_MAX_LAG_BYTES = 16 * 1024 * 1024


class SpecError(ValueError):
    """What the schema cannot express; reported in status conditions and Events."""


@dataclass(frozen=True)
class Storage:
    size: str = "1Gi"
    storage_class: str | None = None


@dataclass(frozen=True)
class PostgresSpec:
    image: str = DEFAULT_IMAGE
    version: str = "15"
    parameters: Mapping[str, str] = field(default_factory=dict)
    resources: Mapping[str, Any] = field(default_factory=dict)
    storage: Storage = field(default_factory=Storage)


@dataclass(frozen=True)
class FailoverSpec:
    enabled: bool = True
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    max_lag_bytes: int = DEFAULT_MAX_LAG_BYTES


@dataclass(frozen=True)
class PoolerSpec:
    enabled: bool = True
    instances: int = 1
    pool_mode: str = "transaction"
    max_client_connections: int = 1000
    default_pool_size: int = 20
    image: str = DEFAULT_POOLER_IMAGE
    metrics: bool = True  # a PgBouncer exporter beside each PgBouncer, on port 9127


@dataclass(frozen=True)
class MonitoringSpec:
    probe_interval_s: float = DEFAULT_PROBE_INTERVAL_S


@dataclass(frozen=True)
class Credentials:
    superuser_secret: str | None = None
    replication_secret: str | None = None
    app_secret: str | None = None
    app_user: str = "app"
    app_database: str = "app"


@dataclass(frozen=True)
class Placement:
    zone_spread: bool = True
    zone_topology_key: str = "topology.kubernetes.io/zone"
    max_skew: int = 1
    when_unsatisfiable: str = "ScheduleAnyway"
    anti_affinity: str = "preferred"  # none | preferred | required
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class TlsSpec:
    enabled: bool = False
    secret_name: str | None = None  # a kubernetes.io/tls Secret; else the operator's CA
    required: bool = False


class PrimaryUpdateMethod(StrEnum):
    """How the primary takes a new pod template once every replica runs it."""

    SWITCHOVER = "switchover"  # to an updated replica, then the former primary is updated
    RESTART = "restart"  # in place: writes stop while it restarts


class PrimaryUpdateStrategy(StrEnum):
    UNSUPERVISED = "unsupervised"  # the operator updates the primary on its own
    SUPERVISED = "supervised"  # it waits for `kubectl replicadb switchover` / `promote`


@dataclass(frozen=True)
class UpdatesSpec:
    primary_update_method: PrimaryUpdateMethod = PrimaryUpdateMethod.SWITCHOVER
    primary_update_strategy: PrimaryUpdateStrategy = PrimaryUpdateStrategy.UNSUPERVISED


@dataclass(frozen=True)
class ReadOnlySpec:
    """How far behind a replica may be and still serve the read-only Service; None: no bound."""

    max_lag_bytes: int | None = None
    max_lag_seconds: float | None = None


@dataclass(frozen=True)
class DatabaseSpec:
    name: str
    namespace: str
    replicas: int = 2
    postgres: PostgresSpec = field(default_factory=PostgresSpec)
    replication: SyncSettings = field(default_factory=SyncSettings)
    failover: FailoverSpec = field(default_factory=FailoverSpec)
    pooler: PoolerSpec = field(default_factory=PoolerSpec)
    monitoring: MonitoringSpec = field(default_factory=MonitoringSpec)
    credentials: Credentials = field(default_factory=Credentials)
    placement: Placement = field(default_factory=Placement)
    tls: TlsSpec = field(default_factory=TlsSpec)
    updates: UpdatesSpec = field(default_factory=UpdatesSpec)
    read_only: ReadOnlySpec = field(default_factory=ReadOnlySpec)
    uid: str = ""

    @property
    def instance_names(self) -> list[str]:
        from replicadb_operator.builders import names

        return [names.primary_pod(self)] + [
            names.replica_pod(self, i) for i in range(self.replicas)
        ]


def _section(spec: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = spec.get(key) or {}
    if not isinstance(value, Mapping):
        raise SpecError(f"spec.{key} must be an object")
    return value


def parse_spec(name: str, namespace: str, spec: Mapping[str, Any], uid: str = "") -> DatabaseSpec:
    """Raw spec -> DatabaseSpec. Raises SpecError naming the field for what the schema let
    through but cannot work (it never raises anything else)."""
    try:
        return _parse(name, namespace, spec, uid)
    except SpecError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise SpecError(f"spec could not be read: {exc}") from exc


def _parse(name: str, namespace: str, spec: Mapping[str, Any], uid: str) -> DatabaseSpec:
    pg = _section(spec, "postgres")
    storage = _section(pg, "storage")
    repl = _section(spec, "replication")
    fo = _section(spec, "failover")
    pb = _section(spec, "pgbouncer")
    mon = _section(spec, "monitoring")
    cred = _section(spec, "credentials")
    place = _section(spec, "placement")
    tls = _section(spec, "tls")
    updates = _section(spec, "updates")
    read_only = _section(spec, "readOnly")
    replicas = int(spec.get("replicas", 2))
    sync = SyncSettings(
        mode=SyncMode(repl.get("synchronousMode", SyncMode.OFF.value)),
        num_sync=int(repl.get("synchronousStandbys", 1)),
        durability=Durability(repl.get("dataDurability", "required")),
    )
    if sync.mode is not SyncMode.OFF and sync.num_sync > replicas:
        raise SpecError(
            f"spec.replication.synchronousStandbys ({sync.num_sync}) exceeds spec.replicas "
            f"({replicas})"
        )
    if len(name) > 40:
        raise SpecError("metadata.name must be at most 40 characters (pod names derive from it)")
    return DatabaseSpec(
        name=name,
        namespace=namespace,
        uid=uid,
        replicas=replicas,
        postgres=PostgresSpec(
            image=str(pg.get("image") or DEFAULT_IMAGE),
            version=str(pg.get("version", "15")),
            parameters={str(k): str(v) for k, v in (pg.get("parameters") or {}).items()},
            resources=dict(pg.get("resources") or {}),
            storage=Storage(
                size=str(storage.get("size", "1Gi")),
                storage_class=storage.get("storageClassName") or None,
            ),
        ),
        replication=sync,
        failover=FailoverSpec(
            enabled=bool(fo.get("enabled", True)),
            failure_threshold=int(fo.get("failureThreshold", DEFAULT_FAILURE_THRESHOLD)),
            max_lag_bytes=int(fo.get("maxLagBytes", DEFAULT_MAX_LAG_BYTES)),
        ),
        pooler=PoolerSpec(
            enabled=bool(pb.get("enabled", True)),
            instances=int(pb.get("instances", 1)),
            pool_mode=str(pb.get("poolMode", "transaction")),
            max_client_connections=int(pb.get("maxClientConnections", 1000)),
            default_pool_size=int(pb.get("defaultPoolSize", 20)),
            image=str(pb.get("image") or DEFAULT_POOLER_IMAGE),
            metrics=bool(pb.get("metrics", True)),
        ),
        monitoring=MonitoringSpec(
            probe_interval_s=float(mon.get("probeIntervalSeconds", DEFAULT_PROBE_INTERVAL_S))
        ),
        credentials=Credentials(
            superuser_secret=cred.get("superuserSecret") or None,
            replication_secret=cred.get("replicationSecret") or None,
            app_secret=cred.get("appSecret") or None,
            app_user=str(cred.get("appUser", "app")),
            app_database=str(cred.get("appDatabase", "app")),
        ),
        placement=Placement(
            zone_spread=bool(place.get("zoneSpread", True)),
            zone_topology_key=str(place.get("zoneTopologyKey", "topology.kubernetes.io/zone")),
            max_skew=int(place.get("maxSkew", 1)),
            when_unsatisfiable=str(place.get("whenUnsatisfiable", "ScheduleAnyway")),
            anti_affinity=str(place.get("podAntiAffinity", "preferred")),
            node_selector={str(k): str(v) for k, v in (place.get("nodeSelector") or {}).items()},
            tolerations=tuple(place.get("tolerations") or ()),
        ),
        tls=TlsSpec(
            enabled=bool(tls.get("enabled", False)),
            secret_name=tls.get("secretName") or None,
            required=bool(tls.get("required", False)),
        ),
        updates=UpdatesSpec(
            primary_update_method=PrimaryUpdateMethod(
                updates.get("primaryUpdateMethod", PrimaryUpdateMethod.SWITCHOVER.value)
            ),
            primary_update_strategy=PrimaryUpdateStrategy(
                updates.get("primaryUpdateStrategy", PrimaryUpdateStrategy.UNSUPERVISED.value)
            ),
        ),
        read_only=ReadOnlySpec(
            max_lag_bytes=_optional(read_only.get("maxLagBytes"), int),
            max_lag_seconds=_optional(read_only.get("maxLagSeconds"), float),
        ),
    )


def _optional(value: Any, kind: Callable[[Any], T]) -> T | None:
    return None if value is None else kind(value)

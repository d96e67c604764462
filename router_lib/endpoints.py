"""Where the primary and the replicas are: from a static configuration or from the
``ReplicatedDatabase`` status the operator writes.

The status is the single record of who the primary is (``status.primary``); an instance entry
that says ``role: primary`` under another name is not believed. Lag figures in the status are
kept as a hint for when the router's own probe has no data yet (they are written at a bounded
rate, so they are older than what the probe measures).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from replicadb_operator.dataplane.lsn import parse_lsn

from router_lib.conninfo import ConnectionSettings, describe_address

log = logging.getLogger(__name__)


class Role(enum.Enum):
    PRIMARY = "primary"
    REPLICA = "replica"


class Via(enum.Enum):
    """How the primary is reached: its instance address, the read-write Service, or the
    PgBouncer pooler (which cannot carry prepared statements in transaction mode)."""

    INSTANCE = "instance"
    SERVICE = "service"
    POOLER = "pooler"


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    role: Role
    conninfo: str
    host: str
    port: int
    zone: str | None = None
    ready: bool = True
    via: Via = Via.INSTANCE
    status_replay_lsn: int | None = None
    status_lag_bytes: int | None = None
    status_lag_seconds: float | None = None

    @property
    def identity(self) -> tuple[str, Role, str]:
        """What must stay equal for pools and replay knowledge to be kept across a refresh."""
        return (self.name, self.role, self.conninfo)

    @property
    def label(self) -> str:
        """For metrics and messages: the instance name, never credentials."""
        return self.name


@dataclass(frozen=True, slots=True)
class Topology:
    primary: Endpoint | None
    replicas: tuple[Endpoint, ...]
    timeline: int | None = None


def static_topology(
    primary_dsn: str | None, replica_dsns: Sequence[str], settings: ConnectionSettings
) -> Topology:
    def endpoint(name: str, role: Role, dsn: str) -> Endpoint:
        host, port = describe_address(dsn)
        return Endpoint(name, role, settings.complete(dsn), host, port)

    primary = endpoint("primary", Role.PRIMARY, primary_dsn) if primary_dsn else None
    replicas = tuple(
        endpoint(f"replica-{index}", Role.REPLICA, dsn)
        for index, dsn in enumerate(replica_dsns, start=1)
    )
    return Topology(primary, replicas)


def _optional_lsn(value: object) -> int | None:
    try:
        return parse_lsn(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _optional_number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _address(entry: Mapping[str, Any]) -> tuple[str, int] | None:
    host = entry.get("address") or entry.get("host")
    if not isinstance(host, str) or not host:
        return None
    try:
        return host, int(entry.get("port", 5432))
    except (TypeError, ValueError):
        return host, 5432


def _instance_endpoint(
    entry: Mapping[str, Any], role: Role, settings: ConnectionSettings
) -> Endpoint | None:
    address = _address(entry)
    name = entry.get("name")
    if address is None or not isinstance(name, str):
        return None
    host, port = address
    lag_bytes = _optional_number(entry.get("lagBytes"))
    zone = entry.get("zone")
    return Endpoint(
        name=name,
        role=role,
        conninfo=settings.for_address(host, port),
        host=host,
        port=port,
        zone=zone if isinstance(zone, str) and zone else None,
        ready=entry.get("ready") is not False,
        status_replay_lsn=_optional_lsn(entry.get("replayedLsn")),
        status_lag_bytes=None if lag_bytes is None else int(lag_bytes),
        status_lag_seconds=_optional_number(entry.get("lagSeconds")),
    )


def _primary_via(
    instance: Endpoint | None,
    endpoints: Mapping[str, Any],
    via: Via,
    settings: ConnectionSettings,
) -> Endpoint | None:
    if via is Via.INSTANCE or instance is None:
        return instance
    key = "readWrite" if via is Via.SERVICE else "poolerReadWrite"
    entry = endpoints.get(key)
    address = _address(entry) if isinstance(entry, Mapping) else None
    if address is None:
        log.warning("status has no endpoints.%s; writing to the primary instance", key)
        return instance
    host, port = address
    return Endpoint(
        name=f"{instance.name}-{via.value}",
        role=Role.PRIMARY,
        conninfo=settings.for_address(host, port),
        host=host,
        port=port,
        zone=instance.zone,
        ready=instance.ready,
        via=via,
    )


def topology_from_status(
    status: Mapping[str, Any], settings: ConnectionSettings, via: Via = Via.INSTANCE
) -> Topology:
    """The router's view of a ReplicatedDatabase status (shape in the README)."""
    primary_name = status.get("primary")
    instances = status.get("instances") or []
    primary_instance: Endpoint | None = None
    replicas: list[Endpoint] = []
    for entry in instances:
        if not isinstance(entry, Mapping):
            continue
        if entry.get("name") == primary_name:
            primary_instance = _instance_endpoint(entry, Role.PRIMARY, settings)
        elif entry.get("role") == Role.REPLICA.value:
            replica = _instance_endpoint(entry, Role.REPLICA, settings)
            if replica is not None:
                replicas.append(replica)
    endpoints = status.get("endpoints")
    primary = _primary_via(
        primary_instance, endpoints if isinstance(endpoints, Mapping) else {}, via, settings
    )
    timeline = status.get("timeline")
    return Topology(primary, tuple(replicas), timeline if isinstance(timeline, int) else None)

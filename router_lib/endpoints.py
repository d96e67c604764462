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
from typing import Any, Literal, cast

from router_lib.conninfo import ConnectionSettings, describe_address
from router_lib.status_contract import (
    DEFAULT_PORT,
    ROLE_PRIMARY,
    ROLE_REPLICA,
    InstanceEntry,
    RoutingStatus,
    StatusEndpoints,
    parse_lsn,
    read_instance_entry,
    read_service_address,
)

log = logging.getLogger(__name__)


class Role(enum.Enum):
    PRIMARY = ROLE_PRIMARY
    REPLICA = ROLE_REPLICA


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


def _optional_lsn(text: str | None) -> int | None:
    try:
        return None if text is None else parse_lsn(text)
    except ValueError:
        return None


def _instance_endpoint(
    entry: InstanceEntry, role: Role, settings: ConnectionSettings
) -> Endpoint | None:
    host = entry.get("address")
    if not host:
        return None  # no pod IP yet
    port = entry.get("port", DEFAULT_PORT)
    return Endpoint(
        name=entry["name"],
        role=role,
        conninfo=settings.for_address(host, port),
        host=host,
        port=port,
        zone=entry.get("zone") or None,
        ready=entry.get("ready", True),
        status_replay_lsn=_optional_lsn(entry.get("replayedLsn")),
        status_lag_bytes=entry.get("lagBytes"),
        status_lag_seconds=entry.get("lagSeconds"),
    )


def _primary_via(
    instance: Endpoint | None,
    endpoints: StatusEndpoints,
    via: Via,
    settings: ConnectionSettings,
) -> Endpoint | None:
    if via is Via.INSTANCE or instance is None:
        return instance
    key: Literal["readWrite", "poolerReadWrite"] = (
        "readWrite" if via is Via.SERVICE else "poolerReadWrite"
    )
    address = read_service_address(endpoints.get(key))
    if address is None:
        log.warning("status has no endpoints.%s; writing to the primary instance", key)
        return instance
    return Endpoint(
        name=f"{instance.name}-{via.value}",
        role=Role.PRIMARY,
        conninfo=settings.for_address(address["host"], address["port"]),
        host=address["host"],
        port=address["port"],
        zone=instance.zone,
        ready=instance.ready,
        via=via,
    )


def topology_from_status(
    status: Mapping[str, Any], settings: ConnectionSettings, via: Via = Via.INSTANCE
) -> Topology:
    """The router's view of a ReplicatedDatabase status (:mod:`router_lib.status_contract`)."""
    # Typed for its keys only: every value is checked as it is read (the object comes from
    # the API server and may have been edited by hand).
    fields = cast(RoutingStatus, status)
    primary_name = fields.get("primary")
    primary_instance: Endpoint | None = None
    replicas: list[Endpoint] = []
    for raw in fields.get("instances") or []:
        entry = read_instance_entry(raw)
        if entry is None:
            continue
        if entry["name"] == primary_name:
            primary_instance = _instance_endpoint(entry, Role.PRIMARY, settings)
        elif entry.get("role") == ROLE_REPLICA:
            replica = _instance_endpoint(entry, Role.REPLICA, settings)
            if replica is not None:
                replicas.append(replica)
    endpoints = fields.get("endpoints")
    primary = _primary_via(
        primary_instance,
        endpoints if isinstance(endpoints, Mapping) else StatusEndpoints(),
        via,
        settings,
    )
    timeline = fields.get("timeline")
    timeline_known = isinstance(timeline, int) and not isinstance(timeline, bool)
    return Topology(primary, tuple(replicas), timeline if timeline_known else None)

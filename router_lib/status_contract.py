"""The ReplicatedDatabase status fields the operator writes and router_lib reads.

The status is the contract between the two sides: the operator's status model builds these
entries, router_lib's endpoint parsing reads them back. Both import this module (the
operator's distribution depends on ``replicadb-router``; router_lib imports nothing of the
operator), so a field is spelled in one place and mypy checks every key either side uses.

Only what the router relies on is here: the primary's name, the timeline, the instance
entries and the Service endpoints. The rest of the status (phase, conditions, the failover
record) belongs to the operator alone.

LSNs are written as PostgreSQL prints them (``16/B374D848``) so that ``kubectl`` shows what
``pg_current_wal_lsn()`` would; both sides compute on the 64-bit integer they stand for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NotRequired, TypedDict, cast, get_type_hints

Lsn = int

ROLE_PRIMARY: Final = "primary"
ROLE_REPLICA: Final = "replica"
ROLE_UNKNOWN: Final = "unknown"  # not reachable: the role cannot be asked
DEFAULT_PORT: Final = 5432


def parse_lsn(text: str) -> Lsn:
    """``'16/B374D848'`` -> ``0x16B374D848``. Raises ValueError on anything else."""
    high, sep, low = text.strip().partition("/")
    try:
        if sep and high and low:
            return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        pass
    raise ValueError(f"not an LSN: {text!r}")


def format_lsn(lsn: Lsn) -> str:
    """The inverse of :func:`parse_lsn`, in PostgreSQL's own spelling."""
    if lsn < 0:
        raise ValueError(f"LSN cannot be negative: {lsn}")
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


class InstanceEntry(TypedDict):
    """One PostgreSQL instance in ``status.instances``. Absent fields are unknown (the
    operator leaves them out rather than writing null)."""

    name: str
    role: NotRequired[str]  # ROLE_PRIMARY, ROLE_REPLICA or ROLE_UNKNOWN, as last probed
    address: NotRequired[str]  # the pod IP
    port: NotRequired[int]
    ready: NotRequired[bool]  # pod ready and instance reachable; absent is read as ready
    state: NotRequired[str]  # streaming, replay-paused, down, ... (for people)
    zone: NotRequired[str]
    node: NotRequired[str]
    timeline: NotRequired[int]
    currentLsn: NotRequired[str]  # the primary's write position (last known, while down)
    receivedLsn: NotRequired[str]  # WAL a replica holds
    replayedLsn: NotRequired[str]  # WAL a replica has applied: what its reads see
    lagBytes: NotRequired[int]
    lagSeconds: NotRequired[float]
    syncState: NotRequired[str]  # pg_stat_replication.sync_state, for standbys


class ServiceAddress(TypedDict):
    host: str
    port: int


class StatusEndpoints(TypedDict, total=False):
    """``status.endpoints``: the Services in front of the instances (DNS names)."""

    readWrite: ServiceAddress
    readOnly: ServiceAddress
    poolerReadWrite: ServiceAddress  # only with the PgBouncer pooler enabled
    poolerReadOnly: ServiceAddress


class RoutingStatus(TypedDict, total=False):
    """The top-level status fields the router reads."""

    primary: str | None  # the single record of who the primary is
    timeline: int
    instances: list[InstanceEntry]
    endpoints: StatusEndpoints


_INSTANCE_FIELD_TYPES: Final = get_type_hints(InstanceEntry)
INSTANCE_FIELDS: Final = frozenset(_INSTANCE_FIELD_TYPES)


def _has_type(value: object, kind: type) -> bool:
    if isinstance(value, bool):  # JSON true is no number
        return kind is bool
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


def read_instance_entry(raw: object) -> InstanceEntry | None:
    """An instance entry as read from the API server: fields of the wrong type are dropped
    (a status edited by hand, or written by another version), an entry without a name is
    no entry (None)."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        return None
    kept: dict[str, Any] = {
        key: value
        for key, value in raw.items()
        if key in _INSTANCE_FIELD_TYPES and _has_type(value, _INSTANCE_FIELD_TYPES[key])
    }
    return cast(InstanceEntry, kept)  # checked field by field above


def read_service_address(raw: object) -> ServiceAddress | None:
    """One of ``status.endpoints``; None when it has no usable host."""
    if not isinstance(raw, Mapping):
        return None
    host, port = raw.get("host"), raw.get("port", DEFAULT_PORT)
    if not isinstance(host, str) or not host:
        return None
    return ServiceAddress(host=host, port=port if _has_type(port, int) else DEFAULT_PORT)

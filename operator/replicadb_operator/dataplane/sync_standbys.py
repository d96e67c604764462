"""``synchronous_standby_names`` kept in step with the replicas that are healthy.

Two durability policies, as CloudNativePG users know them:

- required: every replica stays listed, healthy or not. With fewer healthy standbys than the
  number asked for, commits wait rather than being acknowledged with fewer copies.
- preferred: only healthy replicas are listed and the number is lowered to what is there;
  with none healthy the primary goes asynchronous and keeps accepting writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from replicadb_operator.dataplane.failover_target import SyncMethod, SyncRequirement
from replicadb_operator.dataplane.probe import ReplicationPeer


class SyncMode(StrEnum):
    # Spelled so that YAML cannot read them as booleans (YAML 1.1 reads on/off as true/false).
    OFF = "async"  # no synchronous standbys
    ON = "priority"  # FIRST n: the first n connected standbys in priority order
    QUORUM = "quorum"  # ANY n: any n of the members


class Durability(StrEnum):
    REQUIRED = "required"
    PREFERRED = "preferred"


@dataclass(frozen=True)
class SyncSettings:
    mode: SyncMode = SyncMode.OFF
    num_sync: int = 1
    durability: Durability = Durability.REQUIRED


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sync_requirement(
    settings: SyncSettings, replicas: Iterable[str], healthy: Iterable[str]
) -> SyncRequirement | None:
    """Which standbys must confirm each commit, and how many; None for asynchronous."""
    if settings.mode is SyncMode.OFF:
        return None
    members = set(replicas) if settings.durability is Durability.REQUIRED else set(healthy)
    if not members:
        return None
    num = settings.num_sync
    if settings.durability is Durability.PREFERRED:
        num = min(num, len(members))
    method = SyncMethod.ANY if settings.mode is SyncMode.QUORUM else SyncMethod.FIRST
    return SyncRequirement(method=method, num_sync=num, members=frozenset(members))


def format_standby_names(requirement: SyncRequirement | None) -> str:
    if requirement is None:
        return ""
    names = ", ".join(_quote(m) for m in sorted(requirement.members))
    return f"{requirement.method.value} {requirement.num_sync} ({names})"


def synchronous_standby_names(
    settings: SyncSettings, replicas: Iterable[str], healthy: Iterable[str]
) -> str:
    """The value for the primary's ``synchronous_standby_names``.

    >>> synchronous_standby_names(SyncSettings(SyncMode.QUORUM, 1), ["b", "a"], ["a"])
    'ANY 1 ("a", "b")'
    """
    return format_standby_names(sync_requirement(settings, replicas, healthy))


def required_sync_standbys(settings: SyncSettings) -> int:
    """How many standbys the spec asks to confirm each commit (0 for asynchronous). Under
    ``preferred`` durability the primary may run with fewer; this is what was asked for."""
    return 0 if settings.mode is SyncMode.OFF else settings.num_sync


def confirming_standbys(peers: Iterable[ReplicationPeer]) -> int:
    """Standbys the primary counts towards a commit now: streaming and listed as ``sync``
    (FIRST n) or ``quorum`` (ANY n) in ``pg_stat_replication``. A ``potential`` standby
    confirms nothing until one of those drops out."""
    return sum(1 for p in peers if p.state == "streaming" and p.sync_state in ("sync", "quorum"))

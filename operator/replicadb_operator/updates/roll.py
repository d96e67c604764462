"""Which pod a roll replaces next, and when it switches over. Pure.

The StatefulSets update no pod themselves (``OnDelete``); each monitor round asks
:func:`next_action` what to do, given every instance's revision and health:

1. Replicas first, one at a time: the next one is replaced only once every replica is back,
   streaming and caught up (see ``lag_bound.caught_up``). An outdated replica that has been
   unhealthy for ``UNHEALTHY_GRACE_S`` is replaced at once: it serves nothing, and its new
   template may be what mends it.
2. Then the primary: a switchover to the updated replica that lags least
   (``primaryUpdateMethod: switchover``), after which the former primary is an outdated
   replica like any other; or a restart in place (``restart``, or no replica to switch to).
   ``primaryUpdateStrategy: supervised`` waits instead, until the user switches over.

Nothing here needs memory across rounds beyond what pods and status say: a new operator
picks the roll up where the pods are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from replicadb_operator.spec import PrimaryUpdateMethod, PrimaryUpdateStrategy, UpdatesSpec

UNHEALTHY_GRACE_S = 20.0


class State(StrEnum):
    """``status.rollingUpdate.state``, and the reason of the ``Updating`` condition."""

    UP_TO_DATE = "UpToDate"
    ROLLING_REPLICAS = "RollingReplicas"
    SWITCHING_OVER = "SwitchingOver"
    WAITING_FOR_SWITCHOVER = "WaitingForSwitchover"  # supervised: the user's turn
    RESTARTING_PRIMARY = "RestartingPrimary"
    WAITING = "Waiting"  # for the primary or the StatefulSets, not for a step of the roll


class Verb(StrEnum):
    NOTHING = "nothing"
    RESTART_REPLICA = "restart-replica"
    SWITCH_OVER = "switch-over"
    RESTART_PRIMARY = "restart-primary"


@dataclass(frozen=True)
class Member:
    """One instance as this round sees it. ``healthy``: for the primary, Ready and answering
    as the primary; for a replica, Ready, streaming and caught up."""

    name: str
    revision: str | None
    is_primary: bool
    healthy: bool
    deleting: bool = False
    unhealthy_s: float = 0.0
    lag_bytes: int | None = None


@dataclass(frozen=True)
class Action:
    verb: Verb
    state: State
    why: str
    pod: str | None = None  # the pod to replace, or the switchover's target


def outdated(revision: str, members: Sequence[Member]) -> list[str]:
    return sorted(m.name for m in members if m.revision != revision)


def next_action(
    revision: str, members: Sequence[Member], expected_instances: int, updates: UpdatesSpec
) -> Action:
    old = [m for m in members if m.revision != revision]
    if not old:
        return Action(Verb.NOTHING, State.UP_TO_DATE, f"every instance runs revision {revision}")
    replicas = sorted((m for m in members if not m.is_primary), key=lambda m: m.name)
    primary = next((m for m in members if m.is_primary), None)
    if (deleting := [m.name for m in members if m.deleting]) or len(members) < expected_instances:
        return Action(Verb.NOTHING, State.ROLLING_REPLICAS,
                      f"waiting for {', '.join(deleting) or 'a pod'} to be replaced")  # fmt: skip
    for m in replicas:
        if m.revision != revision and not m.healthy and m.unhealthy_s >= UNHEALTHY_GRACE_S:
            return Action(Verb.RESTART_REPLICA, State.ROLLING_REPLICAS,
                          f"{m.name} is outdated and unhealthy", m.name)  # fmt: skip
    if primary is None or not primary.healthy:
        return Action(Verb.NOTHING, State.WAITING, "waiting for the primary to be ready")
    if behind := [m.name for m in replicas if not m.healthy]:
        return Action(Verb.NOTHING, State.ROLLING_REPLICAS,
                      f"waiting for {', '.join(behind)} to stream and catch up")  # fmt: skip
    if old_replica := next((m for m in replicas if m.revision != revision), None):
        return Action(Verb.RESTART_REPLICA, State.ROLLING_REPLICAS,
                      f"{old_replica.name} runs an old revision", old_replica.name)  # fmt: skip
    return _primary_action(primary, replicas, updates)


def _primary_action(primary: Member, replicas: Sequence[Member], updates: UpdatesSpec) -> Action:
    """Every replica is updated and caught up; the primary is not."""
    ranked = sorted(replicas, key=lambda m: (m.lag_bytes or 0, m.name))
    if updates.primary_update_strategy is PrimaryUpdateStrategy.SUPERVISED:
        choices = ", ".join(m.name for m in ranked) or "no replica"
        return Action(Verb.NOTHING, State.WAITING_FOR_SWITCHOVER,
                      f"every replica is updated; {primary.name} waits for a switchover "
                      f"(kubectl replicadb switchover --to one of: {choices})")  # fmt: skip
    if updates.primary_update_method is PrimaryUpdateMethod.SWITCHOVER and ranked:
        return Action(Verb.SWITCH_OVER, State.SWITCHING_OVER,
                      f"switching over from {primary.name} to the updated {ranked[0].name}",
                      ranked[0].name)  # fmt: skip
    return Action(Verb.RESTART_PRIMARY, State.RESTARTING_PRIMARY,
                  f"restarting {primary.name} in place", primary.name)  # fmt: skip

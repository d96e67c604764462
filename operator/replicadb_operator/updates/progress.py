"""What status says about a roll, ``status.rollingUpdate``. Pure.

``revision`` is the StatefulSets' pod template; ``updatedInstances`` run it and
``outdatedInstances`` do not yet; ``state`` and ``message`` say what the roll does or waits
for (also the ``Updating`` condition). ``primaryRestart`` (pod, uid, since) stands while the
primary restarts in place, written by its own transitions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from replicadb_operator.updates.roll import Action, Member, State, outdated


def rolling_update_status(
    revision: str, members: Sequence[Member], action: Action
) -> dict[str, Any]:
    old = outdated(revision, members)
    return {
        "revision": revision,
        "updatedInstances": sorted(m.name for m in members if m.name not in old),
        "outdatedInstances": old,
        "state": action.state.value,
        "message": action.why,
    }


def roll_started(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """The first round of a roll (for its Event): pods became outdated."""
    return bool(after.get("outdatedInstances")) and not before.get("outdatedInstances")


def roll_finished(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    return bool(before.get("outdatedInstances")) and after.get("state") == State.UP_TO_DATE

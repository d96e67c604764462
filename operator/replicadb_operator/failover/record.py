"""What status says about a failover or switchover under way (``status.failover``).

A plan is a fixed list of named steps. Each step is recorded in ``stepsDone`` once it is
finished, so a new operator re-runs exactly the steps whose completion is not recorded.
Nothing about a plan lives only in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    FAILOVER = "failover"
    SWITCHOVER = "switchover"


class Step(StrEnum):
    DECIDE = "decide"  # target chosen and recorded (the begin transition)
    DEMOTE = "demote"  # switchover: old primary read-only, its final position recorded
    CATCH_UP = "catch-up"  # switchover: the target replayed that final position
    FENCE = "fence"  # old primary stopped, and confirmed to accept no writes
    PROMOTE = "promote"  # target accepts writes
    REPOINT = "repoint"  # other replicas stream from the target; synchronous standbys listed
    RELABEL = "relabel"  # role labels: the read-write Service selects the target
    COMPLETE = "complete"  # status: primary = target, lastFailover, no plan under way


PLANS: dict[Kind, tuple[Step, ...]] = {
    Kind.FAILOVER: (
        Step.DECIDE,
        Step.FENCE,
        Step.PROMOTE,
        Step.REPOINT,
        Step.RELABEL,
        Step.COMPLETE,
    ),
    # Same steps; a switchover makes the old primary read-only first and waits for the target
    # to replay all it wrote, so that it loses nothing, and its fence is a clean shutdown.
    Kind.SWITCHOVER: (
        Step.DECIDE,
        Step.DEMOTE,
        Step.CATCH_UP,
        Step.FENCE,
        Step.PROMOTE,
        Step.REPOINT,
        Step.RELABEL,
        Step.COMPLETE,
    ),
}


class Basis(StrEnum):
    """What the decision rested on: this operator's own probes of the primary while it was
    alive, or positions and sync states recorded in status by an earlier operator."""

    PROBES = "probes"
    RECORDED = "recorded"


@dataclass(frozen=True)
class FailoverRecord:
    kind: Kind
    old: str
    target: str
    reason: str
    since: str
    steps_done: tuple[Step, ...] = (Step.DECIDE,)
    basis: Basis = Basis.PROBES
    # Where the old primary last answered: its pod may have been replaced (new address) while
    # the old container still serves at this one, and a new operator must stop it there.
    old_address: str | None = None
    old_last_lsn: str | None = None  # its last known WAL position (lag of the target)
    final_lsn: str | None = None  # switchover: its position once read-only
    lag_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def plan(self) -> tuple[Step, ...]:
        return PLANS[self.kind]

    @property
    def next_step(self) -> Step | None:
        for step in self.plan:
            if step not in self.steps_done:
                return step
        return None

    def done(self, step: Step) -> bool:
        return step in self.steps_done

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> FailoverRecord | None:
        raw = status.get("failover")
        if not isinstance(raw, Mapping) or not raw.get("from") or not raw.get("to"):
            return None
        kind = Kind(raw.get("kind") or Kind.FAILOVER)
        # A record written before steps were recorded: only the decision is known.
        steps = tuple(Step(s) for s in raw.get("stepsDone") or [Step.DECIDE])
        return cls(
            kind=kind,
            old=str(raw["from"]),
            target=str(raw["to"]),
            reason=str(raw.get("reason") or ""),
            since=str(raw.get("since") or ""),
            steps_done=steps,
            basis=Basis(raw.get("basis") or Basis.PROBES),
            old_address=raw.get("fromAddress"),
            old_last_lsn=raw.get("fromLastLsn"),
            final_lsn=raw.get("finalLsn"),
            lag_bytes=raw.get("lagBytes"),
        )

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind.value,
            "from": self.old,
            "to": self.target,
            "reason": self.reason,
            "since": self.since,
            "stepsDone": [s.value for s in self.steps_done],
            "basis": self.basis.value,
            "fromAddress": self.old_address,
            "fromLastLsn": self.old_last_lsn,
            "finalLsn": self.final_lsn,
            "lagBytes": self.lag_bytes,
        }
        # None stays in: this is sent as a merge patch, where None removes a stale field.
        return out

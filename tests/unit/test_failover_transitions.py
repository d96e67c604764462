"""The status transitions of a failover plan: pure, and refused when status moved on."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from replicadb_operator.failover import transitions as t
from replicadb_operator.failover.record import PLANS, Basis, FailoverRecord, Kind, Step
from replicadb_operator.failover.writer import Transition

NOW = "2025-01-01T00:00:00Z"
STEADY: dict[str, Any] = {"primary": "p", "targetPrimary": "p", "phase": "Healthy"}


def run(status: dict[str, Any], *steps: Transition) -> dict[str, Any]:
    for step in steps:
        status = t.merged(status, step(status))
    return status


def begun(kind: Kind = Kind.FAILOVER, target: str = "r1") -> dict[str, Any]:
    return run(STEADY, partial(t.begin, kind=kind, old="p", target=target, reason="x", now=NOW))


def all_steps(kind: Kind) -> list[Transition]:
    return [
        partial(t.step_done, kind=kind, step=s)
        for s in PLANS[kind]
        if s not in (Step.DECIDE, Step.COMPLETE)
    ]


def test_begin_records_target_and_decision_before_anything_else() -> None:
    status = begun()
    assert status["targetPrimary"] == "r1"
    assert status["primary"] == "p"
    assert status["phase"] == "FailingOver"
    record = FailoverRecord.from_status(status)
    assert record is not None
    assert record.steps_done == (Step.DECIDE,)
    assert record.next_step is Step.FENCE


def test_begin_is_refused_while_a_plan_runs_or_when_the_primary_changed() -> None:
    with pytest.raises(t.Refused):
        t.begin(begun(), Kind.SWITCHOVER, "p", "r2", "x", NOW)
    with pytest.raises(t.Refused):
        t.begin({**STEADY, "primary": "r2"}, Kind.FAILOVER, "p", "r1", "x", NOW)
    with pytest.raises(t.Refused):
        t.begin(STEADY, Kind.FAILOVER, "p", "p", "x", NOW)


@pytest.mark.parametrize("kind", list(Kind))
def test_a_whole_plan_ends_with_the_target_primary_and_no_plan(kind: Kind) -> None:
    status = run(begun(kind), *all_steps(kind), partial(t.complete, now=NOW, duration_s=1.5))
    assert status["primary"] == status["targetPrimary"] == "r1"
    assert "failover" not in status
    assert status["lastFailover"]["kind"] == kind.value
    assert status["lastFailover"]["durationSeconds"] == 1.5


def test_steps_are_recorded_in_plan_order_and_repeat_harmlessly() -> None:
    status = begun(Kind.SWITCHOVER)
    with pytest.raises(t.Refused):
        t.step_done(status, Kind.SWITCHOVER, Step.PROMOTE)
    status = run(status, partial(t.step_done, kind=Kind.SWITCHOVER, step=Step.DEMOTE))
    assert t.step_done(status, Kind.SWITCHOVER, Step.DEMOTE) == {}
    with pytest.raises(t.Refused):  # a switchover is never finished as a failover
        t.step_done(status, Kind.FAILOVER, Step.CATCH_UP)


def test_demote_records_the_final_position_the_target_must_replay() -> None:
    status = run(
        begun(Kind.SWITCHOVER),
        partial(t.step_done, kind=Kind.SWITCHOVER, step=Step.DEMOTE, final_lsn="0/3000060"),
    )
    record = FailoverRecord.from_status(status)
    assert record is not None
    assert record.final_lsn == "0/3000060"
    assert record.kind is Kind.SWITCHOVER
    assert record.next_step is Step.CATCH_UP


def test_complete_is_refused_before_every_step_is_done() -> None:
    with pytest.raises(t.Refused, match="fence"):
        t.complete(begun(), NOW, 1.0)
    with pytest.raises(t.Refused):
        t.complete(STEADY, NOW, 1.0)


def test_retarget_only_before_promotion() -> None:
    status = run(begun(), partial(t.retarget, target="r2", lag_bytes=16))
    assert status["targetPrimary"] == "r2"
    assert status["failover"]["to"] == "r2"
    assert status["failover"]["lagBytes"] == 16
    promoted = run(
        status,
        partial(t.step_done, kind=Kind.FAILOVER, step=Step.FENCE),
        partial(t.step_done, kind=Kind.FAILOVER, step=Step.PROMOTE),
    )
    with pytest.raises(t.Refused):
        t.retarget(promoted, "r1", None)


def test_block_and_unblock() -> None:
    status = run(STEADY, partial(t.block, reason="no replica"))
    assert status["failoverBlocked"] == "no replica"
    assert t.block(status, "no replica") == {}
    assert "failoverBlocked" not in run(status, t.unblock)
    assert "failoverBlocked" not in run(
        status, partial(t.begin, kind=Kind.FAILOVER, old="p", target="r1", reason="x", now=NOW)
    )
    with pytest.raises(t.Refused):
        t.block(begun(), "no replica")


def test_observe_never_names_the_primary_and_keeps_the_plan_phase() -> None:
    summary = {"phase": "PrimaryUnavailable", "primary": "r2", "readyReplicas": "1/2"}
    assert t.observe(STEADY, summary) == {"phase": "PrimaryUnavailable", "readyReplicas": "1/2"}
    assert t.observe(begun(), summary) == {"readyReplicas": "1/2"}


def test_first_primary_and_initialisation() -> None:
    status = run({}, partial(t.name_first_primary, pod="p"))
    assert status == {"targetPrimary": "p", "phase": "Creating"}
    assert t.name_first_primary(status, "other") == {}
    status = run(status, partial(t.initialized, primary="p"))
    assert status["primary"] == "p"
    with pytest.raises(t.Refused):
        t.initialized({"targetPrimary": "p"}, "q")


def test_record_round_trips_through_status() -> None:
    record = FailoverRecord(
        kind=Kind.SWITCHOVER,
        old="p",
        target="r1",
        reason="asked",
        since=NOW,
        steps_done=(Step.DECIDE, Step.DEMOTE),
        basis=Basis.RECORDED,
        old_address="10.0.0.1",
        final_lsn="0/1",
    )
    assert FailoverRecord.from_status({"failover": record.to_status()}) == record


def test_merge_patch_semantics() -> None:
    assert t.merged({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {"a": {"c": 2, "d": 3}}
    assert t.merged({"a": 1}, {"a": None}) == {}

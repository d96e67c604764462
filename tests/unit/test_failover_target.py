"""The failover chooser, by example and by property."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from replicadb_operator.dataplane.failover_target import (
    Candidate,
    FailoverPolicy,
    SyncMethod,
    SyncRequirement,
    choose_failover_target,
    wal_end,
)


def cand(name: str, receive: int, replay: int | None = None, **kw: object) -> Candidate:
    fields: dict[str, object] = {"healthy": True, "timeline": 1, "sync_state": "async"}
    fields.update(kw)
    return Candidate(
        name=name,
        receive_lsn=receive,
        replay_lsn=replay if replay is not None else receive,
        **fields,  # type: ignore[arg-type]
    )


POLICY = FailoverPolicy(primary_timeline=1, last_primary_lsn=1000)


def test_highest_received_wins_then_replayed_then_name() -> None:
    assert choose_failover_target([cand("a", 900), cand("b", 950)], POLICY).target == "b"
    tied = [cand("a", 950, 800), cand("b", 950, 900)]
    assert choose_failover_target(tied, POLICY).target == "b"
    assert choose_failover_target([cand("b", 950), cand("a", 950)], POLICY).target == "a"


def test_a_restarted_standby_counts_the_wal_it_replayed_not_its_reset_receive_position() -> None:
    restarted = cand("a", receive=0x6000000, replay=0x6009538)
    streaming = cand("b", receive=0x6009000, replay=0x6009000)
    assert choose_failover_target([restarted, streaming], POLICY).target == "a"


def test_unhealthy_and_other_timeline_are_refused_with_reasons() -> None:
    choice = choose_failover_target(
        [cand("a", 999, healthy=False), cand("b", 998, timeline=2), cand("c", 10)], POLICY
    )
    assert choice.target == "c"
    assert choice.rejected["a"] == "not healthy"
    assert "timeline 2" in choice.rejected["b"]


def test_lag_bound_refuses_and_force_overrides() -> None:
    policy = FailoverPolicy(primary_timeline=1, last_primary_lsn=1000, max_lag_bytes=100)
    refused = choose_failover_target([cand("a", 800)], policy)
    assert refused.target is None
    assert "behind by 200 bytes" in refused.rejected["a"]
    forced = FailoverPolicy(
        primary_timeline=1, last_primary_lsn=1000, max_lag_bytes=100, force=True
    )
    chosen = choose_failover_target([cand("a", 800)], forced)
    assert (chosen.target, chosen.lag_bytes) == ("a", 200)


def test_synchronous_mode_only_promotes_a_synchronous_standby() -> None:
    sync = SyncRequirement(SyncMethod.FIRST, 1, frozenset({"a", "b"}))
    policy = FailoverPolicy(primary_timeline=1, last_primary_lsn=1000, synchronous=sync)
    choice = choose_failover_target(
        [cand("a", 900, sync_state="sync"), cand("b", 990, sync_state="potential")], policy
    )
    assert choice.target == "a"


def test_quorum_needs_enough_members_to_be_sure() -> None:
    sync = SyncRequirement(SyncMethod.ANY, 1, frozenset({"a", "b"}))
    policy = FailoverPolicy(primary_timeline=1, last_primary_lsn=1000, synchronous=sync)
    one_down = [cand("a", 900, sync_state="quorum"), cand("b", 0, healthy=False)]
    assert choose_failover_target(one_down, policy).target is None
    both = [cand("a", 900, sync_state="quorum"), cand("b", 950, sync_state="quorum")]
    assert choose_failover_target(both, policy).target == "b"


candidates_strategy = st.lists(
    st.builds(
        Candidate,
        name=st.sampled_from(["a", "b", "c", "d", "e"]),
        healthy=st.booleans(),
        timeline=st.sampled_from([1, 2, None]),
        receive_lsn=st.one_of(st.none(), st.integers(0, 2000)),
        replay_lsn=st.one_of(st.none(), st.integers(0, 2000)),
        sync_state=st.sampled_from(["async", "sync", "quorum", "potential"]),
    ),
    max_size=5,
    unique_by=lambda c: c.name,
)
policy_strategy = st.builds(
    FailoverPolicy,
    primary_timeline=st.sampled_from([1, 2]),
    last_primary_lsn=st.one_of(st.none(), st.integers(0, 2000)),
    max_lag_bytes=st.one_of(st.none(), st.integers(0, 500)),
    synchronous=st.one_of(
        st.none(),
        st.builds(
            SyncRequirement,
            method=st.sampled_from(list(SyncMethod)),
            num_sync=st.integers(1, 3),
            members=st.frozensets(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1),
        ),
    ),
    force=st.booleans(),
)


@given(candidates_strategy, policy_strategy)
def test_chosen_target_obeys_every_rule(
    candidates: list[Candidate], policy: FailoverPolicy
) -> None:
    choice = choose_failover_target(candidates, policy)
    by_name = {c.name: c for c in candidates}
    assert set(choice.rejected) | ({choice.target} if choice.target else set()) == set(by_name)
    if choice.target is None:
        return
    chosen = by_name[choice.target]
    assert chosen.healthy
    assert chosen.timeline == policy.primary_timeline
    assert chosen.receive_lsn is not None
    if not policy.force:
        if policy.synchronous is not None:
            assert chosen.synchronous
            assert chosen.name in policy.synchronous.members
        elif policy.max_lag_bytes is not None:
            assert policy.last_primary_lsn is not None
            assert policy.last_primary_lsn - wal_end(chosen) <= policy.max_lag_bytes
    # Nobody else that passed the same rules holds more WAL.
    for other in candidates:
        if other.name != chosen.name and choice.rejected[other.name].startswith("less advanced"):
            assert wal_end(other) <= wal_end(chosen)


@given(candidates_strategy, policy_strategy)
def test_a_healthy_eligible_candidate_is_never_passed_over_for_nothing(
    candidates: list[Candidate], policy: FailoverPolicy
) -> None:
    choice = choose_failover_target(candidates, policy)
    if choice.target is None and not policy.synchronous:
        # Refused with nobody chosen: every candidate has its own reason.
        assert all(not why.startswith("less advanced") for why in choice.rejected.values())

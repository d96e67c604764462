"""The pure routing decision: which endpoint a read goes to, for each consistency level."""

from __future__ import annotations

from collections import Counter

import pytest

from router_lib import routing
from router_lib.balancing import Strategy, least_outstanding
from router_lib.consistency import (
    BOUNDED,
    EVENTUAL,
    LSN_UNKNOWN,
    READ_YOUR_WRITES,
    STRONG,
    Consistency,
    SessionState,
)
from router_lib.endpoints import Endpoint, Role
from router_lib.health import EndpointState, PrimaryHistory, known_replay
from router_lib.routing import ReadPolicy, choose_read

NOW = 1000.0
DEFAULT_POLICY = ReadPolicy()


def state(name: str, role: Role = Role.REPLICA, zone: str | None = None) -> EndpointState:
    return EndpointState(Endpoint(name, role, f"host={name}", name, 5432, zone=zone))


@pytest.fixture
def primary() -> EndpointState:
    return state("pg-0", Role.PRIMARY)


@pytest.fixture
def replicas() -> list[EndpointState]:
    return [state("pg-1"), state("pg-2")]


def choose(
    primary: EndpointState | None,
    replicas: list[EndpointState],
    consistency: Consistency,
    session_lsn: int = 0,
    history: PrimaryHistory | None = None,
    policy: ReadPolicy = DEFAULT_POLICY,
    tick: int = 0,
    exclude: tuple[EndpointState, ...] = (),
) -> routing.ReadChoice | None:
    return choose_read(
        primary,
        replicas,
        consistency,
        session_lsn,
        history or PrimaryHistory(),
        policy,
        NOW,
        tick,
        exclude,
    )


def test_strong_reads_go_to_the_primary(
    primary: EndpointState, replicas: list[EndpointState]
) -> None:
    choice = choose(primary, replicas, STRONG)
    assert choice is not None
    assert choice.state is primary
    assert choice.reason == routing.STRONG
    assert not choice.fallback


def test_eventual_reads_rotate_over_the_replicas(
    primary: EndpointState, replicas: list[EndpointState]
) -> None:
    picked: Counter[str] = Counter()
    for tick in range(10):
        choice = choose(primary, replicas, EVENTUAL, tick=tick)
        assert choice is not None
        assert choice.reason == routing.EVENTUAL
        picked[choice.state.endpoint.name] += 1
    assert picked == {"pg-1": 5, "pg-2": 5}


def test_ejected_and_unready_replicas_are_skipped(
    primary: EndpointState, replicas: list[EndpointState]
) -> None:
    replicas[0].eject(NOW, 1.0, 30.0, wait_for_probe=False)
    for tick in range(4):
        choice = choose(primary, replicas, EVENTUAL, tick=tick)
        assert choice is not None
        assert choice.state is replicas[1]


def test_an_ejected_replica_is_readmitted_after_its_back_off(replicas: list[EndpointState]) -> None:
    replica = replicas[0]
    assert replica.eject(NOW, 1.0, 30.0, wait_for_probe=False)
    assert not replica.usable(NOW + 0.5)
    assert not replica.eject(NOW + 0.5, 1.0, 30.0, wait_for_probe=False)  # already out
    assert replica.usable(NOW + 1.01)
    # Failing again soon after: twice the back-off, and this time a probe must answer too.
    assert replica.eject(NOW + 2, 1.0, 30.0, wait_for_probe=True)
    assert not replica.usable(NOW + 3.5)
    replica.probe_succeeded()
    assert not replica.usable(NOW + 3.5)
    assert replica.usable(NOW + 4.01)
    # After behaving for longer than the maximum back-off, the next ejection is short again.
    assert replica.eject(NOW + 100, 1.0, 30.0, wait_for_probe=False)
    assert replica.usable(NOW + 101.01)


def test_failures_while_ejected_do_not_lengthen_the_ejection(
    replicas: list[EndpointState],
) -> None:
    replica = replicas[0]
    replica.eject(NOW, 0.2, 30.0, wait_for_probe=True)
    for n in range(50):  # the probe failing every round while it is down
        replica.eject(NOW + n * 0.1, 0.2, 30.0, wait_for_probe=True)
    replica.probe_succeeded()
    assert replica.usable(NOW + 5.0)


def test_no_usable_replica_falls_back_to_the_primary(
    primary: EndpointState, replicas: list[EndpointState]
) -> None:
    for replica in replicas:
        replica.in_recovery = False  # promoted: not a replica any more
    choice = choose(primary, replicas, EVENTUAL)
    assert choice is not None
    assert choice.state is primary
    assert choice.fallback
    assert choice.reason == routing.FALLBACK_NO_REPLICA


def test_replicas_excluded_after_errors_give_a_distinct_fallback_reason(
    primary: EndpointState, replicas: list[EndpointState]
) -> None:
    choice = choose(primary, replicas, EVENTUAL, exclude=tuple(replicas))
    assert choice is not None
    assert choice.reason == routing.FALLBACK_REPLICA_ERROR
    assert choose(primary, replicas, EVENTUAL, exclude=(*replicas, primary)) is None
    assert choose(None, [], EVENTUAL) is None


def history_with(*samples: tuple[int, float]) -> PrimaryHistory:
    history = PrimaryHistory()
    for lsn, at in samples:
        history.record(lsn, at)
    return history


def test_bounded_uses_the_time_the_primary_was_at_the_replay_position(
    primary: EndpointState, replicas: list[EndpointState]
) -> None:
    # The primary was at 100 until t=990, then at 500 from t=995 on.
    history = history_with((100, 980.0), (100, 990.0), (500, 995.0), (500, 999.0))
    replicas[0].note_replay(100, 999.5)  # holds what was committed before t=990: 10 s stale
    replicas[1].note_replay(500, 999.5)  # holds what was committed before t=999: 1 s stale
    for tick in range(4):
        choice = choose(primary, replicas, BOUNDED(max_lag_seconds=5), history=history, tick=tick)
        assert choice is not None
        assert choice.state is replicas[1]
        assert choice.required_lsn == 500  # the connection must prove it, too
    choice = choose(primary, replicas, BOUNDED(max_lag_seconds=0.5), history=history)
    assert choice is not None
    assert choice.state is primary
    assert choice.fallback
    picked = set()
    for tick in range(4):
        choice = choose(primary, replicas, BOUNDED(max_lag_seconds=20), history=history, tick=tick)
        assert choice is not None
        picked.add(choice.state.endpoint.name)
    assert picked == {"pg-1", "pg-2"}


def test_bounded_in_bytes_compares_with_the_latest_primary_position(
    primary: EndpointState, replicas: list[EndpointState]
) -> None:
    history = history_with((10_000, 999.0))
    replicas[0].note_replay(1_000, 999.5)
    replicas[1].note_replay(9_500, 999.5)
    choice = choose(primary, replicas, BOUNDED(max_lag_bytes=1_000), history=history)
    assert choice is not None
    assert choice.state is replicas[1]


def test_bounded_without_measurements_never_picks_a_replica(
    primary: EndpointState, replicas: list[EndpointState]
) -> None:
    for replica in replicas:
        replica.probed_at = NOW  # probed, but no replay position known
    choice = choose(primary, replicas, BOUNDED(max_lag_seconds=60))
    assert choice is not None
    assert choice.state is primary


def test_bounded_falls_back_on_status_lag_when_never_probed(primary: EndpointState) -> None:
    fresh = EndpointState(
        Endpoint("pg-1", Role.REPLICA, "host=a", "a", 5432, status_lag_seconds=0.2)
    )
    stale = EndpointState(
        Endpoint("pg-2", Role.REPLICA, "host=b", "b", 5432, status_lag_seconds=9.0)
    )
    for tick in range(4):
        choice = choose(primary, [fresh, stale], BOUNDED(max_lag_seconds=1), tick=tick)
        assert choice is not None
        assert choice.state is fresh


def test_read_your_writes_without_a_write_is_eventual(
    primary: EndpointState, replicas: list[EndpointState]
) -> None:
    choice = choose(primary, replicas, READ_YOUR_WRITES, session_lsn=0)
    assert choice is not None
    assert choice.state in replicas
    assert choice.required_lsn == 0


def test_read_your_writes_prefers_replicas_seen_at_the_commit(
    primary: EndpointState, replicas: list[EndpointState]
) -> None:
    replicas[0].note_replay(400, 999.0)
    replicas[1].note_replay(600, 999.0)
    for tick in range(4):
        choice = choose(primary, replicas, READ_YOUR_WRITES, session_lsn=500, tick=tick)
        assert choice is not None
        assert choice.state is replicas[1]
        assert choice.required_lsn == 500
        assert not choice.may_wait


def test_read_your_writes_waits_on_the_most_replayed_replica(
    primary: EndpointState, replicas: list[EndpointState]
) -> None:
    replicas[0].note_replay(400, 999.0)
    replicas[1].note_replay(300, 999.0)
    choice = choose(primary, replicas, READ_YOUR_WRITES, session_lsn=500)
    assert choice is not None
    assert choice.state is replicas[0]
    assert choice.required_lsn == 500
    assert choice.may_wait


def test_read_your_writes_with_a_lost_commit_position_reads_the_primary(
    primary: EndpointState, replicas: list[EndpointState]
) -> None:
    choice = choose(primary, replicas, READ_YOUR_WRITES, session_lsn=LSN_UNKNOWN)
    assert choice is not None
    assert choice.state is primary
    assert choice.fallback


def test_zone_preference_narrows_to_local_replicas_when_any_qualify(primary: EndpointState) -> None:
    local, remote = state("pg-1", zone="a"), state("pg-2", zone="b")
    policy = ReadPolicy(zone="a")
    for tick in range(4):
        choice = choose(primary, [local, remote], EVENTUAL, policy=policy, tick=tick)
        assert choice is not None
        assert choice.state is local
    local.eject(NOW, 1.0, 30.0, wait_for_probe=False)
    choice = choose(primary, [local, remote], EVENTUAL, policy=policy)
    assert choice is not None
    assert choice.state is remote


def test_least_lag_prefers_the_most_replayed(
    primary: EndpointState, replicas: list[EndpointState]
) -> None:
    replicas[0].note_replay(100, 999.0)
    replicas[1].note_replay(200, 999.0)
    policy = ReadPolicy(Strategy.LEAST_LAG)
    for tick in range(4):
        choice = choose(primary, replicas, EVENTUAL, policy=policy, tick=tick)
        assert choice is not None
        assert choice.state is replicas[1]


class Conn:
    def __init__(self, established_at: float, confirmed_lsn: int = 0) -> None:
        self.established_at = established_at
        self.confirmed_lsn = confirmed_lsn


def test_replay_observations_hold_only_for_connections_opened_before_them() -> None:
    replica = state("pg-1")
    replica.note_replay(500, 100.0)
    assert known_replay(Conn(established_at=99.0), replica) == 500
    # Opened after the observation: perhaps to a restarted server that is behind again.
    assert known_replay(Conn(established_at=101.0), replica) == 0
    assert known_replay(Conn(established_at=101.0, confirmed_lsn=300), replica) == 300


def test_a_later_observation_replaces_an_earlier_one() -> None:
    replica = state("pg-1")
    replica.note_replay(500, 100.0)
    replica.note_replay(200, 90.0)  # older news arriving late: ignored
    assert replica.replay_lsn == 500
    replica.note_replay(200, 110.0)  # lower and newer: the server restarted
    assert (replica.replay_lsn, replica.replay_seen_at) == (200, 110.0)


def test_primary_history_keeps_the_latest_time_at_each_position() -> None:
    history = history_with((100, 1.0), (100, 2.0), (200, 3.0))
    assert history.included_before(150) == 2.0
    assert history.included_before(200) == 3.0
    assert history.included_before(99) is None
    history.record(50, 4.0)  # lower: another primary
    assert history.latest() == (50, 4.0)
    assert history.included_before(100) == 4.0


def test_primary_history_is_bounded() -> None:
    history = PrimaryHistory(max_samples=100)
    for n in range(1000):
        history.record(n, float(n))
    assert history.latest() == (999, 999.0)
    assert len(history._samples) <= 100


def test_session_keeps_the_highest_commit_position() -> None:
    session = SessionState(READ_YOUR_WRITES)
    session.note_write(500, 1.0)
    session.note_write(300, 2.0)  # a racing writer that finished later
    assert session.write_lsn == 500
    session.note_write_position_lost(now=3.0)
    assert session.write_lsn == LSN_UNKNOWN
    session.note_write(600, 2.5)  # read before the loss was noted: may not cover it
    assert session.write_lsn == LSN_UNKNOWN
    session.note_write(700, 3.5)
    assert session.write_lsn == 700


def test_positions_on_demand_stay_pending_until_a_read_covers_every_unread_write() -> None:
    session = SessionState(EVENTUAL, positions_on_demand=True)
    assert (session.write_lsn, session.positions_pending) == (0, False)
    session.note_unread_write()
    covers = session.unread_writes()  # a position read starts here...
    session.note_unread_write()  # ...and another write commits while it runs
    session.note_position_read(800, 1.0, covers)
    assert (session.write_lsn, session.positions_pending) == (800, True)  # 2nd may be past
    session.note_position_read(900, 2.0, session.unread_writes())
    assert (session.write_lsn, session.positions_pending) == (900, False)
    session.note_position_read(850, 3.0, session.unread_writes())  # an older read, later
    assert session.write_lsn == 900


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_primary_read_weight_gives_the_primary_its_share_and_nothing_to_wait_for(
    primary: EndpointState, replicas: list[EndpointState], weight: float
) -> None:
    replicas[0].note_replay(100, 999.0)
    replicas[1].note_replay(100, 999.0)
    policy = ReadPolicy(primary_weight=weight)
    served = {"pg-0": 0, "pg-1": 0, "pg-2": 0}
    for tick in range(1000):
        choice = choose(primary, replicas, READ_YOUR_WRITES, 100, policy=policy, tick=tick)
        assert choice is not None
        served[choice.state.endpoint.name] += 1
        if choice.state is primary:
            assert (choice.fallback, choice.required_lsn, choice.reason) == (
                False,
                0,
                "read_your_writes",
            )
    expected = 1000 * weight / (2 + weight)
    assert abs(served["pg-0"] - expected) <= 2
    assert abs(served["pg-1"] - served["pg-2"]) <= 2


def test_primary_read_weight_never_picks_an_excluded_primary(
    primary: EndpointState, replicas: list[EndpointState]
) -> None:
    policy = ReadPolicy(primary_weight=5.0)
    for tick in range(50):
        choice = choose(primary, replicas, EVENTUAL, policy=policy, tick=tick, exclude=(primary,))
        assert choice is not None
        assert choice.state is not primary


LEAST_OUTSTANDING = ReadPolicy(Strategy.LEAST_OUTSTANDING)


def served(
    primary: EndpointState,
    replicas: list[EndpointState],
    policy: ReadPolicy,
    ticks: int = 4,
    exclude: tuple[EndpointState, ...] = (),
) -> set[str]:
    """The endpoints that EVENTUAL reads go to over ``ticks`` turns."""
    names = set()
    for tick in range(ticks):
        choice = choose(primary, replicas, EVENTUAL, policy=policy, tick=tick, exclude=exclude)
        assert choice is not None
        names.add(choice.state.endpoint.name)
    return names


def test_least_outstanding_picks_the_replica_with_the_fewest_in_flight(
    primary: EndpointState, replicas: list[EndpointState]
) -> None:
    replicas[0].in_use, replicas[1].in_use = 3, 1
    assert served(primary, replicas, LEAST_OUTSTANDING) == {"pg-2"}
    replicas[1].in_use = 3  # a tie: the replicas take turns
    assert served(primary, replicas, LEAST_OUTSTANDING) == {"pg-1", "pg-2"}


def test_least_outstanding_weighs_the_primary_in_and_never_an_excluded_one(
    primary: EndpointState, replicas: list[EndpointState]
) -> None:
    policy = ReadPolicy(Strategy.LEAST_OUTSTANDING, primary_weight=0.5)
    replicas[0].in_use = replicas[1].in_use = 2  # (2 + 1) / 1.0 = 3 each
    primary.in_use = 0  # (0 + 1) / 0.5 = 2: the primary is the least loaded
    choice = choose(primary, replicas, READ_YOUR_WRITES, 100, policy=policy)
    assert choice is not None
    assert (choice.state, choice.required_lsn, choice.fallback) == (primary, 0, False)
    assert served(primary, replicas, policy, exclude=(primary,)) == {"pg-1", "pg-2"}
    primary.in_use = 1  # (1 + 1) / 0.5 = 4: now the replicas are
    assert served(primary, replicas, policy) == {"pg-1", "pg-2"}
    # Without a weight the primary takes no reads, however idle.
    primary.in_use = 0
    assert served(primary, replicas, LEAST_OUTSTANDING) == {"pg-1", "pg-2"}


def test_least_outstanding_rule() -> None:
    assert least_outstanding([0, 0, 0], [1.0, 1.0, 1.0], 5) == 2  # ties rotate with the tick
    assert least_outstanding([4, 1, 1], [1.0, 1.0, 0.25], 0) == 1  # 5, 2, 8
    assert least_outstanding([4, 4, 1], [1.0, 1.0, 0.5], 0) == 2  # 5, 5, 4

"""Seconds lag must grow while a replica misses WAL and be zero once it has it all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from replicadb_operator.dataplane.lag import PrimaryWalHistory, replica_lag
from replicadb_operator.dataplane.probe import ProbeResult


def primary(lsn: int, at: float) -> ProbeResult:
    return ProbeResult(
        name="p", reachable=True, probed_at=at, duration_s=0, in_recovery=False, current_lsn=lsn
    )


def replica(replay: int, receive: int | None = None, last_replay_ago_s: float = 0) -> ProbeResult:
    return ProbeResult(
        name="r",
        reachable=True,
        probed_at=0,
        duration_s=0,
        in_recovery=True,
        receive_lsn=receive if receive is not None else replay,
        replay_lsn=replay,
        last_replay_time=datetime.now(UTC) - timedelta(seconds=last_replay_ago_s),
    )


def test_idle_caught_up_replica_has_zero_lag_however_old_its_last_replay() -> None:
    history = PrimaryWalHistory()
    history.record(0.0, 1000)
    lag = replica_lag(primary(1000, 3600.0), replica(1000, last_replay_ago_s=3600), history, 3600.0)
    assert (lag.replay_bytes, lag.seconds) == (0, 0.0)


def test_replica_probed_after_primary_can_be_ahead_without_negative_lag() -> None:
    history = PrimaryWalHistory()
    history.record(0.0, 1000)
    lag = replica_lag(primary(1000, 0.0), replica(1200), history, 0.1)
    assert (lag.replay_bytes, lag.seconds) == (0, 0.0)


def test_seconds_count_from_when_the_primary_first_passed_the_replay_position() -> None:
    history = PrimaryWalHistory()
    history.record(10.0, 1000)
    history.record(11.0, 2000)  # replica stuck at 1000 from here on
    history.record(12.0, 3000)
    history.record(13.0, 4000)
    lag = replica_lag(primary(4000, 13.0), replica(1000, receive=4000), history, 13.5)
    assert lag.replay_bytes == 3000
    assert lag.receive_bytes == 0
    assert lag.seconds == 2.5


def test_idle_primary_adds_no_samples_and_a_new_primary_resets_history() -> None:
    history = PrimaryWalHistory()
    for t in range(100):
        history.record(float(t), 5000)
    assert len(history) == 1
    history.record(100.0, 10)  # position went backwards: another primary
    assert len(history) == 1
    assert history.behind_since(5) == 100.0


def test_bounded_history_reports_a_lower_bound_past_the_window() -> None:
    history = PrimaryWalHistory(max_samples=3)
    for t, lsn in enumerate([100, 200, 300, 400, 500]):
        history.record(float(t), lsn)
    assert history.behind_since(50) == 2.0  # the oldest kept sample


def test_unknown_when_primary_unreachable_or_replica_not_in_recovery() -> None:
    history = PrimaryWalHistory()
    down = ProbeResult(name="p", reachable=False, probed_at=0, duration_s=1)
    assert replica_lag(down, replica(10), history, 1.0).replay_bytes is None
    promoted = primary(10, 0.0)
    assert replica_lag(primary(10, 0.0), promoted, history, 1.0).seconds is None

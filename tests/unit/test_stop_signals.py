"""The entrypoint's stop signals: at once, except while a step that must not be cut runs."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from replicadb_operator.instance.stop_signals import STOP_SIGNALS, StopSignals


@pytest.fixture
def stop() -> Iterator[StopSignals]:
    saved = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    handlers = StopSignals()
    handlers.install()
    yield handlers
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_a_stop_signal_ends_the_entrypoint_at_once(stop: StopSignals) -> None:
    with pytest.raises(SystemExit) as ended:
        os.kill(os.getpid(), signal.SIGTERM)
    assert ended.value.code == 128 + signal.SIGTERM


def test_a_stop_signal_during_a_deferred_step_takes_effect_after_it(stop: StopSignals) -> None:
    finished = []

    def rewind() -> None:
        with stop.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            finished.append("rewind")  # the step runs to its end

    with pytest.raises(SystemExit) as ended:
        rewind()
    assert (finished, ended.value.code) == (["rewind"], 128 + signal.SIGINT)
    with stop.deferred():  # and nothing is left pending afterwards
        pass

"""Operator replicas draw distinct Kopf peering priorities unless one is configured."""

from __future__ import annotations

import pytest
from replicadb_operator.peering import PRIORITY_ENV, PRIORITY_RANGE, peering_priority


def test_configured_priority_wins() -> None:
    assert peering_priority({PRIORITY_ENV: " 42 "}) == 42


def test_bad_configured_priority_names_the_variable() -> None:
    with pytest.raises(ValueError, match=PRIORITY_ENV):
        peering_priority({PRIORITY_ENV: "high"})


def test_drawn_priorities_are_positive_and_differ_between_replicas() -> None:
    assert peering_priority({}, draw=lambda n: 0) == 1
    assert peering_priority({}, draw=lambda n: n - 1) == PRIORITY_RANGE
    drawn = {peering_priority({}) for _ in range(50)}
    assert len(drawn) == 50
    assert all(1 <= p <= PRIORITY_RANGE for p in drawn)

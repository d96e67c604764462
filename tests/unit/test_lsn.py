from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from replicadb_operator.dataplane.lsn import lsn_distance

from router_lib.status_contract import format_lsn, parse_lsn


def test_parse_known_values() -> None:
    assert parse_lsn("0/0") == 0
    assert parse_lsn("0/3000148") == 0x3000148
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_format_parse_round_trip(lsn: int) -> None:
    assert parse_lsn(format_lsn(lsn)) == lsn


@pytest.mark.parametrize("text", ["", "16", "/1", "1/", "zz/1"])
def test_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="not an LSN"):
        parse_lsn(text)


def test_distance_never_negative() -> None:
    assert lsn_distance(100, 40) == 60
    assert lsn_distance(40, 100) == 0

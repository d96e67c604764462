"""PostgreSQL log sequence numbers as plain integers.

PostgreSQL prints an LSN as two hex halves (``16/B374D848``); arithmetic on them (lag in bytes,
"has this replica reached that commit") is simplest on the 64-bit integer they stand for.
Parsing and formatting are part of the status contract shared with router_lib, so they live
in :mod:`router_lib.status_contract`; the operator's own arithmetic stays here.
"""

from __future__ import annotations

from router_lib.status_contract import Lsn, format_lsn, parse_lsn

__all__ = ["Lsn", "format_lsn", "lsn_distance", "parse_lsn", "parse_optional_lsn"]


def parse_optional_lsn(text: str | None) -> Lsn | None:
    return None if text is None else parse_lsn(text)


def lsn_distance(ahead: Lsn, behind: Lsn) -> int:
    """Bytes by which ``behind`` trails ``ahead``; never negative (a replica probed after the
    primary may already be past the primary's sampled position)."""
    return max(0, ahead - behind)

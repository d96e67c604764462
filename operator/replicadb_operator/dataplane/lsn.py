"""PostgreSQL log sequence numbers as plain integers.

PostgreSQL prints an LSN as two hex halves (``16/B374D848``); arithmetic on them (lag in bytes,
"has this replica reached that commit") is simplest on the 64-bit integer they stand for.
"""

from __future__ import annotations

Lsn = int


def parse_lsn(text: str) -> Lsn:
    """``'16/B374D848'`` -> ``0x16B374D848``. Raises ValueError on anything else."""
    high, sep, low = text.strip().partition("/")
    try:
        if sep and high and low:
            return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        pass
    raise ValueError(f"not an LSN: {text!r}")


def format_lsn(lsn: Lsn) -> str:
    """The inverse of :func:`parse_lsn`, in PostgreSQL's own spelling."""
    if lsn < 0:
        raise ValueError(f"LSN cannot be negative: {lsn}")
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_optional_lsn(text: str | None) -> Lsn | None:
    return None if text is None else parse_lsn(text)


def lsn_distance(ahead: Lsn, behind: Lsn) -> int:
    """Bytes by which ``behind`` trails ``ahead``; never negative (a replica probed after the
    primary may already be past the primary's sampled position)."""
    return max(0, ahead - behind)

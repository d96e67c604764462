"""Consistency levels a read can ask for, and the per-session state read-your-writes needs.

A level is a small frozen value so it can be passed per call, stored per session, or read from
the environment. The guarantees themselves are implemented by the routing decision
(:mod:`router_lib.routing`) and stated in the README ("Consistency guarantees").
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field

from router_lib.errors import ConfigurationError


class Level(enum.Enum):
    EVENTUAL = "eventual"
    BOUNDED = "bounded"
    STRONG = "strong"
    READ_YOUR_WRITES = "read_your_writes"


@dataclass(frozen=True, slots=True)
class Consistency:
    level: Level
    max_lag_bytes: int | None = None
    max_lag_seconds: float | None = None
    # The level's name as a plain attribute: Enum.value is a property, and routing reads it
    # on every query (as the metric reason).
    name: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.level.value)
        if self.level is Level.BOUNDED:
            if self.max_lag_bytes is None and self.max_lag_seconds is None:
                raise ConfigurationError("BOUNDED needs max_lag_seconds or max_lag_bytes")
            if (self.max_lag_bytes is not None and self.max_lag_bytes < 0) or (
                self.max_lag_seconds is not None and self.max_lag_seconds < 0
            ):
                raise ConfigurationError("BOUNDED lag limits cannot be negative")
        elif self.max_lag_bytes is not None or self.max_lag_seconds is not None:
            raise ConfigurationError(f"{self.level.value} takes no lag limits")


EVENTUAL = Consistency(Level.EVENTUAL)
STRONG = Consistency(Level.STRONG)
READ_YOUR_WRITES = Consistency(Level.READ_YOUR_WRITES)


# Upper case: reads like the other level constants at call sites (BOUNDED(max_lag_seconds=2)).
def BOUNDED(max_lag_seconds: float | None = None, max_lag_bytes: int | None = None) -> Consistency:
    """Read from a replica known to be at most this far behind the primary."""
    return Consistency(Level.BOUNDED, max_lag_bytes=max_lag_bytes, max_lag_seconds=max_lag_seconds)


def parse_consistency(
    text: str, max_lag_seconds: float | None = None, max_lag_bytes: int | None = None
) -> Consistency:
    """From configuration text: ``eventual``, ``strong``, ``read_your_writes`` (or ``ryw``),
    ``bounded`` (with the limits given separately)."""
    name = text.strip().lower().replace("-", "_")
    if name == "ryw":
        name = Level.READ_YOUR_WRITES.value
    try:
        level = Level(name)
    except ValueError:
        choices = ", ".join(lv.value for lv in Level)
        raise ConfigurationError(f"unknown consistency {text!r} (one of {choices})") from None
    if level is Level.BOUNDED:
        return BOUNDED(max_lag_seconds=max_lag_seconds, max_lag_bytes=max_lag_bytes)
    return Consistency(level)


# The LSN recorded when a write committed but its position could not be read back (the
# connection failed right after the commit): read-your-writes then reads from the primary.
LSN_UNKNOWN = (1 << 64) - 1


class SessionState:
    """The commit position of the last write a session made, for read-your-writes.

    Shared by threads (the router's default session is process-wide), so updates take a lock:
    two writers racing must leave the larger LSN, never the one that finished last.

    ``positions_on_demand``: a write does not read its commit position back (one round trip
    per write saved); it is only counted, and the first read-your-writes read after it reads
    the primary's current position instead (past every counted write's commit). For states
    that rarely ask for read-your-writes, such as the router's own when its default level is
    another one.
    """

    __slots__ = (
        "_lock",
        "_lost_at",
        "_resolved",
        "_unread",
        "consistency",
        "positions_on_demand",
        "write_lsn",
    )

    def __init__(self, consistency: Consistency, positions_on_demand: bool = False) -> None:
        self.consistency = consistency
        self.positions_on_demand = positions_on_demand
        self.write_lsn = 0  # 0: this session has not written (through the router)
        self._lost_at = 0.0
        self._unread = 0  # writes whose position was not read back (positions_on_demand)
        self._resolved = 0  # of those, how many a position read since covers
        self._lock = threading.Lock()

    @property
    def positions_pending(self) -> bool:
        """Has a write committed whose position is not in ``write_lsn`` yet?"""
        return self._unread != self._resolved

    def note_unread_write(self) -> int:
        """A write committed and its position was not read; returns the count to pass to
        :meth:`note_position_read` once a position read after this has been taken."""
        with self._lock:
            self._unread += 1
            return self._unread

    def unread_writes(self) -> int:
        """How many unread writes a position read starting now will cover."""
        return self._unread

    def note_position_read(self, lsn: int, read_started: float, covers: int) -> None:
        """The primary's position ``lsn``, read after ``covers`` unread writes committed."""
        self.note_write(lsn, read_started)
        with self._lock:
            self._resolved = max(self._resolved, covers)

    def note_write(self, lsn: int, read_started: float) -> None:
        """Record the WAL position read (on the primary, at monotonic time ``read_started``)
        after a write committed."""
        with self._lock:
            if self.write_lsn == LSN_UNKNOWN:
                # A position read after the lost one was noted is past that write's commit
                # (it committed before it was noted); an earlier read may not be.
                if read_started > self._lost_at:
                    self.write_lsn = lsn
            elif lsn > self.write_lsn:
                self.write_lsn = lsn

    def note_write_position_lost(self, now: float) -> None:
        """The write committed but its LSN is unknown: pin read-your-writes to the primary
        until a later write records a position."""
        with self._lock:
            self.write_lsn = LSN_UNKNOWN
            self._lost_at = now

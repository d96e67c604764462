"""The entrypoint's stop signals, before it execs postgres.

Until then it is the container's PID 1, which the kernel spares from any signal without a
handler: without one, a deleted pod's container would hold the data lock through its whole
grace period, delaying its replacement. The image's STOPSIGNAL is SIGINT (postgres' fast
shutdown); SIGTERM is handled the same. Either ends the entrypoint at once, except inside
:meth:`StopSignals.deferred`: PID 1 exiting ends every process of the container, and a
pg_rewind cut off part-way leaves data that is neither history (see prepare.unfinished_marker).
There the stop waits until the step is over; SIGKILL at the end of the grace period still
ends it, and the marker covers that case.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    def __init__(self) -> None:
        self._deferring = False
        self._pending: int | None = None

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if self._deferring:
            self._pending = signum
            return
        raise SystemExit(128 + signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Run the block to its end; a stop asked for meanwhile takes effect after it."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        pending, self._pending = self._pending, None
        if pending is not None:
            raise SystemExit(128 + pending)

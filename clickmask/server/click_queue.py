"""The queue of clicks waiting for the model: first come, first served, bounded, observable.

One predictor serves every tab, one click at a time. A plain lock lets
whichever waiting thread the OS wakes first go next, so a click that arrives
while others hold the model for long (an image or crop encode) can wait several
turns; :class:`ClickQueue` hands the model over in arrival order, refuses a click when :data:`MAX_WAITING` are
already waiting (the user gets "busy, click again" at once instead of a
growing delay), and says how many are waiting (shown in the app's status).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from clickmask.errors import ClickmaskError

#: Clicks that may wait for the model at once; one more is refused (503).
MAX_WAITING = 16


class ServerBusy(ClickmaskError):
    """Too many clicks are waiting for the model."""


class ClickQueue:
    """A FIFO lock over the predictor: ``with queue:`` waits its turn; ``with queue.bounded():`` may be refused."""

    def __init__(self, max_waiting: int = MAX_WAITING) -> None:
        self.max_waiting = max_waiting
        self._cond = threading.Condition(threading.Lock())
        self._next = 0  # the ticket the next arrival gets
        self._serving = 0  # the ticket whose turn it is

    @property
    def waiting(self) -> int:
        """Requests waiting for their turn (not counting the one being served)."""
        with self._cond:
            return max(0, self._next - self._serving - 1)

    @property
    def busy(self) -> bool:
        """True while a request holds the predictor."""
        with self._cond:
            return self._next > self._serving

    def acquire(self, bounded: bool = False) -> None:
        with self._cond:
            if bounded and self._next - self._serving > self.max_waiting:
                raise ServerBusy(f"the server is busy ({self._next - self._serving - 1} clicks waiting): "
                                 "click again in a moment")
            ticket = self._next
            self._next += 1
            while self._serving != ticket:
                self._cond.wait()

    def release(self) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()

    def __enter__(self) -> "ClickQueue":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @contextmanager
    def bounded(self) -> Iterator[None]:
        """Wait for the predictor, or raise :class:`ServerBusy` at once when the queue is full."""
        self.acquire(bounded=True)
        try:
            yield
        finally:
            self.release()

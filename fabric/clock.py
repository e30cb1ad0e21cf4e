"""Injected time.

Protocol cores never read the system clock: they are handed ``now`` (seconds, monotonic, float). Drivers
get ``now`` from a :class:`Clock`. Production uses :class:`SystemClock`; simulations and tests use
:class:`ManualClock` and advance it explicitly, so no test sleeps to wait for logic.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    """A source of monotonic time in seconds."""

    def now(self) -> float:
        """Return the current monotonic time in seconds."""
        ...


class SystemClock:
    """The process's monotonic clock (:func:`time.monotonic`)."""

    def now(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()


class TimerHandle:
    """A scheduled callback of a :class:`ManualClock`; :meth:`cancel` stops it from running."""

    __slots__ = ("when", "seq", "callback", "cancelled")

    def __init__(self, when: float, seq: int, callback: Callable[[], None]) -> None:
        self.when = when
        self.seq = seq
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Prevent the callback from running (idempotent)."""
        self.cancelled = True

    def __lt__(self, other: TimerHandle) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)


class ManualClock:
    """A clock that only moves when told to, with a timer queue (a discrete-event scheduler).

    Callbacks scheduled for the same instant run in scheduling order, which keeps seeded simulations
    reproducible. Not thread-safe: one simulation, one thread.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._queue: list[TimerHandle] = []
        self._seq = itertools.count()

    def now(self) -> float:
        """Return the simulated time in seconds."""
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` when the clock reaches ``when`` (never in the past: clamped to now)."""
        handle = TimerHandle(max(when, self._now), next(self._seq), callback)
        heapq.heappush(self._queue, handle)
        return handle

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` after ``delay`` seconds of simulated time."""
        return self.call_at(self._now + max(0.0, delay), callback)

    def pending(self) -> int:
        """Number of timers not yet run (cancelled ones included until they are popped)."""
        return len(self._queue)

    def next_deadline(self) -> float | None:
        """Time of the earliest live timer, or None when the queue is empty."""
        while self._queue and self._queue[0].cancelled:
            heapq.heappop(self._queue)
        return self._queue[0].when if self._queue else None

    def advance(self, seconds: float) -> int:
        """Move time forward by ``seconds``, running every timer that falls due; return how many ran."""
        return self.run_until(self._now + seconds)

    def run_until(self, deadline: float, *, max_events: int = 10_000_000) -> int:
        """Run due timers in order up to ``deadline``, then set the clock to ``deadline``.

        Raises RuntimeError after ``max_events`` callbacks (a runaway simulation, not a hang).
        """
        ran = 0
        while self._queue and self._queue[0].when <= deadline:
            handle = heapq.heappop(self._queue)
            if handle.cancelled:
                continue
            self._now = handle.when
            handle.callback()
            ran += 1
            if ran >= max_events:
                raise RuntimeError(f"ManualClock.run_until: more than {max_events} events before {deadline}")
        self._now = max(self._now, deadline)
        return ran

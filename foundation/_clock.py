"""Injected time sources for the Foundation services.

Every service reads time through a :class:`Clock`, never through :mod:`time` directly, so tests drive
expiry, retention, circuit-breaker refresh and rate-limit windows with :class:`ManualClock` instead of
sleeping. Monotonic time is in integer milliseconds (1.x ``Utils.monotonic_timestamp``); durations that
1.x measured in native units are reported in nanoseconds.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from foundation._errors import value_error

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """A source of monotonic and wall time. Implementations must be safe to call from any thread."""

    def monotonic_ms(self) -> int:
        """Monotonic time in integer milliseconds (arbitrary origin, never goes backwards)."""
        ...

    def monotonic_ns(self) -> int:
        """Monotonic time in integer nanoseconds (same origin as :meth:`monotonic_ms`)."""
        ...

    def wall(self) -> datetime:
        """The current wall-clock time as an aware UTC datetime."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic_ns` and :func:`datetime.now`."""

    def monotonic_ms(self) -> int:
        """Monotonic milliseconds from :func:`time.monotonic_ns`."""
        return time.monotonic_ns() // 1_000_000

    def monotonic_ns(self) -> int:
        """Monotonic nanoseconds from :func:`time.monotonic_ns`."""
        return time.monotonic_ns()

    def wall(self) -> datetime:
        """Aware UTC ``datetime.now``."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to (tests, simulations). Thread-safe.

    Args:
        start_ms: the initial monotonic reading in milliseconds.
        wall_start: the wall time matching ``start_ms`` (default 2025-01-01T00:00Z).
    """

    def __init__(self, start_ms: int = 1_000, wall_start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._ns = start_ms * 1_000_000
        self._start_ns = self._ns
        self._wall_start = wall_start or datetime(2025, 1, 1, tzinfo=UTC)

    def monotonic_ms(self) -> int:
        """The current manual reading in milliseconds."""
        with self._lock:
            return self._ns // 1_000_000

    def monotonic_ns(self) -> int:
        """The current manual reading in nanoseconds."""
        with self._lock:
            return self._ns

    def wall(self) -> datetime:
        """Wall time advanced by exactly as much as the monotonic reading."""
        with self._lock:
            return self._wall_start + timedelta(microseconds=(self._ns - self._start_ns) // 1_000)

    def advance(self, ms: float) -> None:
        """Move time forward by ``ms`` milliseconds (fractions allowed). Raises FoundationValueError if negative."""
        if ms < 0:
            raise value_error("a monotonic clock cannot go backwards", ms=ms)
        with self._lock:
            self._ns += int(ms * 1_000_000)

    def advance_ns(self, ns: int) -> None:
        """Move time forward by ``ns`` nanoseconds. Raises FoundationValueError if negative."""
        if ns < 0:
            raise value_error("a monotonic clock cannot go backwards", ns=ns)
        with self._lock:
            self._ns += ns

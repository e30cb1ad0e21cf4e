"""Capped exponential backoff with full jitter, shared by the ``consul`` and ``kubernetes`` strategies.

Pure: the caller injects a seeded ``random.Random`` and sleeps itself. After ``n`` consecutive failures
the delay is drawn uniformly from ``[ceiling/2, ceiling]`` with ``ceiling = min(maximum, initial *
multiplier**(n-1))`` ("equal jitter": never zero, so a broken backend is never hammered in a tight loop,
and nodes that failed together do not retry in lock-step). :meth:`Backoff.reset` after a success.
"""

from __future__ import annotations

import random

from .base import ConfigurationError, check_positive

__all__ = ["Backoff"]


class Backoff:
    """Delays between retries of a failing backend call. Not thread-safe (one loop)."""

    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = 30.0,
        multiplier: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        """``initial``/``maximum``: seconds; ``multiplier`` >= 1. Raises ConfigurationError otherwise."""
        check_positive(initial, "Backoff.initial")
        check_positive(maximum, "Backoff.maximum")
        if maximum < initial:
            raise ConfigurationError("Backoff.maximum must be >= initial")
        if isinstance(multiplier, bool) or not multiplier >= 1:
            raise ConfigurationError("Backoff.multiplier must be >= 1")
        self.initial = float(initial)
        self.maximum = float(maximum)
        self.multiplier = float(multiplier)
        self._rng = rng if rng is not None else random.Random()
        #: Consecutive failures since the last reset.
        self.failures = 0

    def ceiling(self) -> float:
        """The upper bound of the next delay (seconds), without jitter."""
        if self.failures == 0:
            return 0.0
        # Cap the exponent: multiplier**1000 would overflow a float long after the maximum is reached.
        exponent = min(self.failures - 1, 64)
        return min(self.maximum, self.initial * self.multiplier**exponent)

    def next_delay(self) -> float:
        """Record one more failure and return the seconds to wait before the next attempt (> 0)."""
        self.failures += 1
        top = self.ceiling()
        return self._rng.uniform(top / 2, top)

    def reset(self) -> None:
        """The call succeeded: the next failure starts from ``initial`` again."""
        self.failures = 0

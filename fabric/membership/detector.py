"""Phi-accrual failure detector (Hayashibara et al., 2004), in the form Akka and Cassandra use.

Theory of operation
-------------------
Instead of a yes/no timeout, the detector outputs a *suspicion level* ``phi`` that grows continuously
while a peer stays silent. It keeps a sliding window of the last ``max_sample_size`` inter-arrival times
of signs of life from one peer, models the next arrival as a normal distribution with the window's mean
``mu`` and standard deviation ``sigma``, and reports::

    phi(now) = -log10(1 - CDF(now - last))          (CDF of N(mu + acceptable_pause, max(sigma, min_std)))

``phi = 1`` means a 10 % chance that we are wrong to suspect the peer, ``phi = 2`` 1 %, ``phi = 8``
1e-8 (under the model). A peer is considered unavailable once ``phi >= threshold``.

Numerics. ``1 - CDF`` underflows to 0 for large ``now - last`` with ``math.erf``, which would make ``phi``
infinite. Like Akka's ``PhiAccrualFailureDetector`` we use the logistic approximation of the normal CDF
(Bowling et al. 2009, max error 1.4e-4)::

    y = (t - mu') / sigma'
    e = exp(-y * (1.5976 + 0.070566 * y**2))
    phi = -log10(e / (1 + e))       if t > mu'   (upper tail, computed without cancellation)
    phi = -log10(1 - 1 / (1 + e))   otherwise

Both branches equal ``log10(1 + exp(z))`` with ``z = y (1.5976 + 0.070566 y**2)``, which we evaluate as a
stable softplus: finite and monotonic for every ``y`` (no overflow, no ``log10(0)``).

Two choices beyond the paper, both documented in docs/membership.md:

* ``min_std_deviation`` keeps a perfectly regular peer (sigma ~ 0) from being suspected the moment a
  single heartbeat is a few milliseconds late.
* ``acceptable_heartbeat_pause`` is added to the mean: a grace period for GC pauses and bursts of loss.
* ``min_interval`` clamps inter-arrival samples from below. Any traffic from a peer is a sign of life,
  so a peer that streams data produces many tiny intervals; without the clamp the estimated mean would
  collapse and the detector would suspect the peer the moment the stream pauses, even though its
  heartbeats still arrive on time. With ``min_interval`` = the heartbeat interval, the window estimates
  the heartbeat arrival process and extra traffic only makes ``last`` fresher.

Not thread-safe: one detector per peer, driven by one loop.
"""

from __future__ import annotations

import functools
import math
from collections import deque

from ..errors import ConfigError

_A = 1.5976
_B = 0.070566
_LN10 = math.log(10.0)


def logistic_phi(y: float) -> float:
    """Phi for a standardized delay ``y = (t - mean) / std`` (logistic approximation of the normal tail).

    Akka's two branches both equal ``log10(1 + e**z)`` with ``z = y (1.5976 + 0.070566 y**2)``; it is
    computed here as a stable softplus, ``(max(z, 0) + log1p(e**-|z|)) / ln 10``, which neither overflows
    for very negative ``y`` nor loses precision (or becomes infinite) for very large ``y``.
    """
    z = y * (_A + _B * y * y)
    return (max(z, 0.0) + math.log1p(math.exp(-abs(z)))) / _LN10


@functools.lru_cache(maxsize=64)
def threshold_quantile(threshold: float) -> float:
    """The standardized delay ``y`` at which :func:`logistic_phi` reaches ``threshold`` (> 0).

    ``y * (1.5976 + 0.070566 * y**2) = ln(10**threshold - 1)`` is solved by bisection (the left side is
    increasing in ``y``), so the result is exact to 1e-12.
    """
    if threshold <= 0:
        raise ConfigError("threshold must be > 0")
    # phi(y) = log10(1 + e^z) with z = y(A + B y^2)  =>  z = ln(10^T - 1)
    target = math.log(math.expm1(threshold * _LN10)) if threshold < 300 else threshold * _LN10
    lo, hi = -50.0, 50.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid * (_A + _B * mid * mid) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


class PhiAccrualDetector:
    """Suspicion level of one peer from the arrival times of its signs of life.

    Args:
        threshold: phi at or above which :meth:`is_available` is False.
        max_sample_size: size of the sliding window of inter-arrival times (samples).
        min_std_deviation: floor of the standard deviation used in the model (seconds).
        acceptable_heartbeat_pause: extra silence tolerated on top of the mean (seconds).
        first_heartbeat_estimate: expected interval used to seed the window before real samples exist
            (seconds); the seed is two samples, mean +/- a quarter of it (Akka's bootstrap).
        min_interval: inter-arrival samples shorter than this are recorded as this (seconds); see the
            module docstring. 0 disables the clamp.

    Raises:
        ConfigError: for non-positive threshold, window, estimate or negative times.
    """

    __slots__ = (
        "threshold",
        "max_sample_size",
        "min_std_deviation",
        "acceptable_heartbeat_pause",
        "min_interval",
        "_intervals",
        "_sum",
        "_sq_sum",
        "_last",
        "_suspect_at",
    )

    def __init__(
        self,
        *,
        threshold: float = 8.0,
        max_sample_size: int = 200,
        min_std_deviation: float = 0.1,
        acceptable_heartbeat_pause: float = 0.0,
        first_heartbeat_estimate: float = 1.0,
        min_interval: float = 0.0,
    ) -> None:
        if threshold <= 0:
            raise ConfigError("threshold must be > 0")
        if max_sample_size < 2:
            raise ConfigError("max_sample_size must be >= 2")
        if min_std_deviation <= 0:
            raise ConfigError("min_std_deviation must be > 0")
        if acceptable_heartbeat_pause < 0 or min_interval < 0:
            raise ConfigError("acceptable_heartbeat_pause and min_interval must be >= 0")
        if first_heartbeat_estimate <= 0:
            raise ConfigError("first_heartbeat_estimate must be > 0")
        self.threshold = threshold
        self.max_sample_size = max_sample_size
        self.min_std_deviation = min_std_deviation
        self.acceptable_heartbeat_pause = acceptable_heartbeat_pause
        self.min_interval = min_interval
        self._intervals: deque[float] = deque()
        self._sum = 0.0
        self._sq_sum = 0.0
        self._last: float | None = None
        self._suspect_at: float | None = None
        std = first_heartbeat_estimate / 4
        self._add(first_heartbeat_estimate - std)
        self._add(first_heartbeat_estimate + std)

    def _add(self, interval: float) -> None:
        if len(self._intervals) >= self.max_sample_size:
            old = self._intervals.popleft()
            self._sum -= old
            self._sq_sum -= old * old
        self._intervals.append(interval)
        self._sum += interval
        self._sq_sum += interval * interval

    @property
    def last(self) -> float | None:
        """Time of the last sign of life, or None before the first one."""
        return self._last

    @property
    def mean(self) -> float:
        """Mean of the window (seconds), without the acceptable pause."""
        return self._sum / len(self._intervals)

    @property
    def std_deviation(self) -> float:
        """Standard deviation of the window (seconds), before the ``min_std_deviation`` floor."""
        n = len(self._intervals)
        mean = self._sum / n
        return math.sqrt(max(0.0, self._sq_sum / n - mean * mean))

    def samples(self) -> list[float]:
        """A copy of the window's inter-arrival samples (oldest first)."""
        return list(self._intervals)

    def heartbeat(self, now: float) -> None:
        """Record a sign of life at ``now`` (any traffic from the peer, not only heartbeats).

        Arrivals out of order in time (``now`` earlier than the last one) only keep ``last``.
        """
        last = self._last
        if last is not None:
            if now < last:
                return
            self._add(max(now - last, self.min_interval))
        self._last = now
        mean = self.mean + self.acceptable_heartbeat_pause
        std = max(self.std_deviation, self.min_std_deviation)
        self._suspect_at = now + mean + threshold_quantile(self.threshold) * std

    def phi(self, now: float) -> float:
        """Suspicion level at ``now`` (0.0 before the first sign of life)."""
        if self._last is None:
            return 0.0
        mean = self.mean + self.acceptable_heartbeat_pause
        std = max(self.std_deviation, self.min_std_deviation)
        return logistic_phi((now - self._last - mean) / std)

    def is_available(self, now: float) -> bool:
        """True while ``phi(now) < threshold``."""
        return self.phi(now) < self.threshold

    def suspect_at(self) -> float | None:
        """The time at which phi reaches the threshold if no further sign of life arrives.

        phi only changes on :meth:`heartbeat`, so a driver can arm one timer at this instant instead of
        polling. None before the first sign of life.
        """
        return self._suspect_at

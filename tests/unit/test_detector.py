"""Phi-accrual detector: hand-computed phi values, numerics, and no false suspicion under jitter."""

from __future__ import annotations

import math
import random

import pytest

from fabric.errors import ConfigError
from fabric.membership.config import MembershipConfig
from fabric.membership.detector import PhiAccrualDetector, logistic_phi, threshold_quantile


def normal_phi(y: float) -> float:
    """Exact -log10(1 - CDF) of the standard normal (fine for moderate y)."""
    return -math.log10(0.5 * math.erfc(y / math.sqrt(2)))


def test_bootstrap_window_is_estimate_plus_minus_a_quarter() -> None:
    d = PhiAccrualDetector(first_heartbeat_estimate=1.0)
    assert d.samples() == [0.75, 1.25]
    assert d.mean == pytest.approx(1.0)
    assert d.std_deviation == pytest.approx(0.25)
    assert d.phi(123.0) == 0.0  # no sign of life yet: nothing to suspect
    assert d.suspect_at() is None


def test_phi_hand_computed_values() -> None:
    # window {0.75, 1.25}: mean 1.0, std 0.25; last heartbeat at t=10
    d = PhiAccrualDetector(first_heartbeat_estimate=1.0, min_std_deviation=0.1)
    d.heartbeat(10.0)
    # y = 0: e = 1, phi = -log10(1 - 1/2) = log10(2)
    assert d.phi(11.0) == pytest.approx(0.30103, abs=1e-5)
    # y = 1 (t = mean + std): z = 1.5976 + 0.070566 = 1.668166, phi = log10(1 + e^z) = 0.79951
    assert d.phi(11.25) == pytest.approx(0.79951, abs=1e-5)
    # y = 2: z = 2 * (1.5976 + 0.070566 * 4) = 3.759728, phi = log10(1 + e^z) = 1.64283
    assert d.phi(11.5) == pytest.approx(1.64283, abs=1e-5)
    # just after the heartbeat: y = -4, tiny phi
    assert 0 <= d.phi(10.0) < 1e-3


def test_logistic_approximation_tracks_the_normal_tail() -> None:
    for y in (-1.0, 0.0, 0.5, 1.0, 2.0, 3.0):
        assert logistic_phi(y) == pytest.approx(normal_phi(y), rel=0.02, abs=2e-3)


def test_min_std_deviation_and_acceptable_pause() -> None:
    d = PhiAccrualDetector(first_heartbeat_estimate=1.0, min_std_deviation=0.5, acceptable_heartbeat_pause=2.0)
    d.heartbeat(0.0)
    # std 0.25 is floored to 0.5, mean 1.0 + pause 2.0 = 3.0: t = 3.0 -> y = 0, t = 4.0 -> y = 2
    assert d.phi(3.0) == pytest.approx(math.log10(2), abs=1e-9)
    assert d.phi(4.0) == pytest.approx(1.64283, abs=1e-5)


def test_window_slides_and_min_interval_clamps() -> None:
    d = PhiAccrualDetector(max_sample_size=4, first_heartbeat_estimate=1.0, min_interval=0.5)
    for t in (0.0, 0.1, 0.2, 1.2, 2.2):
        d.heartbeat(t)
    # samples: bootstrap evicted; 0.1 and 0.1 clamped to 0.5; then 1.0, 1.0
    assert d.samples() == pytest.approx([0.5, 0.5, 1.0, 1.0])
    assert d.mean == pytest.approx(0.75)
    assert d.std_deviation == pytest.approx(0.25)
    d.heartbeat(1.0)  # out of order in time: ignored
    assert d.last == 2.2


def test_phi_is_monotonic_and_finite_for_huge_silences() -> None:
    d = PhiAccrualDetector(first_heartbeat_estimate=1.0, min_std_deviation=0.01)
    for t in range(20):
        d.heartbeat(float(t))
    values = [d.phi(19.0 + k * 0.5) for k in range(200)]
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))
    assert math.isfinite(d.phi(1e9)) and d.phi(1e9) > 1e6


def test_suspect_at_is_where_phi_reaches_the_threshold() -> None:
    d = PhiAccrualDetector(threshold=8.0, first_heartbeat_estimate=1.0, acceptable_heartbeat_pause=3.0)
    for t in range(10):
        d.heartbeat(float(t))
    at = d.suspect_at()
    assert at is not None
    assert d.phi(at) == pytest.approx(8.0, rel=1e-9)
    assert d.is_available(at - 1e-6) and not d.is_available(at + 1e-6)
    # hand check of the quantile: y (1.5976 + 0.070566 y^2) = ln(10^8 - 1)
    y = threshold_quantile(8.0)
    assert y * (1.5976 + 0.070566 * y * y) == pytest.approx(math.log(1e8 - 1), rel=1e-12)
    assert 5.2 < y < 5.25


@pytest.mark.parametrize("kwargs", [{"threshold": 0}, {"max_sample_size": 1}, {"min_std_deviation": 0},
                                    {"acceptable_heartbeat_pause": -1}, {"first_heartbeat_estimate": 0}])
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        PhiAccrualDetector(**kwargs)  # type: ignore[arg-type]


def _max_phi_over_jittery_run(seed: int, detector: PhiAccrualDetector, intervals: int, jitter: float) -> float:
    rng = random.Random(seed)
    t = 0.0
    detector.heartbeat(t)
    worst = 0.0
    for _ in range(intervals):
        gap = 1.0 * rng.uniform(1 - jitter, 1 + jitter)
        # phi is largest just before the next arrival
        worst = max(worst, detector.phi(t + gap - 1e-9))
        t += gap
        detector.heartbeat(t)
    return worst


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_jittery_live_node_is_never_suspected_at_the_default_threshold(seed: int) -> None:
    print(f"seed={seed}")
    cfg = MembershipConfig()  # the defaults the membership core uses
    detector = PhiAccrualDetector(
        threshold=cfg.phi_threshold, max_sample_size=cfg.window_size, min_std_deviation=cfg.min_std_deviation,
        acceptable_heartbeat_pause=cfg.acceptable_heartbeat_pause, first_heartbeat_estimate=cfg.heartbeat_interval,
        min_interval=cfg.heartbeat_interval,
    )
    worst = _max_phi_over_jittery_run(seed, detector, 5000, jitter=0.5)
    assert worst < cfg.phi_threshold
    # and even the bare detector (no acceptable pause, no clamp) stays far below 8 at +/-50 % jitter
    bare = PhiAccrualDetector(first_heartbeat_estimate=1.0)
    assert _max_phi_over_jittery_run(seed, bare, 5000, jitter=0.5) < cfg.phi_threshold / 2

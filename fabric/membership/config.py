"""Membership configuration: one frozen, validated dataclass with presets, and the detection-time bound.

Presets override only what differs from the defaults (which are :meth:`MembershipConfig.lan`):

* :meth:`MembershipConfig.local` - many nodes on one machine or in one simulation: fast timers.
* :meth:`MembershipConfig.lan` - one data centre: 1 s heartbeats, crash detected in about 6 s.
* :meth:`MembershipConfig.wan` - across regions: slower timers, more tolerance for latency spikes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from ..errors import ConfigError
from .detector import threshold_quantile


@dataclass(frozen=True, slots=True)
class FailureDetectorConfig:
    """The failure-detector configuration every overlay shares: heartbeats and phi-accrual detection,
    suspicion (direct and indirect probes, Lifeguard's dynamic timeout and local health) and the join
    backoff. :class:`MembershipConfig` (full-mesh) and
    :class:`~fabric.membership.overlay_config.OverlayConfig` (the record overlays) both extend it, so
    these fields mean the same everywhere. Validated on construction.
    """

    heartbeat_interval: float = 1.0
    """Seconds between two heartbeats to each monitored member (full-mesh: every peer; partial views: the neighbours) on the ``membership`` channel. Shorter detects
    crashes sooner (detection time scales with it) at the cost of one message per monitored member per interval."""

    phi_threshold: float = 8.0
    """Phi at or above which a peer becomes *suspect* (8 = the model puts the chance of a wrong
    suspicion at 1e-8). Higher tolerates more jitter and detects later (Akka uses 8 in a LAN, 10-12
    across regions)."""

    min_std_deviation: float = 0.1
    """Floor of the modelled standard deviation, seconds. Keeps a very regular peer from being suspected
    as soon as a heartbeat is slightly late; a larger floor detects later."""

    acceptable_heartbeat_pause: float = 3.0
    """Silence tolerated on top of the mean heartbeat interval, seconds (GC pauses, short bursts of loss:
    3 s tolerates about 3 lost heartbeats in a row at the default interval). It adds directly to the
    detection time."""

    suspect_timeout: float = 1.0
    """Seconds a peer must stay suspect (phi above threshold, locally) before this node declares it
    down and tells the others. 0 declares down at once; longer gives a late heartbeat a chance."""

    suspect_timeout_max: float = 3.0
    """Seconds a suspicion lasts when no other member confirms it (Lifeguard's dynamic suspicion
    timeout): the suspicion starts at this length and shrinks logarithmically to ``suspect_timeout`` as
    independent confirmations arrive (a helper that could not reach the suspect either, another member
    asking to probe it); ``indirect_probes`` confirmations reach the minimum. Longer gives a member that
    only this node cannot hear more time for an indirect ack; it bounds the detection time when nobody
    else notices the crash. Must be >= ``suspect_timeout``."""

    indirect_probes: int = 3
    """Members asked to probe a suspect on this node's behalf (SWIM's ping-req, k). Any ack through them
    clears the suspicion, so one lossy or one-way-broken link does not flap a healthy member; a nack is
    a confirmation. 0 disables; each costs four small messages per suspicion."""

    probe_timeout: float = 0.5
    """Seconds a helper waits for the suspect's answer to an indirect probe before it answers with a
    nack. Should exceed a round trip under load; longer delays the confirmations."""

    local_health_max: int = 4
    """Highest local health score (Lifeguard's LHM): a node whose timers run late (more than half a
    heartbeat interval) or whose helpers stay silent raises its score, and waits ``1 + score`` times
    longer before declaring a suspect down; the score falls one step per four quiet heartbeat intervals.
    A late timer also declares nothing until the input queued meanwhile has been processed. Larger
    protects a starved node's peers better and, on that node only, delays detection up to this many
    times; 0 disables local health awareness."""

    join_retry_initial: float = 0.5
    """First delay before re-dialling the seeds when a join has not succeeded, seconds."""

    join_retry_max: float = 10.0
    """Cap of the exponential join backoff (doubling from ``join_retry_initial``), seconds."""

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for name in ("heartbeat_interval", "phi_threshold", "min_std_deviation", "probe_timeout", "join_retry_initial",
                     "join_retry_max"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{owner}.{name} must be a finite number > 0, got {value!r}")
        for name in ("acceptable_heartbeat_pause", "suspect_timeout", "suspect_timeout_max"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{owner}.{name} must be a finite number >= 0, got {value!r}")
        for name in ("indirect_probes", "local_health_max"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{owner}.{name} must be an int >= 0, got {value!r}")
        if self.suspect_timeout_max < self.suspect_timeout:
            raise ConfigError(f"{owner}.suspect_timeout_max must be >= suspect_timeout")
        if self.join_retry_max < self.join_retry_initial:
            raise ConfigError(f"{owner}.join_retry_max must be >= join_retry_initial")


DETECTOR_LOCAL: dict[str, Any] = dict(
    heartbeat_interval=0.2,  # loopback is cheap and reliable
    min_std_deviation=0.05,
    # One machine means shared cores: with dozens of node processes on two cores a process is routinely
    # descheduled for most of a second (bench.formation, 32 processes: with a 0.6 s pause and a 0.2 s
    # suspicion here, healthy members were declared down 20-80 times while forming), so tolerate 5
    # missed heartbeats and give a suspicion 0.5-3 s; a crash is still declared in about 2 s.
    acceptable_heartbeat_pause=1.0,
    suspect_timeout=0.5,
    suspect_timeout_max=3.0,
    probe_timeout=0.2,
    join_retry_initial=0.1,
    join_retry_max=2.0,
)
"""The ``local()`` preset's failure-detector fields (shared by both config classes)."""

DETECTOR_WAN: dict[str, Any] = dict(
    heartbeat_interval=2.0,  # halves heartbeat traffic on expensive links
    phi_threshold=10.0,  # Akka's advice for lossy, jittery links
    min_std_deviation=0.5,
    acceptable_heartbeat_pause=10.0,
    suspect_timeout=5.0,
    suspect_timeout_max=15.0,
    probe_timeout=2.0,
    join_retry_initial=1.0,
    join_retry_max=60.0,
)
"""The ``wan()`` preset's failure-detector fields (shared by both config classes)."""


@dataclass(frozen=True, slots=True)
class MembershipConfig(FailureDetectorConfig):
    """Timers and thresholds of full-mesh membership and its phi-accrual failure detector.

    Every field is validated on construction (:class:`~fabric.errors.ConfigError` names the field).
    """

    gossip_interval: float = 1.0
    """Seconds between two anti-entropy rounds (full-state push-pull with ``gossip_fanout`` peers).
    Shorter converges faster after loss; each round costs O(members) bytes per target."""

    gossip_fanout: int = 3
    """Peers contacted per anti-entropy round. With fanout f a change reaches all N nodes in about
    log_f(N) rounds even without the eager push; higher values cost bandwidth."""

    window_size: int = 200
    """Inter-arrival samples kept per peer. Larger windows are steadier but adapt slower to a change of
    network conditions."""

    suspect_probes: int = 3
    """Direct probes sent to a suspect during ``suspect_timeout`` (a heartbeat with an answer requested,
    spread evenly, the first at once). A live peer answers at once, so a run of randomly lost heartbeats
    gets this many more chances before the peer is declared down. 0 disables; more costs a few
    messages per suspicion."""

    tombstone_ttl: float = 120.0
    """Seconds a down or left member is remembered. While remembered, its old incarnation can never
    come back (no resurrection from stale gossip) and a down member is probed now and then so that a
    healed partition re-merges. A partition longer than this heals only through the seeds."""

    grave_ttl: float = 3600.0
    """Seconds a node id's last dead incarnation is remembered after its tombstone expired (a few dozen
    bytes each). A claim for a buried incarnation never brings it back: the claim becomes a tombstone
    again, and a live owner learns it is down and refutes with a new incarnation. Longer is safer
    against very long partitions, at the cost of memory under heavy churn (capped by ``max_members``)."""

    probe_down_interval: float = 2.0
    """Seconds between two probes of one random *down* member (a full-state push to it). The probe is
    how the two sides of a healed partition find each other again; 0 disables it."""

    max_members: int = 4096
    """Most member entries (tombstones included) kept; entries beyond are refused and counted, which
    bounds memory against a peer that gossips garbage identities."""

    def __post_init__(self) -> None:
        FailureDetectorConfig.__post_init__(self)
        for name in ("gossip_interval", "tombstone_ttl", "grave_ttl"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"MembershipConfig.{name} must be a finite number > 0, got {value!r}")
        value = self.probe_down_interval
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"MembershipConfig.probe_down_interval must be a finite number >= 0, got {value!r}")
        for name, low in (("gossip_fanout", 1), ("window_size", 2), ("max_members", 2), ("suspect_probes", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"MembershipConfig.{name} must be an int >= {low}, got {value!r}")
        if self.tombstone_ttl <= self.suspect_timeout_max + self.acceptable_heartbeat_pause:
            raise ConfigError("MembershipConfig.tombstone_ttl must exceed suspect_timeout_max + acceptable_heartbeat_pause")

    @classmethod
    def lan(cls, **overrides: Any) -> MembershipConfig:
        """One data centre (the defaults)."""
        return cls(**overrides)

    @classmethod
    def local(cls, **overrides: Any) -> MembershipConfig:
        """Nodes on one machine or in a simulation: 5x faster heartbeats, more tolerance for a descheduled
        process (a crash is declared in about 2 s once others confirm it, at most about 4.5 s)."""
        base: dict[str, Any] = dict(
            DETECTOR_LOCAL,
            gossip_interval=0.2,
            tombstone_ttl=30.0,
            grave_ttl=600.0,
            probe_down_interval=0.5,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def wan(cls, **overrides: Any) -> MembershipConfig:
        """Across regions: latency spikes of seconds are normal, so tolerate more before suspecting."""
        base: dict[str, Any] = dict(
            DETECTOR_WAN,
            gossip_interval=2.0,
            tombstone_ttl=600.0,
            grave_ttl=86400.0,  # regions can stay apart for hours
            probe_down_interval=5.0,
        )
        base.update(overrides)
        return cls(**base)

    def replace(self, **changes: Any) -> MembershipConfig:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Field name -> value (for logging and the CLI)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def detection_bound(self, *, max_latency: float = 0.0, jitter: float = 0.0, drop: float = 0.0,
                        health: int = 0) -> float:
        """Upper bound on the time from a crash to this node declaring the peer down; see :func:`detection_bound`."""
        return detection_bound(self, max_latency=max_latency, jitter=jitter, drop=drop, health=health)


def detection_bound(config: MembershipConfig, *, max_latency: float = 0.0, jitter: float = 0.0, drop: float = 0.0,
                    health: int = 0) -> float:
    """Upper bound, in seconds, on the time from a peer's crash to every live node declaring it down.

    Args:
        config: the membership configuration all nodes use.
        max_latency: largest one-way delay of a message (seconds): the last heartbeat sent before the
            crash may arrive this late.
        jitter: spread of the one-way delay (max - min, seconds); inter-arrival times of heartbeats
            then lie in [interval - jitter, interval + jitter] and are clamped below at the interval.
        drop: message loss probability; each lost heartbeat stretches one sample by an interval.
        health: the observer's local health score (0 for a healthy node, at most ``local_health_max``):
            its suspicions last ``1 + health`` times longer.

    The observer's window then has mean at most ``mu = I + J + q*I`` and standard deviation at most
    ``sigma = max(min_std, I/4, sqrt((J/2)**2 + q*(1-q)*I**2))`` (I/4: the bootstrap samples) where ``q`` is a pessimistic loss share
    of the window (3x the loss rate plus 3 samples), and the detector crosses the threshold
    ``mu + pause + y_T * sigma`` after the last arrival, ``y_T`` being :func:`threshold_quantile`. Then
    the peer stays suspect for at most ``suspect_timeout_max`` (no confirmation from any other member;
    each confirmation shortens it towards ``suspect_timeout``), times ``1 + health``. Gossip from other
    observers can only make it earlier. The result is the documented bound in docs/membership.md and the one the simulation tests
    assert.
    """
    if max_latency < 0 or jitter < 0 or not 0 <= drop < 1 or not 0 <= health <= config.local_health_max:
        raise ConfigError("detection_bound: max_latency and jitter must be >= 0, drop in [0, 1), "
                          "health in 0..local_health_max")
    interval = config.heartbeat_interval
    q = min(1.0, 3 * drop + 3 / config.window_size) if drop > 0 else 0.0
    # window samples: interval..interval+jitter, a share q of them one or more intervals longer
    mean = interval + jitter + q * interval
    var = (jitter / 2) ** 2 + q * (1 - q) * interval**2
    # interval/4: the two bootstrap samples (interval +/- interval/4) stay in a young window
    std = max(config.min_std_deviation, interval / 4, math.sqrt(var))
    crossing = mean + config.acceptable_heartbeat_pause + threshold_quantile(config.phi_threshold) * std
    return max_latency + crossing + config.suspect_timeout_max * (1 + health)

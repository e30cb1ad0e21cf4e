"""Membership configuration: one frozen, validated dataclass for every overlay, with presets, and the
detection-time bound.

:class:`MembershipConfig` holds, once each:

* the failure detector every overlay shares (heartbeats, phi accrual, suspicion with direct and indirect
  probes, Lifeguard's local health, the join backoff);
* the full-mesh fields (full-state anti-entropy, tombstones and graves, probing down members);
* the record-overlay fields (hyparview, client-server, static: batched announcements, record refresh
  and expiry, anti-entropy by summaries, relay hop limit, bounds on records);
* :class:`HyParViewConfig` (``hyparview``) and :class:`PlumtreeConfig` (``plumtree``), nested.

Presets override only what differs from the defaults (which are :meth:`MembershipConfig.lan`), for every
overlay at once:

* :meth:`MembershipConfig.local` - many nodes on one machine or in one simulation: fast timers.
* :meth:`MembershipConfig.lan` - one data centre: 1 s heartbeats, crash detected in about 6 s.
* :meth:`MembershipConfig.wan` - across regions: slower timers, more tolerance for latency spikes.

HyParView's defaults are Partisan's (``?HYPARVIEW_DEFAULTS``) except ``prwl``: Partisan's default is 6;
the paper's is 3 and we use 3 (a joiner lands in passive views half-way along the walk, so passive views
get more diverse entries). Every field is validated on construction (:class:`~fabric.errors.ConfigError`
names the field).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..errors import ConfigError
from .detector import threshold_quantile


def _check_positive(owner: object, names: tuple[str, ...], *, allow_zero: bool = False) -> None:
    for name in names:
        value = getattr(owner, name)
        bad = not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value)
        if bad or value < 0 or (value == 0 and not allow_zero):
            op = ">= 0" if allow_zero else "> 0"
            raise ConfigError(f"{type(owner).__name__}.{name} must be a finite number {op}, got {value!r}")


def _check_ints(owner: object, limits: tuple[tuple[str, int], ...]) -> None:
    for name, low in limits:
        value = getattr(owner, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{type(owner).__name__}.{name} must be an int >= {low}, got {value!r}")


@dataclass(frozen=True, slots=True)
class HyParViewConfig:
    """HyParView partial views (Leitao, Pereira, Rodrigues, DSN 2007)."""

    active_max: int = 6
    """Largest active view: the symmetric links a node keeps open and monitors (Partisan 6, paper 5).
    log10(N) + c; larger tolerates more simultaneous failures at the cost of more heartbeats and more
    lazy-push (IHAVE) traffic per broadcast."""

    active_min: int = 3
    """Below this many active neighbours the node promotes passive nodes with high priority, and the
    periodic promotion keeps trying (Partisan ``active_min_size``)."""

    passive_max: int = 30
    """Largest passive view: backup nodes (identities only, no link) used to replace failed active
    neighbours. k(log N + c); larger heals faster after mass failures, costs memory and shuffle size."""

    arwl: int = 6
    """Active random walk length: hops a FORWARDJOIN travels before the last node adds the joiner to its
    active view. Longer walks spread joiners further from the contact node."""

    prwl: int = 3
    """Passive random walk length: at this remaining TTL a FORWARDJOIN hop adds the joiner to its passive
    view (paper 3; Partisan 6). Must be <= ``arwl``."""

    shuffle_interval: float = 10.0
    """Seconds between two shuffles (a random walk exchanging passive-view samples). Shorter refreshes the
    passive views faster (better healing) for more background traffic."""

    shuffle_ka: int = 3
    """Active-view ids carried in a shuffle (paper ka = 3)."""

    shuffle_kp: int = 4
    """Passive-view ids carried in a shuffle (paper kp = 4)."""

    shuffle_ttl: int = 6
    """Hops of a shuffle random walk (the paper uses ARWL)."""

    neighbor_timeout: float = 2.0
    """Seconds to wait for a NEIGHBOR answer before treating the passive node as dead and trying another.
    Should exceed a round trip plus a connect."""

    promotion_interval: float = 5.0
    """Seconds between two attempts to fill an active view that is below ``active_max`` (Partisan
    ``random_promotion_interval``). Failure handling promotes at once; this catches the rest."""

    probe_interval: float = 10.0
    """Seconds between two probe rounds. Each round (1) pings one random alive member that is not an
    active neighbour (two attempts, ``neighbor_timeout`` apart; no answer: it is declared down), which
    finds a crashed member whose neighbours all crashed with it; (2) sends a high-priority NEIGHBOR to one
    random *down* member: a dead node does not answer, a live one (the far side of a healed partition, or
    a false suspicion) becomes a neighbour and anti-entropy over that link re-merges the two sides.
    Costs about two message pairs per node per round. 0 disables probing."""

    def __post_init__(self) -> None:
        _check_positive(self, ("probe_interval",), allow_zero=True)
        _check_ints(self, (("active_max", 1), ("active_min", 1), ("passive_max", 1), ("arwl", 1), ("prwl", 0),
                           ("shuffle_ka", 0), ("shuffle_kp", 0), ("shuffle_ttl", 0)))
        _check_positive(self, ("shuffle_interval", "neighbor_timeout", "promotion_interval"))
        if self.active_min > self.active_max:
            raise ConfigError("HyParViewConfig.active_min must be <= active_max")
        if self.prwl > self.arwl:
            raise ConfigError("HyParViewConfig.prwl must be <= arwl")


@dataclass(frozen=True, slots=True)
class PlumtreeConfig:
    """Plumtree epidemic broadcast trees (Leitao, Pereira, Rodrigues, SRDS 2007)."""

    lazy_interval: float = 1.0
    """Seconds between two lazy-push rounds: IHAVE ids queued for each lazy peer are sent batched once
    per round (Partisan ``lazy_tick_period`` 1 s). Shorter repairs the tree faster, costs more control
    messages."""

    graft_timeout: float = 2.0
    """Seconds after the first IHAVE for a missing message before it is GRAFTed from the announcer (the
    paper's timer 1). Must exceed ``lazy_interval`` plus a round trip, or the eager copy still in flight
    is grafted needlessly."""

    graft_retry: float = 1.0
    """Seconds before grafting from the next announcer when the first graft brought nothing (timer 2)."""

    cache_size: int = 4096
    """Most message payloads kept to answer GRAFTs. Bounded memory against long-lived high-rate
    broadcasts; a payload evicted early cannot be repaired by graft (anti-entropy still spreads
    membership records)."""

    cache_ttl: float = 60.0
    """Seconds a payload is kept for GRAFTs."""

    seen_size: int = 65536
    """Most message ids remembered for duplicate detection. An id forgotten too early makes a late copy
    a new message (delivered twice), so keep ``seen_ttl`` well above the broadcast's spread time."""

    seen_ttl: float = 300.0
    """Seconds a message id is remembered for duplicate detection."""

    max_ihave: int = 512
    """Most ids in one IHAVE message (more are split into several)."""

    recent_window: float = 4.0
    """Seconds of recent message ids announced (one IHAVE) to a *new* neighbour, so a node whose links
    changed while a message spread grafts it from the new link. 0 disables; longer costs bigger IHAVEs
    on every view change."""

    def __post_init__(self) -> None:
        _check_positive(self, ("lazy_interval", "graft_timeout", "graft_retry", "cache_ttl", "seen_ttl"))
        _check_positive(self, ("recent_window",), allow_zero=True)
        _check_ints(self, (("cache_size", 1), ("seen_size", 1), ("max_ihave", 1)))
        if self.seen_ttl < self.cache_ttl:
            raise ConfigError("PlumtreeConfig.seen_ttl must be >= cache_ttl")


# the presets' failure-detector fields (one machine, then across regions)
_DETECTOR_LOCAL: dict[str, Any] = dict(
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

_DETECTOR_WAN: dict[str, Any] = dict(
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


@dataclass(frozen=True, slots=True)
class MembershipConfig:
    """Timers and bounds of membership for every overlay: the failure detector they share, full-mesh's
    anti-entropy and tombstones, the record overlays' records, and HyParView's and Plumtree's parameters.

    Full-mesh reads the detector and full-mesh fields; hyparview, client-server and static read the
    detector and record-overlay fields and ``hyparview`` / ``plumtree``. One object configures a node
    whatever its overlay, so a live topology switch keeps the same detector. Every field is validated on
    construction (:class:`~fabric.errors.ConfigError` names the field).
    """

    # -- the failure detector (every overlay) ---------------------------------------------------------

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

    # -- full-mesh ------------------------------------------------------------------------------------

    gossip_interval: float = 1.0
    """Full-mesh: seconds between two anti-entropy rounds (full-state push-pull with ``gossip_fanout``
    peers). Shorter converges faster after loss; each round costs O(members) bytes per target. (The
    record overlays exchange summaries instead, every ``sync_interval``.)"""

    gossip_fanout: int = 3
    """Full-mesh: peers contacted per anti-entropy round. With fanout f a change reaches all N nodes in
    about log_f(N) rounds even without the eager push; higher values cost bandwidth."""

    window_size: int = 200
    """Full-mesh: inter-arrival samples kept per peer. Larger windows are steadier but adapt slower to a
    change of network conditions. (The record overlays keep 100 per neighbour.)"""

    suspect_probes: int = 3
    """Full-mesh: direct probes sent to a suspect during ``suspect_timeout`` (a heartbeat with an answer
    requested, spread evenly, the first at once). A live peer answers at once, so a run of randomly lost
    heartbeats gets this many more chances before the peer is declared down. 0 disables; more costs a
    few messages per suspicion."""

    tombstone_ttl: float = 120.0
    """Full-mesh: seconds a down or left member is remembered. While remembered, its old incarnation can
    never come back (no resurrection from stale gossip) and a down member is probed now and then so that
    a healed partition re-merges. A partition longer than this heals only through the seeds. (The record
    overlays use ``record_tombstone_ttl``.)"""

    grave_ttl: float = 3600.0
    """Full-mesh: seconds a node id's last dead incarnation is remembered after its tombstone expired (a
    few dozen bytes each). A claim for a buried incarnation never brings it back: the claim becomes a
    tombstone again, and a live owner learns it is down and refutes with a new incarnation. Longer is
    safer against very long partitions, at the cost of memory under heavy churn (capped by
    ``max_members``)."""

    probe_down_interval: float = 2.0
    """Full-mesh: seconds between two probes of one random *down* member (a full-state push to it). The
    probe is how the two sides of a healed partition find each other again; 0 disables it."""

    max_members: int = 4096
    """Full-mesh: most member entries (tombstones included) kept; entries beyond are refused and counted,
    which bounds memory against a peer that gossips garbage identities. Every entry travels in each
    full-state exchange, hence the lower cap than ``max_records``."""

    # -- the record overlays (hyparview, client-server, static) -----------------------------------------

    announce_interval: float = 0.5
    """Record overlays: seconds membership changes (joins admitted, failures seen, refutations, metadata)
    wait to be broadcast together: one Plumtree broadcast per interval per node with changes, instead of
    one per change. A join storm of N nodes through one seed then costs a few broadcasts, not N (each of
    N - 1 messages). Adds at most this much to the spread time of a change; a leave is sent at once."""

    refresh_interval: float = 60.0
    """Record overlays: seconds between two re-broadcasts of a node's own alive record. Keeps records
    alive on nodes that are not neighbours; costs one broadcast per node per interval (N broadcasts of
    N-1 messages)."""

    record_ttl: float = 200.0
    """Record overlays: seconds after which an alive record not refreshed is considered down (reason
    ``"expired"``). The backstop for a crash nobody observed (all of a node's neighbours crashed with
    it). Must exceed ``refresh_interval`` (about 3x tolerates two lost refreshes)."""

    record_tombstone_ttl: float = 3600.0
    """Record overlays: seconds a down or left record is kept as a tombstone, and then as a grave (node
    id and last incarnation) for as long again: while kept, stale gossip cannot bring that incarnation
    back. Records spread by broadcast, not full-state exchange, so they are kept far longer than
    full-mesh's ``tombstone_ttl``."""

    sync_interval: float = 10.0
    """Record overlays: seconds between two anti-entropy rounds with one random neighbour: a 64-bit
    summary first, the digest only when summaries differ, then the missing records (Partisan
    ``exchange_tick_period``)."""

    relay_ttl: int = 5
    """Record overlays: default hop limit of a relayed message (Partisan ``relay_ttl`` 5)."""

    max_records: int = 65536
    """Record overlays: most records kept (tombstones and graves included); more are refused and
    counted."""

    hyparview: HyParViewConfig = field(default_factory=HyParViewConfig)
    """HyParView view parameters (``hyparview`` overlay)."""

    plumtree: PlumtreeConfig = field(default_factory=PlumtreeConfig)
    """Plumtree broadcast parameters (record overlays)."""

    def __post_init__(self) -> None:
        _check_positive(self, ("heartbeat_interval", "phi_threshold", "min_std_deviation", "probe_timeout",
                               "join_retry_initial", "join_retry_max", "gossip_interval", "tombstone_ttl",
                               "grave_ttl", "announce_interval", "refresh_interval", "record_ttl",
                               "record_tombstone_ttl", "sync_interval"))
        _check_positive(self, ("acceptable_heartbeat_pause", "suspect_timeout", "suspect_timeout_max",
                               "probe_down_interval"), allow_zero=True)
        _check_ints(self, (("indirect_probes", 0), ("local_health_max", 0), ("gossip_fanout", 1), ("window_size", 2),
                           ("max_members", 2), ("suspect_probes", 0), ("relay_ttl", 1), ("max_records", 2)))
        if self.suspect_timeout_max < self.suspect_timeout:
            raise ConfigError("MembershipConfig.suspect_timeout_max must be >= suspect_timeout")
        if self.join_retry_max < self.join_retry_initial:
            raise ConfigError("MembershipConfig.join_retry_max must be >= join_retry_initial")
        if self.tombstone_ttl <= self.suspect_timeout_max + self.acceptable_heartbeat_pause:
            raise ConfigError("MembershipConfig.tombstone_ttl must exceed suspect_timeout_max + acceptable_heartbeat_pause")
        if self.record_ttl <= self.refresh_interval:
            raise ConfigError("MembershipConfig.record_ttl must exceed refresh_interval")
        if not isinstance(self.hyparview, HyParViewConfig) or not isinstance(self.plumtree, PlumtreeConfig):
            raise ConfigError("MembershipConfig.hyparview / plumtree must be HyParViewConfig / PlumtreeConfig")

    @classmethod
    def lan(cls, **overrides: Any) -> MembershipConfig:
        """One data centre (the defaults)."""
        return cls(**overrides)

    @classmethod
    def local(cls, **overrides: Any) -> MembershipConfig:
        """Nodes on one machine or in a simulation: 5x faster heartbeats and timers, more tolerance for a
        descheduled process (a crash is declared in about 2 s once others confirm it, at most about
        4.5 s; a crashed neighbour on a partial view is failed in about 2 s)."""
        base: dict[str, Any] = dict(
            _DETECTOR_LOCAL,
            gossip_interval=0.2,
            tombstone_ttl=30.0,
            grave_ttl=600.0,
            probe_down_interval=0.5,
            announce_interval=0.1,
            refresh_interval=30.0,
            record_ttl=100.0,
            record_tombstone_ttl=600.0,
            sync_interval=2.0,
            hyparview=HyParViewConfig(shuffle_interval=5.0, neighbor_timeout=0.5, promotion_interval=1.0,
                                      probe_interval=2.0),
            plumtree=PlumtreeConfig(lazy_interval=0.2, graft_timeout=0.5, graft_retry=0.25, cache_ttl=30.0,
                                    seen_ttl=120.0, recent_window=1.0),
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def wan(cls, **overrides: Any) -> MembershipConfig:
        """Across regions: latency spikes of seconds are normal, so tolerate more before suspecting, and
        slow every timer down."""
        base: dict[str, Any] = dict(
            _DETECTOR_WAN,
            gossip_interval=2.0,
            tombstone_ttl=600.0,
            grave_ttl=86400.0,  # regions can stay apart for hours
            probe_down_interval=5.0,
            announce_interval=1.0,
            refresh_interval=120.0,
            record_ttl=400.0,
            sync_interval=30.0,
            hyparview=HyParViewConfig(shuffle_interval=30.0, neighbor_timeout=10.0, promotion_interval=15.0,
                                      probe_interval=30.0),
            plumtree=PlumtreeConfig(lazy_interval=2.0, graft_timeout=6.0, graft_retry=3.0, cache_ttl=300.0,
                                    seen_ttl=900.0, recent_window=12.0),
        )
        base.update(overrides)
        return cls(**base)

    def replace(self, **changes: Any) -> MembershipConfig:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Field name -> value (``hyparview`` and ``plumtree`` as dicts), for logging and the CLI."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            nested = isinstance(value, HyParViewConfig | PlumtreeConfig)
            out[f.name] = {g.name: getattr(value, g.name) for g in fields(value)} if nested else value
        return out

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

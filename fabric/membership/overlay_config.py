"""Overlay configuration: frozen, validated dataclasses with Partisan's defaults and presets.

Three dataclasses, one per concern, composed into :class:`OverlayConfig`:

* :class:`HyParViewConfig` - view sizes, random-walk lengths, shuffle (Leitao et al. 2007; Partisan's
  ``?HYPARVIEW_DEFAULTS``). Partisan's ``passive_rwl`` default is 6; the paper's is 3 and we use 3 (a
  joiner lands in passive views half-way along the walk, so passive views get more diverse entries).
* :class:`PlumtreeConfig` - lazy-push round, graft timeouts, message-id cache bounds.
* :class:`OverlayConfig` - what every record-based overlay shares: heartbeats and phi on neighbours,
  membership record refresh / expiry, anti-entropy, relay hop limit, join retry.

Presets :meth:`OverlayConfig.local` (simulations, one machine), :meth:`OverlayConfig.lan` (the defaults)
and :meth:`OverlayConfig.wan` override only what differs. Every field is validated on construction
(:class:`~fabric.errors.ConfigError` names the field).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..errors import ConfigError
from .config import DETECTOR_LOCAL, DETECTOR_WAN, FailureDetectorConfig


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


@dataclass(frozen=True, slots=True)
class OverlayConfig(FailureDetectorConfig):
    """Everything a record-based overlay (HyParView, client-server, static) needs.

    Membership on these overlays is a set of *records* (one per node id: identity, incarnation,
    version, status) spread over the Plumtree broadcast tree and repaired by anti-entropy; liveness of
    *neighbours* comes from heartbeats and a phi-accrual detector.
    """

    announce_interval: float = 0.5
    """Seconds membership changes (joins admitted, failures seen, refutations, metadata) wait to be
    broadcast together: one Plumtree broadcast per interval per node with changes, instead of one per
    change. A join storm of N nodes through one seed then costs a few broadcasts, not N (each of N - 1
    messages). Adds at most this much to the spread time of a change; a leave is sent at once."""

    refresh_interval: float = 60.0
    """Seconds between two re-broadcasts of a node's own alive record. Keeps records alive on nodes that
    are not neighbours; costs one broadcast per node per interval (N broadcasts of N-1 messages)."""

    record_ttl: float = 200.0
    """Seconds after which an alive record not refreshed is considered down (reason ``"expired"``). The
    backstop for a crash nobody observed (all of a node's neighbours crashed with it). Must exceed
    ``refresh_interval`` (about 3x tolerates two lost refreshes)."""

    tombstone_ttl: float = 3600.0
    """Seconds a down or left record is kept: while kept, stale gossip cannot bring that incarnation
    back."""

    sync_interval: float = 10.0
    """Seconds between two anti-entropy rounds with one random neighbour: a 64-bit summary first, the
    digest only when summaries differ, then the missing records (Partisan ``exchange_tick_period``)."""

    relay_ttl: int = 5
    """Default hop limit of a relayed message (Partisan ``relay_ttl`` 5)."""

    max_members: int = 65536
    """Most records kept (tombstones included); more are refused and counted."""

    hyparview: HyParViewConfig = field(default_factory=HyParViewConfig)
    """HyParView view parameters."""

    plumtree: PlumtreeConfig = field(default_factory=PlumtreeConfig)
    """Plumtree broadcast parameters."""

    def __post_init__(self) -> None:
        FailureDetectorConfig.__post_init__(self)
        _check_positive(self, ("refresh_interval", "announce_interval", "record_ttl", "tombstone_ttl", "sync_interval"))
        _check_ints(self, (("relay_ttl", 1), ("max_members", 2)))
        if self.record_ttl <= self.refresh_interval:
            raise ConfigError("OverlayConfig.record_ttl must exceed refresh_interval")
        if not isinstance(self.hyparview, HyParViewConfig) or not isinstance(self.plumtree, PlumtreeConfig):
            raise ConfigError("OverlayConfig.hyparview / plumtree must be HyParViewConfig / PlumtreeConfig")

    @classmethod
    def lan(cls, **overrides: Any) -> OverlayConfig:
        """One data centre (the defaults)."""
        return cls(**overrides)

    @classmethod
    def local(cls, **overrides: Any) -> OverlayConfig:
        """One machine or a simulation: 5x faster timers (a crashed neighbour is failed in about 2 s)."""
        base: dict[str, Any] = dict(
            DETECTOR_LOCAL,
            announce_interval=0.1,
            refresh_interval=30.0,
            record_ttl=100.0,
            tombstone_ttl=600.0,
            sync_interval=2.0,
            hyparview=HyParViewConfig(shuffle_interval=5.0, neighbor_timeout=0.5, promotion_interval=1.0,
                                      probe_interval=2.0),
            plumtree=PlumtreeConfig(lazy_interval=0.2, graft_timeout=0.5, graft_retry=0.25, cache_ttl=30.0,
                                    seen_ttl=120.0, recent_window=1.0),
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def wan(cls, **overrides: Any) -> OverlayConfig:
        """Across regions: slower timers, more tolerance for latency spikes."""
        base: dict[str, Any] = dict(
            DETECTOR_WAN,
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

    def replace(self, **changes: Any) -> OverlayConfig:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Field name -> value (nested configs as dicts), for logging and the CLI."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = {g.name: getattr(value, g.name) for g in fields(value)} if f.name in (
                "hyparview", "plumtree") else value
        return out

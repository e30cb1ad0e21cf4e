"""Cluster-wide topology switching without a consensus service (sans-IO).

Theory of operation
-------------------
Every node holds the cluster's *topology state*: ``(overlay, epoch, proposer)``. States are ordered by
``(epoch, proposer node id)``; the larger one wins everywhere, so any set of concurrent proposals
converges on one topology once the states have spread (a last-writer-wins register whose ties are broken
by node id).

* :meth:`TopologyCoordinator.propose` makes a new state ``(new, epoch + 1, self)``, adopts it and returns
  it for the driver to announce to every member. The compare-and-set form passes ``expected`` (the
  overlay, optionally with the epoch, the caller believes current) and is refused with
  :class:`TopologyConflict` when the local state differs. A switch is refused with
  :class:`TopologyCooldown` within ``cooldown`` seconds of the last one (no flapping).
* :meth:`TopologyCoordinator.merge` takes a state heard from a peer (an announcement, or the ``tp``
  field every membership heartbeat carries) and returns the new state when it wins: the driver then
  switches its overlay. Heartbeats are the anti-entropy: a node that missed the announcement converges
  within one heartbeat interval of a peer that has the newer state.

A losing concurrent proposal is overridden everywhere, its proposer included; the CAS check is local
(against the epoch this node holds), which is what can be promised without consensus.

Epoch range (issue 16): epochs are 0..:data:`MAX_EPOCH` on the wire (a signed 64-bit integer, which every
msgpack implementation reads). A heard state outside that range is malformed; one more than
:data:`MAX_EPOCH_STEP` above ours is refused (counted ``out_of_range``): legitimate epochs grow by one
per switch, with a cooldown between switches, so such a jump can only be forged, and accepting it would
let one message burn the epoch space. ``propose`` never produces an epoch beyond :data:`MAX_EPOCH`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, FabricError

MAX_EPOCH = 2**63 - 1
"""The largest topology epoch the protocol carries (signed 64-bit)."""

MAX_EPOCH_STEP = 2**32
"""The largest step above the local epoch a heard state may take (more is refused as forged)."""


class TopologyError(FabricError):
    """Base of the topology switching errors."""


class TopologyConflict(TopologyError):
    """Compare-and-set failed: the current topology is not the expected one."""


class TopologyCooldown(TopologyError):
    """A switch was asked for too soon after the previous one."""


@dataclass(frozen=True, order=True)
class TopologyState:
    """The cluster's topology as one node knows it; ordered by ``(epoch, proposer)``."""

    epoch: int
    proposer: bytes
    overlay: str

    def to_wire(self) -> dict[str, Any]:
        """The ``tp`` map carried in heartbeats and announcements: ``{e: epoch, p: proposer, o: overlay}``."""
        return {"e": self.epoch, "p": self.proposer, "o": self.overlay}

    @classmethod
    def from_wire(cls, raw: Any, overlays: tuple[str, ...]) -> TopologyState | None:
        """Parse a ``tp`` map; None when it is malformed or names an unknown overlay (ignored, counted)."""
        if not isinstance(raw, dict):
            return None
        epoch, proposer, overlay = raw.get("e"), raw.get("p"), raw.get("o")
        if (
            not isinstance(epoch, int)
            or isinstance(epoch, bool)
            or not 0 <= epoch <= MAX_EPOCH
            or not isinstance(proposer, bytes)
            or len(proposer) != 16
            or overlay not in overlays
        ):
            return None
        return cls(epoch, proposer, overlay)


class TopologyCoordinator:
    """One node's view of the cluster topology (see the module docstring). Not thread-safe."""

    def __init__(self, node_id: bytes, overlay: str, overlays: tuple[str, ...], *, cooldown: float = 10.0,
                 now: float = 0.0) -> None:
        if overlay not in overlays:
            raise ConfigError(f"unknown overlay {overlay!r}")
        self.node_id = node_id
        self.overlays = overlays
        self.cooldown = cooldown
        self.state = TopologyState(0, bytes(16), overlay)
        self._switched_at = -float("inf")
        self.counters: dict[str, int] = {"proposed": 0, "adopted": 0, "ignored": 0, "malformed": 0, "out_of_range": 0}
        del now  # the clock is only read through the arguments of later calls

    def propose(self, overlay: str, now: float, *, expected: str | tuple[str, int] | None = None) -> TopologyState:
        """Adopt ``overlay`` as a new epoch proposed by this node and return the state to announce.

        Raises ConfigError (a ValueError: unknown overlay), TopologyError (the epoch is already the protocol's
        last, 2**63-1: only a forged state gets there), TopologyConflict (``expected`` does not match the current
        overlay, or overlay and epoch), TopologyCooldown (within ``cooldown`` of the last switch).
        """
        if overlay not in self.overlays:
            raise ConfigError(f"unknown overlay {overlay!r}; known: {', '.join(self.overlays)}")
        if expected is not None:
            want_overlay, want_epoch = (expected, None) if isinstance(expected, str) else expected
            if want_overlay != self.state.overlay or (want_epoch is not None and want_epoch != self.state.epoch):
                raise TopologyConflict(
                    f"expected {expected!r} but the topology is {self.state.overlay!r} at epoch {self.state.epoch}"
                )
        if now - self._switched_at < self.cooldown:
            raise TopologyCooldown(f"the topology changed {now - self._switched_at:.1f}s ago (cooldown {self.cooldown:g}s)")
        if self.state.epoch >= MAX_EPOCH:
            raise TopologyError(f"topology epoch {self.state.epoch} is the protocol's last: no switch can follow it")
        self.state = TopologyState(self.state.epoch + 1, self.node_id, overlay)
        self._switched_at = now
        self.counters["proposed"] += 1
        return self.state

    def merge(self, raw: Any, now: float) -> TopologyState | None:
        """A state heard from a peer (its ``tp`` map). Returns the new state when it wins (switch to it),
        None when it is older, equal or malformed."""
        state = TopologyState.from_wire(raw, self.overlays)
        if state is None:
            self.counters["malformed"] += 1
            return None
        if state <= self.state:
            if state < self.state:
                self.counters["ignored"] += 1
            return None
        if state.epoch > self.state.epoch + MAX_EPOCH_STEP:
            self.counters["out_of_range"] += 1
            return None
        changed = state.overlay != self.state.overlay
        self.state = state
        self.counters["adopted"] += 1
        if changed:
            self._switched_at = now
        return state

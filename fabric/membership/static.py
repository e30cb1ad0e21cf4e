"""Static overlay: membership from configuration, links to every configured member, events from the
failure detector.

Theory of operation
-------------------
The member list is given - identities, or membership endpoints whose node is learnt by the HELLO /
WELCOME handshake (``Dial`` then :meth:`StaticOverlay.contact`) - so there is no join protocol and no
membership gossip: :meth:`StaticOverlay.join` links to every configured member and the node is joined at
once. Endpoints not answering are re-dialled every ``join_retry_max``. Every ``heartbeat_interval`` the node sends ``hb`` to every configured member, up or not. A member
becomes **up** (``MemberUp``) when its first message arrives (the heartbeat carries its incarnation) and
**down** (``MemberDown``, reason ``"unreachable"``) when this node's own phi detector says so; it comes
up again when it is heard from again. Each node decides from its own evidence (Partisan's static manager
has no callbacks at all). A member that restarts with a higher incarnation is reported down
(``"restarted"``) and up again. A graceful leave broadcasts the left record (``MemberLeft`` everywhere).

Broadcasts run Plumtree over the links to up members; relays go straight to the target (every member is
a neighbour). Members outside the configuration are ignored (counted ``stray_hb``).

Message ops (MEMBERSHIP): ``hb`` only (``{in: int}``); TREE ops as every record overlay.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from .config import MembershipConfig
from .overlay import (
    OP_HEARTBEAT,
    ST_ALIVE,
    ST_DOWN,
    ST_LEFT,
    OverlayEffect,
    RecordOverlay,
    _Record,
    _uint,
)
from .types import Connect, Dial, Identity, Joined


class StaticOverlay(RecordOverlay):
    """A node of a statically configured cluster.

    Args:
        identity: this node.
        members: the configured members (this node may be listed; it is skipped).
        config: overlay configuration (heartbeats and phi; refresh and anti-entropy are not used).
        rng: seeded random source.
        now: current time.
    """

    membership_ops = (OP_HEARTBEAT,)

    def __init__(self, identity: Identity, members: Sequence[Identity | str], config: MembershipConfig | None = None, *,
                 rng: random.Random | None = None, now: float = 0.0) -> None:
        super().__init__(identity, config, rng=rng, now=now)
        own = {spec[1] for spec in identity.endpoints.values()}
        self._configured: dict[bytes, Identity] = {
            m.node_id: m for m in members if isinstance(m, Identity) and m.node_id != identity.node_id}
        self._endpoints = sorted({m for m in members if isinstance(m, str) and m not in own})
        # membership is local evidence only: no record exchange
        self._next_sync = math.inf
        self._next_refresh = math.inf
        self._next_redial = math.inf

    def configured(self) -> list[bytes]:
        """Node ids of the configured members known so far (this node excluded), sorted."""
        return sorted(self._configured)

    def _unknown_endpoints(self) -> list[str]:
        known = {spec[1] for m in self._configured.values() for spec in m.endpoints.values()}
        return [e for e in self._endpoints if e not in known]

    def join(self, seeds: Sequence[str], now: float) -> list[OverlayEffect]:
        """Link to every configured member; dial the configured endpoints whose member is not known yet
        (re-dialled every ``join_retry_max``). ``seeds`` are ignored. Joined at once."""
        effects: list[OverlayEffect] = [Connect(m) for _, m in sorted(self._configured.items())]
        effects.extend(Dial(e) for e in self._unknown_endpoints())
        self._next_redial = now + self.config.join_retry_max
        if not self._joined:
            self._joined = True
            effects.append(Joined())
        return effects

    def contact(self, identity: Identity, now: float) -> list[OverlayEffect]:
        """A handshake completed: a configured endpoint's member is now known; link and probe it."""
        effects: list[OverlayEffect] = []
        nid = identity.node_id
        listed = nid in self._configured or any(spec[1] in self._endpoints for spec in identity.endpoints.values())
        if self._leaving or nid == self.node_id or not listed:
            return effects
        self._configured[nid] = identity
        effects.append(Connect(identity))
        self._send(effects, nid, OP_HEARTBEAT, {"in": self.incarnation})
        return effects

    def _policy_deadline(self) -> float:
        return self._next_redial

    def _policy_tick(self, now: float, effects: list[OverlayEffect]) -> None:
        if now >= self._next_redial:
            self._next_redial = now + self.config.join_retry_max
            effects.extend(Dial(e) for e in self._unknown_endpoints())

    def _heartbeat_targets(self) -> list[bytes]:
        # the monitored (up) members, then the configured ones that are not up: their answer brings them up
        targets = sorted(self._nbrs)
        if self._joined:
            targets.extend(nid for nid in sorted(self._configured) if nid not in self._nbrs)
        return targets

    def receive(self, source: bytes, op: str, body: Any, now: float) -> list[OverlayEffect]:
        """See :meth:`RecordOverlay.receive`; a heartbeat with a higher incarnation from an up member
        means it restarted (down ``"restarted"``, then up)."""
        if op == OP_HEARTBEAT and source in self._nbrs and isinstance(body, dict) and not self._leaving:
            rec = self._records.get(source)
            inc = _uint(body.get("in"), "hb in")
            if rec is not None and inc > rec.identity.incarnation:
                effects: list[OverlayEffect] = []
                self._on_stray_heartbeat(source, body, now, effects)
                effects.extend(super().receive(source, op, body, now))
                return effects
        return super().receive(source, op, body, now)

    def _merge(self, new: _Record, now: float, effects: list[OverlayEffect]) -> bool:
        # a left record from the member itself ends its current incarnation, whatever our local version
        old = self._records.get(new.node_id)
        if new.st == ST_LEFT and old is not None and old.identity.incarnation == new.identity.incarnation:
            if old.st == ST_LEFT:
                return False
            self._set_status(old, ST_LEFT, "left", now, effects)
            self._drop_neighbour(new.node_id, effects, disconnect=False)
            return True
        return super()._merge(new, now, effects)

    def _revive(self, rec: _Record, identity: Identity, now: float, effects: list[OverlayEffect]) -> None:
        """Bring a member this node alone held as down back up at the same key it had while alive."""
        self._summary_remove(rec)
        fresh = _Record(identity, rec.v, ST_ALIVE, now)
        self._records[rec.node_id] = fresh
        self._summary_add(fresh)
        self._count("revived")
        self._alive_record(fresh, now, effects)
        self._on_record(fresh, rec.st, now, effects)

    def _on_stray_heartbeat(self, source: bytes, body: dict[str, Any], now: float,
                            effects: list[OverlayEffect]) -> None:
        configured = self._configured.get(source)
        if configured is None:
            self._count("stray_hb")
            return
        inc = _uint(body.get("in"), "hb in")
        rec = self._records.get(source)
        if rec is not None and inc < rec.identity.incarnation:
            return  # an old incarnation still talking
        identity = Identity(source, configured.name, inc, configured.metadata, configured.endpoints)
        if rec is None or inc > rec.identity.incarnation:
            self._merge(_Record(identity, 0, ST_ALIVE, now), now, effects)
        elif rec.st == ST_DOWN:
            # heard again after our detector gave up on it: up again. A local decision (the down record
            # was never announced), so the record is replaced here rather than merged: no alive claim
            # beats a down one within an incarnation (see fabric.membership.records)
            self._revive(rec, identity, now, effects)
        elif rec.st != ST_ALIVE:
            return  # it left
        self._add_neighbour(identity, now, effects)

    def _neighbour_failed(self, node_id: bytes, reason: str, now: float, effects: list[OverlayEffect]) -> None:
        # only this node's opinion: no down record is broadcast, nobody refutes
        if not self._drop_neighbour(node_id, effects, disconnect=False):
            return
        self._count("neighbour_failed")
        rec = self._records.get(node_id)
        if rec is not None and rec.st == ST_ALIVE:
            self._set_status(rec, ST_DOWN, reason, now, effects)

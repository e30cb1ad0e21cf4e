"""Overlays: the full-mesh adapter, and the names every overlay module used to import from here.

The overlay interface (:class:`Overlay`, :class:`Deliver`, the effects) is in
:mod:`fabric.membership.interface`; the record-based core of HyParView, client-server and static
(:class:`RecordOverlay`) in :mod:`fabric.membership.record`; both are re-exported here, so
``from fabric.membership.overlay import ...`` keeps working. :func:`~fabric.membership.make_overlay`
builds any overlay by name.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import MembershipError
from .fullmesh import FullMeshMembership
from .interface import (
    OP_HEARTBEAT,
    OP_RELAY,
    OP_SYNC,
    Deliver,
    Overlay,
    OverlayEffect,
    _bad,
    _node_id,
    _relay_body,
    _uint,
    identity_from_wire,
    identity_to_wire,
)
from .plumtree import KIND_APP, TreeSend
from .record import RecordOverlay
from .records import _Neighbour, _Record, _record_from_wire, _wire_key
from .types import ST_ALIVE, ST_DOWN, ST_LEFT, Identity, Member

__all__ = [
    "OP_HEARTBEAT", "OP_RELAY", "OP_SYNC", "ST_ALIVE", "ST_DOWN", "ST_LEFT", "Deliver", "FullMeshOverlay", "Overlay",
    "OverlayEffect", "RecordOverlay", "_Neighbour", "_Record", "_bad", "_node_id", "_record_from_wire", "_relay_body",
    "_uint", "_wire_key", "identity_from_wire", "identity_to_wire",
]


class FullMeshOverlay:
    """The full-mesh membership core as an :class:`Overlay`: every member is a neighbour, broadcasts go
    straight to each live member (one TREE ``gossip`` each), relays are direct sends.

    Args:
        core: the :class:`FullMeshMembership` to drive (its effects pass through unchanged).
        seen_size: message ids remembered to drop duplicated broadcasts (the network may duplicate).
    """

    def __init__(self, core: FullMeshMembership, *, seen_size: int = 65536) -> None:
        self.core = core
        self._seq = 0
        self._seen: dict[bytes, None] = {}
        self._seen_size = seen_size
        self.counters: dict[str, int] = {}
        self.last_broadcast_id: bytes | None = None
        """Id of the latest :meth:`broadcast`."""

    @property
    def node_id(self) -> bytes:
        """This node's id."""
        return self.core.node_id

    @property
    def local(self) -> Identity:
        """This node's identity."""
        return self.core.local

    @property
    def joined(self) -> bool:
        """See :attr:`FullMeshMembership.joined`."""
        return self.core.joined

    @property
    def leaving(self) -> bool:
        """True after :meth:`leave`."""
        return self.core.leaving

    def members(self) -> list[Member]:
        """See :meth:`FullMeshMembership.members`."""
        return self.core.members()

    def alive_members(self) -> list[Member]:
        """See :meth:`FullMeshMembership.alive_members`."""
        return self.core.alive_members()

    def neighbours(self) -> list[bytes]:
        """Every up member other than this node (see :meth:`FullMeshMembership.neighbours`)."""
        return self.core.neighbours()

    def join(self, seeds: Sequence[str], now: float) -> list[OverlayEffect]:
        """See :meth:`FullMeshMembership.join`."""
        return list(self.core.join(seeds, now))

    def adopt(self, members: Sequence[Member], now: float) -> list[OverlayEffect]:
        """See :meth:`FullMeshMembership.adopt`."""
        return list(self.core.adopt([m.identity() for m in members], now))

    def contact(self, identity: Identity, now: float) -> list[OverlayEffect]:
        """See :meth:`FullMeshMembership.contact`."""
        return list(self.core.contact(identity, now))

    def receive(self, source: bytes, op: str, body: Any, now: float) -> list[OverlayEffect]:
        """See :meth:`FullMeshMembership.receive`."""
        return list(self.core.receive(source, op, body, now))

    def traffic(self, source: bytes, now: float) -> list[OverlayEffect]:
        """See :meth:`FullMeshMembership.traffic`."""
        return list(self.core.traffic(source, now))

    def link_up(self, node_id: bytes, now: float) -> list[OverlayEffect]:
        """See :meth:`FullMeshMembership.link_up`."""
        return list(self.core.link_up(node_id, now))

    def link_down(self, node_id: bytes, now: float) -> list[OverlayEffect]:
        """See :meth:`FullMeshMembership.link_down` (a hint only: phi declares members down)."""
        return list(self.core.link_down(node_id, now))

    def leave(self, now: float) -> list[OverlayEffect]:
        """See :meth:`FullMeshMembership.leave`."""
        return list(self.core.leave(now))

    def set_metadata(self, metadata: Mapping[str, str], now: float) -> list[OverlayEffect]:
        """See :meth:`FullMeshMembership.set_metadata`."""
        return list(self.core.set_metadata(metadata, now))

    def tick(self, now: float) -> list[OverlayEffect]:
        """See :meth:`FullMeshMembership.tick`."""
        return list(self.core.tick(now))

    def next_deadline(self) -> float | None:
        """See :meth:`FullMeshMembership.next_deadline`."""
        return self.core.next_deadline()

    def stats(self) -> dict[str, int]:
        """The core's counters plus broadcast / relay counters."""
        out = self.core.stats()
        out.update(self.counters)
        return out

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def broadcast(self, payload: Any, now: float) -> list[OverlayEffect]:
        """One ``gossip`` to each live member (the id makes a duplicated delivery harmless)."""
        if self.core.leaving:
            return []
        self._seq += 1
        msg_id = self.node_id + struct.pack(">IQ", self.core.incarnation & 0xFFFFFFFF, self._seq)
        body = {"i": msg_id, "h": 0, "k": KIND_APP, "p": payload}
        self.last_broadcast_id = msg_id
        targets = self.neighbours()
        self._count("sent_gossip", len(targets))
        return [TreeSend(nid, "gossip", body) for nid in targets]

    def send_to(self, target: bytes, payload: Any, now: float, *, ttl: int | None = None) -> list[OverlayEffect]:
        """A direct send (every member is a neighbour: one hop); to an unknown member nothing is sent."""
        if target == self.node_id:
            return [Deliver(self.node_id, payload, True, 0)]
        if ttl is not None and ttl < 1:
            raise MembershipError("ttl must be >= 1")
        if target not in set(self.neighbours()):
            self._count("relay_no_route")
            return []
        self._count("sent_relay")
        self._seq += 1
        relay_id = self.node_id + struct.pack(">IQ", self.core.incarnation & 0xFFFFFFFF, self._seq)
        return [TreeSend(target, OP_RELAY, {"o": self.node_id, "t": target, "h": 1 if ttl is None else ttl,
                                            "i": relay_id, "p": payload})]

    def receive_tree(self, source: bytes, op: str, body: Any, now: float) -> list[OverlayEffect]:
        """``gossip`` (a broadcast sent straight to us) and ``relay``; both count as a sign of life.

        Raises BadMembershipMessage on a bad body.
        """
        if self.core.leaving:
            return []
        if not isinstance(body, dict):
            raise _bad(f"{op} body must be a map")
        effects: list[OverlayEffect] = list(self.core.traffic(source, now))
        if op == "gossip":
            msg_id = body.get("i")
            if not isinstance(msg_id, bytes) or len(msg_id) != 28:
                raise _bad("gossip i must be a message id")
            if msg_id in self._seen:
                self._count("duplicates")
                return effects
            self._seen[msg_id] = None
            if len(self._seen) > self._seen_size:
                del self._seen[next(iter(self._seen))]
            effects.append(Deliver(msg_id[:16], body.get("p"), False, 1, msg_id))
        elif op == OP_RELAY:
            origin, target, _ = _relay_body(body)
            if target == self.node_id:
                effects.append(Deliver(origin, body.get("p"), True, 1))
            else:
                self._count("relay_misrouted")
        else:
            self._count("unknown_op")
        return effects

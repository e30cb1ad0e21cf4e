"""Client-server overlay: servers in a full mesh, clients linked only to servers (a star of stars).

Theory of operation
-------------------
Every node has a *role*, carried in its identity metadata under :data:`ROLE_KEY` (``"server"`` or
``"client"``). Links:

* a server links to every other server and to every client that links to it;
* a client links to every server, never to another client (Partisan's client refuses clients).

Membership is the record machinery of :class:`~fabric.membership.overlay.RecordOverlay`: a node joins by
dialling a server (``join``); the server answers with its state (``sync``) and broadcasts the joiner's
record over the tree. Whenever a node learns an alive record of a server it is not linked to, it links
and sends ``neighbor``; the server accepts (a client accepts only servers). So clients get the full
membership and every membership event, like servers. Broadcasts run Plumtree over these links (the
eager tree settles to client -> one server -> the other servers -> their clients); relays go directly
to neighbours or along the tree (a client reaches another client in two hops through a server).

Failure detection: heartbeats and phi on links (as every record overlay). A failed server is dropped
and its record marked down; when it comes back (a new alive record), everyone links to it again.

Message ops (MEMBERSHIP): ``hb``, ``sync`` (see :mod:`fabric.membership.overlay`) and::

    op        body          meaning
    join      {m: ENTRY}    the sender joins through this server
    neighbor  {m: ENTRY}    link with me (client -> server, server -> server)
"""

from __future__ import annotations

import random
from typing import Any

from .config import MembershipConfig
from .errors import MembershipError
from .overlay import (
    OP_HEARTBEAT,
    OP_SYNC,
    ST_ALIVE,
    ST_LEFT,
    OverlayEffect,
    RecordOverlay,
    _bad,
    _Record,
    identity_from_wire,
    identity_to_wire,
)
from .types import Connect, Disconnect, Identity

ROLE_KEY = "overlay.role"
"""Identity metadata key holding a node's role in the client-server overlay."""
SERVER = "server"
CLIENT = "client"
OP_JOIN = "join"
OP_NEIGHBOR = "neighbor"
CLIENT_SERVER_OPS = (OP_HEARTBEAT, OP_SYNC, OP_JOIN, OP_NEIGHBOR)
"""The MEMBERSHIP ops of the client-server overlay."""


def role_of(identity: Identity) -> str:
    """A node's role (``"server"`` unless its metadata says ``"client"``)."""
    return CLIENT if identity.metadata.get(ROLE_KEY) == CLIENT else SERVER


def with_role(identity: Identity, role: str) -> Identity:
    """``identity`` with its role set in the metadata. Raises MembershipError for an unknown role."""
    if role not in (SERVER, CLIENT):
        raise MembershipError(f"role must be {SERVER!r} or {CLIENT!r}")
    return Identity(identity.node_id, identity.name, identity.incarnation, {**identity.metadata, ROLE_KEY: role},
                    identity.endpoints, identity.boot)


class ClientServer(RecordOverlay):
    """A client-server overlay node.

    Args:
        identity: this node (its metadata gets ``overlay.role``).
        role: ``"server"`` or ``"client"``.
        config: overlay configuration.
        rng: seeded random source.
        now: current time.

    Raises:
        MembershipError: for an unknown role or a bad node id.
    """

    membership_ops = CLIENT_SERVER_OPS

    def __init__(self, identity: Identity, role: str, config: MembershipConfig | None = None, *,
                 rng: random.Random | None = None, now: float = 0.0) -> None:
        super().__init__(with_role(identity, role), config, rng=rng, now=now)
        self.role = role

    def _wants_link(self, identity: Identity) -> bool:
        return identity.node_id != self.node_id and (self.role == SERVER or role_of(identity) == SERVER)

    def contact(self, identity: Identity, now: float) -> list[OverlayEffect]:
        """The handshake with a seed (a server) completed: link to it and ``join``."""
        effects: list[OverlayEffect] = []
        if self._leaving or not self._dialing or identity.node_id in self._nbrs:
            return effects
        if role_of(identity) != SERVER:
            self._count("seed_not_server")
            return effects
        self._add_neighbour(identity, now, effects)
        self._send(effects, identity.node_id, OP_JOIN, {"m": identity_to_wire(self.local)})
        return effects

    def _receive_op(self, source: bytes, op: str, body: dict[str, Any], now: float,
                    effects: list[OverlayEffect]) -> None:
        peer = identity_from_wire(body.get("m"))
        if peer.node_id != source:
            raise _bad(f"{op} m must be the sender's entry")
        if op == OP_JOIN:
            if self.role != SERVER:
                self._count("join_refused")  # clients never admit anyone
                return
            self._add_neighbour(peer, now, effects)
            rec = _Record(peer, 0, ST_ALIVE, now)
            old = self._records.get(source)
            if old is None or old.key() < rec.key():
                self._merge(rec, now, effects)
                self._broadcast_record(self._records.get(source, rec), now, effects)
            self._send(effects, source, OP_SYNC, {"m": self._state()})
            return
        if op == OP_NEIGHBOR:
            if self._wants_link(peer):
                self._add_neighbour(peer, now, effects)
            else:
                self._count("neighbor_refused")

    def _on_record(self, rec: _Record, before: int | None, now: float, effects: list[OverlayEffect]) -> None:
        nid = rec.node_id
        if rec.st == ST_ALIVE:
            if nid not in self._nbrs and role_of(rec.identity) == SERVER and not self._leaving:
                self._add_neighbour(rec.identity, now, effects)
                self._send(effects, nid, OP_NEIGHBOR, {"m": identity_to_wire(self.local)})
        elif rec.st == ST_LEFT and self._drop_neighbour(nid, effects):
            self._count("neighbour_left")

    def _on_stray_heartbeat(self, source: bytes, body: dict[str, Any], now: float,
                            effects: list[OverlayEffect]) -> None:
        # a peer that still links to us after we dropped it (it was declared failed and is back): link
        # again if we want it, else tell its driver nothing (its detector will drop us)
        self._count("stray_hb")
        rec = self._records.get(source)
        if rec is not None and rec.st == ST_ALIVE and self._wants_link(rec.identity):
            self._add_neighbour(rec.identity, now, effects)
        elif rec is not None and rec.st != ST_ALIVE:
            effects.append(Connect(rec.identity, probe=True))
            self._send(effects, source, OP_SYNC, {"m": [rec.to_wire()]})  # it learns it is down: refutes
            effects.append(Disconnect(source))

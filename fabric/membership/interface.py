"""The overlay interface: one sans-IO protocol over every topology, and what all overlays share.

Theory of operation
-------------------
An *overlay* decides which peers a node keeps links to (:meth:`Overlay.neighbours`) and still offers the
same capabilities everywhere:

* ``members()`` - the whole cluster's membership, not only the neighbours;
* membership events (``MemberUp``/``MemberDown``/``MemberLeft``/``MemberChanged``/``Joined``), once per
  change and in order, as effects;
* ``broadcast(payload)`` reaching every live member (received broadcasts come out as :class:`Deliver`);
* ``send_to(target, payload, ttl)`` reaching any member directly or relayed along the overlay with a hop
  limit (received as :class:`Deliver` with ``relayed=True``).

Inputs and effects use the vocabulary of :mod:`fabric.membership.types` (``Send``, ``Connect``,
``Disconnect``, ``Dial`` and the events); this module adds :class:`TreeSend` (a TREE envelope) and
:class:`Deliver`. Every method takes ``now`` and returns the effects to perform in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .errors import BadMembershipMessage
from .plumtree import TreeSend
from .types import (
    Connect,
    Dial,
    Disconnect,
    Identity,
    Joined,
    Member,
    MemberChanged,
    MemberDown,
    MemberLeft,
    MemberUp,
    Send,
    _check_boot,
    _check_endpoints,
    _check_meta,
)

OP_RELAY = "relay"
OP_HEARTBEAT = "hb"
OP_SYNC = "sync"
_MAX_INT = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Deliver:
    """A broadcast (``relayed=False``) or a relayed direct message (``relayed=True``) reached this node:
    hand ``payload`` to the application. ``origin`` is the sender, ``hops`` how many links it crossed,
    ``msg_id`` the broadcast id (None for a relay)."""

    origin: bytes
    payload: Any
    relayed: bool
    hops: int
    msg_id: bytes | None = None


OverlayEffect = Send | TreeSend | Connect | Disconnect | Dial | Deliver | MemberUp | MemberDown | MemberLeft | \
    MemberChanged | Joined
"""Everything an overlay may ask its driver to do."""


@runtime_checkable
class Overlay(Protocol):
    """What the Node drives, whatever the topology. All methods are called from the node's loop and
    return effects to perform in order; ``now`` is monotonic seconds."""

    @property
    def node_id(self) -> bytes:
        """This node's id."""
        ...

    @property
    def local(self) -> Identity:
        """This node's current identity (the incarnation may grow by refutation)."""
        ...

    @property
    def joined(self) -> bool:
        """True once this node is part of a cluster (or alone by choice)."""
        ...

    @property
    def leaving(self) -> bool:
        """True after :meth:`leave`."""
        ...

    def members(self) -> list[Member]:
        """The whole membership as this node sees it (itself included), sorted by node id."""
        ...

    def alive_members(self) -> list[Member]:
        """Members (this node included) that are ALIVE or SUSPECT."""
        ...

    def neighbours(self) -> list[bytes]:
        """Node ids of the links this overlay keeps (sorted)."""
        ...

    @property
    def last_broadcast_id(self) -> bytes | None:
        """Id of the latest :meth:`broadcast` (receivers see it as :attr:`Deliver.msg_id`)."""
        ...

    def join(self, seeds: Sequence[str], now: float) -> list[OverlayEffect]:
        """Start joining through these seed membership endpoints (returns Dial effects)."""
        ...

    def adopt(self, members: Sequence[Member], now: float) -> list[OverlayEffect]:
        """Start from the live members another overlay knew (a live topology switch): they are members
        at once, without announcing them (everyone switching knows them too), so :meth:`members` does
        not dip while the new overlay forms. Call before :meth:`join`."""
        ...

    def contact(self, identity: Identity, now: float) -> list[OverlayEffect]:
        """The HELLO/WELCOME handshake with ``identity`` completed (either direction)."""
        ...

    def receive(self, source: bytes, op: str, body: Any, now: float) -> list[OverlayEffect]:
        """A MEMBERSHIP message. Raises BadMembershipMessage (nothing changed) on a bad body."""
        ...

    def receive_tree(self, source: bytes, op: str, body: Any, now: float) -> list[OverlayEffect]:
        """A TREE message. Raises BadMembershipMessage (nothing changed) on a bad body."""
        ...

    def traffic(self, source: bytes, now: float) -> list[OverlayEffect]:
        """Any other message from ``source``: a sign of life."""
        ...

    def link_up(self, node_id: bytes, now: float) -> list[OverlayEffect]:
        """The transport reports the link to ``node_id`` (re)connected."""
        ...

    def link_down(self, node_id: bytes, now: float) -> list[OverlayEffect]:
        """The transport reports the link to ``node_id`` broke."""
        ...

    def set_metadata(self, metadata: Mapping[str, str], now: float) -> list[OverlayEffect]:
        """Replace this node's metadata and spread it."""
        ...

    def broadcast(self, payload: Any, now: float) -> list[OverlayEffect]:
        """Send ``payload`` (msgpack-native) to every live member; each gets one :class:`Deliver`."""
        ...

    def send_to(self, target: bytes, payload: Any, now: float, *, ttl: int | None = None) -> list[OverlayEffect]:
        """Send ``payload`` to member ``target``, directly or relayed with at most ``ttl`` hops."""
        ...

    def leave(self, now: float) -> list[OverlayEffect]:
        """Leave gracefully; afterwards input is ignored."""
        ...

    def tick(self, now: float) -> list[OverlayEffect]:
        """Run the timers due at ``now``."""
        ...

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must next run (None: never)."""
        ...

    def stats(self) -> dict[str, int]:
        """Counters for metrics and tests."""
        ...


def _bad(message: str) -> BadMembershipMessage:
    return BadMembershipMessage(message)


def _node_id(value: Any, name: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 16:
        raise _bad(f"{name} must be a 16-octet node id")
    return value


def _uint(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_INT:
        raise _bad(f"{name} must be an int in 0..2**63-1")
    return value


def _relay_body(body: Any) -> tuple[bytes, bytes, int]:
    if not isinstance(body, dict):
        raise _bad("relay body must be a map")
    return _node_id(body.get("o"), "relay o"), _node_id(body.get("t"), "relay t"), _uint(body.get("h"), "relay h")


def identity_to_wire(identity: Identity) -> dict[str, Any]:
    """An identity as a wire ENTRY map ``{id, nm, in, md, ep}`` plus ``bi`` when the boot id is known."""
    out = {"id": identity.node_id, "nm": identity.name, "in": identity.incarnation, "md": dict(identity.metadata),
           "ep": {ch: list(spec) for ch, spec in identity.endpoints.items()}}
    if identity.boot:
        out["bi"] = identity.boot
    return out


def identity_from_wire(raw: Any) -> Identity:
    """Parse an ENTRY map. Raises BadMembershipMessage when it is malformed."""
    if not isinstance(raw, dict):
        raise _bad("entry must be a map")
    name = raw.get("nm", "")
    if not isinstance(name, str) or len(name) > 255:
        raise _bad("entry nm must be a str of at most 255 chars")
    return Identity(_node_id(raw.get("id"), "entry id"), name, _uint(raw.get("in"), "entry in"),
                    _check_meta(raw.get("md", {})), _check_endpoints(raw.get("ep", {})), _check_boot(raw.get("bi", b"")))

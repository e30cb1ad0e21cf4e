"""The membership vocabulary every overlay shares: identities, members, effects, events and inputs.

Every membership core (full-mesh, HyParView, client-server, static) takes the same inputs and returns the
same effects, so the Node and the simulators drive them all alike:

* who: :class:`Identity` (what the handshake and the member records carry), :class:`Member` (a snapshot
  of a member as this node sees it) and :class:`MemberStatus`;
* effects: :class:`Send` (a MEMBERSHIP message), :class:`Connect`, :class:`Disconnect`, :class:`Dial`;
* events: :class:`MemberUp`, :class:`MemberDown`, :class:`MemberLeft`, :class:`MemberChanged`,
  :class:`Joined`;
* input events for drivers that prefer one entry point (:data:`InputEvent`).

Also the wire validators of identities (bounded names, metadata and endpoint maps) and the record
statuses on the wire (``ST_ALIVE``, ``ST_DOWN``, ``ST_LEFT``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import BadMembershipMessage

ST_ALIVE = 0
ST_DOWN = 2
ST_LEFT = 3
_WIRE_STATUSES = frozenset((ST_ALIVE, ST_DOWN, ST_LEFT))
_MAX_INT = 2**63 - 1
_MAX_STR = 255
_MAX_META = 64
_MAX_CHANNELS = 64
_MAX_META_VALUE = 4096


class MemberStatus(enum.StrEnum):
    """A member's state in this node's view."""

    ALIVE = "alive"
    """Up, and its failure detector is below the threshold."""
    SUSPECT = "suspect"
    """Up, but phi is above the threshold (local opinion; becomes DOWN after ``suspect_timeout``)."""
    DOWN = "down"
    """Declared down (by this node or by gossip); terminal for this incarnation."""
    LEFT = "left"
    """Left gracefully; terminal for this incarnation."""


Endpoints = Mapping[str, tuple[str, str, int]]
"""channel -> (kind, endpoint, parallelism), as in the wire HELLO ``ep`` map."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a node is: what the handshake (HELLO / WELCOME) and the membership entries carry.

    ``metadata`` and ``endpoints`` must not be mutated after construction.
    """

    node_id: bytes
    name: str
    incarnation: int
    metadata: Mapping[str, str] = field(default_factory=dict)
    endpoints: Endpoints = field(default_factory=dict)
    boot: bytes = b""
    """The node process's boot id (HELLO ``bi``, random per start; empty: not known, e.g. an older
    peer). A new incarnation under the same boot id is a refutation by the same process, not a restart."""

    @staticmethod
    def endpoints_from_wire(ep: Mapping[str, Sequence[Any]] | None) -> dict[str, tuple[str, str, int]]:
        """Convert a wire ``ep`` map (``{channel: [kind, endpoint, parallelism]}``) to :data:`Endpoints`.

        Raises BadMembershipMessage when the map is not of that shape.
        """
        return _check_endpoints(ep if ep is not None else {})

    @classmethod
    def from_header(cls, header: Mapping[str, Any]) -> Identity:
        """The identity in a decoded HELLO or WELCOME header (keys ``s``, ``nm``, ``in``, ``md``, ``ep``).

        Raises BadMembershipMessage when a field is missing or malformed (``fabric.wire.decode`` has
        already checked the types of ``s``, ``in``, ``nm``, ``md`` and ``ep`` at the top level).
        """
        node_id = header.get("s")
        if not isinstance(node_id, bytes) or len(node_id) != 16:
            raise _bad("identity needs a 16-octet node id")
        return cls(node_id, _str(header.get("nm", ""), "nm"), _int(header.get("in"), "in"),
                   _check_meta(header.get("md", {})), _check_endpoints(header.get("ep", {})),
                   _check_boot(header.get("bi", b"")))


@dataclass(frozen=True, slots=True)
class Member:
    """A member as this node sees it (an immutable snapshot)."""

    node_id: bytes
    name: str
    incarnation: int
    status: MemberStatus
    metadata: Mapping[str, str]
    endpoints: Endpoints
    boot: bytes = b""
    """The member's boot id (see :attr:`Identity.boot`; empty when not known)."""

    def identity(self) -> Identity:
        """The member's identity (what a ``Connect`` or a new overlay core needs)."""
        return Identity(self.node_id, self.name, self.incarnation, self.metadata, self.endpoints, self.boot)


# -- effects ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send a MEMBERSHIP message: ``wire.membership(local_id, op, body)`` to ``to`` on the membership channel."""

    to: bytes
    op: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Connect:
    """Link to this node (idempotent per channel): ``transport.connect(node_id, endpoints, parallelism)``.

    ``probe=True`` asks for the membership channel only: a link opened for one exchange (a ping, a
    neighbour request, an answer to a non-neighbour) costs one socket instead of one per channel and lane.
    A later ``Connect`` without ``probe`` (the node became a neighbour) adds the other channels."""

    identity: Identity
    probe: bool = False


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close every link to ``node_id`` (the member left, expired, or changed endpoints)."""

    node_id: bytes


@dataclass(frozen=True, slots=True)
class Dial:
    """Perform the HELLO/WELCOME handshake with this seed membership endpoint and report the answer
    with :meth:`~fabric.membership.overlay.Overlay.contact`. Failures need no report: the core re-dials with backoff."""

    endpoint: str


@dataclass(frozen=True, slots=True)
class MemberUp:
    """A member (this incarnation) became up in this node's view. Fires once per (node id, incarnation)."""

    member: Member


@dataclass(frozen=True, slots=True)
class MemberDown:
    """An up member was declared down. ``reason``: ``"unreachable"`` (our detector), ``"reported"``
    (gossip), ``"restarted"`` (a newer incarnation appeared), ``"replaced"`` (same name, newer node)."""

    member: Member
    reason: str


@dataclass(frozen=True, slots=True)
class MemberLeft:
    """An up member left gracefully."""

    member: Member


@dataclass(frozen=True, slots=True)
class MemberChanged:
    """An up member's metadata/endpoints changed, or it went alive <-> suspect."""

    member: Member
    previous: Member


@dataclass(frozen=True, slots=True)
class Joined:
    """This node has joined: a peer's state lists it alive (fires once)."""


MembershipEvent = MemberUp | MemberDown | MemberLeft | MemberChanged | Joined
Effect = Send | Connect | Disconnect | Dial | MembershipEvent


# -- input events, for drivers that prefer one entry point ------------------------------------------


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """Input: start joining through these seed membership endpoints."""

    seeds: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Contact:
    """Input: the handshake with a member completed; this is its identity."""

    identity: Identity


@dataclass(frozen=True, slots=True)
class Received:
    """Input: a MEMBERSHIP message from ``source`` (its ``op`` header and its decoded payload)."""

    source: bytes
    op: str
    body: Any


@dataclass(frozen=True, slots=True)
class Traffic:
    """Input: any other message from ``source`` arrived (a sign of life)."""

    source: bytes


@dataclass(frozen=True, slots=True)
class LinkUp:
    """Input: the transport reports the link to ``node_id`` (re)connected (a hint)."""

    node_id: bytes


@dataclass(frozen=True, slots=True)
class LinkDown:
    """Input: the transport reports the link to ``node_id`` broke (a hint; only phi declares down)."""

    node_id: bytes


@dataclass(frozen=True, slots=True)
class LeaveRequest:
    """Input: leave the cluster gracefully."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Input: timers may be due."""


InputEvent = JoinRequest | Contact | Received | Traffic | LinkUp | LinkDown | LeaveRequest | Tick


# -- wire validation -------------------------------------------------------------------------------


def _bad(message: str) -> BadMembershipMessage:
    return BadMembershipMessage(message)


def _int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_INT:
        raise _bad(f"{name} must be an int in 0..2**63-1")
    return value


def _str(value: Any, name: str, limit: int = _MAX_STR) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise _bad(f"{name} must be a str of at most {limit} chars")
    return value


def _check_endpoints(ep: Any) -> dict[str, tuple[str, str, int]]:
    if not isinstance(ep, dict) or len(ep) > _MAX_CHANNELS:
        raise _bad("ep must be a map of at most 64 channels")
    out: dict[str, tuple[str, str, int]] = {}
    for channel, spec in ep.items():
        if not isinstance(spec, list | tuple) or len(spec) != 3:
            raise _bad("ep values must be [kind, endpoint, parallelism]")
        parallelism = _int(spec[2], "ep parallelism")
        if not 1 <= parallelism <= 256:
            raise _bad("ep parallelism must be in 1..256")
        out[_str(channel, "ep channel")] = (_str(spec[0], "ep kind"), _str(spec[1], "ep endpoint", 1024), parallelism)
    return out


MAX_BOOT_ID_BYTES = 32
"""Longest boot id accepted from the wire (the Node sends 8 octets)."""


def _check_boot(raw: Any) -> bytes:
    """A wire boot id (``bi``): bytes of at most :data:`MAX_BOOT_ID_BYTES`; raises BadMembershipMessage."""
    if not isinstance(raw, bytes) or len(raw) > MAX_BOOT_ID_BYTES:
        raise _bad(f"bi must be at most {MAX_BOOT_ID_BYTES} octets")
    return raw


def _check_meta(md: Any) -> dict[str, str]:
    if not isinstance(md, dict) or len(md) > _MAX_META:
        raise _bad("md must be a map of at most 64 entries")
    return {_str(k, "md key"): _str(v, "md value", _MAX_META_VALUE) for k, v in md.items()}


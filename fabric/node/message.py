"""What the Node hands to applications and knows about peers: :class:`Message`, :class:`PeerInfo`, and the
conversions between peer descriptions (``PeerInfo``, membership ``Identity``, node id text and bytes)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .. import wire
from .._values import decode_value
from ..config import MEMBERSHIP_CHANNEL
from ..errors import MalformedHeader
from ..membership import Identity, Member, MembershipEvent
from ..membership.types import MAX_BOOT_ID_BYTES
from ..transport.base import Link
from ..wire import Role
from ..wire.types import K_BOOT, K_ENDPOINTS, K_INC, K_META, K_NAME, K_PUBKEY, K_ROLE, K_SRC

PK_META = "fabric.pk"
"""Identity metadata key with a member's CURVE public key (see :mod:`fabric.node.security`)."""

Handler = Callable[["Message"], Any]
"""A subscription handler: ``handler(msg)`` (sync or async)."""
Service = Callable[[Any], Any]
"""A service handler: ``fn(request) -> reply`` (sync or async)."""
MemberListener = Callable[[MembershipEvent], Any]
"""``listener(event)`` with event one of MemberUp, MemberDown, MemberLeft, MemberChanged, Joined."""


@lru_cache(maxsize=65536)
def id_text(node_id: bytes) -> str:
    """Node id bytes -> UUID text (cached: called per received message)."""
    return wire.node_id_str(node_id)


class Message:
    """A message delivered to a subscription handler.

    ``payload`` is the raw payload: ``bytes`` on control and broadcast channels, a zero-copy
    ``memoryview`` on bulk channels (call ``bytes()`` to keep it beyond the handler). :meth:`value`
    decodes msgpack payloads (sent as non-bytes values) and returns raw payloads unchanged.
    """

    __slots__ = ("channel", "sender", "payload", "lane", "seq", "topic", "content_type")

    def __init__(
        self,
        channel: str,
        sender: bytes,
        payload: Any,
        lane: int = 0,
        seq: int | None = None,
        topic: bytes = b"",
        content_type: int = 0,
    ) -> None:
        self.channel = channel
        self.sender = sender
        self.payload = payload
        self.lane = lane
        self.seq = seq
        self.topic = topic
        self.content_type = content_type

    @property
    def source(self) -> str:
        """The sender's node id (UUID text)."""
        return id_text(self.sender)

    def value(self) -> Any:
        """The payload decoded as sent: msgpack values decoded, raw bytes as they are."""
        return decode_value(self.payload, self.content_type)

    def __repr__(self) -> str:
        return f"Message({self.channel!r} from {self.source[:8]} lane={self.lane} {len(self.payload)}B)"


@dataclass(frozen=True)
class PeerInfo:
    """What a HELLO/WELCOME told us about a peer."""

    id: str
    """Node id (UUID text)."""
    name: str
    """Human name."""
    incarnation: int
    """Grows every time the peer restarts."""
    endpoints: Mapping[str, str]
    """Channel -> endpoint the peer advertised."""
    channels: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    """Channel -> (kind, parallelism) the peer advertised."""
    meta: Mapping[str, str] = field(default_factory=dict)
    """The peer's metadata."""
    role: Role = Role.MEMBER
    """Member or client."""
    version: int = wire.PROTOCOL_VERSION
    """The protocol version agreed with this peer."""
    public_key: bytes | None = None
    """The peer's CURVE public key (Z85) in secure mode: the key its handshake was authenticated with, or
    for a member learned through gossip the one its membership record carries (metadata ``fabric.pk``).
    None in development mode."""
    boot: bytes = b""
    """The peer process's boot id (HELLO/WELCOME ``bi``, random per start; empty: an older peer, or
    learned from a source that did not carry it). Same boot id, new incarnation: a refutation, not a
    restart (see :meth:`fabric.node.peers.Peers.link`)."""

    @property
    def seed(self) -> str:
        """The peer's membership endpoint (its seed address)."""
        return self.endpoints.get(MEMBERSHIP_CHANNEL, "")


Peer = Member | PeerInfo | str | bytes
"""Every way to name a peer: a membership :class:`~fabric.membership.Member`, a :class:`PeerInfo`, the
node id text (UUID) or the 16 id bytes (``Member.node_id``)."""


def peer_id_bytes(peer: Peer) -> bytes:
    """The 16-byte node id of any :data:`Peer`. Raises ValueError when it names no node id."""
    if isinstance(peer, Member):
        return peer.node_id
    if isinstance(peer, PeerInfo):
        return wire.node_id_bytes(peer.id)
    if isinstance(peer, bytes | bytearray | memoryview):
        raw = bytes(peer)
        if len(raw) != 16:
            raise ValueError(f"a node id is 16 bytes, got {len(raw)}")
        return raw
    if isinstance(peer, str):
        return wire.node_id_bytes(peer)
    raise ValueError(f"{type(peer).__name__} does not name a peer: pass a Member, a PeerInfo or a node id")


def peer_from_header(header: Mapping[str, Any], version: int) -> PeerInfo:
    """Build a PeerInfo from a validated HELLO/WELCOME header; bad endpoint maps raise MalformedHeader."""
    endpoints: dict[str, str] = {}
    channels: dict[str, tuple[str, int]] = {}
    for name, spec in (header.get(K_ENDPOINTS) or {}).items():
        if (
            not isinstance(name, str)
            or not isinstance(spec, list)
            or len(spec) < 3
            or not isinstance(spec[0], str)
            or not isinstance(spec[1], str)
            or not isinstance(spec[2], int)
        ):
            raise MalformedHeader(f"endpoint entry for {name!r} must be [kind, endpoint, parallelism]")
        endpoints[name] = spec[1]
        channels[name] = (spec[0], spec[2])
    meta = header.get(K_META) or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise MalformedHeader("metadata must map strings to strings")
    role = Role.CLIENT if header.get(K_ROLE) == Role.CLIENT else Role.MEMBER
    boot = header.get(K_BOOT, b"")
    if not isinstance(boot, bytes) or len(boot) > MAX_BOOT_ID_BYTES:
        raise MalformedHeader(f"boot id must be at most {MAX_BOOT_ID_BYTES} octets")
    return PeerInfo(
        id=id_text(header[K_SRC]),
        name=header.get(K_NAME, ""),
        incarnation=header[K_INC],
        endpoints=endpoints,
        channels=channels,
        meta=dict(meta),
        role=role,
        version=version,
        public_key=_public_key(header.get(K_PUBKEY), meta),
        boot=boot,
    )


def _public_key(pk: Any, meta: Mapping[str, str]) -> bytes | None:
    """The key a handshake or a membership record names (``pk``, else metadata ``fabric.pk``); checked
    against the node id before any use (a key only counts when it derives the peer's id)."""
    if isinstance(pk, bytes) and len(pk) == 40:
        return pk
    text = meta.get(PK_META)
    return text.encode() if isinstance(text, str) and len(text) == 40 else None


def identity_of(info: PeerInfo) -> Identity:
    """The membership identity a PeerInfo describes."""
    endpoints = {name: (info.channels.get(name, ("control", 1))[0], ep, info.channels.get(name, ("control", 1))[1])
                 for name, ep in info.endpoints.items()}
    return Identity(wire.node_id_bytes(info.id), info.name, info.incarnation, dict(info.meta), endpoints, info.boot)


def peer_of(identity: Identity) -> PeerInfo:
    """The PeerInfo of a membership identity."""
    return PeerInfo(
        id=id_text(identity.node_id),
        name=identity.name,
        incarnation=identity.incarnation,
        endpoints={name: spec[1] for name, spec in identity.endpoints.items()},
        channels={name: (spec[0], spec[2]) for name, spec in identity.endpoints.items()},
        meta=dict(identity.metadata),
        public_key=_public_key(None, identity.metadata),
        boot=identity.boot,
    )


def peer_text(link: Link) -> str:
    """A link key as text (node id text for a member link)."""
    return id_text(link) if isinstance(link, bytes) and len(link) == 16 else str(link)

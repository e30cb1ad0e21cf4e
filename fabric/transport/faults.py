"""Fault injection shared by the transports: the in-memory network's :class:`Faults` and the per-node
:class:`FaultPolicy` that the ZeroMQ transport applies on real sockets.

Two models, one module:

* :class:`Faults` -- what a :class:`~fabric.transport.memory.MemoryNetwork` does to *every* message it
  carries (latency, jitter, drop, duplication, reordering), drawn from the network's seeded random source.
* :class:`FaultPolicy` -- what *one node's* transport does to the messages it exchanges with chosen peers:
  drop what it sends to them (``drop_to``), drop what arrives from them (``drop_from``), and random loss
  per peer or for every peer (``loss_to`` / ``loss_from``, key ``"*"`` = every peer), from a random source
  seeded by ``seed``. A full partition of A from B is ``drop_from`` on both sides (or ``drop_to`` on
  both); a one-way partition A -> B is ``drop_from={A}`` on B (what a firewall's input chain does) and,
  optionally, ``drop_to={B}`` on A. It is set, replaced and cleared at run time with
  :meth:`fabric.transport.zmq.ZmqTransport.set_faults` (or :meth:`fabric.Node.set_transport_faults`), and
  costs nothing while it is ``None`` (one check per send and per received ZeroMQ message).

Peers are named by node id (UUID text or the 16 octets); a text that is not a UUID (e.g. a seed endpoint,
the link key of a handshake before the peer's id is known) is matched against link keys as is.

Where the policy decides (see :class:`FaultInjector`): outbound per message handed to a link (``send``; the
link key is the peer's node id) and per reply through a ROUTER (``respond``; the node id is in the routing
id); inbound per ZeroMQ message read, *before* the receiver (the node) sees it, the sender named by the
routing id on a ROUTER, by the link on a connecting socket, else by the head frame's source id (a bulk
PULL; a BATCH has one source, so one check covers all its messages). A PUB has no per-subscriber send, so
broadcasts are dropped by the receiving side's ``drop_from``/``loss_from`` only.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import ConfigError, ProtocolError
from ..wire import decode_head
from ..wire.types import K_SRC, NODE_ID_BYTES

__all__ = ["ALL_PEERS", "FaultInjector", "FaultPolicy", "Faults", "PeerKey", "peer_key"]

ALL_PEERS = "*"
"""Key of ``loss_to``/``loss_from`` that applies to every peer without an entry of its own."""

PeerKey = bytes | str
"""A normalized peer name: a 16-octet node id, or a link key text (an endpoint), or :data:`ALL_PEERS`."""


@dataclass(frozen=True, slots=True)
class Faults:
    """Network faults, drawn per message from the network's seeded random source.

    All times in seconds, probabilities in [0, 1].
    """

    latency: float = 0.0
    """Base one-way delay of every message."""
    jitter: float = 0.0
    """Extra delay, uniform in [0, jitter]. FIFO pipes still deliver in order (a message waits for the
    one before it)."""
    drop: float = 0.0
    """Probability that a message is lost."""
    duplicate: float = 0.0
    """Probability that a message is delivered twice."""
    reorder: float = 0.0
    """Probability that a message leaves its pipe's FIFO and gets an extra delay in [0, reorder_delay]."""
    reorder_delay: float = 0.05
    """Largest extra delay of a reordered message."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"Faults.{f.name} must be a finite number >= 0, got {value!r}")
        for name in ("drop", "duplicate", "reorder"):
            if getattr(self, name) > 1:
                raise ConfigError(f"Faults.{name} is a probability in [0, 1]")

    @property
    def max_delay(self) -> float:
        """Largest one-way delay these faults can give a message that is not stuck behind another."""
        return self.latency + self.jitter + (self.reorder_delay if self.reorder else 0.0)


def peer_key(peer: Any) -> PeerKey:
    """Normalize a peer name: UUID text or 16 octets -> the 16-octet node id; other text as is.

    Raises ConfigError for anything else (empty text, bytes of another length, other types)."""
    if isinstance(peer, bytes | bytearray | memoryview):
        raw = bytes(peer)
        if len(raw) != NODE_ID_BYTES:
            raise ConfigError(f"a node id is {NODE_ID_BYTES} octets, got {len(raw)}")
        return raw
    if isinstance(peer, str) and peer:
        if peer == ALL_PEERS:
            return peer
        try:
            return uuid.UUID(peer).bytes
        except ValueError:
            return peer  # a link key such as a seed endpoint
    raise ConfigError(f"a peer is a node id (UUID text or 16 octets) or an endpoint text, got {peer!r}")


def _probabilities(name: str, raw: Mapping[Any, float] | None) -> dict[PeerKey, float]:
    out: dict[PeerKey, float] = {}
    for peer, p in (raw or {}).items():
        if not isinstance(p, int | float) or isinstance(p, bool) or not 0.0 <= float(p) <= 1.0:
            raise ConfigError(f"FaultPolicy.{name}[{peer!r}] must be a probability in [0, 1], got {p!r}")
        out[peer_key(peer)] = float(p)
    return out


@dataclass(frozen=True, init=False)
class FaultPolicy:
    """One node's transport faults toward chosen peers (see the module docstring).

    Args:
        drop_to: peers every message *to* which is dropped before it leaves (outbound).
        drop_from: peers every message *from* which is dropped on arrival, before the node sees it.
        loss_to: peer -> probability that a message to it is dropped (``"*"``: every peer).
        loss_from: peer -> probability that a message from it is dropped (``"*"``: every peer).
        seed: seed of the policy's random source (:class:`random.Random`): the same seed and the same
            message sequence drop the same messages.

    Peers are node ids (UUID text or 16 octets) or link key texts; they are normalized on construction.
    Raises ConfigError for a bad peer or a probability outside [0, 1].
    """

    drop_to: frozenset[PeerKey] = field(default_factory=frozenset)
    drop_from: frozenset[PeerKey] = field(default_factory=frozenset)
    loss_to: Mapping[PeerKey, float] = field(default_factory=dict)
    loss_from: Mapping[PeerKey, float] = field(default_factory=dict)
    seed: int = 0

    def __init__(
        self,
        *,
        drop_to: Iterable[Any] = (),
        drop_from: Iterable[Any] = (),
        loss_to: Mapping[Any, float] | None = None,
        loss_from: Mapping[Any, float] | None = None,
        seed: int = 0,
    ) -> None:
        if isinstance(drop_to, str | bytes) or isinstance(drop_from, str | bytes):
            raise ConfigError("FaultPolicy.drop_to/drop_from take a collection of peers, not one peer")
        object.__setattr__(self, "drop_to", frozenset(peer_key(p) for p in drop_to))
        object.__setattr__(self, "drop_from", frozenset(peer_key(p) for p in drop_from))
        object.__setattr__(self, "loss_to", _probabilities("loss_to", loss_to))
        object.__setattr__(self, "loss_from", _probabilities("loss_from", loss_from))
        object.__setattr__(self, "seed", int(seed))

    @property
    def empty(self) -> bool:
        """True when the policy drops nothing."""
        return not (self.drop_to or self.drop_from or any(self.loss_to.values()) or any(self.loss_from.values()))

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (node ids as UUID text)."""

        def text(p: PeerKey) -> str:
            return str(uuid.UUID(bytes=p)) if isinstance(p, bytes) else p

        return {
            "drop_to": sorted(text(p) for p in self.drop_to),
            "drop_from": sorted(text(p) for p in self.drop_from),
            "loss_to": {text(p): v for p, v in self.loss_to.items()},
            "loss_from": {text(p): v for p, v in self.loss_from.items()},
            "seed": self.seed,
        }


class FaultInjector:
    """A :class:`FaultPolicy` in force: its decisions and its random source (one per policy set).

    The transports call :meth:`drop_out` / :meth:`drop_in` only while a policy is set.
    """

    __slots__ = ("policy", "rng", "_to_all", "_from_all")

    def __init__(self, policy: FaultPolicy) -> None:
        self.policy = policy
        self.rng = random.Random(policy.seed)
        self._to_all = policy.loss_to.get(ALL_PEERS, 0.0)
        self._from_all = policy.loss_from.get(ALL_PEERS, 0.0)

    def drop_out(self, peer: Hashable | None) -> bool:
        """True when a message to ``peer`` (a link key or node id; None when unknown) is to be dropped."""
        p = self.policy
        if peer is not None and peer in p.drop_to:
            return True
        loss = p.loss_to.get(peer, self._to_all) if isinstance(peer, bytes | str) else self._to_all
        return loss > 0.0 and self.rng.random() < loss

    def drop_in(self, peer: bytes | None) -> bool:
        """True when a message from ``peer`` (a node id; None when unknown) is to be dropped."""
        p = self.policy
        if peer is not None and peer in p.drop_from:
            return True
        loss = p.loss_from.get(peer, self._from_all) if peer is not None else self._from_all
        return loss > 0.0 and self.rng.random() < loss


def route_peer(route: bytes) -> bytes | None:
    """The node id inside a fabric routing id (role octet | node id | ...), None for a foreign one."""
    return bytes(route[1 : 1 + NODE_ID_BYTES]) if len(route) > NODE_ID_BYTES else None


def arrival_peer(frames: Sequence[Any], route: bytes | None, link: Hashable | None, broadcast: bool) -> bytes | None:
    """The sender's node id of a message read from a socket: from the routing id (ROUTER), the link key
    (a connecting socket linked under the peer's id), else the head frame's source id (after the topic
    frame on a SUB). None when nothing names it (bad input: the node counts and drops it itself)."""
    if route is not None:
        return route_peer(route)
    if isinstance(link, bytes) and len(link) == NODE_ID_BYTES:
        return link
    index = 1 if broadcast and link is not None else 0
    if len(frames) <= index:
        return None
    try:
        _type, _version, header = decode_head(bytes(frames[index]))
    except ProtocolError:
        return None
    src = header.get(K_SRC)
    return bytes(src) if isinstance(src, bytes) and len(src) == NODE_ID_BYTES else None

"""The transport interface: moves frame lists between nodes, knows nothing of message semantics.

Two implementations share it: :class:`fabric.transport.zmq.ZmqTransport` (tcp://, ipc://, inproc://) and
:class:`fabric.transport.memory.MemoryTransport` (in-process, with seeded fault injection).

Model
-----
* A node *binds* one endpoint per channel. Control channels bind a ROUTER, broadcast channels a PUB,
  bulk channels a PULL. Everything that arrives on a bound socket is handed to the receiver with a
  ``route`` (the sender's routing id on control channels, which :meth:`Transport.respond` answers through).
* A node *connects* to a peer under a ``link`` key of its choosing (the peer's node id, or the seed
  endpoint before the id is known): per control/bulk channel, ``parallelism`` connecting sockets
  (DEALER / PUSH), one per lane; per broadcast channel, one SUB. Replies that come back on a DEALER are
  handed to the receiver with that ``link``.

Delivery guarantees (both implementations)
------------------------------------------
* At most once. Nothing is retransmitted by the transport; a message may be lost when a connection
  breaks, a peer restarts, a broadcast subscriber is slow (PUB drops at its high-water mark), or the
  in-memory network is told to drop it.
* FIFO per (sender, link, channel, lane) while the connection stays up. No order across lanes or channels
  (that is what lanes are for: one slow stream never blocks another).
* :meth:`Transport.send` never blocks: it returns False when the lane's queue is full (high-water mark),
  and the caller applies the channel's policy (wait with :meth:`Transport.wait_writable`, drop, raise).
* Every method is called on the node's event loop thread (sockets belong to one thread); the receiver
  callback runs on that thread too and must not block.
"""

from __future__ import annotations

import asyncio
import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .faults import FaultPolicy


class ChannelKind(enum.StrEnum):
    """Channel kinds; each is exactly one ZeroMQ pattern."""

    CONTROL = "control"
    """ROUTER bound, one DEALER per peer and lane: addressed messages, request/reply, membership."""
    BROADCAST = "broadcast"
    """PUB bound, one SUB per linked peer: fan-out streams; drops at the high-water mark."""
    BULK = "bulk"
    """PULL bound, one PUSH per peer and lane: large payloads and work streams."""


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """What a transport needs to know about one channel (derived from ``ChannelConfig``)."""

    name: str
    kind: ChannelKind
    parallelism: int = 1
    sndhwm: int = 1000
    rcvhwm: int = 1000
    max_message_size: int = -1
    io_affinity: int = 0
    """Bitmask of libzmq I/O threads this channel's sockets use (0 = any)."""
    max_subscription_bytes: int = -1
    """Broadcast channels: ZMQ_MAXMSGSIZE of the bound PUB, i.e. the longest subscription a subscriber
    may send before libzmq disconnects it (-1: no limit)."""
    max_subscriptions: int = 0
    """Broadcast channels: distinct subscriptions the bound PUB may hold from all subscribers together
    before it drops every subscriber (they reconnect and subscribe again); 0: no limit."""


Link = Hashable
"""Key under which a node connects to a peer (its node id, or a seed endpoint)."""

Receiver = Callable[[str, list[bytes], "bytes | None", "Link | None"], None]
"""``receiver(channel, frames, route, link)``: ``route`` is set for bound-socket arrivals on control
channels, ``link`` for arrivals on a connecting socket (replies). Called on the loop thread."""


class LinkGenerations:
    """A generation number per link, for the connecting sockets' routing ids.

    Routing ids are ``prefix + generation + lane`` (docs/protocol.md, "Routing ids"). A ROUTER refuses a
    second connection presenting a routing id in use, and libzmq never re-examines a refused connection
    that already holds messages: so when this node closes a link and opens a new one to the same endpoint
    (the peer restarted on the same port), the new sockets must not present the ids of the old ones,
    which may still be connected while their linger flushes. One number per link, never reused while the
    link exists, makes every link's routing ids distinct from every earlier link's (issue 14, defect 6:
    the survivor's new link to a restarted peer was refused and its sends were black-holed).
    """

    __slots__ = ("_next", "_by_link")

    def __init__(self) -> None:
        self._next = 0
        self._by_link: dict[Link, bytes] = {}

    def of(self, link: Link) -> bytes:
        """The 4-octet generation of ``link`` (assigned on first use, kept until :meth:`forget`)."""
        gen = self._by_link.get(link)
        if gen is None:
            self._next = (self._next + 1) & 0xFFFFFFFF
            gen = self._by_link[link] = self._next.to_bytes(4, "big")
        return gen

    def forget(self, link: Link) -> None:
        """``link`` was closed: its routing ids are not presented again."""
        self._by_link.pop(link, None)


class Transport(ABC):
    """Abstract transport. See the module docstring for the model and the delivery guarantees."""

    peer_key: bytes | None = None
    """The authenticated CURVE public key (Z85) of whoever sent the message being handed to the receiver
    right now: the ZAP-authenticated ``User-Id`` on bound sockets, the pinned server key on connecting
    ones. Set before each receiver call by a transport running CURVE, and only read during that call;
    None without CURVE (development mode, the in-memory transport)."""

    @abstractmethod
    def bind(self, channels: Sequence[ChannelSpec], receiver: Receiver, routing_id_prefix: bytes) -> dict[str, str]:
        """Bind one endpoint per channel and start receiving; return channel -> advertised endpoint.

        ``routing_id_prefix`` (role octet + node id + start incarnation) is used, with the link's
        generation (:class:`LinkGenerations`) and the lane octet, as the routing id of every connecting
        socket this transport creates. Raises ``fabric.errors.ConfigError`` for an
        endpoint that cannot be bound.
        """

    @abstractmethod
    def connect(
        self,
        link: Link,
        endpoints: Mapping[str, str],
        parallelism: Mapping[str, int] | None = None,
        *,
        routing_lane: int | None = None,
        server_key: bytes | None = None,
    ) -> None:
        """Create (or complete) the connecting sockets to a peer for the channels in ``endpoints``.

        Idempotent per (link, channel). ``parallelism`` overrides the lane count per channel (the peer's
        advertised value). ``routing_lane`` makes a single-lane link present that lane octet in its
        routing id instead of 0 (handshake links use 255). Every link's routing ids carry its own
        generation, so they never collide with those of an earlier link to the same endpoint (a ROUTER
        refuses a second connection with an in-use routing id).
        Connecting is asynchronous: sends queue until the connection is up. ``server_key``: the peer's
        CURVE public key (Z85), required by a transport running CURVE (its sockets are CURVE clients
        pinned to that key); ignored otherwise.
        """

    @abstractmethod
    def disconnect(self, link: Link) -> None:
        """Close every connecting socket of ``link`` (queued messages are discarded). Idempotent."""

    @abstractmethod
    def send(self, link: Link, channel: str, lane: int, frames: Sequence[bytes]) -> bool:
        """Hand a message to the lane's socket without blocking; False when its queue is full.

        Raises KeyError when ``link`` has no socket for ``channel``.
        """

    async def wait_writable(self, link: Link, channel: str, lane: int, timeout: float) -> bool:
        """Wait until the lane can take a message, at most ``timeout`` seconds; False on timeout or when
        the lane closed meanwhile. Raises KeyError like :meth:`send`. (:meth:`notify_writable` with a
        future: a full lane has one wake-up mechanism.)"""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():  # cancelled by the timeout
                fut.set_result(None)

        self.notify_writable(link, channel, lane, wake)
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            return False
        return channel in self.connected_channels(link)  # closing a lane's socket drops its link

    @abstractmethod
    def notify_writable(self, link: Link, channel: str, lane: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, from the event loop, when the lane may take a message again or its
        socket closed (the caller's next :meth:`send` tells which), without a task or a timer per wait:
        a sender that is at the high-water mark all the time waits once per few messages. Raises
        KeyError like :meth:`send`."""

    @abstractmethod
    def set_send_hwm(self, link: Link, channel: str, lane: int, hwm: int) -> None:
        """Change the send high-water mark (in messages) of one lane of ``link``; takes effect for the
        next send (messages already queued stay). Raises KeyError like :meth:`send`.

        On ZeroMQ, raise a lane's HWM by at most a doubling at a time: a full lane is woken by its
        reader every HWM/2 messages read, counted with the new HWM, so a larger jump on a full lane can
        leave it waiting for a read that never comes (tests/integration/test_zmq_writable.py)."""

    @abstractmethod
    def respond(self, channel: str, route: bytes, frames: Sequence[bytes]) -> bool:
        """Send back through the bound ROUTER of ``channel`` to ``route``; False if it is gone or full."""

    @abstractmethod
    def publish(self, channel: str, frames: Sequence[bytes]) -> bool:
        """Publish on the bound PUB of ``channel`` (subscribers past their HWM miss it)."""

    @abstractmethod
    def links(self) -> list[Link]:
        """The links currently connected."""

    @abstractmethod
    def connected_channels(self, link: Link) -> list[str]:
        """The channels ``link`` has connecting sockets for (empty when unknown): :meth:`connect` with more
        endpoints adds channels to a link that has some."""

    def set_faults(self, policy: FaultPolicy | None) -> None:
        """Put a per-peer :class:`~fabric.transport.faults.FaultPolicy` in force (None: off). Both
        shipped transports implement it; this default raises ConfigError for a transport that has none."""
        raise ConfigError(f"{type(self).__name__} has no per-peer fault injection")

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """Transport counters (messages/bytes in and out per channel, drops, queue-full events)."""

    @abstractmethod
    async def close(self) -> None:
        """Close every socket; never hangs (linger is bounded). Idempotent."""

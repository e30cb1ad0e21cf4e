"""The fabric node: composes the wire codec, a transport, services and subscriptions.

Theory of operation
-------------------
A :class:`Node` binds one endpoint per channel (see :mod:`fabric.transport.zmq`) and *links* to peers:
:meth:`Node.connect` sends HELLO to a peer's membership endpoint, gets WELCOME with the peer's identity and
endpoints, then opens the per-channel, per-lane sockets to it; the peer opens its own sockets back to us
when it accepts our HELLO, so a link is symmetric.

Sending: every outgoing message goes through an *outbox* per (peer, channel, lane). On batching channels
the outbox collects what is queued during one event-loop turn and flushes it as one BATCH at the end of
the turn (no added delay); when the transport reports the lane full, the outbox waits for the socket to
become writable and the channel's ``on_full`` policy applies to new sends (wait with timeout, drop and
count, raise ``Overloaded``).

Receiving: the transport calls :meth:`Node._on_frames` on the loop thread for every message. Decoding
errors are counted per category (``stats()["errors"]``) and dropped. Requests are answered back on the
connection they came in on (the ROUTER route), which works for members and for client-role peers alike.

Threads and loops: every public coroutine must be awaited on the loop that ran :meth:`start`; sockets
belong to that loop's thread. Handlers run as follows, so a slow handler never delays liveness traffic
(the loop keeps reading sockets while handlers work):

* ``async def`` handlers run on the node's loop. Subscription handlers are awaited one message at a time
  per (channel, lane), preserving order; service handlers run as concurrent tasks.
* plain ``def`` handlers run on worker threads: subscription handlers on one thread per subscription
  (ordered), service handlers on a pool of ``handler_threads``; ``inline=True`` runs a subscription
  handler directly on the loop (for handlers that are fast and never block).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import itertools
import logging
import math
import queue
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from . import wire
from ._values import decode_value, encode_value, lane_for
from .config import MEMBERSHIP_CHANNEL, OVERLAYS, ChannelConfig, NodeConfig, OnFull
from .errors import (
    CALL_ERRORS,
    BadRequest,
    CallError,
    CallTimeout,
    FabricError,
    JoinTimeout,
    MalformedHeader,
    NodeStateError,
    NoSuchService,
    Overloaded,
    ProtocolError,
    RemoteHandlerError,
    TruncatedMessage,
    Unreachable,
    VersionMismatch,
)
from .membership import (
    BadMembershipMessage,
    Connect,
    Dial,
    Disconnect,
    Identity,
    Joined,
    Member,
    MemberChanged,
    MemberDown,
    MemberLeft,
    MembershipEvent,
    MemberStatus,
    MemberUp,
    Send,
    make_overlay,
)
from .membership.overlay import Deliver, FullMeshOverlay, Overlay, OverlayEffect
from .membership.plumtree import TreeSend
from .topology import TopologyCoordinator, TopologyManager, TopologyState
from .transport.base import ChannelKind, Link, Transport
from .transport.zmq import ZmqTransport
from .wire import MsgType, RejectCode, Role
from .wire.types import K_CT, K_ENDPOINTS, K_INC, K_META, K_NAME, K_ROLE, K_SRC, K_TOPOLOGY

log = logging.getLogger(__name__)

HANDLER_SLICE = 0.005
"""Seconds an async subscription worker may run handlers before it lets the loop run other work."""

MAX_CLIENTS = 4096
"""Client-role peers remembered at once; beyond it the oldest are forgotten (they never said BYE)."""

APP_LINK_IDLE = 60.0
"""Seconds an on-demand link to a non-neighbour stays open after its last use."""

HANDSHAKE_LANE = 255
"""Routing-id lane octet of temporary handshake links (see Transport.connect)."""

Handler = Callable[["Message"], Any]
Service = Callable[[Any], Any]


@lru_cache(maxsize=65536)
def _id_text(node_id: bytes) -> str:
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
        return _id_text(self.sender)

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

    @property
    def seed(self) -> str:
        """The peer's membership endpoint (its seed address)."""
        return self.endpoints.get(MEMBERSHIP_CHANNEL, "")


def _peer_from_header(header: Mapping[str, Any], version: int) -> PeerInfo:
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
    return PeerInfo(
        id=_id_text(header[K_SRC]),
        name=header.get(K_NAME, ""),
        incarnation=header[K_INC],
        endpoints=endpoints,
        channels=channels,
        meta=dict(meta),
        role=role,
        version=version,
    )


def _identity_of(info: PeerInfo) -> Identity:
    endpoints = {name: (info.channels.get(name, ("control", 1))[0], ep, info.channels.get(name, ("control", 1))[1])
                 for name, ep in info.endpoints.items()}
    return Identity(wire.node_id_bytes(info.id), info.name, info.incarnation, dict(info.meta), endpoints)


def _peer_of(identity: Identity) -> PeerInfo:
    return PeerInfo(
        id=_id_text(identity.node_id),
        name=identity.name,
        incarnation=identity.incarnation,
        endpoints={name: spec[1] for name, spec in identity.endpoints.items()},
        channels={name: (spec[0], spec[2]) for name, spec in identity.endpoints.items()},
        meta=dict(identity.metadata),
    )


MemberListener = Callable[[MembershipEvent], Any]
"""``listener(event)`` with event one of MemberUp, MemberDown, MemberLeft, MemberChanged, Joined."""


class _Outbox:
    """Queue of encoded messages for one (link, channel, lane); see the module docstring."""

    __slots__ = (
        "link", "channel", "lane", "queue", "scheduled", "stalled", "draining", "space_waiters", "limit", "batching", "sized",
    )

    def __init__(self, link: Link, channel: ChannelConfig, lane: int, batching: bool) -> None:
        self.link = link
        self.channel = channel
        self.lane = lane
        self.queue: deque[list[Any]] = deque()
        self.scheduled = False
        self.stalled: tuple[list[Any], int] | None = None  # a (batch) message the transport refused
        self.draining = False
        self.space_waiters: list[asyncio.Future[None]] = []
        self.limit = max(channel.sndhwm, 1)
        self.batching = batching
        # Bulk lanes with a byte bound size their HWM (and this queue) from the messages: see _fit_hwm.
        self.sized = channel.kind is ChannelKind.BULK and channel.sndhwm_bytes > 0

    def full(self) -> bool:
        return len(self.queue) >= self.limit

    def wake_space(self) -> None:
        if self.space_waiters and len(self.queue) < self.limit:
            waiters, self.space_waiters = self.space_waiters, []
            for w in waiters:
                if not w.done():
                    w.set_result(None)


class _Subscription:
    """One subscription handler and how it runs (loop-ordered, worker thread, or inline)."""

    def __init__(self, node: Node, channel: str, handler: Handler, topic: bytes | None, inline: bool) -> None:
        self.node = node
        self.channel = channel
        self.handler = handler
        self.topic = topic
        self.is_async = inspect.iscoroutinefunction(handler)
        self.inline = inline and not self.is_async
        self.lanes: dict[int, deque[Message]] = {}
        self.wakers: dict[int, asyncio.Future[None] | None] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.thread: threading.Thread | None = None
        self.tq: queue.SimpleQueue[Message | None] | None = None
        self.closed = False
        if not self.is_async and not self.inline:
            self.tq = queue.SimpleQueue()
            self.thread = threading.Thread(target=self._thread_main, name=f"fabric-sub-{channel}", daemon=True)
            self.thread.start()

    def deliver(self, msg: Message) -> None:
        if self.topic is not None and not msg.topic.startswith(self.topic):
            return
        if self.inline:
            try:
                self.handler(msg)
            except Exception:
                self.node._handler_failed(self.channel)
        elif self.is_async:
            dq = self.lanes.get(msg.lane)
            if dq is None:
                dq = self.lanes[msg.lane] = deque()
                self.wakers[msg.lane] = None
                self.tasks[msg.lane] = asyncio.get_running_loop().create_task(self._worker(msg.lane, dq))
            dq.append(msg)
            waker = self.wakers[msg.lane]
            if waker is not None and not waker.done():
                waker.set_result(None)
        else:
            assert self.tq is not None
            self.tq.put(msg)

    async def _worker(self, lane: int, dq: deque[Message]) -> None:
        loop = asyncio.get_running_loop()
        handler = self.handler
        while not self.closed:
            handled = 0
            started = loop.time()
            while dq:
                msg = dq.popleft()
                try:
                    await handler(msg)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.node._handler_failed(self.channel)
                handled += 1
                if handled % 64 == 0 and loop.time() - started > HANDLER_SLICE:
                    # A handler that never awaits would otherwise hold the loop for the whole backlog.
                    await asyncio.sleep(0)
                    started = loop.time()
            waker: asyncio.Future[None] = loop.create_future()
            self.wakers[lane] = waker
            await waker
            self.wakers[lane] = None

    def _thread_main(self) -> None:
        assert self.tq is not None
        while True:
            msg = self.tq.get()
            if msg is None:
                return
            try:
                self.handler(msg)
            except Exception:
                self.node._handler_failed(self.channel)

    def pending(self) -> int:
        return sum(len(d) for d in self.lanes.values()) + (self.tq.qsize() if self.tq is not None else 0)

    def close(self) -> None:
        self.closed = True
        for task in self.tasks.values():
            task.cancel()
        if self.tq is not None:
            self.tq.put(None)


@dataclass
class _Peer:
    info: PeerInfo
    link: bytes
    linked_at: float
    probe: bool = False
    """Only the membership channel is connected (see :class:`~fabric.membership.Connect`)."""


class Node:
    """A fabric node (async API). See the module docstring for threads and ordering.

    Identity: ``id`` (UUID text; random per start unless ``config.node_id`` is set), ``name`` and
    ``incarnation`` (wall-clock milliseconds at construction, so it grows across restarts).

    >>> node = Node(NodeConfig.local(name="a"))      # doctest: +SKIP
    >>> await node.start()                            # doctest: +SKIP
    """

    _role = Role.MEMBER

    def __init__(self, config: NodeConfig | None = None, *, transport: Transport | None = None) -> None:
        self.config = config or NodeConfig()
        self._id_bytes = wire.node_id_bytes(self.config.node_id) if self.config.node_id else wire.new_node_id()
        self.id = _id_text(self._id_bytes)
        self.name = self.config.name
        # Wall-clock milliseconds at start: grows across restarts without any state on disk.
        self._incarnation = int(time.time() * 1000)
        self._transport: Transport = transport or ZmqTransport(
            self.config.transport,
            bind_address=self.config.bind,
            base_port=self.config.port,
            advertise=self.config.advertise,
            socket_prefix=f"{self.config.name}-{self.id[:8]}-",
        )
        self._channels = {c.name: c for c in self.config.channels}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = "new"
        self._endpoints: dict[str, str] = {}
        self._peers: dict[bytes, _Peer] = {}
        self._clients: dict[bytes, PeerInfo] = {}
        self._handshakes: dict[Link, asyncio.Future[PeerInfo]] = {}
        self._outboxes: dict[tuple[Link, str, int], _Outbox] = {}
        self._services: dict[str, Service] = {}
        self._subs: dict[str, list[_Subscription]] = {}
        self._pending: dict[int, tuple[asyncio.Future[Any], str, str]] = {}
        self._ids = itertools.count(1)
        self._seq: dict[tuple[Link, str, int], int] = {}
        self._last_seq: dict[tuple[bytes, str, int], int] = {}
        self._active_requests = 0
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.errors: Counter[str] = Counter()
        """Bad-input counters by category (``bad_signature``, ``truncated``, ``unknown_type`` ...)."""
        self.counters: Counter[str] = Counter()
        """Traffic counters (``sent``, ``received``, ``dropped_full``, ``seq_gaps`` ...)."""
        self.channel_counters: dict[str, list[int]] = {c.name: [0, 0] for c in self.config.channels}
        """Per channel: [messages sent, messages received] (batches count their inner messages)."""
        self._peer_listeners: list[Callable[[str, PeerInfo], None]] = []
        self._last_error_log = 0.0
        # membership (members only; see _apply)
        self._membership: Overlay | None = None
        # level-triggered link reconciliation: on-demand links, leaked probe links, missing neighbour links
        self._links = TopologyManager(idle_close=APP_LINK_IDLE, stray_grace=APP_LINK_IDLE)
        self._overlay_name = self.config.overlay
        self._topology: TopologyCoordinator | None = None
        self._announced_up: set[tuple[bytes, int]] = set()  # members announced up across overlay switches
        self._reconcile_at = math.inf
        self._auto_pending: tuple[str, float] | None = None  # (overlay the size asks for, since when)
        self._topology_history: deque[dict[str, Any]] = deque(maxlen=16)  # switches seen here, for health()
        self._topology_told: dict[bytes, float] = {}  # stale senders told our topology (rate limit)
        self._member_listeners: list[MemberListener] = []
        self._member_events: asyncio.Queue[MembershipEvent] | None = None
        self._membership_timer: asyncio.TimerHandle | None = None
        self._membership_timer_at = math.inf
        self._traffic_noted: dict[bytes, float] = {}
        self._dialing: set[str] = set()
        self._membership_changed: asyncio.Event | None = None
        self._static_seeds: list[str] = []
        self._discovered_seeds: list[str] = []
        self._discovery: Any = None  # a fabric.discovery.DiscoveryPlugin once join(discovery=...) ran

    # -- lifecycle -----------------------------------------------------------------------------------

    @property
    def endpoints(self) -> dict[str, str]:
        """Channel -> advertised endpoint (after :meth:`start`)."""
        return dict(self._endpoints)

    @property
    def incarnation(self) -> int:
        """This node's incarnation: wall-clock ms at construction, raised by membership when the node
        refutes a false report of its death (it then speaks as a new incarnation)."""
        return self._membership.local.incarnation if self._membership is not None else self._incarnation

    @property
    def seed(self) -> str:
        """This node's membership endpoint: the address other nodes join through."""
        return self._endpoints.get(MEMBERSHIP_CHANNEL, "")

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._state == "running"

    async def start(self) -> None:
        """Bind every channel and start receiving. Raises ConfigError when an endpoint cannot be bound."""
        if self._state != "new":
            raise NodeStateError(f"node {self.name} is {self._state}; a Node starts once")
        self._loop = asyncio.get_running_loop()
        self._pool = concurrent.futures.ThreadPoolExecutor(self.config.handler_threads, thread_name_prefix="fabric-svc")
        specs = [c.spec() for c in self.config.channels]
        prefix = wire.routing_prefix(self._id_bytes, role=self._role, incarnation=self._incarnation)
        if self._role is Role.CLIENT:
            assert isinstance(self._transport, ZmqTransport), "clients use the ZeroMQ transport"
            self._endpoints = self._transport.bind(specs, self._on_frames, prefix, listen=False)
        else:
            self._endpoints = self._transport.bind(specs, self._on_frames, prefix)
        self._state = "running"
        if self._role is Role.MEMBER:
            self._start_membership()
        log.info("node %s (%s) started: %s", self.name, self.id, self._endpoints)

    async def stop(self) -> None:
        """Say BYE to linked peers, fail outstanding calls, close sockets and handler threads.

        Never hangs: socket linger is bounded and running handler threads are not waited for.
        """
        if self._state != "running":
            self._state = "closed"
            return
        self._state = "stopping"
        if self._membership is not None and self._loop is not None:
            # Tell everyone we leave (a state push with our entry marked left), before the BYEs.
            self._apply(self._membership.leave(self._loop.time()))
        if self._membership_timer is not None:
            self._membership_timer.cancel()
        bye = wire.bye(self._id_bytes)
        for peer in list(self._peers.values()):
            try:
                self._transport.send(peer.link, MEMBERSHIP_CHANNEL, 0, bye)
            except (KeyError, Exception):  # best effort: the peer may already be gone
                pass
        for fut, peer_id, service in self._pending.values():
            if not fut.done():
                fut.set_exception(Unreachable("node is stopping", peer=peer_id, service=service))
        self._pending.clear()
        for fut in self._handshakes.values():
            if not fut.done():
                fut.set_exception(Unreachable("node is stopping"))
        for subs in self._subs.values():
            for sub in subs:
                sub.close()
        if self._discovery is not None:
            try:
                await self._discovery.stop()
            except Exception:  # discovery must never keep a node from stopping
                log.exception("node %s: stopping discovery failed", self.name)
        for task in list(self._tasks):
            task.cancel()
        for ob in self._outboxes.values():
            for w in ob.space_waiters:
                if not w.done():
                    w.set_exception(Unreachable("node is stopping"))
        await self._transport.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._state = "closed"
        log.info("node %s stopped", self.name)

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _require_running(self) -> None:
        if self._state != "running":
            raise NodeStateError(f"node {self.name} is {self._state}, not running")

    # -- peers ---------------------------------------------------------------------------------------

    def _advertised_channels(self) -> dict[str, list[Any]]:
        return {
            c.name: [c.kind.value, self._endpoints[c.name], c.parallelism]
            for c in self.config.channels
            if c.name in self._endpoints
        }

    def _hello(self) -> list[bytes]:
        return wire.hello(
            self._id_bytes,
            role=self._role,
            incarnation=self.incarnation,
            name=self.name,
            endpoints=self._advertised_channels(),
            meta=self.config.metadata,
            topology=self._topology_wire(),
        )

    def _topology_wire(self) -> dict[str, Any] | None:
        """This node's topology state for a handshake, once the cluster has switched at least once."""
        if self._topology is None or not self._topology.state.epoch:
            return None
        return self._topology.state.to_wire()

    async def connect(self, endpoint: str, *, timeout: float | None = None) -> PeerInfo:
        """Link to the node whose membership endpoint is ``endpoint`` (a static peer).

        Returns the peer's :class:`PeerInfo`. On a member node the peer also becomes a member (and,
        through gossip, so does everyone it knows): use :meth:`join` to wait for a cluster to form.
        Raises :class:`Unreachable` when no WELCOME arrives within ``timeout`` (default
        ``config.connect_timeout``), :class:`VersionMismatch` when the peer shares no protocol version
        with us, :class:`CallError` for any other rejection.
        """
        self._require_running()
        info = await self._handshake(endpoint, self.config.connect_timeout if timeout is None else timeout)
        if info.id == self.id:
            raise Unreachable(f"{endpoint} is this node itself")
        self._link_peer(info)
        self._contact(info)
        return info

    async def _handshake(self, endpoint: str, timeout: float) -> PeerInfo:
        """HELLO/WELCOME with ``endpoint``; returns who answered (links nothing)."""
        # Already linked to whoever serves that endpoint: say HELLO over the existing link. A second
        # DEALER would present the same routing id to the same ROUTER, which refuses it.
        link: Link = next((k for k, p in self._peers.items() if p.info.seed == endpoint), ("seed", endpoint))
        existing = self._handshakes.get(link)
        if existing is not None:  # a handshake with that endpoint is in flight: share its outcome
            async with asyncio.timeout(timeout):
                return await asyncio.shield(existing)
        assert self._loop is not None
        fut: asyncio.Future[PeerInfo] = self._loop.create_future()
        self._handshakes[link] = fut
        temporary = isinstance(link, tuple)
        try:
            if temporary:
                self._transport.connect(link, {MEMBERSHIP_CHANNEL: endpoint}, routing_lane=HANDSHAKE_LANE)
            self._transport.send(link, MEMBERSHIP_CHANNEL, 0, self._hello())
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that lands
                # in the same loop turn as the result (bpo-42130), and then stop() could hang.
                async with asyncio.timeout(timeout):
                    return await asyncio.shield(fut)
            except TimeoutError:
                raise Unreachable(f"no WELCOME from {endpoint} within {timeout:g}s") from None
        finally:
            self._handshakes.pop(link, None)
            if not fut.done():
                fut.cancel()
            elif not fut.cancelled():
                fut.exception()  # mark retrieved, so asyncio does not log it as never retrieved
            if temporary:
                self._transport.disconnect(link)

    def _link_peer(self, info: PeerInfo, *, probe: bool = False) -> None:
        """Open (or reopen, for a new incarnation) the sockets to a member: every channel, or with
        ``probe`` the membership channel only (a one-off exchange with a non-neighbour). A full link
        asked for over a probe link adds the missing channels to it."""
        key = wire.node_id_bytes(info.id)
        current = self._peers.get(key)
        if current is not None:
            if current.info.incarnation == info.incarnation:
                if current.probe and not probe:
                    current.probe = False
                    self._transport.connect(key, self._peer_endpoints(info), self._peer_parallelism(info))
                    self.counters["probe_links_upgraded"] += 1
                return
            self._unlink_peer(key, reason="restarted")
        # One endpoint serves one node at a time: a link to another id at the same seed is stale (that
        # node died and this one took its address), and its sockets would clash with the new ones.
        for other in [k for k, p in self._peers.items() if info.seed and p.info.seed == info.seed]:
            self._unlink_peer(other, reason="replaced at the same endpoint")
        endpoints = self._peer_endpoints(info)
        if probe:
            endpoints = {name: ep for name, ep in endpoints.items() if name == MEMBERSHIP_CHANNEL}
            self.counters["probe_links_opened"] += 1
        self._transport.connect(key, endpoints, self._peer_parallelism(info))
        self._peers[key] = _Peer(info, key, time.monotonic(), probe=probe)
        log.log(logging.DEBUG if probe else logging.INFO, "node %s linked to %s (%s)%s", self.name, info.name,
                info.id[:8], " (probe)" if probe else "")
        for listener in list(self._peer_listeners):
            listener("up", info)

    def _peer_endpoints(self, info: PeerInfo) -> dict[str, str]:
        return {name: ep for name, ep in info.endpoints.items() if name in self._channels}

    @staticmethod
    def _peer_parallelism(info: PeerInfo) -> dict[str, int]:
        return {name: par for name, (_kind, par) in info.channels.items()}

    def _unlink_peer(self, key: bytes, *, reason: str) -> None:
        peer = self._peers.pop(key, None)
        if peer is None:
            return
        self._links.forget(key)
        self._transport.disconnect(key)
        for okey in [k for k in self._outboxes if k[0] == key]:
            ob = self._outboxes.pop(okey)
            for w in ob.space_waiters:
                if not w.done():
                    w.set_exception(Unreachable(f"peer {peer.info.name} {reason}", peer=peer.info.id))
        for skey in [k for k in self._seq if k[0] == key]:
            del self._seq[skey]
        self._forget_source(key)
        log.log(logging.DEBUG if peer.probe else logging.INFO, "node %s unlinked %s (%s)", self.name, peer.info.name,
                reason)
        for listener in list(self._peer_listeners):
            listener("down", peer.info)

    async def disconnect(self, peer: str) -> None:
        """Drop the link to ``peer`` (sending BYE first). Unknown peers are ignored. A link the overlay
        still wants (a neighbour; on full-mesh every member) is re-linked by the topology manager within
        seconds: to leave the cluster, use :meth:`stop`."""
        key = wire.node_id_bytes(peer)
        if key in self._peers:
            try:
                self._transport.send(key, MEMBERSHIP_CHANNEL, 0, wire.bye(self._id_bytes))
            except KeyError:
                pass
            self._unlink_peer(key, reason="disconnected")

    def _forget_source(self, key: bytes) -> None:
        """Drop per-sender receive state (sequence tracking, traffic notes, client record): bounded state."""
        self._clients.pop(key, None)
        self._traffic_noted.pop(key, None)
        self._topology_told.pop(key, None)
        for skey in [k for k in self._last_seq if k[0] == key]:
            del self._last_seq[skey]

    def peers(self) -> list[PeerInfo]:
        """Linked members."""
        return [p.info for p in self._peers.values()]

    def clients(self) -> list[PeerInfo]:
        """Client-role peers that said HELLO (they are never members)."""
        return list(self._clients.values())

    def on_peer(self, listener: Callable[[str, PeerInfo], None]) -> None:
        """Call ``listener("up"|"down", info)`` on the loop when a link opens or closes."""
        self._peer_listeners.append(listener)

    # -- sending -------------------------------------------------------------------------------------

    def _channel(self, name: str, *, user: bool = True) -> ChannelConfig:
        try:
            channel = self._channels[name]
        except KeyError:
            raise ValueError(f"unknown channel {name!r}; configured: {sorted(self._channels)}") from None
        if user and channel.reserved:
            raise ValueError(f"channel {name!r} is reserved for the fabric")
        return channel

    def _peer_key(self, peer: str | PeerInfo) -> bytes:
        text = peer.id if isinstance(peer, PeerInfo) else peer
        try:
            key = wire.node_id_bytes(text)
        except ValueError:
            raise Unreachable(f"{text!r} is not a node id", peer=text) from None
        linked = self._peers.get(key)
        if (linked is None or linked.probe) and not self._app_link(key):
            raise Unreachable(f"no link to peer {text}", peer=text)
        if self._loop is not None and self._links.in_use(key):  # no clock read per send to a neighbour
            self._links.touch(key, self._loop.time())
        return key

    def _app_link(self, key: bytes) -> bool:
        """On partial-view overlays the node links only to its neighbours; a send or call to another
        live member opens a direct link on demand (kept while used, closed after ``app_link_idle``)."""
        if self._membership is None or self._loop is None:
            return False
        member = next((m for m in self._membership.members() if m.node_id == key), None)
        if member is None or member.status not in (MemberStatus.ALIVE, MemberStatus.SUSPECT) or key == self._id_bytes:
            return False
        self._link_peer(_peer_of(member.identity()))
        self._links.used(key, self._loop.time())
        return True

    def _reconcile_links(self, now: float) -> None:
        """The topology manager's level-triggered pass (see :mod:`fabric.topology.manager`): close links
        nobody wants, repair missing neighbour links. Only members known to be gone count as gone: right
        after an overlay switch the new core does not know everyone yet, and "unknown" must not close a
        link a call is using."""
        core = self._membership
        if core is None:
            return
        members = core.members()
        gone = {m.node_id for m in members if m.status in (MemberStatus.DOWN, MemberStatus.LEFT)}
        wanted = set(core.neighbours()) if core.joined and not core.leaving else set()
        plan = self._links.reconcile(wanted, {k: p.probe for k, p in self._peers.items()}, gone, now)
        for key, reason in plan.close:
            self._unlink_peer(key, reason=reason)
        if plan.open:
            by_id = {m.node_id: m for m in members}
            for key in plan.open:
                m = by_id.get(key)
                if m is not None and m.status in (MemberStatus.ALIVE, MemberStatus.SUSPECT):
                    log.info("node %s repairs its link to neighbour %s", self.name, m.name)
                    self._link_peer(_peer_of(m.identity()))

    def _next_seq(self, link: Link, channel: str, lane: int) -> int:
        k = (link, channel, lane)
        seq = self._seq.get(k, 0) + 1
        self._seq[k] = seq
        return seq

    async def send(self, peer: str | PeerInfo, payload: Any, *, channel: str = "coordination", key: Any = None) -> bool:
        """Send ``payload`` to ``peer`` on a control or bulk ``channel``; ``key`` picks the lane.

        Bytes travel raw; other values are msgpack-encoded (the receiver's ``Message.value()`` decodes).
        Returns True when queued for the transport (not an acknowledgement: see "What send() promises" in
        docs/guide.md), False when dropped under ``on_full=drop``.
        Raises :class:`Unreachable` (no link), :class:`Overloaded` (queue full under ``wait``/``raise``),
        TypeError (unencodable payload), ValueError (unknown, reserved or broadcast channel).
        """
        self._require_running()
        ch = self._channel(channel)
        if ch.kind is ChannelKind.BROADCAST:
            raise ValueError(f"{channel!r} is a broadcast channel: use broadcast()")
        link = self._peer_key(peer)
        body, ct = encode_value(payload)
        lane = lane_for(key, self._lane_count(link, ch))
        frames = wire.send(self._id_bytes, channel, body, lane=lane, seq=self._next_seq(link, channel, lane), content_type=ct)
        return await self._enqueue(link, ch, lane, frames)

    def _lane_count(self, link: bytes, ch: ChannelConfig) -> int:
        peer = self._peers.get(link)
        if peer is not None and ch.name in peer.info.channels:
            return max(1, peer.info.channels[ch.name][1])
        return ch.parallelism

    async def broadcast(self, payload: Any, *, channel: str = "events", topic: bytes = b"") -> int:
        """Send ``payload`` to every linked peer on ``channel``; return the number of peers addressed.

        On a broadcast channel this is one PUB send that every subscribed peer receives (a subscriber at
        its high-water mark misses it); ``topic`` lets subscribers filter by prefix. On a control or bulk
        channel it is one send per linked peer under the channel's ``on_full`` policy.
        """
        self._require_running()
        ch = self._channel(channel)
        body, ct = encode_value(payload)
        if self._membership is not None and self._overlay_name != "full-mesh" and self._loop is not None:
            # Partial views: no link to most members, so the overlay's broadcast tree (Plumtree on the
            # gossip channel) carries it; receivers deliver it on ``channel`` as if it came directly.
            wrapped = {"c": channel, "t": topic, "ct": int(ct), "p": body}
            self._apply(self._membership.broadcast(wrapped, self._loop.time()))
            self.counters["sent"] += 1
            self.channel_counters[channel][0] += 1
            return max(0, len(self.alive_members()) - 1)
        if ch.kind is ChannelKind.BROADCAST:
            frames = wire.publish(
                self._id_bytes, channel, body, topic=topic, seq=self._next_seq("pub", channel, 0), content_type=ct
            )
            if not self._transport.publish(channel, frames):
                self.counters["dropped_full"] += 1
            self.counters["sent"] += 1
            self.channel_counters[channel][0] += 1
            return len(self._peers)
        count = 0
        for link in list(self._peers):
            frames = wire.send(self._id_bytes, channel, body, seq=self._next_seq(link, channel, 0), content_type=ct)
            try:
                if await self._enqueue(link, ch, 0, frames):
                    count += 1
            except (Unreachable, Overloaded):
                self.counters["broadcast_failed"] += 1
        return count

    async def _enqueue(self, link: Link, ch: ChannelConfig, lane: int, frames: list[Any]) -> bool:
        okey = (link, ch.name, lane)
        ob = self._outboxes.get(okey)
        if ob is None:
            batching = self.config.batching and ch.batching and ch.kind is ChannelKind.CONTROL
            ob = self._outboxes[okey] = _Outbox(link, ch, lane, batching)
        if ob.sized:
            self._fit_hwm(ob, frames)
        if ob.full() or (not ob.batching and (ob.queue or ob.stalled)):
            if ob.full():
                if ch.on_full is OnFull.DROP:
                    self.counters["dropped_full"] += 1
                    return False
                if ch.on_full is OnFull.RAISE:
                    raise Overloaded(f"queue to peer full on channel {ch.name}", peer=_peer_text(link))
                await self._wait_space(ob)
        self.counters["sent"] += 1
        self.channel_counters[ch.name][0] += 1
        if not ob.queue and ob.stalled is None and not (ob.batching and ob.scheduled):
            # An idle lane: send at once, so a lone call or reply costs no extra loop turn. On a
            # batching lane the flush scheduled here marks the rest of this loop turn: messages queued
            # after this one still coalesce into one BATCH at the end of the turn.
            try:
                sent = self._transport.send(link, ch.name, lane, frames)
            except KeyError:  # no socket (link closing): batched messages are queued and dropped by the flush
                if not ob.batching:
                    raise
                sent = None
            if sent is not None:
                if not sent:
                    ob.stalled = (frames, 1)
                    self._start_drain(ob)
                elif ob.batching:
                    ob.scheduled = True
                    assert self._loop is not None
                    self._loop.call_soon(self._flush, ob)
                return True
        ob.queue.append(frames)
        if not ob.scheduled and ob.stalled is None:
            ob.scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush, ob)
        return True

    def _fit_hwm(self, ob: _Outbox, frames: list[Any]) -> None:
        """``ChannelConfig.sndhwm_bytes``: size the lane's HWM and queue limit from this message's size,
        in powers of two. Lowered at once (the byte bound holds for what is queued from now on); raised
        one doubling per message, and only when the size allows at least twice the current limit, so a
        stream of varying sizes does not reset the option on every message. One doubling at a time is
        what keeps a full lane alive: libzmq's reader sends its "room again" every HWM/2 reads, counted
        with the new HWM, so a larger jump could leave a full lane waiting for a read that never comes
        (see ``Transport.set_send_hwm``)."""
        size = 0
        for f in frames[1:]:
            size += len(f)
        ch = ob.channel
        want = max(1, min(ch.sndhwm, ch.sndhwm_bytes // max(size, 1)))
        want = 1 << (want.bit_length() - 1)
        if want >= ob.limit:
            if want < 2 * ob.limit:
                return
            want = 2 * ob.limit
        try:
            self._transport.set_send_hwm(ob.link, ch.name, ob.lane, want)
        except KeyError:  # link closing: its outboxes go with it
            return
        ob.limit = want
        ob.wake_space()

    async def _wait_space(self, ob: _Outbox) -> None:
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        ob.space_waiters.append(fut)
        try:
            async with asyncio.timeout(ob.channel.send_timeout):  # not wait_for: see _handshake
                await fut
        except TimeoutError:
            raise Overloaded(
                f"queue to peer on channel {ob.channel.name} stayed full for {ob.channel.send_timeout:g}s",
                peer=_peer_text(ob.link),
            ) from None

    def _flush(self, ob: _Outbox) -> None:
        ob.scheduled = False
        if self._outboxes.get((ob.link, ob.channel.name, ob.lane)) is not ob:
            return  # link closed meanwhile
        send = self._transport.send
        max_msgs = self.config.transport.batch_max_messages
        max_bytes = self.config.transport.batch_max_bytes
        q = ob.queue
        while q:
            if ob.batching and len(q) > 1:
                batch: list[list[Any]] = []
                size = 0
                while q and len(batch) < max_msgs:
                    m = q[0]
                    msize = len(m[0]) + (len(m[1]) if len(m) > 1 else 0)
                    if batch and size + msize > max_bytes:
                        break
                    batch.append(q.popleft())
                    size += msize
                frames = batch[0] if len(batch) == 1 else wire.encode_batch(self._id_bytes, batch)
                count = len(batch)
            else:
                frames = q.popleft()
                count = 1
            try:
                ok = send(ob.link, ob.channel.name, ob.lane, frames)
            except KeyError:
                q.clear()
                return
            if not ok:
                ob.stalled = (frames, count)
                self._start_drain(ob)
                break
        ob.wake_space()

    def _start_drain(self, ob: _Outbox) -> None:
        """Have the transport call :meth:`_resume` once the stalled lane can take a message again."""
        if not ob.draining:
            ob.draining = True
            try:
                self._transport.notify_writable(ob.link, ob.channel.name, ob.lane, functools.partial(self._resume, ob))
            except KeyError:  # no socket any more: the link is closing, and its outboxes go with it
                ob.draining = False

    def _resume(self, ob: _Outbox) -> None:
        """Writable again (or closed): send the stalled message, then the queue behind it."""
        ob.draining = False
        if ob.stalled is None or self._outboxes.get((ob.link, ob.channel.name, ob.lane)) is not ob:
            return
        frames, _count = ob.stalled
        try:
            ok = self._transport.send(ob.link, ob.channel.name, ob.lane, frames)
        except KeyError:
            return
        if not ok:  # someone else took the room, or a spurious wake-up: wait again
            self._start_drain(ob)
            return
        ob.stalled = None
        self._flush(ob)

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        assert self._loop is not None
        task: asyncio.Task[Any] = self._loop.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- calls ---------------------------------------------------------------------------------------

    def service(self, name: str) -> Callable[[Service], Service]:
        """Decorator registering ``fn(request) -> reply`` as service ``name`` (sync or async).

        Exceptions the handler raises reach the caller as :class:`RemoteHandlerError` (type and message).
        """

        def register(fn: Service) -> Service:
            self.add_service(name, fn)
            return fn

        return register

    def add_service(self, name: str, fn: Service) -> None:
        """Register (or replace) service ``name``."""
        if not name or len(name.encode()) > wire.MAX_NAME_BYTES:
            raise ValueError(f"service name must be 1-{wire.MAX_NAME_BYTES} bytes")
        self._services[name] = fn

    def remove_service(self, name: str) -> None:
        """Unregister service ``name`` (callers then get NoSuchService)."""
        self._services.pop(name, None)

    def services(self) -> list[str]:
        """Names of the registered services."""
        return sorted(self._services)

    async def call(
        self,
        peer: str | PeerInfo,
        service: str,
        request: Any = b"",
        *,
        timeout: float | None = None,
        channel: str = "coordination",
        key: Any = None,
    ) -> Any:
        """Call ``service`` on ``peer`` and return its reply (decoded as sent: bytes raw, others msgpack).

        Raises :class:`NoSuchService`, :class:`RemoteHandlerError`, :class:`CallTimeout`,
        :class:`Unreachable`, :class:`Overloaded` or :class:`BadRequest` (codes in docs/protocol.md).
        """
        self._require_running()
        ch = self._channel(channel)
        if ch.kind is not ChannelKind.CONTROL:
            raise ValueError(f"calls go over control channels; {channel!r} is {ch.kind.value}")
        link = self._peer_key(peer)
        peer_text = _id_text(link)
        return await self._call(link, peer_text, ch, service, request, timeout, key)

    async def _call(
        self, link: Link, peer_text: str, ch: ChannelConfig, service: str, request: Any, timeout: float | None, key: Any
    ) -> Any:
        if len(self._pending) >= self.config.max_inflight_calls:
            raise Overloaded(f"{len(self._pending)} calls already in flight", peer=peer_text, service=service)
        timeout = self.config.call_timeout if timeout is None else timeout
        body, ct = encode_value(request)
        msg_id = next(self._ids)
        lane = lane_for(key, ch.parallelism)
        frames = wire.call(
            self._id_bytes,
            service,
            body,
            msg_id=msg_id,
            channel=ch.name,
            lane=lane,
            timeout_ms=int(timeout * 1000),
            content_type=ct,
        )
        assert self._loop is not None
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._pending[msg_id] = (fut, peer_text, service)
        timer = self._loop.call_later(timeout, self._expire, msg_id, timeout)
        try:
            await self._enqueue(link, ch, lane, frames)
            return await fut
        finally:
            timer.cancel()
            self._pending.pop(msg_id, None)

    def _expire(self, msg_id: int, timeout: float) -> None:
        entry = self._pending.pop(msg_id, None)
        if entry is not None and not entry[0].done():
            entry[0].set_exception(
                CallTimeout(f"no reply from {entry[1][:8]} to {entry[2]!r} within {timeout:g}s", peer=entry[1], service=entry[2])
            )

    async def ping(self, peer: str | PeerInfo, *, timeout: float = 2.0) -> float:
        """Round-trip a PING on the membership channel; return the round-trip time in seconds."""
        rtt, _offset = await self.clock_offset(peer, timeout=timeout)
        return rtt

    async def clock_offset(self, peer: str | PeerInfo, *, timeout: float = 2.0) -> tuple[float, float]:
        """PING ``peer`` and return ``(round_trip_seconds, offset_seconds)``: how far the peer's wall
        clock is ahead of ours, from the PONG's timestamp (NTP-style midpoint estimate; its error is at
        most half the round trip)."""
        self._require_running()
        link = self._peer_key(peer)
        msg_id = next(self._ids)
        assert self._loop is not None
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._pending[msg_id] = (fut, _id_text(link), "ping")
        timer = self._loop.call_later(timeout, self._expire, msg_id, timeout)
        start = time.perf_counter()
        sent_wall = time.time()
        try:
            self._transport.send(link, MEMBERSHIP_CHANNEL, 0, wire.ping(self._id_bytes, msg_id=msg_id, wall_ms=int(sent_wall * 1000)))
            peer_wall_ms = await fut
            rtt = time.perf_counter() - start
            offset = (peer_wall_ms / 1000.0 - (sent_wall + rtt / 2)) if isinstance(peer_wall_ms, int) else 0.0
            return rtt, offset
        finally:
            timer.cancel()
            self._pending.pop(msg_id, None)

    # -- subscriptions -------------------------------------------------------------------------------

    def subscribe(self, channel: str, handler: Handler, *, topic: bytes | None = None, inline: bool = False) -> Callable[[], None]:
        """Deliver messages arriving on ``channel`` to ``handler(msg: Message)``; returns an unsubscribe function.

        ``topic`` filters broadcast messages by prefix. See the module docstring for where handlers run.
        """
        self._channel(channel)
        sub = _Subscription(self, channel, handler, topic, inline)
        self._subs.setdefault(channel, []).append(sub)

        def unsubscribe() -> None:
            subs = self._subs.get(channel, [])
            if sub in subs:
                subs.remove(sub)
            sub.close()

        return unsubscribe

    def _handler_failed(self, channel: str) -> None:
        self.counters["handler_errors"] += 1
        now = time.monotonic()
        if now - self._last_error_log > 1.0:  # rate-limited: a failing handler must not flood the log
            self._last_error_log = now
            log.exception("subscription handler failed on channel %s", channel)

    # -- receiving -----------------------------------------------------------------------------------

    def _bad_input(self, exc: ProtocolError) -> None:
        self.errors[exc.category] += 1
        now = time.monotonic()
        if now - self._last_error_log > 1.0:
            self._last_error_log = now
            log.warning("node %s dropped bad input (%s): %s", self.name, exc.category, exc)

    def _on_frames(self, channel: str, frames: list[Any], route: bytes | None, link: Link | None) -> None:
        """Transport receiver: decode, count and drop bad input, dispatch the rest. Loop thread."""
        self.counters["received"] += 1
        try:
            if self._channels[channel].kind is ChannelKind.BROADCAST and link is not None:
                if len(frames) < 2:
                    raise TruncatedMessage("broadcast message without topic and head frames")
                topic, frames = frames[0], frames[1:]
            else:
                topic = b""
            env = wire.decode(frames)
            if env.type == MsgType.BATCH:
                for inner in wire.split_batch(env):
                    try:
                        self._dispatch(wire.decode(inner), channel, route, link, topic)
                    except ProtocolError as exc:
                        self._bad_input(exc)
            else:
                self._dispatch(env, channel, route, link, topic)
        except ProtocolError as exc:
            self._bad_input(exc)

    def _dispatch(self, env: wire.Envelope, channel: str, route: bytes | None, link: Link | None, topic: bytes) -> None:
        t = env.type
        h = env.header
        self.channel_counters[channel][1] += 1
        if self._membership is not None:
            if t == MsgType.MEMBERSHIP or t == MsgType.TREE:
                self._on_membership(env)
                return
            self._note_traffic(h["s"])
        if t == MsgType.SEND or t == MsgType.PUBLISH:
            if h["c"] != channel:
                raise MalformedHeader(f"message for channel {h['c']!r} arrived on {channel!r}")
            seq = h.get("q")
            src = h["s"]
            lane = h.get("l", 0)
            if seq is not None:
                skey = (src, channel, lane)
                last = self._last_seq.get(skey)
                if last is not None and seq > last + 1:
                    self.counters["seq_gaps"] += seq - last - 1
                self._last_seq[skey] = seq
            subs = self._subs.get(channel)
            if not subs:
                self.counters["undelivered"] += 1
                return
            payload = env.frames[0] if env.frames else b""
            msg = Message(channel, src, payload, lane, seq, topic, h.get(K_CT, 0))
            for sub in subs:
                sub.deliver(msg)
        elif t == MsgType.CALL:
            self._on_call(env, channel, route, link)
        elif t == MsgType.REPLY or t == MsgType.ERROR:
            self._on_answer(env)
        elif t == MsgType.PING:
            pong = wire.pong(self._id_bytes, corr=h.get("i", 0), wall_ms=int(time.time() * 1000))
            self._answer(channel, route, link, pong)
        elif t == MsgType.PONG:
            entry = self._pending.pop(h.get("r", -1), None)
            if entry is not None and not entry[0].done():
                entry[0].set_result(h.get("ts"))
        elif t == MsgType.HELLO:
            self._on_hello(env, channel, route, link)
        elif t == MsgType.WELCOME or t == MsgType.REJECT:
            self._on_handshake_answer(env, link)
        elif t == MsgType.BYE:
            src = h["s"]
            if src in self._peers:
                self._unlink_peer(src, reason="left")
            self._forget_source(src)
        else:
            self.counters["ignored"] += 1

    def _answer(self, channel: str, route: bytes | None, link: Link | None, frames: list[bytes]) -> None:
        """Send ``frames`` back the way a request came in (ROUTER route, or the link it arrived on)."""
        ok = False
        try:
            if route is not None:
                ok = self._transport.respond(channel, route, frames)
            elif link is not None:
                ok = self._transport.send(link, channel, 0, frames)
        except KeyError:
            ok = False
        if not ok:
            self.counters["reply_undeliverable"] += 1

    def _on_hello(self, env: wire.Envelope, channel: str, route: bytes | None, link: Link | None) -> None:
        h = env.header
        vmin, vmax = h["vn"], h["vx"]
        version = min(vmax, wire.MAX_VERSION)
        if version < max(vmin, wire.MIN_VERSION):
            self.errors["version_mismatch"] += 1
            self._answer(
                channel,
                route,
                link,
                wire.reject(
                    self._id_bytes,
                    code=RejectCode.VERSION,
                    message=f"no common protocol version: peer speaks {vmin}..{vmax}, "
                    f"this node speaks {wire.MIN_VERSION}..{wire.MAX_VERSION}",
                ),
            )
            return
        info = _peer_from_header(h, version)
        if info.role is Role.CLIENT:
            if not self.config.accept_clients:
                self._answer(channel, route, link, wire.reject(self._id_bytes, code=RejectCode.ROLE, message="clients are not accepted"))
                return
            self._clients[h["s"]] = info
            while len(self._clients) > MAX_CLIENTS:  # clients that vanished without BYE: forget the oldest
                self._forget_source(next(iter(self._clients)))
        elif info.id != self.id:
            if K_TOPOLOGY in h:
                self._on_topology(h[K_TOPOLOGY])  # a newer overlay first, so the contact uses it
            self._link_peer(info)
            self._contact(info)
        self._answer(
            channel,
            route,
            link,
            wire.welcome(
                self._id_bytes,
                version=version,
                incarnation=self.incarnation,
                name=self.name,
                endpoints=self._advertised_channels(),
                meta=self.config.metadata,
                topology=self._topology_wire() if info.role is Role.MEMBER else None,
            ),
        )

    def _on_handshake_answer(self, env: wire.Envelope, link: Link | None) -> None:
        fut = self._handshakes.get(link) if link is not None else None
        if fut is None or fut.done():
            self.counters["unexpected_handshake"] += 1
            return
        h = env.header
        if env.type == MsgType.WELCOME:
            if K_TOPOLOGY in h:
                # Adopt the cluster's overlay and epoch before the caller contacts this peer: a node joining
                # a cluster that switched overlay would otherwise speak the old one, whose messages the
                # cluster drops as stale (issue 14, defect 1).
                self._on_topology(h[K_TOPOLOGY])
            try:
                fut.set_result(_peer_from_header(h, h["v"]))
            except ProtocolError as exc:
                fut.set_exception(Unreachable(f"peer sent a bad WELCOME: {exc}"))
            return
        code = h["ec"]
        message = h.get("em", "")
        if code == RejectCode.VERSION:
            fut.set_exception(VersionMismatch(f"HELLO rejected: {message}"))
        else:
            fut.set_exception(CallError(f"HELLO rejected (code {code}): {message}"))

    def _on_call(self, env: wire.Envelope, channel: str, route: bytes | None, link: Link | None) -> None:
        h = env.header
        corr = h["i"]
        fn = self._services.get(h["sv"])
        if fn is None:
            self._answer(
                channel, route, link, wire.error(self._id_bytes, corr, code=NoSuchService.code, message=f"no service {h['sv']!r}")
            )
            return
        if self._active_requests >= self.config.max_concurrent_requests:
            self.counters["shed_requests"] += 1
            self._answer(
                channel,
                route,
                link,
                wire.error(self._id_bytes, corr, code=Overloaded.code, message=f"{self._active_requests} requests running"),
            )
            return
        self._active_requests += 1
        self._spawn(self._run_service(fn, env, corr, channel, route, link))

    async def _run_service(self, fn: Service, env: wire.Envelope, corr: int, channel: str, route: bytes | None, link: Link | None) -> None:
        try:
            try:
                request = decode_value(env.payload, env.header.get(K_CT, 0))
            except ProtocolError as exc:
                frames = wire.error(self._id_bytes, corr, code=BadRequest.code, etype="BadRequest", message=str(exc))
            else:
                try:
                    if inspect.iscoroutinefunction(fn):
                        result = await fn(request)
                    else:
                        assert self._loop is not None
                        result = await self._loop.run_in_executor(self._pool, fn, request)
                    body, ct = encode_value(result)
                    frames = wire.reply(self._id_bytes, corr, body, content_type=ct)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    frames = wire.error(
                        self._id_bytes, corr, code=RemoteHandlerError.code, etype=type(exc).__name__, message=str(exc)
                    )
            self._answer(channel, route, link, frames)
        finally:
            self._active_requests -= 1

    def _on_answer(self, env: wire.Envelope) -> None:
        h = env.header
        entry = self._pending.pop(h["r"], None)
        if entry is None:
            self.counters["late_replies"] += 1  # timed out already, or a stray
            return
        fut, peer_text, service = entry
        if fut.done():
            return
        if env.type == MsgType.REPLY:
            try:
                fut.set_result(decode_value(env.payload, h.get(K_CT, 0)))
            except ProtocolError as exc:
                fut.set_exception(BadRequest(f"undecodable reply: {exc}", peer=peer_text, service=service))
            return
        code = h["ec"]
        cls = CALL_ERRORS.get(code, CallError)
        message = h.get("em", "")
        if cls is RemoteHandlerError:
            etype = h.get("et", "")
            fut.set_exception(
                RemoteHandlerError(
                    f"{service!r} on {peer_text[:8]} raised {etype}: {message}",
                    remote_type=etype,
                    remote_message=message,
                    peer=peer_text,
                    service=service,
                )
            )
        else:
            fut.set_exception(cls(message or cls.__name__, peer=peer_text, service=service))

    # -- membership ----------------------------------------------------------------------------------

    def _start_membership(self) -> None:
        assert self._loop is not None
        endpoints = {
            c.name: (c.kind.value, self._endpoints[c.name], c.parallelism) for c in self.config.channels if c.name in self._endpoints
        }
        identity = Identity(self._id_bytes, self.name, self._incarnation, dict(self.config.metadata), endpoints)
        self._membership = self._make_overlay(identity, self._loop.time())
        self._topology = TopologyCoordinator(
            self._id_bytes, self.config.overlay, OVERLAYS, cooldown=self.config.topology_cooldown, now=self._loop.time()
        )
        self._member_events = asyncio.Queue()
        self._membership_changed = asyncio.Event()
        self._spawn(self._pump_member_events())
        self._reschedule_membership()

    def _make_overlay(self, identity: Identity, now: float, name: str | None = None) -> Overlay:
        """The overlay core called ``name`` (default ``config.overlay``); all share :class:`Overlay`."""
        cfg = self.config
        return make_overlay(name or cfg.overlay, identity, membership=cfg.membership, overlay_config=cfg.overlay_config,
                            role=cfg.overlay_role, static_members=cfg.static_members, rng=random.Random(), now=now)

    @property
    def overlay(self) -> str:
        """The overlay in use (``full-mesh``, ``hyparview``, ``client-server``, ``static``)."""
        return self._overlay_name

    # -- topology switching ----------------------------------------------------------------------

    async def switch_topology(self, *args: str, expected_epoch: int | None = None) -> dict[str, Any]:
        """Switch the whole cluster to another overlay, live (no restart, same sockets and endpoints).

        ``switch_topology(new)`` or the compare-and-set form ``switch_topology(expected_current, new)``
        (optionally with ``expected_epoch``). The new state ``(overlay, epoch + 1, this node)`` is
        adopted here, announced to every linked member and carried in every membership heartbeat, so
        all members converge on it; concurrent proposals are ordered by (epoch, node id). Returns
        :meth:`current_topology`. Raises TopologyConflict (CAS mismatch), TopologyCooldown (too soon
        after the last switch), ValueError (unknown overlay), NodeStateError (not a running member).
        """
        self._require_running()
        if self._topology is None or self._loop is None:
            raise NodeStateError("only members switch the topology")
        if len(args) == 1:
            expected, new = None, args[0]
        elif len(args) == 2:
            expected, new = args[0], args[1]
        else:
            raise TypeError("switch_topology(new) or switch_topology(expected_current, new)")
        cas: str | tuple[str, int] | None = expected
        if expected is not None and expected_epoch is not None:
            cas = (expected, expected_epoch)
        state = self._topology.propose(new, self._loop.time(), expected=cas)
        log.info("node %s proposes topology %s (epoch %d)", self.name, new, state.epoch)
        self._announce_topology(state)
        self._switch_overlay(new, "proposed here")
        return self.current_topology()

    def _auto_topology(self, now: float) -> None:
        """Automatic mode: the alive member with the lowest node id proposes HyParView once the cluster
        has had ``auto_threshold`` members for ``auto_dwell`` seconds, and full-mesh once it has had at
        most ``auto_threshold - auto_hysteresis``. Only between those two overlays: a cluster an
        operator moved to another overlay stays there."""
        if self._topology is None or not self.joined or self._overlay_name not in ("full-mesh", "hyparview"):
            self._auto_pending = None
            return
        alive = self.alive_members()
        if not alive or min(m.node_id for m in alive) != self._id_bytes:
            self._auto_pending = None
            return  # not the decider
        size, cfg = len(alive), self.config
        want, rule = self._overlay_name, ""
        if self._overlay_name == "full-mesh" and size >= cfg.auto_threshold:
            want, rule = "hyparview", f"{size} members >= auto_threshold {cfg.auto_threshold}"
        elif self._overlay_name == "hyparview" and size <= cfg.auto_threshold - cfg.auto_hysteresis:
            want, rule = "full-mesh", (f"{size} members <= auto_threshold - auto_hysteresis "
                                       f"{cfg.auto_threshold - cfg.auto_hysteresis}")
        if want == self._overlay_name:
            self._auto_pending = None
            return
        if self._auto_pending is None or self._auto_pending[0] != want:
            self._auto_pending = (want, now)  # a join storm or a brief partition must not switch at once
        if now - self._auto_pending[1] < cfg.auto_dwell:
            return
        try:
            state = self._topology.propose(want, now, expected=self._overlay_name)
        except (ValueError, FabricError) as exc:  # cooldown or a concurrent switch: try again later
            log.debug("node %s: automatic topology switch postponed: %s", self.name, exc)
            return
        self._auto_pending = None
        log.warning("node %s: automatic topology: %s -> %s (epoch %d): %s", self.name, self._overlay_name, want,
                    state.epoch, rule)
        self._announce_topology(state)
        self._switch_overlay(want, f"auto: {rule}")

    def _announce_topology(self, state: TopologyState) -> None:
        announcement = wire.membership(self._id_bytes, "topo", {"tp": state.to_wire()})
        for key in list(self._peers):
            self._transport.send(key, MEMBERSHIP_CHANNEL, 0, announcement)

    def _tell_topology(self, source: bytes) -> None:
        assert self._loop is not None and self._topology is not None
        now = self._loop.time()
        if source not in self._peers or now - self._topology_told.get(source, -math.inf) < 1.0:
            return
        self._topology_told[source] = now
        while len(self._topology_told) > MAX_CLIENTS:  # bounded: forget the oldest
            del self._topology_told[next(iter(self._topology_told))]
        self.counters["topology_told"] += 1
        announcement = wire.membership(self._id_bytes, "topo", {"tp": self._topology.state.to_wire()})
        self._transport.send(source, MEMBERSHIP_CHANNEL, 0, announcement)

    def current_topology(self) -> dict[str, Any]:
        """Overlay, epoch, proposer, links (neighbours and on-demand) and sizes, as this node sees them."""
        state = self._topology.state if self._topology is not None else None
        return {
            "overlay": self._overlay_name,
            "epoch": state.epoch if state else 0,
            "proposer": _id_text(state.proposer) if state and state.epoch else None,
            "members": len(self.alive_members()),
            "neighbours": sorted(p.name for p in self.neighbours()),
            "links": len(self._peers),
            "app_links": self._links.on_demand,
            "auto": self.config.auto_topology,
            "history": list(self._topology_history),
        }

    def _on_topology(self, raw: Any) -> int:
        """Merge a topology state a peer sent; switch when it wins. Returns its epoch (-1: malformed)."""
        if self._topology is None or self._loop is None:
            return -1
        heard = TopologyState.from_wire(raw, OVERLAYS)
        state = self._topology.merge(raw, self._loop.time())
        if state is not None and state.overlay != self._overlay_name:
            log.info("node %s adopts topology %s (epoch %d)", self.name, state.overlay, state.epoch)
            self._switch_overlay(state.overlay, "adopted")
        return heard.epoch if heard is not None else -1

    def _switch_overlay(self, name: str, reason: str) -> None:
        """Replace the overlay core live: the new core starts from the members the old one knew alive
        (:meth:`~fabric.membership.Overlay.adopt`) and joins through their seeds; links the new overlay
        does not want are closed a little later, unless the application uses them. ``reason`` goes to
        the history :meth:`current_topology` reports."""
        old = self._membership
        if old is None or self._loop is None or name == self._overlay_name:
            self._overlay_name = name
            return
        now = self._loop.time()
        state = self._topology.state if self._topology is not None else None
        self._topology_history.append({
            "at": time.time(), "from": self._overlay_name, "to": name, "epoch": state.epoch if state else 0,
            "proposer": _id_text(state.proposer) if state and state.epoch else None, "reason": reason,
            "members": len(old.alive_members()),
        })
        alive = [m for m in old.members() if m.node_id != self._id_bytes and m.status in (MemberStatus.ALIVE, MemberStatus.SUSPECT)]
        self._announced_up.update((m.node_id, m.incarnation) for m in alive)
        me = old.local
        if self._membership_timer is not None:
            self._membership_timer.cancel()
            self._membership_timer = None
            self._membership_timer_at = math.inf
        self._overlay_name = name
        self._membership = self._make_overlay(me, now, name)
        seeds = [m.endpoints[MEMBERSHIP_CHANNEL][1] for m in alive if MEMBERSHIP_CHANNEL in m.endpoints]
        # A node that has not joined yet knows nobody alive: its own seeds keep it joining (an empty seed
        # list would make the new core declare itself joined alone).
        seeds = list(dict.fromkeys([*seeds, *self._static_seeds, *self._discovered_seeds]))
        # Links the old overlay made stay up meanwhile (calls in flight keep their link): mark them as in
        # use now, so the reconcile step closes only the ones nobody uses any more.
        self._links.hold(list(self._peers), now)
        self._apply(self._membership.adopt(alive, now))
        self._apply(self._membership.join(seeds, now))
        for peer in list(self._peers.values()):
            self._contact(peer.info)
        self._reconcile_at = now + APP_LINK_IDLE

    def neighbours(self) -> list[PeerInfo]:
        """The peers the overlay keeps links to (on full-mesh: every member)."""
        if self._membership is None:
            return self.peers()
        wanted = set(self._membership.neighbours())
        return [p.info for key, p in self._peers.items() if key in wanted]

    def _deliver_overlay(self, effect: Deliver) -> None:
        """A broadcast (or relayed message) the overlay carried: deliver it on its channel."""
        raw = effect.payload
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("c"), str)
            or raw["c"] not in self._channels
            or not isinstance(raw.get("p"), bytes)
            or not isinstance(raw.get("t", b""), bytes)
            or not isinstance(raw.get("ct", 0), int)
        ):
            self.errors["bad_header"] += 1
            return
        channel = raw["c"]
        self.channel_counters[channel][1] += 1
        subs = self._subs.get(channel)
        if not subs:
            self.counters["undelivered"] += 1
            return
        msg = Message(channel, effect.origin, raw["p"], 0, None, raw.get("t", b""), raw.get("ct", 0))
        for sub in subs:
            sub.deliver(msg)

    def _tree_channel(self) -> str:
        return "gossip" if "gossip" in self._channels else MEMBERSHIP_CHANNEL

    def _apply(self, effects: list[OverlayEffect]) -> None:
        """Perform what the overlay core asked for, in order (loop thread)."""
        for effect in effects:
            if isinstance(effect, Send | TreeSend):
                if effect.to in self._peers:
                    body = effect.body
                    if self._topology is not None and self._topology.state.epoch:
                        # Every overlay message says which topology epoch it belongs to: receivers switch
                        # first when it is newer (heartbeats make this the anti-entropy of the topology),
                        # and drop it when older, so two overlays never read each other's messages.
                        body = {**body, "tp": self._topology.state.to_wire()}
                    if isinstance(effect, Send):
                        channel, frames = MEMBERSHIP_CHANNEL, wire.membership(self._id_bytes, effect.op, body)
                    else:
                        channel = self._tree_channel()
                        frames = wire.membership(self._id_bytes, effect.op, body, mtype=MsgType.TREE)
                    if not self._transport.send(effect.to, channel, 0, frames):
                        self.counters["membership_send_full"] += 1
                else:
                    self.counters["membership_send_unlinked"] += 1
            elif isinstance(effect, Deliver):
                self._deliver_overlay(effect)
            elif isinstance(effect, Connect):
                self._link_peer(_peer_of(effect.identity), probe=effect.probe)
            elif isinstance(effect, Disconnect):
                if self._links.in_use(effect.node_id):
                    continue  # the application still uses this link (see _app_link)
                self._unlink_peer(effect.node_id, reason="membership")
            elif isinstance(effect, Dial):
                if effect.endpoint not in self._dialing and self._state == "running":
                    self._dialing.add(effect.endpoint)
                    self._spawn(self._dial(effect.endpoint))
            else:
                assert self._member_events is not None and self._membership_changed is not None
                if isinstance(effect, MemberUp) and (effect.member.node_id, effect.member.incarnation) in self._announced_up:
                    continue  # already up before an overlay switch: events fire once per change
                if isinstance(effect, Joined) and self._announced_up:
                    continue
                self._member_events.put_nowait(effect)
                self._membership_changed.set()
        self._reschedule_membership()

    def _reschedule_membership(self) -> None:
        core = self._membership
        if core is None or self._loop is None or self._state != "running":
            return
        deadline = core.next_deadline()
        if deadline is None or deadline >= self._membership_timer_at:
            return
        if self._membership_timer is not None:
            self._membership_timer.cancel()
        self._membership_timer_at = deadline
        self._membership_timer = self._loop.call_at(deadline, self._on_membership_timer)

    def _on_membership_timer(self) -> None:
        self._membership_timer = None
        self._membership_timer_at = math.inf
        if self._membership is not None and self._loop is not None and self._state == "running":
            now = self._loop.time()
            self._apply(self._membership.tick(now))
            if now >= self._reconcile_at:
                self._reconcile_at = math.inf
                self._announced_up.clear()
            if self._links.due(now):  # once a second, not on every heartbeat tick
                self._reconcile_links(now)
                if self.config.auto_topology:
                    self._auto_topology(now)

    async def _dial(self, endpoint: str) -> None:
        try:
            info = await self._handshake(endpoint, self.config.connect_timeout)
        except (CallError, OSError) as exc:
            self.counters["dial_failures"] += 1
            log.debug("node %s: dialling %s failed: %s", self.name, endpoint, exc)
            return
        finally:
            self._dialing.discard(endpoint)
        if info.id != self.id and self._state == "running":
            self._link_peer(info)
            self._contact(info)

    def _contact(self, info: PeerInfo) -> None:
        if self._membership is not None and self._loop is not None and info.role is Role.MEMBER:
            try:
                identity = _identity_of(info)
            except (BadMembershipMessage, ValueError):
                self.errors["bad_membership"] += 1
                return
            self._apply(self._membership.contact(identity, self._loop.time()))

    def _on_membership(self, env: wire.Envelope) -> None:
        assert self._membership is not None and self._loop is not None
        try:
            body = wire.unpackb(env.payload)
            if isinstance(body, dict) and self._topology is not None:
                sender_epoch = 0
                if "tp" in body:
                    sender_epoch = self._on_topology(body.pop("tp"))  # may switch our overlay first
                    if env.header["op"] == "topo":
                        return
                if sender_epoch < self._topology.state.epoch:
                    # Spoken in an older topology: the sender switches when it hears our heartbeat, and a
                    # sender we send no heartbeats to (a newcomer, a node cut off during the switch) is
                    # told at once, at most once a second.
                    self.counters["stale_topology_messages"] += 1
                    self._tell_topology(env.header["s"])
                    return
            if env.type == MsgType.TREE:
                effects = self._membership.receive_tree(env.header["s"], env.header["op"], body, self._loop.time())
            else:
                effects = self._membership.receive(env.header["s"], env.header["op"], body, self._loop.time())
        except (ProtocolError, BadMembershipMessage) as exc:
            self.errors["bad_membership"] += 1
            log.debug("node %s: bad membership message: %s", self.name, exc)
            return
        self._apply(effects)

    def _note_traffic(self, source: bytes) -> None:
        # Any traffic is a sign of life; noting it at most every 50 ms keeps the hot path cheap.
        assert self._loop is not None and self._membership is not None
        now = self._loop.time()
        if now - self._traffic_noted.get(source, -1.0) >= 0.05:
            self._traffic_noted[source] = now
            effects = self._membership.traffic(source, now)
            if effects:
                self._apply(effects)

    async def _pump_member_events(self) -> None:
        """Deliver membership events to listeners one at a time, in order (sync inline, async awaited)."""
        assert self._member_events is not None
        while True:
            event = await self._member_events.get()
            if isinstance(event, MemberUp | MemberDown | MemberLeft):
                log.info("node %s: %s %s", self.name, type(event).__name__, event.member.name)
            for listener in list(self._member_listeners):
                try:
                    result = listener(event)
                    if inspect.isawaitable(result):
                        await result
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.counters["listener_errors"] += 1
                    log.exception("membership listener failed")

    def on_member_event(self, listener: MemberListener) -> Callable[[], None]:
        """Call ``listener(event)`` for every membership event, once per change and in order.

        Events: :class:`MemberUp`, :class:`MemberDown`, :class:`MemberLeft`, :class:`MemberChanged`,
        :class:`Joined` (from :mod:`fabric.membership`). Listeners run on the node's loop, one event at
        a time (async listeners are awaited). Returns a function that removes the listener.
        """
        self._member_listeners.append(listener)
        return lambda: self._member_listeners.remove(listener) if listener in self._member_listeners else None

    def on_up(self, listener: Callable[[Member], Any]) -> Callable[[], None]:
        """``listener(member)`` when a member (incarnation) comes up."""
        return self.on_member_event(lambda e: listener(e.member) if isinstance(e, MemberUp) else None)

    def on_down(self, listener: Callable[[Member, str], Any]) -> Callable[[], None]:
        """``listener(member, reason)`` when a member goes down (reason as MemberDown) or leaves ("left")."""

        def relay(e: MembershipEvent) -> Any:
            if isinstance(e, MemberDown):
                return listener(e.member, e.reason)
            if isinstance(e, MemberLeft):
                return listener(e.member, "left")
            return None

        return self.on_member_event(relay)

    def on_change(self, listener: Callable[[Member, Member], Any]) -> Callable[[], None]:
        """``listener(member, previous)`` when a member's metadata, endpoints or suspicion changes."""
        return self.on_member_event(lambda e: listener(e.member, e.previous) if isinstance(e, MemberChanged) else None)

    def phi(self, member: str) -> float | None:
        """The failure detector's current phi for ``member`` (node id text); None when it is not an up
        member (or on a client). Suspicion starts at ``config.membership.phi_threshold``."""
        if self._membership is None or self._loop is None:
            return None
        core = self._membership.core if isinstance(self._membership, FullMeshOverlay) else self._membership
        phi = getattr(core, "phi", None)
        return phi(wire.node_id_bytes(member), self._loop.time()) if phi is not None else None

    @property
    def joined(self) -> bool:
        """True once the node is part of a cluster (a peer's state lists it alive), or alone by choice."""
        return self._membership is not None and self._membership.joined

    def members(self) -> list[Member]:
        """The full membership as this node sees it (itself included), sorted by node id, each with its
        status (alive, suspect, down, left: down and left ones until their tombstones expire),
        incarnation, metadata and endpoints. Empty on a client."""
        return self._membership.members() if self._membership is not None else []

    def alive_members(self) -> list[Member]:
        """Members that are up (alive or suspect), this node included."""
        if self._membership is None:
            return []
        return [m for m in self._membership.members() if m.status in (MemberStatus.ALIVE, MemberStatus.SUSPECT)]

    async def join(
        self,
        seeds: Sequence[str] = (),
        *,
        discovery: Any = None,
        min_members: int = 1,
        timeout: float | None = 30.0,
    ) -> list[Member]:
        """Join the cluster and wait until this node has joined and sees at least ``min_members`` live
        members, itself included. Returns :meth:`members`.

        ``seeds`` are membership endpoints; ``discovery`` is a started-or-not
        :class:`fabric.discovery.DiscoveryPlugin` (static, dns, mdns, gossip, consul, kubernetes, multi)
        whose candidates are used as seeds as they come and go: the node announces itself through it,
        dials new candidates, and stops dialling a candidate that disappears (a live member stays a
        member: discovery is never liveness). Unreachable seeds are retried with backoff.

        Raises :class:`JoinTimeout` after ``timeout`` seconds (None: wait forever); the node keeps
        trying in the background. Raises NodeStateError on a client or a stopped node.
        """
        self._require_running()
        if self._membership is None or self._loop is None or self._membership_changed is None:
            raise NodeStateError("only members join; clients connect()")
        self._static_seeds = list(dict.fromkeys([*self._static_seeds, *seeds]))
        if discovery is not None:
            await self._use_discovery(discovery)
        self._rejoin()

        def ready() -> bool:
            return self.joined and len(self.alive_members()) >= min_members

        deadline = None if timeout is None else self._loop.time() + timeout
        while not ready():
            self._membership_changed.clear()
            remaining = None if deadline is None else deadline - self._loop.time()
            if remaining is not None and remaining <= 0:
                raise JoinTimeout(
                    f"node {self.name}: {len(self.alive_members())} of {min_members} members after {timeout:g}s "
                    f"(joined={self.joined}, seeds={self._static_seeds + self._discovered_seeds})"
                )
            try:
                async with asyncio.timeout(remaining):
                    await self._membership_changed.wait()
            except TimeoutError:
                continue
        return self.members()

    def _rejoin(self) -> None:
        assert self._membership is not None and self._loop is not None
        seeds = list(dict.fromkeys([*self._static_seeds, *self._discovered_seeds]))
        self._apply(self._membership.join(seeds, self._loop.time()))

    async def _use_discovery(self, plugin: Any) -> None:
        from .discovery import LocalNode

        if self._discovery is not None and self._discovery is not plugin:
            raise NodeStateError("this node already uses a discovery plugin")
        self._discovery = plugin
        if not plugin.running:
            await plugin.start(LocalNode(node_id=self.id, name=self.name, endpoints=self.endpoints, metadata=self.config.metadata))
        self._discovered_seeds = [c.seed for c in await plugin.lookup()]
        self._spawn(self._follow_discovery(plugin))

    async def _follow_discovery(self, plugin: Any) -> None:
        """Feed the candidate list into the membership core each time it changes."""
        async for candidates in plugin.watch():
            seeds = [c.seed for c in candidates]
            if seeds != self._discovered_seeds and self._state == "running":
                log.info("node %s: discovery offers %d candidates", self.name, len(seeds))
                self._discovered_seeds = seeds
                self._rejoin()

    # -- introspection -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters: traffic, bad input by category, transport, pending work."""
        return {
            "counters": dict(self.counters),
            "channels": {name: {"sent": c[0], "received": c[1]} for name, c in self.channel_counters.items()},
            "errors": dict(self.errors),
            "transport": self._transport.stats(),
            "pending_calls": len(self._pending),
            "active_requests": self._active_requests,
            "queued": {f"{_peer_text(k[0])[:8]}/{k[1]}/{k[2]}": len(o.queue) for k, o in self._outboxes.items() if o.queue},
            "subscription_backlog": {c: sum(s.pending() for s in subs) for c, subs in self._subs.items()},
            "membership": dict(self._membership.stats()) if self._membership is not None else {},
            "links": dict(self._links.counters),
        }

    def health(self) -> dict[str, Any]:
        """A summary for operators: state, identity, endpoints, peers, bad-input totals."""
        return {
            "status": self._state,
            "id": self.id,
            "name": self.name,
            "incarnation": self.incarnation,
            "endpoints": self.endpoints,
            "peers": len(self._peers),
            "clients": len(self._clients),
            "joined": self.joined,
            "members": len(self.alive_members()),
            "topology": self.current_topology(),
            "bad_input": sum(self.errors.values()),
        }


def _peer_text(link: Link) -> str:
    return _id_text(link) if isinstance(link, bytes) and len(link) == 16 else str(link)


def members_of(nodes: Iterable[Node]) -> dict[str, list[str]]:
    """Debug helper: each node's name -> names of its linked peers."""
    return {n.name: sorted(p.name for p in n.peers()) for n in nodes}

"""What a member node and a client-role peer share: the parts and the peer-to-peer API.

:class:`Endpoint` composes the parts (see :mod:`fabric.node.node` for the theory of operation):
:class:`~fabric.node.peers.Peers`, :class:`~fabric.node.outbox.Outboxes`,
:class:`~fabric.node.calls.Calls` and :class:`~fabric.node.subscriptions.Subscriptions`, and holds what
both roles do: start and stop, ``connect``/``disconnect``, ``send``, ``call``, ``ping``,
``clock_offset``, ``subscribe``, receiving and dispatching, ``stats`` and ``health``. :class:`~fabric.Node`
adds membership, services and broadcast; :class:`~fabric.Client` adds nothing (it binds nothing, so it
offers no services and is never a member).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Self

from .. import wire
from .._values import encode_value, lane_for
from ..config import MEMBERSHIP_CHANNEL, ChannelConfig, NodeConfig
from ..errors import (
    ConfigError,
    MalformedHeader,
    NodeStateError,
    Overloaded,
    ProtocolError,
    TruncatedMessage,
    Unreachable,
)
from ..membership import (
    MemberStatus,
)
from ..security.roles import TrustRole
from ..topology import TopologyManager
from ..transport.base import ChannelKind, Link, Transport
from ..transport.faults import FaultPolicy
from ..transport.zmq import ZmqTransport
from ..wire import MsgType, Role
from ..wire.types import BOOT_ID_BYTES, K_CT
from .calls import Calls
from .limits import LruCounterMap, RateLimitedLog, TokenBuckets, origin_of
from .membership import NodeMembership
from .message import (
    Handler,
    MemberListener,
    Message,
    Peer,
    PeerInfo,
    id_text,
    peer_id_bytes,
    peer_of,
)
from .outbox import Outboxes
from .peers import Peers
from .security import CERT_META, PK_META, NodeSecurity
from .subscriptions import Subscriptions

log = logging.getLogger("fabric.node")

_UP = (MemberStatus.ALIVE, MemberStatus.SUSPECT)
_CLIENT_ROUTE = wire.ROUTING_CLIENT  # first octet of a client-role peer's routing id




class Endpoint:
    """The parts and the peer-to-peer API shared by :class:`~fabric.Node` and :class:`~fabric.Client`.
    Not used directly."""

    _role = Role.MEMBER

    def __init__(self, config: NodeConfig | None = None, *, transport: Transport | None = None) -> None:
        self.config = config or NodeConfig()
        self.config.security.check_complete()
        # Secure mode: the node id is the one the key pair defines (self-certifying ids).
        self._sec = NodeSecurity(self.config) if self.config.security.enabled else None
        if self._sec is not None:
            self._id_bytes = self._sec.node_id
        else:
            self._id_bytes = wire.node_id_bytes(self.config.node_id) if self.config.node_id else wire.new_node_id()
        self.id = id_text(self._id_bytes)
        self.name = self.config.name
        # Wall-clock milliseconds at start: grows across restarts without any state on disk.
        self._incarnation = int(time.time() * 1000)
        # Random per start, never changed by a refutation (which only raises the incarnation): lets a
        # peer tell a refutation by this process (keep the sockets) from a restart (relink).
        self._boot = os.urandom(BOOT_ID_BYTES)
        self._transport: Transport = transport or ZmqTransport(
            self.config.transport,
            bind_address=self.config.bind,
            base_port=self.config.port,
            advertise=self.config.advertise,
            socket_prefix=f"{self.config.name}-{self.id[:8]}-",
        )
        self._metadata: dict[str, str] = dict(self.config.metadata)
        """What this node advertises as metadata (secure mode adds its public key, ``fabric.pk``)."""
        if self._sec is not None:
            if not isinstance(self._transport, ZmqTransport):
                raise ConfigError("security.keys: CURVE needs the ZeroMQ transport")
            self._transport.set_curve(self._sec.curve_settings(self.id, listen=self._role is not Role.CLIENT))
            self._metadata[PK_META] = self._sec.public.decode()
            if self._sec.cert is not None:
                self._metadata[CERT_META] = base64.b64encode(self._sec.cert).decode()
        self._channels = {c.name: c for c in self.config.channels}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = "new"
        self._endpoints: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        limits = self.config.limits
        self._last_seq: LruCounterMap[tuple[bytes, str, int], int] = LruCounterMap(limits.max_seq_sources)
        self._max_seq_gap = limits.max_seq_gap
        self._client_calls = TokenBuckets(limits.client_call_rate, limits.client_call_rate, limits.rate_sources)
        self._refusals = RateLimitedLog(log, limits.bad_input_log_interval)
        self._last_error_log = 0.0
        self.errors: Counter[str] = Counter()
        """Bad-input counters by category (``bad_signature``, ``truncated``, ``unknown_type`` ...)."""
        self.counters: Counter[str] = Counter()
        """Traffic counters (``sent``, ``received``, ``dropped_full``, ``seq_gaps`` ...)."""
        self.channel_counters: dict[str, list[int]] = {c.name: [0, 0] for c in self.config.channels}
        """Per channel: [messages sent, messages received] (batches count their inner messages; the
        membership and tree channels count overlay messages too)."""
        self._peer_listeners: list[Callable[[str, PeerInfo], None]] = []
        tcfg = self.config.transport
        self._out = Outboxes(self._transport, self._id_bytes, self.counters, self.channel_counters,
                             batching=self.config.batching, batch_max_messages=tcfg.batch_max_messages,
                             batch_max_bytes=tcfg.batch_max_bytes)
        self._subs = Subscriptions(self._handler_failed, backlog=limits.subscription_backlog,
                                   backlog_bytes=limits.subscription_backlog_bytes, on_drop=self._subscriber_dropped)
        self._calls = Calls(self.config, self._id_bytes, self._transport, self._out.enqueue, self._answer, self._spawn,
                            self.counters)
        self._peers = Peers(self.config, self._id_bytes, self.name, self._transport, self._channels,
                            hello=lambda: self._hello(), welcome=self._welcome, answer=self._answer,
                            on_topology=self._adopt_topology,
                            on_contact=self._contact, on_link=self._peer_linked, on_unlink=self._peer_unlinked,
                            forget=self._forget_source, counters=self.counters, errors=self.errors,
                            security=self._sec)
        self._member_listeners: list[MemberListener] = []
        self._membership: NodeMembership | None = None  # members, once started
        # hot-path shortcuts (the parts' tables and the driver's methods, bound once)
        self._linked = self._peers.linked
        self._sub_map = self._subs.by_channel
        self._links: TopologyManager | None = None
        self._note_traffic: Callable[[bytes, float], None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    @property
    def endpoints(self) -> dict[str, str]:
        """Channel -> advertised endpoint (after :meth:`start`)."""
        return dict(self._endpoints)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop that ran :meth:`start` (None before): every coroutine of this node must be
        awaited on it, and other threads reach the node with ``asyncio.run_coroutine_threadsafe``."""
        return self._loop

    @property
    def incarnation(self) -> int:
        """This node's incarnation: wall-clock ms at construction, raised by membership when the node
        refutes a false report of its death (it then speaks as a new incarnation)."""
        return self._membership.driver.core.local.incarnation if self._membership is not None else self._incarnation

    @property
    def seed(self) -> str:
        """This node's membership endpoint: the address other nodes join through."""
        return self._endpoints.get(MEMBERSHIP_CHANNEL, "")

    @property
    def join_address(self) -> str:
        """What another node passes to ``join()`` to reach this one: :attr:`seed`, and in secure mode
        ``#`` and this node's public key in hex (a CURVE client must know the server's key)."""
        if self._sec is None or not self.seed:
            return self.seed
        import zmq.utils.z85

        return f"{self.seed}#{bytes(zmq.utils.z85.decode(self._sec.public)).hex()}"

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._state == "running"

    async def start(self) -> None:
        """Bind every channel and start receiving. Raises ConfigError when an endpoint cannot be bound."""
        if self._state != "new":
            raise NodeStateError(f"node {self.name} is {self._state}; a Node starts once")
        loop = self._loop = asyncio.get_running_loop()
        self._calls.start(loop)
        self._out.start(loop)
        self._peers.start(loop)
        specs = [c.spec(self.config.limits) for c in self.config.channels]
        prefix = wire.routing_prefix(self._id_bytes, role=self._role, incarnation=self._incarnation)
        receiver = self._on_frames if self._sec is None else self._on_frames_secure
        if self._role is Role.CLIENT:
            assert isinstance(self._transport, ZmqTransport), "clients use the ZeroMQ transport"
            self._endpoints = self._transport.bind(specs, receiver, prefix, listen=False)
        else:
            self._endpoints = self._transport.bind(specs, receiver, prefix)
        self._state = "running"
        self._started(loop)
        mode = self.config.security_mode
        log.info("node %s (%s) started (security: %s): %s", self.name, self.id, mode, self._endpoints)
        if mode == "insecure":
            log.warning("node %s runs INSECURE on %s: no CURVE, anyone who can reach its ports can join, send and "
                        "call (configure security.keys and security.trust: docs/security.md)", self.name, self.config.bind)
        if self._sec is not None:
            self._sec.watch(loop, self._apply_revocation)
            self._spawn(self._sec.reload_loop(self.config.security.trust_reload_interval, lambda: self._state == "running",
                                              self.name))

    def _started(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hook: the sockets are bound and the node runs (a member starts its membership here)."""

    async def stop(self) -> None:
        """Say BYE to linked peers, fail outstanding calls, close sockets and handler threads.

        Never hangs: socket linger is bounded and running handler threads are not waited for.
        """
        if self._state != "running":
            self._state = "closed"
            return
        self._state = "stopping"
        if self._membership is not None:
            # Tell everyone we leave (a state push with our entry marked left), before the BYEs.
            self._membership.stop()
        self._peers.stop()
        self._calls.stop("node is stopping")
        self._subs.close()
        if self._membership is not None:
            await self._membership.stop_discovery()
        for task in list(self._tasks):
            task.cancel()
        self._out.fail_all(Unreachable("node is stopping"))
        await self._transport.close()
        self._state = "closed"
        log.info("node %s stopped", self.name)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _require_running(self) -> None:
        if self._state != "running":
            raise NodeStateError(f"node {self.name} is {self._state}, not running")

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        assert self._loop is not None
        task: asyncio.Task[Any] = self._loop.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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
            meta=self._metadata,
            topology=self._topology_wire(),
            public_key=self._sec.public if self._sec is not None else None,
            cert=self._sec.cert if self._sec is not None else None,
            boot=self._boot,
        )

    def _welcome(self, version: int) -> list[bytes]:
        return wire.welcome(
            self._id_bytes,
            version=version,
            incarnation=self.incarnation,
            name=self.name,
            endpoints=self._advertised_channels(),
            meta=self._metadata,
            topology=self._topology_wire(),
            public_key=self._sec.public if self._sec is not None else None,
            cert=self._sec.cert if self._sec is not None else None,
            boot=self._boot,
        )

    def _topology_wire(self) -> dict[str, Any] | None:
        """A member's topology state for a handshake (``tp``), once its cluster has switched overlay."""
        membership = self._membership
        if membership is None:
            return None
        state = membership.driver.state
        return state.to_wire() if state.epoch else None

    def _adopt_topology(self, raw: Any) -> None:
        """A member's handshake carried its topology state: adopt it when newer, before linking (issue 14,
        defect 1: a node joining a cluster that switched overlay would otherwise speak the old overlay)."""
        membership = self._membership
        if membership is not None and self._loop is not None:
            membership.driver.merge_topology(raw, self._loop.time())

    async def connect(self, endpoint: str, *, timeout: float | None = None) -> PeerInfo:
        """Link to the node whose membership endpoint is ``endpoint`` (a static peer).

        Returns the peer's :class:`PeerInfo`. On a member node the peer also becomes a member (and,
        through gossip, so does everyone it knows): use :meth:`join` to wait for a cluster to form.
        Raises :class:`Unreachable` when no WELCOME arrives within ``timeout`` (default
        ``config.connect_timeout``) or, in secure mode, when the peer's key is not trusted as a member,
        :class:`VersionMismatch` when the peer shares no protocol version with us, :class:`CallError`
        for any other rejection (``UNTRUSTED``: our key is not in its trust file), ConfigError in secure
        mode when ``endpoint`` carries no ``#KEY``.
        """
        self._require_running()
        info = await self._peers.handshake(endpoint, self.config.connect_timeout if timeout is None else timeout)
        if info.id == self.id:
            raise Unreachable(f"{endpoint} is this node itself")
        if not self._peers.link(info):
            raise Unreachable(f"{endpoint}: no link opened to {info.name} ({info.id}): its key is not trusted as a "
                              "member, limits.max_peers is reached, or its endpoints are malformed", peer=info.id)
        self._contact(info)
        return info

    def _contact(self, info: PeerInfo) -> None:
        if self._membership is not None:
            self._membership.contact(info)

    def _peer_linked(self, info: PeerInfo) -> None:
        for listener in list(self._peer_listeners):
            listener("up", info)

    def _peer_unlinked(self, key: bytes, info: PeerInfo, reason: str) -> None:
        if self._membership is not None:
            self._membership.driver.links.forget(key)
        self._out.drop_link(key, Unreachable(f"peer {info.name} {reason}", peer=info.id))
        self._forget_source(key)
        for listener in list(self._peer_listeners):
            listener("down", info)

    def _forget_source(self, key: bytes) -> None:
        """Drop per-sender receive state (sequence tracking, traffic notes, client record): bounded state."""
        self._peers.forget_client(key)
        self._client_calls.forget(key)
        if self._membership is not None:
            self._membership.driver.forget(key)
        # Sequence trackers are left to age out of their LRU (limits.max_seq_sources): scanning for this
        # source's would cost O(table) per departure, which a flood of client HELLOs evicting clients
        # turned into seconds of loop time. A stale entry is harmless: a source that comes back restarts
        # below it, which counts no gap, and the first message replaces it.

    async def disconnect(self, peer: Peer) -> None:
        """Drop the link to ``peer`` (sending BYE first). Unknown peers are ignored. A link the overlay
        still wants (a neighbour; on full-mesh every member) is re-linked by the topology manager within
        seconds: to leave the cluster, use :meth:`stop`."""
        try:
            key = peer_id_bytes(peer)
        except ValueError:
            return
        self._peers.disconnect(key)

    def peers(self) -> list[PeerInfo]:
        """Linked members."""
        return [p.info for p in self._peers.linked.values()]

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

    def _peer_key(self, peer: Peer) -> bytes:
        """The link key of any :data:`Peer` (a Member, a PeerInfo, id text or bytes); opens an on-demand
        link to a live member that is not a neighbour. Raises :class:`Unreachable`."""
        if type(peer) is str:  # the common case first: no isinstance chain per send
            try:
                key = wire.node_id_bytes(peer)
            except ValueError:
                raise Unreachable(f"{peer!r} is not a node id", peer=peer) from None
        else:
            try:
                key = peer_id_bytes(peer)
            except ValueError as exc:
                raise Unreachable(f"{peer!r} is not a peer: {exc}", peer=str(peer)) from None
        linked = self._linked.get(key)
        if (linked is None or linked.probe) and not self._app_link(key):
            raise Unreachable(f"no link to peer {id_text(key)}", peer=id_text(key))
        links = self._links
        if links is not None and links.in_use(key):  # no clock read per send to a neighbour
            assert self._loop is not None
            links.touch(key, self._loop.time())
        return key

    def _app_link(self, key: bytes) -> bool:
        """On partial-view overlays the node links only to its neighbours; a send or call to another
        live member opens a direct link on demand (kept while used, closed after ``app_link_idle``)."""
        if self._membership is None or self._loop is None:
            return False
        member = next((m for m in self._membership.driver.members() if m.node_id == key), None)
        if member is None or member.status not in _UP or key == self._id_bytes:
            return False
        if not self._peers.link(peer_of(member.identity())):
            return False
        self._membership.driver.links.used(key, self._loop.time())
        return True

    async def send(self, peer: Peer, payload: Any, *, channel: str = "coordination", key: Any = None) -> bool:
        """Send ``payload`` to ``peer`` on a control or bulk ``channel``; ``key`` picks the lane.

        Bytes travel raw; other values are msgpack-encoded (the receiver's ``Message.value()`` decodes).
        Returns True when handed to the transport's queue for the link (delivery is not acknowledged: a
        message queued to a peer that dies or restarts before reading it is lost), False when dropped
        under ``on_full=drop``. Raises :class:`Unreachable` (no link), :class:`Overloaded` (queue full
        under ``wait``/``raise``), TypeError (unencodable payload), ValueError (unknown, reserved or
        broadcast channel).
        """
        self._require_running()
        ch = self._channel(channel)
        if ch.kind is ChannelKind.BROADCAST:
            raise ValueError(f"{channel!r} is a broadcast channel: use broadcast()")
        link = self._peer_key(peer)
        body, ct = encode_value(payload)
        lane = lane_for(key, self._lane_count(link, ch))
        frames = wire.send(self._id_bytes, channel, body, lane=lane, seq=self._out.next_seq(link, channel, lane), content_type=ct)
        return await self._out.enqueue(link, ch, lane, frames)

    def _lane_count(self, link: bytes, ch: ChannelConfig) -> int:
        peer = self._linked.get(link)
        if peer is not None and ch.name in peer.info.channels:
            return max(1, peer.info.channels[ch.name][1])
        return ch.parallelism

    # -- calls ---------------------------------------------------------------------------------------

    async def call(
        self,
        peer: Peer,
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
        return await self._calls.call(link, id_text(link), ch, service, request, timeout, key)

    async def ping(self, peer: Peer, *, timeout: float = 2.0) -> float:
        """Round-trip a PING on the membership channel; return the round-trip time in seconds."""
        rtt, _offset = await self.clock_offset(peer, timeout=timeout)
        return rtt

    async def clock_offset(self, peer: Peer, *, timeout: float = 2.0) -> tuple[float, float]:
        """PING ``peer`` and return ``(round_trip_seconds, offset_seconds)``: how far the peer's wall
        clock is ahead of ours, from the PONG's timestamp (NTP-style midpoint estimate; its error is at
        most half the round trip)."""
        self._require_running()
        return await self._calls.clock_offset(self._peer_key(peer), timeout)

    # -- subscriptions -------------------------------------------------------------------------------

    def subscribe(self, channel: str, handler: Handler, *, topic: bytes | None = None, inline: bool = False) -> Callable[[], None]:
        """Deliver messages arriving on ``channel`` to ``handler(msg: Message)``; returns an unsubscribe function.

        ``topic`` filters broadcast messages by prefix. See the module docstring for where handlers run.
        """
        self._channel(channel)
        return self._subs.add(channel, handler, topic, inline)

    def _subscriber_dropped(self, channel: str) -> None:
        """A subscription's backlog is at its limit: the message is dropped (counted, logged rarely)."""
        self.counters["subscription_dropped"] += 1
        self._refusals.warning(time.monotonic(), "node %s: a slow subscription handler on channel %s is at its "
                               "backlog limit; dropping messages (limits.subscription_backlog)", self.name, channel)

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

    def _on_frames_secure(self, channel: str, frames: list[Any], route: bytes | None, link: Link | None) -> None:
        """Secure-mode receiver: :meth:`_on_frames` plus the identity checks. The sender is the key the
        transport authenticated (:attr:`Transport.peer_key`); every message (each one of a batch) must
        carry that key's node id as its source (else ``forged_source``), and its key must hold a role
        that may send it right now (else ``untrusted``): nothing but a handshake from a key without one
        (revoked, or its certificate still to come), no membership or tree traffic from a client key."""
        sec = self._sec
        assert sec is not None
        key = self._transport.peer_key
        src = sec.id_of(key) if key is not None else None
        if src is None:
            self.errors["unauthenticated"] += 1
            return
        roles = sec.roles(key)  # type: ignore[arg-type]  # key is set when src is
        self.counters["received"] += 1
        try:
            if self._channels[channel].kind is ChannelKind.BROADCAST and link is not None:
                if len(frames) < 2:
                    raise TruncatedMessage("broadcast message without topic and head frames")
                topic, frames = frames[0], frames[1:]
            else:
                topic = b""
            env = wire.decode(frames)
            if env.header["s"] != src:
                self.errors["forged_source"] += 1
                return
            if env.type == MsgType.BATCH:
                for inner in wire.split_batch(env):
                    try:
                        ienv = wire.decode(inner)
                        if self._admissible(ienv, src, roles):
                            self._dispatch(ienv, channel, route, link, topic)
                    except ProtocolError as exc:
                        self._bad_input(exc)
            elif self._admissible(env, src, roles):
                self._dispatch(env, channel, route, link, topic)
        except ProtocolError as exc:
            self._bad_input(exc)

    def _admissible(self, env: wire.Envelope, src: bytes, roles: frozenset[Any]) -> bool:
        t = env.type
        if env.header["s"] != src:
            self.errors["forged_source"] += 1
            return False
        if not roles:
            if t == MsgType.HELLO or t == MsgType.WELCOME or t == MsgType.REJECT:
                return True  # the handshake decides (REJECT UNTRUSTED, or a certificate admits the key)
            self.errors["untrusted"] += 1
            return False
        if (t == MsgType.MEMBERSHIP or t == MsgType.TREE) and TrustRole.MEMBER not in roles:
            self.errors["untrusted"] += 1
            return False
        return True

    def _dispatch(self, env: wire.Envelope, channel: str, route: bytes | None, link: Link | None, topic: bytes) -> None:
        t = env.type
        h = env.header
        self.channel_counters[channel][1] += 1
        note_traffic = self._note_traffic
        if note_traffic is not None:
            if t == MsgType.MEMBERSHIP or t == MsgType.TREE:
                assert self._membership is not None
                if origin_of(route, link) != h["s"]:  # membership speaks for its sender only (issue 16)
                    self._forged(h["s"], route, link, "membership message")
                    return
                self._membership.receive(env)
                return
            assert self._loop is not None
            note_traffic(h["s"], self._loop.time())
        if t == MsgType.SEND or t == MsgType.PUBLISH:
            if h["c"] != channel:
                raise MalformedHeader(f"message for channel {h['c']!r} arrived on {channel!r}")
            seq = h.get("q")
            src = h["s"]
            lane = h.get("l", 0)
            if seq is not None:
                skey = (src, channel, lane)
                last_seq = self._last_seq
                last = last_seq.hot.get(skey)
                if last is None:  # bounded: a new source may push out one not heard from for long
                    last = last_seq.miss(skey)
                last_seq.hot[skey] = seq
                if last is not None and seq > last + 1:
                    gap = seq - last - 1
                    if gap > self._max_seq_gap:  # a restart or a spoofed sequence number: not a gap count
                        self.counters["seq_jumps"] += 1
                    else:
                        self.counters["seq_gaps"] += gap
            subs = self._sub_map.get(channel)
            if not subs:
                self.counters["undelivered"] += 1
                return
            payload = env.frames[0] if env.frames else b""
            msg = Message(channel, src, payload, lane, seq, topic, h.get(K_CT, 0))
            for sub in subs:
                sub.deliver(msg)
        elif t == MsgType.CALL:
            if route is not None and route[0] == _CLIENT_ROUTE and not self._client_call_allowed(h, channel, route):
                return
            self._calls.on_call(env, channel, route, link)
        elif t == MsgType.REPLY or t == MsgType.ERROR:
            self._calls.on_answer(env)
        elif t == MsgType.PING:
            pong = wire.pong(self._id_bytes, corr=h.get("i", 0), wall_ms=int(time.time() * 1000))
            self._answer(channel, route, link, pong)
        elif t == MsgType.PONG:
            self._calls.on_pong(h)
        elif t == MsgType.HELLO:
            self._peers.on_hello(h, channel, route, link)
        elif t == MsgType.WELCOME or t == MsgType.REJECT:
            self._peers.on_handshake_answer(env, link)
        elif t == MsgType.BYE:
            src = h["s"]
            if origin_of(route, link) != src:
                self._forged(src, route, link, "BYE")
                return
            self._peers.unlink(src, reason="left")
            self._forget_source(src)
        else:
            self.counters["ignored"] += 1

    def _forged(self, src: bytes, route: bytes | None, link: Link | None, what: str) -> None:
        """A control message claims a source its connection does not speak for: drop, count, log rarely."""
        self.errors["forged_source"] += 1
        origin = origin_of(route, link)
        self._refusals.warning(time.monotonic(), "node %s dropped a %s claiming to be %s from %s", self.name, what,
                               id_text(src)[:8] if len(src) == 16 else src.hex()[:16],
                               id_text(origin)[:8] if origin is not None else "an unattributable connection")

    def _client_call_allowed(self, h: dict[str, Any], channel: str, route: bytes) -> bool:
        """A client's CALL: note it is alive (client expiry), and apply ``limits.client_call_rate``."""
        assert self._loop is not None
        now = self._loop.time()
        key = route[1:17]
        self._peers.client_heard(key, now)
        if self._client_calls.allow(key, now):
            return True
        self.counters["client_calls_limited"] += 1
        self._answer(channel, route, None, wire.error(self._id_bytes, h["i"], code=Overloaded.code,
                                                      message="client call rate limit (limits.client_call_rate)"))
        return False

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

    # -- trust ---------------------------------------------------------------------------------------

    async def reload_trust(self) -> bool:
        """Secure mode: re-read the trust file now (it is also checked every
        ``security.trust_reload_interval`` seconds). Keys that lost their trust are acted on at once:
        their links are closed, their clients forgotten, their messages dropped, and every inbound
        connection is reset so theirs are refused by the ZAP handler (honest peers reconnect). Returns
        True when a new trust file is in force. Raises ConfigError for an invalid file (the last good
        one stays in force) and NodeStateError without security."""
        if self._sec is None:
            raise NodeStateError("reload_trust(): this node runs without security (no security.keys)")
        return self._sec.reload()

    def _apply_revocation(self, keys: frozenset[bytes]) -> None:
        """Keys lost their trust (loop thread): drop their links and clients, reset inbound connections."""
        sec = self._sec
        if sec is None or self._state != "running":
            return
        sec.forget_cached()
        dropped = self._peers.revoke(keys)
        sec.counters["revocations"] += 1
        sec.counters["revoked_peers_dropped"] += dropped
        if self._role is not Role.CLIENT and isinstance(self._transport, ZmqTransport):
            # libzmq cannot close one accepted connection: reset them all (unbind + bind on the same
            # endpoints). The revoked keys fail ZAP when they reconnect; honest peers are back within
            # their reconnect interval.
            self._spawn(self._transport.reset_inbound())
        log.warning("node %s: %d key(s) revoked; dropped %d peer(s)/client(s) and reset inbound connections",
                    self.name, len(keys), dropped)

    # -- fault injection -----------------------------------------------------------------------------

    def set_transport_faults(self, policy: FaultPolicy | None) -> None:
        """Put a per-peer :class:`~fabric.transport.faults.FaultPolicy` in force on this node's transport
        (None turns fault injection off): drop or randomly lose what this node sends to, or receives from,
        chosen peers, e.g. ``FaultPolicy(drop_from=[peer_id])`` for a one-way partition. Changeable at any
        time; the drops are counted in ``stats()["transport"]`` (``fault_dropped_out``, ``fault_dropped_in``).
        Available in every build, off by default. See docs/chaos.md."""
        self._transport.set_faults(policy)

    # -- introspection -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters: traffic, bad input by category, transport, pending work."""
        m = self._membership
        return {
            "counters": dict(self.counters),
            "channels": {name: {"sent": c[0], "received": c[1]} for name, c in self.channel_counters.items()},
            "errors": dict(self.errors),
            "transport": self._transport.stats(),
            "pending_calls": self._calls.pending,
            "active_requests": self._calls.active_requests,
            "queued": self._out.queued(),
            "subscription_backlog": self._subs.backlog(),
            "membership": dict(m.driver.core.stats()) if m is not None else {},
            "links": dict(m.driver.links.counters) if m is not None else {},
            "security": self._security_stats(),
            "limits": self._limit_usage(),
        }

    def _limit_usage(self) -> dict[str, int]:
        """How full each bounded structure is, and how often it forgot something (docs/security.md)."""
        if self._last_seq.evictions:
            self.counters["seq_evictions"] = self._last_seq.evictions
        m = self._membership
        return {
            "peers": len(self._peers.linked),
            "clients": len(self._peers.clients),
            "seq_sources": len(self._last_seq),
            "seq_evictions": self._last_seq.evictions,
            "client_call_sources": len(self._client_calls),
            "traffic_sources": m.driver.traffic_sources if m is not None else 0,
            "subscription_backlog_max": self._subs.max_backlog(),
            "broadcast_subscriptions": sum(getattr(self._transport, "subscriptions", {}).values()),
            **self._peers.usage(),
        }

    def _security_stats(self) -> dict[str, Any]:
        """Mode, the ZAP handler's counters and the identity checks' counters (``stats()["security"]``)."""
        checks = {k: self.errors.get(k, 0) for k in ("forged_source", "untrusted", "untrusted_hello",
                                                      "untrusted_link", "untrusted_welcome", "unauthenticated")}
        if self._sec is None:
            return {"mode": self.config.security_mode, **checks}
        return {**self._sec.stats(), **checks}

    def health(self) -> dict[str, Any]:
        """A summary for operators: state, identity, endpoints, peers, bad-input totals."""
        return {
            "status": self._state,
            "id": self.id,
            "name": self.name,
            "incarnation": self.incarnation,
            "endpoints": self.endpoints,
            "peers": len(self._peers.linked),
            "clients": len(self._peers.clients),
            "bad_input": sum(self.errors.values()),
            "security": self.config.security_mode,
        }



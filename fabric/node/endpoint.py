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
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Self

from .. import wire
from .._values import encode_value, lane_for
from ..config import MEMBERSHIP_CHANNEL, ChannelConfig, NodeConfig
from ..errors import (
    MalformedHeader,
    NodeStateError,
    ProtocolError,
    TruncatedMessage,
    Unreachable,
)
from ..membership import (
    MemberStatus,
)
from ..topology import TopologyManager
from ..transport.base import ChannelKind, Link, Transport
from ..transport.faults import FaultPolicy
from ..transport.zmq import ZmqTransport
from ..wire import MsgType, Role
from ..wire.types import K_CT
from .calls import Calls
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
from .subscriptions import Subscriptions

log = logging.getLogger("fabric.node")

_UP = (MemberStatus.ALIVE, MemberStatus.SUSPECT)




class Endpoint:
    """The parts and the peer-to-peer API shared by :class:`~fabric.Node` and :class:`~fabric.Client`.
    Not used directly."""

    _role = Role.MEMBER

    def __init__(self, config: NodeConfig | None = None, *, transport: Transport | None = None) -> None:
        self.config = config or NodeConfig()
        self._id_bytes = wire.node_id_bytes(self.config.node_id) if self.config.node_id else wire.new_node_id()
        self.id = id_text(self._id_bytes)
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
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_seq: dict[tuple[bytes, str, int], int] = {}
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
        self._subs = Subscriptions(self._handler_failed)
        self._calls = Calls(self.config, self._id_bytes, self._transport, self._out.enqueue, self._answer, self._spawn,
                            self.counters)
        self._peers = Peers(self.config, self._id_bytes, self.name, self._transport, self._channels,
                            hello=lambda: self._hello(), welcome=self._welcome, answer=self._answer,
                            on_topology=self._adopt_topology,
                            on_contact=self._contact, on_link=self._peer_linked, on_unlink=self._peer_unlinked,
                            forget=self._forget_source, counters=self.counters, errors=self.errors)
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
        specs = [c.spec() for c in self.config.channels]
        prefix = wire.routing_prefix(self._id_bytes, role=self._role, incarnation=self._incarnation)
        if self._role is Role.CLIENT:
            assert isinstance(self._transport, ZmqTransport), "clients use the ZeroMQ transport"
            self._endpoints = self._transport.bind(specs, self._on_frames, prefix, listen=False)
        else:
            self._endpoints = self._transport.bind(specs, self._on_frames, prefix)
        self._state = "running"
        self._started(loop)
        log.info("node %s (%s) started: %s", self.name, self.id, self._endpoints)

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
            meta=self.config.metadata,
            topology=self._topology_wire(),
        )

    def _welcome(self, version: int) -> list[bytes]:
        return wire.welcome(
            self._id_bytes,
            version=version,
            incarnation=self.incarnation,
            name=self.name,
            endpoints=self._advertised_channels(),
            meta=self.config.metadata,
            topology=self._topology_wire(),
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
        ``config.connect_timeout``), :class:`VersionMismatch` when the peer shares no protocol version
        with us, :class:`CallError` for any other rejection.
        """
        self._require_running()
        info = await self._peers.handshake(endpoint, self.config.connect_timeout if timeout is None else timeout)
        if info.id == self.id:
            raise Unreachable(f"{endpoint} is this node itself")
        if not self._peers.link(info):
            raise Unreachable(f"{endpoint} advertised an endpoint this node cannot connect to")
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
        self._peers.clients.pop(key, None)
        if self._membership is not None:
            self._membership.driver.forget(key)
        for skey in [k for k in self._last_seq if k[0] == key]:
            del self._last_seq[skey]

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
        note_traffic = self._note_traffic
        if note_traffic is not None:
            if t == MsgType.MEMBERSHIP or t == MsgType.TREE:
                assert self._membership is not None
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
                last = self._last_seq.get(skey)
                if last is not None and seq > last + 1:
                    self.counters["seq_gaps"] += seq - last - 1
                self._last_seq[skey] = seq
            subs = self._sub_map.get(channel)
            if not subs:
                self.counters["undelivered"] += 1
                return
            payload = env.frames[0] if env.frames else b""
            msg = Message(channel, src, payload, lane, seq, topic, h.get(K_CT, 0))
            for sub in subs:
                sub.deliver(msg)
        elif t == MsgType.CALL:
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
            self._peers.unlink(src, reason="left")
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
        }

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
        }



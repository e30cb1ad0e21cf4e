"""The ZeroMQ transport: one ZeroMQ pattern per channel kind.

Theory of operation
-------------------
Sockets are plain (synchronous) pyzmq sockets driven by the asyncio loop through ``loop.add_reader`` on
each socket's ``ZMQ_FD``. That descriptor is edge-triggered: it signals that *some* socket state changed,
after which ``ZMQ_EVENTS`` says what. So the reader callback always re-reads ``ZMQ_EVENTS`` and drains
the socket (up to ``recv_budget`` messages, then yields a loop turn and continues), and every send on a
socket that also receives (or that a stalled sender waits on) re-checks ``ZMQ_EVENTS`` because a send can
consume the edge. Compared with
``zmq.asyncio`` this avoids one future per message, which is most of the cost of small messages.

Sockets (see docs/protocol.md, "Sockets"):

=========== ============================ ========================================
kind        bound (one per channel)      connecting (per peer link)
=========== ============================ ========================================
control     ROUTER (MANDATORY, replies)  DEALER per lane, routing id = role|id|lane
broadcast   PUB                          SUB (subscribed to every topic)
bulk        PULL                         PUSH per lane
=========== ============================ ========================================

All sockets of one process share one libzmq context (inproc:// needs that, and 50 nodes in a process
must not start 100 I/O threads); each channel pins its sockets to an I/O thread with ZMQ_AFFINITY so bulk
transfers do not delay control traffic.

Fault injection (:meth:`ZmqTransport.set_faults`, a :class:`~fabric.transport.faults.FaultPolicy`) is
part of every build and off by default: while no policy is set, a send and a received message cost one
``is None`` check more. With a policy, a message to a peer in ``drop_to`` (or lost to ``loss_to``) is
counted as ``fault_dropped_out`` and not sent (``send``/``respond`` still return True, as for a message lost
on the wire); a message read from a peer in ``drop_from`` (or lost to ``loss_from``) is counted as
``fault_dropped_in`` and never reaches the receiver. Delay, duplication and reordering are not injected on
real sockets (the in-memory transport's :class:`~fabric.transport.faults.Faults` has them).

CURVE (:class:`CurveSettings`, docs/security.md "CURVE and identity"): with settings given, every bound
socket is a CURVE server whose ``ZMQ_ZAP_DOMAIN`` names the node's policy, registered with the process's
ZAP handler (:func:`fabric.security.zap.zap_for`) *before* the first bind (without a handler libzmq would
admit any client that knows the server key); every connecting socket is a CURVE client pinned to the
peer's public key. Each message handed to the receiver is attributed (:attr:`Transport.peer_key`): the
ZAP-authenticated ``User-Id`` read from the message on bound sockets, the pinned key on connecting ones.
Without settings nothing of this runs: the development-mode path reads no message property.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import zmq
from zmq.utils.monitor import parse_monitor_message

from ..config import TransportConfig
from ..errors import ConfigError, InsecureBindError, ProcessSettingsConflict
from ..security.zap import Policy, ZapHandler, stop_zap_for, zap_for
from .base import ChannelKind, ChannelSpec, Link, LinkGenerations, Receiver, Transport
from .faults import FaultInjector, FaultPolicy, arrival_peer, route_peer
from .process import (
    _acquire_context,
    _release_context,
    io_thread_nice_applied,
    process_settings,
    process_settings_in_force,
    renice_io_threads,
    shared_context,
    tune_malloc,
)

log = logging.getLogger(__name__)

# Plain ints: pyzmq's constants are enums, and enum arithmetic runs Python code on every message.
_EVENTS = int(zmq.EVENTS)
_RCVMORE = int(zmq.RCVMORE)
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_MORE = int(zmq.NOBLOCK) | int(zmq.SNDMORE)

@dataclass(frozen=True)
class CurveSettings:
    """CURVE for every socket of one transport (see the module docstring).

    ``domains`` maps a channel name to the ZAP domain its bound socket uses (channels not listed use
    ``default_domain``); ``policies`` maps each domain to ``policy(client_key_z85) -> bool``, registered
    with the process's ZAP handler before the first bind and unregistered at :meth:`ZmqTransport.close`."""

    public: bytes
    """This node's Z85 public key."""
    secret: bytes = field(repr=False)
    """This node's Z85 secret key."""
    default_domain: str = ""
    domains: Mapping[str, str] = field(default_factory=dict)
    policies: Mapping[str, Policy] = field(default_factory=dict)

    def domain_of(self, channel: str) -> str:
        return self.domains.get(channel, self.default_domain)


CURVE_HANDSHAKE_FLOOR = 1024
"""Smallest ZMQ_MAXMSGSIZE a CURVE server socket may have: libzmq applies the limit to the handshake's
INITIATE command too (its metadata carries the socket type and routing id), so a smaller one refuses
every client."""


class _Sock:
    """One socket and its driver state."""

    __slots__ = (
        "sock",
        "fd",
        "channel",
        "kind",
        "link",
        "lane",
        "receives",
        "copy",
        "scheduled",
        "writable_callbacks",
        "closed",
        "endpoint",
        "auth",
        "peer_key",
    )

    def __init__(
        self,
        sock: zmq.Socket[bytes],
        channel: str,
        kind: ChannelKind,
        *,
        link: Link | None = None,
        lane: int = 0,
        receives: bool,
        copy: bool = True,
    ) -> None:
        self.sock = sock
        self.fd = int(sock.get(zmq.FD))
        self.channel = channel
        self.kind = kind
        self.link = link
        self.lane = lane
        self.receives = receives
        self.copy = copy
        self.scheduled = False
        self.writable_callbacks: list[Callable[[], None]] = []
        self.closed = False
        self.endpoint = ""
        self.auth = False
        """Bound CURVE socket: read each message's ZAP ``User-Id`` (recv with copy=False)."""
        self.peer_key: bytes | None = None
        """Connecting CURVE socket: the server key it is pinned to (attribution of what it receives)."""


class ZmqTransport(Transport):
    """:class:`~fabric.transport.base.Transport` over ZeroMQ (tcp://, ipc://, inproc://).

    Create it, then call :meth:`bind` from inside the running event loop (sockets belong to the loop's
    thread). ``bind_address`` is ``tcp://HOST``, ``ipc:///DIR`` or ``inproc://PREFIX``; ``base_port`` 0
    means ephemeral ports. ``advertise`` replaces the host in advertised tcp endpoints.
    """

    def __init__(
        self,
        config: TransportConfig | None = None,
        *,
        bind_address: str = "tcp://127.0.0.1",
        base_port: int = 0,
        advertise: str | None = None,
        socket_prefix: str = "",
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        curve: CurveSettings | None = None,
    ) -> None:
        self.config = config or TransportConfig()
        self._curve = curve
        self._zap: ZapHandler | None = None
        self._zap_domains: list[str] = []
        self.bind_address = bind_address
        self.base_port = base_port
        self.advertise = advertise
        self.socket_prefix = socket_prefix
        self._ctx = context
        self._owns_ctx_ref = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._receiver: Receiver | None = None
        self._rid_prefix = b""
        self._specs: dict[str, ChannelSpec] = {}
        self._bound: dict[str, _Sock] = {}
        self._links: dict[Link, dict[str, list[_Sock]]] = {}
        self._generations = LinkGenerations()
        self._endpoints: dict[str, str] = {}
        self._closed = False
        self._monitors: dict[str, zmq.Socket[bytes]] = {}
        self.counters: dict[str, int] = {"recv_frames": 0, "sent": 0, "send_full": 0, "respond_unroutable": 0,
                                         "fault_dropped_out": 0, "fault_dropped_in": 0}
        self.subscriptions: dict[str, int] = {}
        """Per bound broadcast channel: distinct subscriptions its XPUB holds now."""
        self._faults: FaultInjector | None = None
        self.connection_events: dict[str, dict[str, int]] = {}
        """Per bound channel: ``accepted``, ``handshake_ok``, ``handshake_failed``, ``disconnected``.
        ``accepted - handshake_ok - handshake_failed`` is the number of connections that never completed
        the ZMTP handshake (e.g. a foreign socket type, which libzmq drops without an event of its own)
        or are still completing it."""

    # -- fault injection -----------------------------------------------------------------------------

    def set_faults(self, policy: FaultPolicy | None) -> None:
        """Put ``policy`` in force at once (replacing any earlier one, with a fresh random source from its
        seed), or remove fault injection with None (an empty policy counts as None). Call it on the loop
        thread. See the module docstring for what is dropped where."""
        self._faults = None if policy is None or policy.empty else FaultInjector(policy)

    @property
    def faults(self) -> FaultPolicy | None:
        """The fault policy in force, None when fault injection is off."""
        return self._faults.policy if self._faults is not None else None

    # -- setup ---------------------------------------------------------------------------------------

    def set_curve(self, curve: CurveSettings | None) -> None:
        """Run CURVE on every socket (see :class:`CurveSettings`); call before :meth:`bind`."""
        if self._receiver is not None:
            raise ConfigError("set_curve() must be called before bind()")
        self._curve = curve

    @property
    def curve(self) -> CurveSettings | None:
        """The CURVE settings in force (None: no CURVE)."""
        return self._curve

    def _common(self, sock: zmq.Socket[bytes], spec: ChannelSpec) -> None:
        c = self.config
        sock.set(zmq.LINGER, c.linger_ms)
        sock.set(zmq.SNDHWM, spec.sndhwm)
        sock.set(zmq.RCVHWM, spec.rcvhwm)
        sock.set(zmq.MAXMSGSIZE, spec.max_message_size)
        if spec.io_affinity:
            sock.set(zmq.AFFINITY, spec.io_affinity)
        if c.heartbeat_ivl_ms:
            sock.set(zmq.HEARTBEAT_IVL, c.heartbeat_ivl_ms)
            sock.set(zmq.HEARTBEAT_TIMEOUT, c.heartbeat_timeout_ms)
            sock.set(zmq.HEARTBEAT_TTL, c.heartbeat_ttl_ms)
        sock.set(zmq.HANDSHAKE_IVL, c.handshake_ivl_ms)
        if c.tcp_keepalive:
            sock.set(zmq.TCP_KEEPALIVE, 1)
            sock.set(zmq.TCP_KEEPALIVE_IDLE, c.tcp_keepalive_idle_s)
            sock.set(zmq.TCP_KEEPALIVE_INTVL, c.tcp_keepalive_intvl_s)
            sock.set(zmq.TCP_KEEPALIVE_CNT, c.tcp_keepalive_cnt)
        sock.set(zmq.RECONNECT_IVL, c.reconnect_ivl_ms)
        sock.set(zmq.RECONNECT_IVL_MAX, c.reconnect_ivl_max_ms)

    def _endpoint_for(self, index: int, channel: str) -> str:
        scheme, _, rest = self.bind_address.partition("://")
        if scheme == "tcp":
            host = rest
            port = "*" if self.base_port == 0 else str(self.base_port + index)
            return f"tcp://{host}:{port}"
        if scheme == "ipc":
            path = f"{rest.rstrip('/')}/{self.socket_prefix}{channel}.sock"
            if len(path) >= 107:
                raise ConfigError(f"bind: ipc path {path!r} is {len(path)} bytes (must stay under 107)")
            return f"ipc://{path}"
        if scheme == "inproc":
            return f"inproc://{rest}{self.socket_prefix}{channel}"
        raise ConfigError(f"bind: unsupported transport {scheme!r}")

    def _advertised(self, endpoint: str) -> str:
        if not endpoint.startswith("tcp://"):
            return endpoint
        hostport = endpoint[len("tcp://") :]
        host, _, port = hostport.rpartition(":")
        if self.advertise:
            host = self.advertise
        elif host in ("0.0.0.0", "*", "[::]", "::"):
            host = _first_reachable_address()
        return f"tcp://{host}:{port}"

    def bind(
        self, channels: Sequence[ChannelSpec], receiver: Receiver, routing_id_prefix: bytes, *, listen: bool = True
    ) -> dict[str, str]:
        """Bind every channel; see :meth:`Transport.bind`. Must run inside the event loop.

        ``listen=False`` (client role) registers the channels and the receiver but binds nothing: the
        transport then only connects.
        """
        self._loop = asyncio.get_running_loop()
        if self._ctx is None:
            self._ctx = _acquire_context(self.config)
            self._owns_ctx_ref = True
        self._receiver = receiver
        self._rid_prefix = routing_id_prefix
        curve = self._curve
        if curve is not None and listen:
            # The ZAP handler must run, and know this node's domains, before the first CURVE bind.
            zap = self._zap = zap_for(self._ctx)
            for domain, policy in curve.policies.items():
                zap.register(domain, policy)
                self._zap_domains.append(domain)
        for index, spec in enumerate(channels):
            self._specs[spec.name] = spec
            if not listen:
                continue
            # Broadcast binds an XPUB (a PUB that reports new and gone subscriptions) to bound them.
            stype = {ChannelKind.CONTROL: zmq.ROUTER, ChannelKind.BROADCAST: zmq.XPUB, ChannelKind.BULK: zmq.PULL}[
                spec.kind
            ]
            sock = self._ctx.socket(stype)
            self._common(sock, spec)
            # Accepted connections inherit the bound socket's linger, and libzmq discards what a departed
            # peer sent but we have not read yet once that linger runs out: give readers time.
            sock.set(zmq.LINGER, self.config.inbound_linger_ms)
            if spec.kind is ChannelKind.BROADCAST:
                # What a PUB receives is subscriptions, and libzmq keeps each in a trie (~50 bytes per
                # subscription byte): bound their length (issue 16: 1 KiB ones cost 48 KiB each).
                # Under CURVE the limit also applies to the handshake's INITIATE command (~300 octets with
                # its metadata): below CURVE_HANDSHAKE_FLOOR no subscriber could ever connect. Only trusted
                # keys get that far in secure mode, so the larger floor costs nothing against strangers.
                limit = spec.max_subscription_bytes
                if curve is not None and 0 <= limit < CURVE_HANDSHAKE_FLOOR:
                    limit = CURVE_HANDSHAKE_FLOOR
                sock.set(zmq.MAXMSGSIZE, limit)
            if spec.kind is ChannelKind.CONTROL:
                sock.set(zmq.ROUTER_MANDATORY, 1)
                sock.set(zmq.ROUTER_HANDOVER, int(self.config.router_handover))
            if curve is not None:
                sock.set(zmq.CURVE_SERVER, 1)
                sock.set(zmq.CURVE_PUBLICKEY, curve.public)
                sock.set(zmq.CURVE_SECRETKEY, curve.secret)
                sock.set(zmq.ZAP_DOMAIN, curve.domain_of(spec.name).encode())
            endpoint = self._endpoint_for(index, spec.name)
            try:
                sock.bind(endpoint)
            except zmq.ZMQError as exc:
                sock.close(0)
                raise ConfigError(f"cannot bind channel {spec.name!r} on {endpoint}: {exc}") from exc
            s = _Sock(
                sock,
                spec.name,
                spec.kind,
                receives=True,
                copy=spec.kind is not ChannelKind.BULK and curve is None,
            )
            s.auth = curve is not None
            if spec.kind is ChannelKind.BROADCAST:
                self.subscriptions[spec.name] = 0
            s.endpoint = bytes(sock.get(zmq.LAST_ENDPOINT)).decode()
            self._bound[spec.name] = s
            if self.config.monitor:
                self._start_monitor(spec.name, sock)
            self._register(s)
            self._endpoints[spec.name] = self._advertised(s.endpoint)
        return dict(self._endpoints)

    _MONITORED = (
        zmq.EVENT_ACCEPTED
        | zmq.EVENT_DISCONNECTED
        | zmq.EVENT_HANDSHAKE_SUCCEEDED
        | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
        | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    )

    def _start_monitor(self, channel: str, sock: zmq.Socket[bytes]) -> None:
        assert self._loop is not None
        mon = sock.get_monitor_socket(self._MONITORED)
        self._monitors[channel] = mon
        counts = self.connection_events[channel] = {
            "accepted": 0,
            "handshake_ok": 0,
            "handshake_failed": 0,
            "disconnected": 0,
        }
        names: dict[int, str] = {
            zmq.EVENT_ACCEPTED: "accepted",
            zmq.EVENT_DISCONNECTED: "disconnected",
            zmq.EVENT_HANDSHAKE_SUCCEEDED: "handshake_ok",
            zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake_failed",
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake_failed",
            zmq.EVENT_HANDSHAKE_FAILED_AUTH: "handshake_failed",
        }

        def drain() -> None:
            for _ in range(1024):
                try:
                    frames = mon.recv_multipart(zmq.NOBLOCK)
                except zmq.ZMQError:
                    return
                try:
                    event = parse_monitor_message(frames)["event"]
                except Exception:  # a malformed monitor frame would be a libzmq bug: ignore it
                    continue
                name = names.get(int(event))
                if name is not None:
                    counts[name] += 1
            if self._loop is not None:  # more than 1024 events waiting: continue next loop turn
                self._loop.call_soon(drain)

        self._loop.add_reader(int(mon.get(zmq.FD)), drain)
        self._loop.call_soon(drain)

    def _stop_monitors(self) -> None:
        for channel, mon in self._monitors.items():
            if self._loop is not None:
                self._loop.remove_reader(int(mon.get(zmq.FD)))
            bound = self._bound.get(channel)
            if bound is not None and not bound.closed:
                try:
                    bound.sock.disable_monitor()
                except zmq.ZMQError:
                    pass
            mon.close(0)
        self._monitors.clear()

    @property
    def endpoints(self) -> dict[str, str]:
        """Channel -> advertised endpoint (after :meth:`bind`)."""
        return dict(self._endpoints)

    def _register(self, s: _Sock) -> None:
        assert self._loop is not None
        self._loop.add_reader(s.fd, self._on_ready, s)
        # Messages may already be waiting (the edge fired before we registered).
        self._schedule(s)

    def _schedule(self, s: _Sock) -> None:
        if not s.scheduled and not s.closed and self._loop is not None:
            s.scheduled = True
            self._loop.call_soon(self._on_ready, s)

    def _schedule_after_io(self, s: _Sock) -> None:
        """Continue reading ``s`` next loop turn, *after* that turn's I/O callbacks and the callbacks
        already queued. A socket that used up its receive budget has a backlog; ``call_soon`` would put it
        first in the next turn, so a call arriving meanwhile (and the task that answers it) would wait
        behind two more budgets of bulk data. asyncio runs expired timers after the turn's I/O events, so
        a zero-delay timer makes a backlogged socket yield to everything else that is ready."""
        if not s.scheduled and not s.closed and self._loop is not None:
            s.scheduled = True
            self._loop.call_later(0, self._on_ready, s)

    # -- event handling ------------------------------------------------------------------------------

    def _on_ready(self, s: _Sock) -> None:
        s.scheduled = False
        if s.closed:
            return
        sock = s.sock
        get = cast("Callable[[int], int]", sock.get)  # integer options only here
        try:
            events = get(_EVENTS)
        except zmq.ZMQError:
            return
        if events & _POLLOUT and s.writable_callbacks:
            callbacks, s.writable_callbacks = s.writable_callbacks, []
            for cb in callbacks:
                try:
                    cb()
                except Exception:  # a bug above us must not stop the socket's reader
                    log.exception("writable callback failed on channel %s", s.channel)
            if s.closed:
                return
        if not (events & _POLLIN and s.receives):
            return
        if s.kind is ChannelKind.BROADCAST and s.link is None:
            self._read_subscriptions(s)
            return
        receiver = self._receiver
        assert receiver is not None
        recv = sock.recv
        channel, link = s.channel, s.link
        router = s.kind is ChannelKind.CONTROL and link is None
        broadcast = s.kind is ChannelKind.BROADCAST
        copy = s.copy
        auth = s.auth
        if s.peer_key is not None:
            self.peer_key = s.peer_key  # a connecting CURVE socket: everything on it comes from its server
        faults = self._faults
        budget = self.config.recv_budget
        byte_budget = self.config.recv_budget_bytes
        nbytes = 0
        n = 0
        while True:
            try:
                if copy:
                    frames: list[Any] = [recv(_NOBLOCK)]
                    while get(_RCVMORE):
                        frames.append(recv(_NOBLOCK))
                else:
                    # Frame.more reads the message itself; Socket.get builds a SocketOption enum per call.
                    frame = recv(_NOBLOCK, copy=False)
                    frames = [frame]
                    while frame.more:
                        frame = recv(_NOBLOCK, copy=False)
                        frames.append(frame)
            except zmq.Again:
                break
            except zmq.ZMQError as exc:  # socket closed under us, or a libzmq error: log and stop reading
                log.debug("recv on %s failed: %s", channel, exc)
                return
            # Budget in frames, not messages: one BATCH frame list can carry hundreds of messages.
            n += len(frames)
            if auth:
                # CURVE: who sent this is the key the ZAP handler authenticated for its connection.
                self.peer_key = _user_id(frames[-1])
                if s.kind is not ChannelKind.BULK:
                    frames = [f.bytes for f in frames]
            if not copy and type(frames[0]) is not bytes:
                # Bulk: the head frame is small (copy it); payload frames stay zero-copy memoryviews.
                frames = [frames[0].bytes, *(f.buffer for f in frames[1:])]
                nbytes += sum(len(f) for f in frames)
            if faults is not None and faults.drop_in(arrival_peer(frames, frames[0] if router else None, link, broadcast)):
                # dropped before the node sees it; the budget below still counts it
                self.counters["fault_dropped_in"] += 1
            else:
                try:
                    if router:
                        receiver(channel, frames[1:], frames[0], None)
                    else:
                        receiver(channel, frames, None, link)
                except Exception:  # a bug above us must not stop the socket's reader
                    log.exception("receiver failed on channel %s", channel)
            if s.closed:
                return
            if n >= budget or nbytes >= byte_budget:
                self.counters["recv_frames"] += n
                self._schedule_after_io(s)
                return
            if not copy and not get(_EVENTS) & _POLLIN:
                # Bulk sockets get a few large messages per wake-up: asking ZMQ_EVENTS (which also
                # re-arms the edge-triggered ZMQ_FD) is cheaper than a recv that fails with an exception.
                break
        self.counters["recv_frames"] += n
        if s.writable_callbacks:
            # The recvs above processed libzmq's pending commands, a "room again" among them, and with
            # them the ZMQ_FD edge that would have announced it: look once more instead of waiting for
            # an edge that has already been consumed.
            try:
                if get(_EVENTS) & (_POLLOUT | _POLLIN):
                    self._schedule(s)
            except zmq.ZMQError:
                return

    def _read_subscriptions(self, s: _Sock) -> None:
        """Read what a bound XPUB reports: each new distinct subscription (``01 topic``) and each one no
        subscriber holds any more (``00 topic``, also sent when a subscriber disconnects). Beyond the
        channel's ``max_subscriptions``, drop every subscriber (see :meth:`_reset_subscribers`)."""
        channel = s.channel
        count = self.subscriptions.get(channel, 0)
        for _ in range(self.config.recv_budget):
            try:
                msg = s.sock.recv(_NOBLOCK)
            except zmq.Again:
                break
            except zmq.ZMQError:
                return
            if msg[:1] == b"\x01":
                count += 1
            elif msg[:1] == b"\x00":
                count = max(0, count - 1)
        else:
            self._schedule_after_io(s)
        self.subscriptions[channel] = count
        limit = self._specs[channel].max_subscriptions
        if limit and count > limit:
            self._reset_subscribers(s)

    def _reset_subscribers(self, s: _Sock) -> None:
        """Unbind and bind the broadcast endpoint again: libzmq closes every subscriber's connection, which
        frees every subscription it sent; fabric subscribers reconnect and subscribe again."""
        self.counters["subscription_resets"] = self.counters.get("subscription_resets", 0) + 1
        log.warning("broadcast channel %s: more than %d subscriptions; dropping every subscriber (they reconnect)",
                    s.channel, self._specs[s.channel].max_subscriptions)
        try:
            s.sock.unbind(s.endpoint)
        except zmq.ZMQError as exc:
            log.warning("broadcast channel %s: unbind failed: %s", s.channel, exc)
            return
        self._rebind(s, 0)

    def _rebind(self, s: _Sock, attempt: int) -> None:
        if s.closed or self._closed:
            return
        try:
            s.sock.bind(s.endpoint)
        except zmq.ZMQError as exc:  # libzmq closes the old listener on its I/O thread: retry shortly
            if attempt < 200 and self._loop is not None:
                self._loop.call_later(0.01, self._rebind, s, attempt + 1)
            else:
                log.error("broadcast channel %s: cannot bind %s again: %s", s.channel, s.endpoint, exc)
            return
        self._schedule(s)

    # -- links ---------------------------------------------------------------------------------------

    def connect(
        self,
        link: Link,
        endpoints: Mapping[str, str],
        parallelism: Mapping[str, int] | None = None,
        *,
        routing_lane: int | None = None,
        server_key: bytes | None = None,
    ) -> None:
        """Connect to a peer; see :meth:`Transport.connect`. Unknown channel names are ignored. With CURVE,
        ``server_key`` (the peer's Z85 public key) is required: ConfigError without it."""
        assert self._ctx is not None, "bind() first"
        curve = self._curve
        if curve is not None and server_key is None:
            raise ConfigError(f"cannot connect to {link!r} with CURVE: the peer's public key is not known")
        socks = self._links.setdefault(link, {})
        for channel, endpoint in endpoints.items():
            spec = self._specs.get(channel)
            if spec is None or channel in socks:
                continue
            lanes = 1 if spec.kind is ChannelKind.BROADCAST else spec.parallelism
            if parallelism and channel in parallelism:
                lanes = max(1, min(255, int(parallelism[channel])))
            if routing_lane is not None:
                lanes = 1
            created: list[_Sock] = []
            for lane in range(lanes):
                if spec.kind is ChannelKind.CONTROL:
                    sock = self._ctx.socket(zmq.DEALER)
                    rid_lane = lane if routing_lane is None else routing_lane
                    sock.set(zmq.ROUTING_ID, self._rid_prefix + self._generations.of(link) + bytes((rid_lane,)))
                elif spec.kind is ChannelKind.BULK:
                    sock = self._ctx.socket(zmq.PUSH)
                else:
                    sock = self._ctx.socket(zmq.SUB)
                    sock.set(zmq.SUBSCRIBE, b"")
                self._common(sock, spec)
                if curve is not None:
                    assert server_key is not None
                    sock.set(zmq.CURVE_SERVERKEY, server_key)
                    sock.set(zmq.CURVE_PUBLICKEY, curve.public)
                    sock.set(zmq.CURVE_SECRETKEY, curve.secret)
                try:
                    sock.connect(endpoint)
                except zmq.ZMQError as exc:
                    sock.close(0)
                    for made in created:
                        self._close_sock(made)
                    raise ConfigError(f"cannot connect channel {channel!r} to {endpoint!r}: {exc}") from exc
                s = _Sock(
                    sock,
                    channel,
                    spec.kind,
                    link=link,
                    lane=lane,
                    receives=spec.kind is not ChannelKind.BULK,
                    copy=True,
                )
                s.endpoint = endpoint
                s.peer_key = server_key if curve is not None else None
                created.append(s)
                self._register(s)
            socks[channel] = created

    def disconnect(self, link: Link) -> None:
        """Close every socket of ``link``; idempotent."""
        socks = self._links.pop(link, None)
        self._generations.forget(link)
        if not socks:
            return
        for lanes in socks.values():
            for s in lanes:
                self._close_sock(s)

    async def reset_inbound(self) -> int:
        """Close every connection the bound sockets accepted, keeping the sockets and their endpoints:
        each is unbound (which closes the connections it accepted) and bound again. Honest peers
        reconnect within their reconnect interval (and pass the ZAP handler again); a peer whose key lost
        its trust is refused. Messages in flight on those connections are lost (at most once). Returns
        the number of sockets reset.

        The sockets stay unbound for a short moment on purpose: a ROUTER refuses a connection presenting
        a routing id still in use, and never looks again at a refused connection that already holds
        messages; so the old connections' pipes must be gone (the socket processes their termination
        when asked for ZMQ_EVENTS) before the peers' DEALERs can come back with the same routing ids."""
        unbound: list[_Sock] = []
        for s in list(self._bound.values()):
            if s.closed:
                continue
            try:
                s.sock.unbind(s.endpoint)
            except zmq.ZMQError as exc:
                log.warning("cannot unbind %s to reset its connections: %s", s.endpoint, exc)
                continue
            unbound.append(s)
        for _ in range(5):
            for s in unbound:
                if not s.closed:
                    self._schedule(s)  # reads ZMQ_EVENTS: processes the pipe terminations, delivers what is left
            await asyncio.sleep(0.01)
        for s in unbound:
            for attempt in range(50):  # the listener closes on the I/O thread: the address may lag
                if s.closed:
                    break
                try:
                    s.sock.bind(s.endpoint)
                    break
                except zmq.ZMQError as exc:
                    if exc.errno != zmq.EADDRINUSE or attempt == 49:
                        log.error("cannot bind %s again after resetting its connections: %s", s.endpoint, exc)
                        break
                    await asyncio.sleep(0.01)
        self.counters["inbound_resets"] = self.counters.get("inbound_resets", 0) + 1
        return len(unbound)

    def _close_sock(self, s: _Sock) -> None:
        if s.closed:
            return
        s.closed = True
        if self._loop is not None:
            self._loop.remove_reader(s.fd)
        callbacks, s.writable_callbacks = s.writable_callbacks, []
        if callbacks and self._loop is not None:
            for cb in callbacks:
                self._loop.call_soon(cb)
        s.sock.close(self.config.linger_ms)

    def links(self) -> list[Link]:
        """Links with at least one socket."""
        return list(self._links)

    def connected_channels(self, link: Link) -> list[str]:
        """Channels ``link`` has sockets for (empty when unknown)."""
        return list(self._links.get(link, {}))

    # -- sending -------------------------------------------------------------------------------------

    def _lane_sock(self, link: Link, channel: str, lane: int) -> _Sock:
        lanes = self._links[link][channel]
        return lanes[lane % len(lanes)]

    def send(self, link: Link, channel: str, lane: int, frames: Sequence[Any]) -> bool:
        """Non-blocking send on a link's lane; False when the lane is at its high-water mark. A message
        the fault policy drops is counted (``fault_dropped_out``) and reported as sent."""
        s = self._lane_sock(link, channel, lane)
        if self._faults is not None and self._faults.drop_out(link):
            self.counters["fault_dropped_out"] += 1
            return True
        try:
            _send_frames(s.sock, frames, s.kind is not ChannelKind.BULK)
        except zmq.Again:
            self.counters["send_full"] += 1
            return False
        self.counters["sent"] += 1
        if s.receives or s.writable_callbacks:
            # A send can consume the ZMQ_FD edge (libzmq processes pending commands in it): if the socket
            # now has input, or room for a lane someone waits on (a reply sent on a stalled lane), run
            # _on_ready, which the edge would have run.
            events = _events(s.sock)
            if (events & _POLLIN and s.receives) or (events & _POLLOUT and s.writable_callbacks):
                self._schedule(s)
        return True

    def notify_writable(self, link: Link, channel: str, lane: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` once when the lane's socket can take a message or closes; see the base class."""
        s = self._lane_sock(link, channel, lane)
        assert self._loop is not None
        if s.closed:
            self._loop.call_soon(callback)
            return
        events = _events(s.sock)
        if events & _POLLIN and s.receives:
            self._schedule(s)  # reading ZMQ_EVENTS may have consumed the edge that announced input
        if events & _POLLOUT:
            self._loop.call_soon(callback)
            return
        # The next ZMQ_FD edge (libzmq's activate_write once the I/O thread has taken half the queue)
        # runs _on_ready, which reads ZMQ_EVENTS again and calls it.
        s.writable_callbacks.append(callback)

    def set_send_hwm(self, link: Link, channel: str, lane: int, hwm: int) -> None:
        """ZMQ_SNDHWM of one lane's socket; libzmq applies it to the connection's existing pipe."""
        self._lane_sock(link, channel, lane).sock.set(zmq.SNDHWM, hwm)

    def respond(self, channel: str, route: bytes, frames: Sequence[Any]) -> bool:
        """Send through the bound ROUTER of ``channel`` to ``route``; False when unroutable or full."""
        s = self._bound[channel]
        if self._faults is not None and self._faults.drop_out(route_peer(route)):
            self.counters["fault_dropped_out"] += 1
            return True
        try:
            _send_frames(s.sock, [route, *frames], True)
        except zmq.Again:
            self.counters["send_full"] += 1
            return False
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                self.counters["respond_unroutable"] += 1
                return False
            raise
        self.counters["sent"] += 1
        if _events(s.sock) & _POLLIN:
            self._schedule(s)
        return True

    def publish(self, channel: str, frames: Sequence[Any]) -> bool:
        """Publish on the bound PUB; subscribers at their high-water mark miss it (PUB never blocks)."""
        s = self._bound[channel]
        try:
            _send_frames(s.sock, frames, True)
        except zmq.Again:
            self.counters["send_full"] += 1
            return False
        self.counters["sent"] += 1
        if _events(s.sock) & _POLLIN:  # the send may have consumed the edge announcing subscriptions
            self._schedule(s)
        return True

    def stats(self) -> dict[str, Any]:
        """Counters (``fault_dropped_out``/``fault_dropped_in``: messages the fault policy dropped) plus
        the number of links and sockets and the fault policy in force (``faults``: None when off)."""
        return {
            **self.counters,
            "faults": self._faults.policy.describe() if self._faults is not None else None,
            "connections": {c: dict(v) for c, v in self.connection_events.items()},
            "curve": self._curve is not None,
            "subscriptions": dict(self.subscriptions),
            "links": len(self._links),
            "sockets": len(self._bound) + sum(len(lanes) for socks in self._links.values() for lanes in socks.values()),
            "io_thread_nice": dict(io_thread_nice_applied),
            "process": process_settings_in_force(),
        }

    async def close(self) -> None:
        """Close every socket; idempotent. Returns once queued messages have left (at most about
        ``linger_ms``) when this was the last transport of the process-wide context: the context is then
        terminated in a worker thread, which is what makes libzmq flush. Without it, a process that
        exits right after ``stop()`` would lose its last messages (the leave notice and BYEs among them).
        """
        if self._closed:
            return
        self._closed = True
        for link in list(self._links):
            self.disconnect(link)
        self._stop_monitors()
        for s in self._bound.values():
            self._close_sock(s)
        self._bound.clear()
        if self._zap is not None:
            for domain in self._zap_domains:
                self._zap.unregister(domain)
            self._zap_domains.clear()
            self._zap = None
        if self._owns_ctx_ref:
            self._owns_ctx_ref = False
            ctx = _release_context()
            if ctx is not None:
                # The ZAP handler's thread holds a socket of this context: stop it before term().
                stop_zap_for(ctx)
                # term() blocks until every socket's linger has run out: bounded, since every socket
                # was closed with linger_ms. Wait a little longer than that, never forever.
                waiter = threading.Thread(target=ctx.term, name="fabric-ctx-term", daemon=True)
                waiter.start()
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, waiter.join, self.config.linger_ms / 1000 + 2.0)


def _user_id(frame: zmq.Frame) -> bytes | None:
    """The ZAP ``User-Id`` of a received message (the client's Z85 key), None when it has none."""
    try:
        uid = frame.get("User-Id")
    except zmq.ZMQError:
        return None
    return uid.encode() if isinstance(uid, str) and uid else None


def _events(sock: zmq.Socket[bytes]) -> int:
    return int(sock.get(_EVENTS))


def _send_frames(sock: zmq.Socket[bytes], frames: Sequence[Any], copy: bool) -> None:
    """``send_multipart(frames, NOBLOCK, copy=copy)`` without pyzmq's per-frame flag arithmetic on enums.

    The head frame (a small header) is always copied: pyzmq's non-copying path builds a ``Frame``
    object first and then copies a frame that small anyway. Raises zmq.Again when the socket is at its
    high-water mark: libzmq checks it on the first frame only, so a multipart message is either refused
    whole or accepted whole.
    """
    send = sock.send
    last = len(frames) - 1
    if last == 0:
        send(frames[0], _NOBLOCK, copy=copy)
        return
    send(frames[0], _NOBLOCK_MORE)
    for i in range(1, last):
        send(frames[i], _NOBLOCK_MORE, copy=copy)
    send(frames[last], _NOBLOCK, copy=copy)


def _first_reachable_address() -> str:
    """The host's first non-loopback IPv4 address (what a wildcard bind advertises), else 127.0.0.1."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        infos = []
    for info in infos:
        addr = str(info[4][0])
        if not addr.startswith("127."):
            return addr
    return "127.0.0.1"


__all__ = ["CurveSettings", "InsecureBindError", "ProcessSettingsConflict", "ZmqTransport", "process_settings", "process_settings_in_force",
           "renice_io_threads", "shared_context", "tune_malloc"]

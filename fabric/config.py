"""Configuration of a node: one frozen, validated dataclass per subsystem.

Every field says what it does, its unit and its trade-off. Presets (:meth:`NodeConfig.local`,
:meth:`NodeConfig.lan`, :meth:`NodeConfig.wan`) override only what differs, each with a reason.
Validation happens at construction and raises :class:`fabric.errors.ConfigError` naming the field.
docs/configuration.md is the reference for all of this and a test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, InsecureBindError
from .membership.config import MembershipConfig
from .membership.overlay_config import OverlayConfig
from .transport.base import ChannelKind, ChannelSpec

OVERLAYS = ("full-mesh", "hyparview", "client-server", "static")
"""Overlay names accepted by :attr:`NodeConfig.overlay`."""

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")

MAX_METADATA_BYTES = 16 * 1024
"""Most bytes of metadata (keys and values, UTF-8) a node may carry: it travels in every HELLO and in
every membership record about the node, so it must stay small."""


def _check_finite(obj: Any, prefix: str) -> None:
    """Every float field of ``obj`` and of the config dataclasses inside it must be finite: ``nan``
    passes every ``<= 0`` check and ``inf`` makes every wait endless (issue 14: ``call_timeout=nan``
    made every call fail). Raises ConfigError naming the field."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, float) and not math.isfinite(item):
                raise ConfigError(f"{prefix}{f.name}: must be a finite number, got {item!r}")
            if dataclasses.is_dataclass(item) and not isinstance(item, type):
                label = getattr(item, "name", None) if isinstance(value, tuple) else None
                _check_finite(item, f"{prefix}{f.name}.{label + '.' if isinstance(label, str) else ''}")


class OnFull(enum.StrEnum):
    """What a send does when the peer's queue on that lane is full."""

    WAIT = "wait"
    """Wait up to the channel's ``send_timeout`` for room, then raise ``Overloaded``."""
    DROP = "drop"
    """Drop the message, count it (``dropped_full``), and return False."""
    RAISE = "raise"
    """Raise ``Overloaded`` at once."""


@dataclass(frozen=True)
class ChannelConfig:
    """One named channel: its kind (ZeroMQ pattern), lanes and queueing policy."""

    name: str
    """Channel name: letters, digits, ``_.:-``; at most 64 characters. Part of the wire header."""
    kind: ChannelKind
    """``control`` (ROUTER/DEALER), ``broadcast`` (PUB/SUB) or ``bulk`` (PUSH/PULL)."""
    parallelism: int = 1
    """Lanes per peer (1-255): N connecting sockets per peer; a partition key picks one, so one key stays
    ordered and one slow stream never blocks another. More lanes = more sockets and file descriptors."""
    on_full: OnFull = OnFull.WAIT
    """Policy when a lane's queue is full (see :class:`OnFull`)."""
    send_timeout: float = 5.0
    """Seconds a send waits for room under ``on_full=wait`` before raising ``Overloaded``."""
    sndhwm: int = 1000
    """ZeroMQ send high-water mark per lane, in messages. Higher absorbs bursts at the cost of memory
    (for bulk channels, where messages are large, bound it in bytes too: ``sndhwm_bytes``)."""
    rcvhwm: int = 1000
    """ZeroMQ receive high-water mark per connection, in messages."""
    sndhwm_bytes: int = 0
    """Bulk channels: bound what a lane queues in bytes as well as in messages. The lane's send HWM (and
    the node's queue in front of it) follows the size of the messages sent: ``sndhwm_bytes // size``
    rounded down to a power of two, between 1 and ``sndhwm``; lowered at once when messages grow, raised
    one doubling per message when they shrink by half or more. Why: a high-water mark in messages is
    memory for large messages (each queued message keeps its payload alive), but a large one is speed
    for medium ones: an asyncio sender refills its lane once per half-HWM sent, and on 2 cores the data
    channel's 1 MiB stream went from 0.87x to 0.94-0.99x of raw pyzmq with 128 instead of 16
    (bench/README.md, benchmark b). 0: the HWM stays ``sndhwm``."""
    max_message_size: int = 64 * 1024 * 1024
    """ZMQ_MAXMSGSIZE in bytes: a peer sending a larger message is disconnected by libzmq (-1: no limit)."""
    batching: bool = True
    """Coalesce messages queued in one event-loop turn to the same peer lane into one BATCH (control
    channels). Cuts per-message ZeroMQ cost several-fold for small messages; adds no delay (it flushes at
    the end of the loop turn). Ignored on broadcast and bulk channels."""
    io_thread: int = 0
    """libzmq I/O thread (0-based, < ``TransportConfig.io_threads``) this channel's sockets use. Bulk
    channels get their own so large transfers do not delay control traffic (see ARCHITECTURE.md)."""
    reserved: bool = False
    """Reserved for the fabric (the ``membership`` channel): applications cannot send on it."""

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ConfigError(f"channels.{self.name!r}.name: use letters, digits and _.:- (1-64 chars)")
        try:
            object.__setattr__(self, "kind", ChannelKind(self.kind))
            object.__setattr__(self, "on_full", OnFull(self.on_full))
        except ValueError as exc:
            raise ConfigError(f"channels.{self.name}: {exc}") from None
        if not 1 <= self.parallelism <= 255:
            raise ConfigError(f"channels.{self.name}.parallelism: must be 1..255, got {self.parallelism}")
        if self.kind is ChannelKind.BROADCAST and self.parallelism != 1:
            raise ConfigError(f"channels.{self.name}.parallelism: broadcast channels have one lane")
        if not (math.isfinite(self.send_timeout) and self.send_timeout > 0):
            raise ConfigError(f"channels.{self.name}.send_timeout: must be > 0 seconds")
        if self.sndhwm < 1 or self.rcvhwm < 1:
            raise ConfigError(f"channels.{self.name}: sndhwm and rcvhwm must be >= 1")
        if self.sndhwm_bytes < 0:
            raise ConfigError(f"channels.{self.name}.sndhwm_bytes: must be >= 0 (0: off)")
        if self.max_message_size == 0 or self.max_message_size < -1:
            raise ConfigError(f"channels.{self.name}.max_message_size: -1 or a positive byte count")
        if self.io_thread < 0:
            raise ConfigError(f"channels.{self.name}.io_thread: must be >= 0")

    def spec(self) -> ChannelSpec:
        """The transport's view of this channel."""
        return ChannelSpec(
            name=self.name,
            kind=self.kind,
            parallelism=self.parallelism,
            sndhwm=self.sndhwm,
            rcvhwm=self.rcvhwm,
            max_message_size=self.max_message_size,
            io_affinity=1 << self.io_thread,
        )


MEMBERSHIP_CHANNEL = "membership"
"""The reserved control channel for liveness and membership (data never delays it)."""

DEFAULT_CHANNELS: tuple[ChannelConfig, ...] = (
    ChannelConfig(MEMBERSHIP_CHANNEL, ChannelKind.CONTROL, reserved=True, batching=False),
    ChannelConfig("coordination", ChannelKind.CONTROL),
    ChannelConfig("gossip", ChannelKind.CONTROL),
    # Bulk: 4 lanes; a send HWM bounded by bytes (128 messages of 1 MiB, 16 of 8 MiB, 2 of 64 MiB), a small
    # receive HWM (messages are large), its own libzmq I/O thread, 1 GiB message cap.
    ChannelConfig(
        "data",
        ChannelKind.BULK,
        parallelism=4,
        sndhwm=128,
        sndhwm_bytes=128 << 20,
        rcvhwm=16,
        max_message_size=1 << 30,
        io_thread=1,
    ),
    ChannelConfig("events", ChannelKind.BROADCAST, sndhwm=10000, rcvhwm=10000),
)
"""Channels every node has unless configured otherwise; the order fixes port offsets (base port + i)."""


@dataclass(frozen=True)
class TransportConfig:
    """ZeroMQ transport settings. Socket options are chosen on purpose; each says why."""

    io_threads: int = 2
    """libzmq I/O threads of the node's context. 2 lets bulk channels run on their own thread: measured
    here, a 64 B ping behind 8 MiB bulk messages went from 2.2 ms to ~50 us p50 with its own thread."""
    linger_ms: int = 200
    """ZMQ_LINGER of connecting sockets: how long messages still queued to a peer may take to leave
    after the node closes them. Bounded so stop() never hangs (libzmq's default of infinity is the
    classic "ctx.term() hangs" bug). Bound sockets use ``inbound_linger_ms``."""
    inbound_linger_ms: int = 60000
    """ZMQ_LINGER of bound sockets. Connections a bound socket accepts inherit it, and when such a peer
    disconnects, libzmq discards the messages it sent that the node has not read yet once this much time
    has passed. 200 ms lost a burst from a peer that sent and left at once (a test floods 40,000 messages
    and checks they all arrive); a minute gives the node time to read everything. Messages still queued
    *to* a departed peer are freed after this long too."""
    heartbeat_ivl_ms: int = 0
    """ZMQ_HEARTBEAT_IVL: ZMTP PING interval; 0 (the default) turns ZMTP heartbeats off. They are off on
    purpose: libzmq stops reading a connection whose receive queue is at its high-water mark, so a busy
    but healthy peer sees no traffic, the heartbeat times out, and the connection is closed with the
    messages in flight lost (a test flooding 40,000 messages into a busy node lost up to 65% with
    heartbeats on, none with them off). Liveness is the membership failure detector's job; dead TCP
    connections are found by TCP keepalive, which the kernel answers even when the node is busy."""
    heartbeat_timeout_ms: int = 30000
    """ZMQ_HEARTBEAT_TIMEOUT, used only when ``heartbeat_ivl_ms`` > 0: a connection with no traffic for
    this long after a PING is closed. Keep it far above the longest backpressure you expect."""
    heartbeat_ttl_ms: int = 60000
    """ZMQ_HEARTBEAT_TTL, used only when ``heartbeat_ivl_ms`` > 0: asks the remote side to time us out
    after this long without traffic."""
    reconnect_ivl_ms: int = 100
    """ZMQ_RECONNECT_IVL: first reconnect delay after a connection drops."""
    reconnect_ivl_max_ms: int = 5000
    """ZMQ_RECONNECT_IVL_MAX: reconnect backoff ceiling (exponential from ``reconnect_ivl_ms``)."""
    handshake_ivl_ms: int = 10000
    """ZMQ_HANDSHAKE_IVL: a connection that has not completed the ZMTP handshake by then is dropped."""
    tcp_keepalive: bool = True
    """ZMQ_TCP_KEEPALIVE: finds dead TCP connections (a peer host gone without a FIN) and keeps NAT and
    firewall state alive. The kernel answers the probes, so a busy node is never mistaken for a dead one."""
    tcp_keepalive_idle_s: int = 30
    """ZMQ_TCP_KEEPALIVE_IDLE: seconds of silence before the first keepalive probe."""
    tcp_keepalive_intvl_s: int = 10
    """ZMQ_TCP_KEEPALIVE_INTVL: seconds between unanswered probes."""
    tcp_keepalive_cnt: int = 3
    """ZMQ_TCP_KEEPALIVE_CNT: unanswered probes before the kernel drops the connection (here: a dead
    connection is closed about 60 s after it went silent)."""
    router_handover: bool = False
    """ZMQ_ROUTER_HANDOVER on bound ROUTERs. Off: a second connection presenting an in-use routing id is
    refused, so a foreign DEALER cannot hijack a live peer's replies (insecure mode has no other identity
    check). On: a restarted peer that kept its node id takes over at once instead of after the dead
    connection times out (``heartbeat_timeout_ms``)."""
    batch_max_messages: int = 256
    """Most messages coalesced into one BATCH."""
    batch_max_bytes: int = 256 * 1024
    """Most payload bytes coalesced into one BATCH; larger messages go alone."""
    recv_budget: int = 512
    """ZeroMQ frames read from one socket before yielding to the event loop, so one busy socket cannot
    starve the others (the membership channel among them). Counted in frames because one BATCH holds
    hundreds of messages: counting ZeroMQ messages let a single turn deliver 65,536 messages and stall
    the loop for seconds under a flood (measured by the benchmark's loop-stall figure)."""
    recv_budget_bytes: int = 4 * 1024 * 1024
    """Bytes read from one bulk socket before yielding to the event loop. Releasing a large message
    costs real time (freeing megabytes), so a control message waiting behind a burst of 8 MiB messages
    waits for at most one of them; 1 MiB messages still go four per loop turn."""
    max_sockets: int = 65536
    """ZMQ_MAX_SOCKETS of the process-wide context: many nodes per process need many sockets."""
    malloc_trim_threshold: int = 64 * 1024 * 1024
    """Bytes; glibc only, process-wide, applied once when the process's libzmq context is created: how
    much freed memory the C allocator keeps per arena before returning it to the OS (M_TRIM_THRESHOLD),
    with M_MMAP_THRESHOLD set to 32 MiB so messages up to that size are allocated from the heap and reused.
    Why: libzmq allocates each received message on its I/O thread and the node frees it on the loop
    thread; glibc's dynamic defaults (trim at twice the largest freed block) made a 1 MiB bulk stream
    trim and re-fault the heap all the time, ~57 page faults per message on the receiving I/O thread (a
    raw pyzmq receiver, whose frees happen to line up, ~18). With this setting: under 1 per message, and
    the receiving I/O thread's CPU per message about halved (bench/README.md, benchmark b). Trade-off: up to this much
    freed memory per malloc arena stays in the process's RSS. 0 leaves the allocator alone, and so does
    any malloc setting made in the environment (MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_THRESHOLD_,
    GLIBC_TUNABLES with a glibc.malloc key): the application's choice wins."""
    io_thread_nice: tuple[int, ...] = (0, 5)
    """Nice increment (0-19) for each libzmq I/O thread of the process-wide context, by index (missing
    entries: 0); Linux only, applied once when the context is created. The default lowers the CPU
    priority of I/O thread 1, where bulk channels run, by 5: when a bulk stream and control traffic
    compete for the CPU, the control I/O thread (heartbeats, calls, replies) and the event loop run
    first and the bulk stream takes what is left. Measured here (benchmark d, 2 cores, a 64 B call
    while 8 MiB messages stream between the same nodes): call p99 430-720 us at 0, 290-360 us at 5, with
    the stream 12 % slower while calls run; a bulk stream alone (benchmark b) is as fast as at 0. A
    separate I/O thread alone does not do this: two I/O threads copying at full speed still make every
    wake-up of the control path wait for a CPU. Raising a thread's priority (a negative value) needs
    privileges, so it is not offered; (0,) turns this off."""
    monitor: bool = True
    """Watch bound sockets with a ZeroMQ socket monitor, counting accepted connections, completed and
    failed ZMTP handshakes (a foreign socket type or garbage before the handshake shows up here) and
    disconnects per channel. Costs one extra inproc socket per channel."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"transport.{f.name}: must be >= 0, got {value}")
        if self.io_threads < 1:
            raise ConfigError("transport.io_threads: must be >= 1")
        if not all(isinstance(n, int) and 0 <= n <= 19 for n in self.io_thread_nice):
            raise ConfigError(f"transport.io_thread_nice: nice increments must be integers 0-19, got {self.io_thread_nice!r}")
        if self.malloc_trim_threshold > 2**31 - 1:
            raise ConfigError("transport.malloc_trim_threshold: at most 2147483647 bytes (a C int)")
        if self.batch_max_messages < 1 or self.batch_max_bytes < 1 or self.recv_budget < 1:
            raise ConfigError("transport: batch_max_messages, batch_max_bytes and recv_budget must be >= 1")


def _is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_name() -> str:
    """``<hostname>-<pid>``: unique per process on a host, readable in logs."""
    return f"{socket.gethostname().split('.')[0]}-{os.getpid()}"


@dataclass(frozen=True)
class SecurityConfig:
    keys: str | None = None                 # key directory (node.key, node.pub, optional node.cert)
    trust: str | None = None                # trust file path
    trust_reload_interval: float = 2.0      # s between trust-file checks: bounds how fast a revocation acts


@dataclass(frozen=True)
class NodeConfig:
    """Everything a :class:`fabric.Node` needs. Construct directly or from a preset."""

    name: str = field(default_factory=default_name)
    """Human name (metadata only: identity is the node id). Shown in ``members()`` and logs."""
    node_id: str | None = None
    """The node id (UUID text). None: a fresh random id per start, so a restart is always a new
    identity. Set it to keep one id across restarts (the incarnation still grows)."""
    bind: str = "tcp://127.0.0.1"
    """Where to bind, without port: ``tcp://HOST`` (one port per channel), ``ipc:///short/dir`` (one
    socket file per channel; the path must stay under 107 bytes) or ``inproc://prefix`` (same process)."""
    port: int = 0
    """Base TCP port: channel i (in ``channels`` order) binds ``port + i``. 0: ephemeral ports."""
    advertise: str | None = None
    """Host (or address) peers should connect to, when ``bind`` is a wildcard (0.0.0.0, ::, *) or behind
    NAT. None: the bind host, or for a wildcard the host's first non-loopback address."""
    insecure: bool = False
    """Allow binding a non-loopback TCP address without CURVE security. Until security is configured,
    such binds are refused unless this is True (anyone who can reach the port can join and send)."""
    channels: tuple[ChannelConfig, ...] = DEFAULT_CHANNELS
    """The node's channels; the reserved ``membership`` channel must be present and first."""
    transport: TransportConfig = field(default_factory=TransportConfig)
    """ZeroMQ settings."""
    membership: MembershipConfig = field(default_factory=MembershipConfig)
    """Membership and failure-detection timers of the full-mesh overlay (docs/membership.md)."""
    overlay: str = "full-mesh"
    """Which overlay decides the links (docs/overlays.md): ``full-mesh`` (every member links to every
    other: simplest, up to ~50-100 nodes), ``hyparview`` (partial views of ~6 links + Plumtree broadcast:
    thousands of nodes), ``client-server`` (servers in a full mesh, clients link only to servers) or
    ``static`` (membership fixed by ``static_members``). Every overlay offers the same API."""
    topology_cooldown: float = 10.0
    """Seconds after a topology switch (:meth:`fabric.Node.switch_topology`) during which this node
    refuses to propose another: keeps an automatic policy or an operator from flapping the cluster."""
    auto_topology: bool = False
    """Let the cluster pick its overlay by size: full-mesh below ``auto_threshold`` alive members,
    HyParView from there on, back to full-mesh at ``auto_threshold - auto_hysteresis``. One member decides
    (the one with the lowest node id, so proposals do not compete) through :meth:`fabric.Node.switch_topology`;
    decisions are logged and shown in ``health()``."""
    auto_threshold: int = 64
    """Alive members at which ``auto_topology`` moves from full-mesh to HyParView. Full-mesh costs N-1
    links and heartbeats per node; around 50-100 nodes that starts to dominate."""
    auto_hysteresis: int = 16
    """How far the size must fall below ``auto_threshold`` before ``auto_topology`` goes back to full-mesh,
    so a cluster hovering around the threshold does not flap."""
    auto_dwell: float = 30.0
    """Seconds the size must stay past a threshold before ``auto_topology`` switches: a join storm, a
    rolling restart or a short partition does not move the whole cluster. The ``topology_cooldown`` also
    applies between two switches."""
    overlay_role: str = "server"
    """``server`` or ``client``: this node's role in the ``client-server`` overlay."""
    static_members: tuple[str, ...] = ()
    """``static`` overlay: the membership endpoints of the configured members."""
    overlay_config: OverlayConfig = field(default_factory=OverlayConfig)
    """Timers of the record-based overlays (hyparview, client-server, static), including HyParView's and
    Plumtree's parameters (docs/overlays.md)."""
    batching: bool = True
    """Master switch for batching (a channel batches when this and its own ``batching`` are True)."""
    call_timeout: float = 5.0
    """Default seconds :meth:`fabric.Node.call` waits for a reply."""
    connect_timeout: float = 5.0
    """Seconds :meth:`fabric.Node.connect` waits for the peer's WELCOME."""
    max_inflight_calls: int = 10000
    """Outstanding calls this node may have before ``call`` raises ``Overloaded``; bounds memory."""
    max_concurrent_requests: int = 1000
    """Requests this node's services may run at once; beyond it callers get ``Overloaded`` at once
    (load shedding keeps a flood of calls from exhausting memory or the handler thread pool)."""
    handler_threads: int = 8
    """Worker threads for synchronous (plain ``def``) service handlers."""
    accept_clients: bool = True
    """Accept client-role peers (the CLI, non-member callers)."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Free-form string metadata carried in HELLO (e.g. zone, version, role)."""
    security: SecurityConfig = field(default_factory=SecurityConfig)
    """CURVE keys and the trust file (docs/security.md); ``security.keys`` set means secure mode."""

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ConfigError(f"name: {self.name!r} must be 1-64 of letters, digits and _.:-")
        if self.node_id is not None:
            import uuid

            try:
                uuid.UUID(self.node_id)
            except ValueError:
                raise ConfigError(f"node_id: {self.node_id!r} is not a UUID") from None
        if not 0 <= self.port <= 65535 - len(self.channels):
            raise ConfigError(f"port: {self.port} leaves no room for {len(self.channels)} channels")
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise ConfigError("channels: names must be unique")
        if not self.channels or self.channels[0].name != MEMBERSHIP_CHANNEL:
            raise ConfigError("channels: the reserved 'membership' control channel must come first")
        if self.channels[0].kind is not ChannelKind.CONTROL:
            raise ConfigError("channels.membership.kind: must be control")
        for c in self.channels:
            if c.io_thread >= self.transport.io_threads:
                raise ConfigError(
                    f"channels.{c.name}.io_thread: {c.io_thread} but transport.io_threads is {self.transport.io_threads}"
                )
        for key in ("call_timeout", "connect_timeout"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}: must be > 0 seconds")
        if self.overlay not in OVERLAYS:
            raise ConfigError(f"overlay: {self.overlay!r} is not one of {', '.join(OVERLAYS)}")
        if not 0 <= self.auto_hysteresis < self.auto_threshold:
            raise ConfigError("auto_hysteresis: must be >= 0 and below auto_threshold")
        if not (math.isfinite(self.topology_cooldown) and self.topology_cooldown >= 0):
            raise ConfigError(f"topology_cooldown: must be a finite number of seconds >= 0, got {self.topology_cooldown}")
        if not self.auto_dwell >= 0:
            raise ConfigError("auto_dwell: must be >= 0 seconds")
        if self.auto_topology and self.overlay not in ("full-mesh", "hyparview"):
            raise ConfigError(f"auto_topology: chooses between full-mesh and hyparview, not {self.overlay!r}")
        if self.overlay_role not in ("server", "client"):
            raise ConfigError(f"overlay_role: {self.overlay_role!r} must be 'server' or 'client'")
        if self.max_inflight_calls < 1 or self.max_concurrent_requests < 1 or self.handler_threads < 1:
            raise ConfigError("max_inflight_calls, max_concurrent_requests and handler_threads must be >= 1")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.metadata.items()):
            raise ConfigError("metadata: keys and values must be strings")
        if any(not k for k in self.metadata):
            raise ConfigError("metadata: keys must not be empty")
        size = sum(len(k.encode()) + len(v.encode()) for k, v in self.metadata.items())
        if size > MAX_METADATA_BYTES:
            raise ConfigError(f"metadata: {size} bytes; at most {MAX_METADATA_BYTES} bytes of keys and values")
        _check_finite(self, "")
        scheme, _, rest = self.bind.partition("://")
        if scheme not in ("tcp", "ipc", "inproc") or not rest:
            raise ConfigError(f"bind: {self.bind!r} must be tcp://HOST, ipc:///DIR or inproc://PREFIX")
        if scheme == "tcp":
            host = rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest
            if host not in ("*", "0.0.0.0", "[::]", "::") and not _is_loopback(host) and not self.insecure:
                raise InsecureBindError(
                    f"bind: {self.bind!r} is not a loopback address and security (CURVE) is not configured; "
                    "pass insecure=True (--insecure) to accept unauthenticated peers on it"
                )
            if host in ("*", "0.0.0.0", "[::]", "::") and not self.insecure:
                raise InsecureBindError(
                    f"bind: {self.bind!r} listens on every interface and security (CURVE) is not configured; "
                    "pass insecure=True (--insecure) to accept unauthenticated peers"
                )
        if scheme == "ipc":
            longest = max(len(c.name) for c in self.channels)
            if len(rest) + len(self.name) + longest + 8 > 107:
                raise ConfigError(f"bind: ipc path {rest!r} too long (socket paths must stay under 107 bytes)")

    def channel(self, name: str) -> ChannelConfig:
        """The channel called ``name``. Raises KeyError."""
        for c in self.channels:
            if c.name == name:
                return c
        raise KeyError(name)

    def replace(self, **changes: Any) -> NodeConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def local(cls, **overrides: Any) -> NodeConfig:
        """Tests and one-machine clusters: loopback, ephemeral ports, short reconnect backoff (a peer
        that restarts on this machine is back in milliseconds)."""
        transport = TransportConfig(reconnect_ivl_max_ms=1000)
        return cls(
            **{
                "transport": transport,
                "membership": MembershipConfig.local(),
                "overlay_config": OverlayConfig.local(),
                **overrides,
            }
        )

    @classmethod
    def lan(cls, **overrides: Any) -> NodeConfig:
        """A data-centre LAN: the defaults."""
        return cls(**overrides)

    @classmethod
    def wan(cls, **overrides: Any) -> NodeConfig:
        """Across regions: longer handshakes, timeouts and backoff tolerate RTTs of 100s of ms."""
        transport = TransportConfig(handshake_ivl_ms=30000, reconnect_ivl_max_ms=30000)
        return cls(
            **{
                "transport": transport,
                "membership": MembershipConfig.wan(),
                "overlay_config": OverlayConfig.wan(),
                "call_timeout": 15.0,
                "connect_timeout": 15.0,
                **overrides,
            }
        )

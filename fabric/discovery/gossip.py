"""The ``gossip`` strategy: UDP multicast beacons on the local network (like libcluster's Gossip).

Each node sends a beacon (see :mod:`fabric.discovery.beacon`) to a multicast group every ``interval``
seconds (jittered by +-50% with an injected ``random.Random`` so nodes do not send in lock-step), and one
extra, early beacon when it hears a node it did not know, so a new node is found within one round trip
instead of one interval. Nodes not heard from for ``candidate_ttl`` seconds stop being candidates.

Socket set-up: ``SO_REUSEADDR`` + ``SO_REUSEPORT`` (several nodes per host; libcluster #184/#187), bound
to ``(group, port)`` so datagrams for other groups on the same port are not delivered to us,
``IP_ADD_MEMBERSHIP`` on ``interface``, ``IP_MULTICAST_IF`` = ``interface``, ``IP_MULTICAST_TTL`` = ``ttl``
(1: never leaves the link) and ``IP_MULTICAST_LOOP`` = ``loop`` (needed for several nodes on one host).
IPv4 only. Garbage datagrams are counted (``beacons_malformed``) and dropped; wrong-secret or unsigned
ones under a secret are counted in ``beacons_rejected_hmac``, signed ones without a secret in
``beacons_foreign``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import random
import socket
from typing import Any, ClassVar

from .base import (
    Candidate,
    ConfigurationError,
    DiscoveryPlugin,
    LocalNode,
    MalformedInput,
    PluginStateError,
    check_ip,
    check_port,
    check_positive,
)
from .beacon import Beacon, BeaconCodec, BeaconTable

__all__ = ["GossipConfig", "GossipPlugin"]


@dataclasses.dataclass(frozen=True)
class GossipConfig:
    """Configuration of the ``gossip`` (UDP multicast beacon) strategy.

    Attributes:
        group: IPv4 multicast group. The default 233.252.1.32 is libcluster's (GLOP/documentation range).
            Clusters sharing a LAN should use different groups or ports, or secrets.
        port: UDP port of the group (libcluster uses 45892). Every node of a cluster uses the same one.
        interface: IPv4 address of the interface to join the group on and send from; ``0.0.0.0`` lets the
            kernel pick (the default route's interface). Use ``127.0.0.1`` for single-host clusters.
        ttl: multicast TTL. 1 keeps beacons on the local link, which is what you want; raise it only
            with multicast routing in place.
        loop: deliver our own multicasts to sockets on this host (needed for several nodes per host;
            our own beacons are recognised by node id and ignored).
        interval: seconds between beacons (jittered +-50%). Lower finds nodes sooner but sends more:
            N nodes send N/interval datagrams per second to everyone.
        candidate_ttl: seconds without a beacon after which a node is no longer a candidate. Must exceed
            ``interval`` by enough to absorb a few lost datagrams (default 4 intervals).
        secret: shared cluster secret; beacons are then HMAC-SHA256 signed and unsigned or wrongly signed
            ones are dropped and counted. None: unsigned beacons (anyone on the link can announce).
        announce: send beacons. False: listen only (diagnostics such as ``foundation-node discover``
            must see the cluster without appearing in it).
    """

    group: str = "233.252.1.32"
    port: int = 45892
    interface: str = "0.0.0.0"
    ttl: int = 1
    loop: bool = True
    interval: float = 5.0
    candidate_ttl: float = 20.0
    secret: str | None = None
    announce: bool = True

    def __post_init__(self) -> None:
        check_ip(self.group, "GossipConfig.group")
        if not ipaddress.ip_address(self.group).is_multicast or ipaddress.ip_address(self.group).version != 4:
            raise ConfigurationError(f"GossipConfig.group must be an IPv4 multicast address, got {self.group!r}")
        check_port(self.port, "GossipConfig.port")
        check_ip(self.interface, "GossipConfig.interface")
        if ipaddress.ip_address(self.interface).version != 4:
            raise ConfigurationError("GossipConfig.interface must be an IPv4 address")
        if isinstance(self.ttl, bool) or not isinstance(self.ttl, int) or not 0 <= self.ttl <= 255:
            raise ConfigurationError(f"GossipConfig.ttl must be 0..255, got {self.ttl!r}")
        check_positive(self.interval, "GossipConfig.interval")
        check_positive(self.candidate_ttl, "GossipConfig.candidate_ttl")
        if self.candidate_ttl <= self.interval * 1.5:
            raise ConfigurationError("GossipConfig.candidate_ttl must exceed 1.5 x interval (the longest jittered gap)")
        if self.secret is not None and (not isinstance(self.secret, str) or not self.secret):
            raise ConfigurationError("GossipConfig.secret must be a non-empty string or None")

    @classmethod
    def local(cls, **overrides: Any) -> GossipConfig:
        """Single host: loopback interface, fast beacons (tests, demos)."""
        return cls(**{"interface": "127.0.0.1", "interval": 0.5, "candidate_ttl": 3.0, **overrides})

    @classmethod
    def lan(cls, **overrides: Any) -> GossipConfig:
        """One LAN: the defaults (kernel-chosen interface, 5 s beacons, 20 s TTL)."""
        return cls(**overrides)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, plugin: GossipPlugin) -> None:
        self._plugin = plugin

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._plugin._on_datagram(data, str(addr[0]))

    def error_received(self, exc: Exception) -> None:
        self._plugin._on_socket_error(exc)


def open_multicast_socket(config: GossipConfig) -> socket.socket:
    """Create the non-blocking UDP socket described in the module docstring. Raises OSError."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((config.group, config.port))
        membership = socket.inet_aton(config.group) + socket.inet_aton(config.interface)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        if config.interface != "0.0.0.0":
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(config.interface))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, config.ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1 if config.loop else 0)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class GossipPlugin(DiscoveryPlugin):
    """Multicast beacons: announces this node and collects the others.

    Counters: ``beacons_sent``, ``send_failures``, ``beacons_received``, ``beacons_accepted``,
    ``own_beacons``, ``beacons_malformed``, ``beacons_rejected_hmac``, ``beacons_foreign``, ``expired``.
    """

    name: ClassVar[str] = "gossip"
    config_type: ClassVar[type[GossipConfig]] = GossipConfig
    config: GossipConfig

    def __init__(self, config: GossipConfig | None = None, *, rng: random.Random | None = None, **kw: Any) -> None:
        """``rng`` jitters the beacon interval (seeded in tests); other arguments as DiscoveryPlugin."""
        super().__init__(config, **kw)
        self._rng = rng if rng is not None else random.Random()
        self._codec = BeaconCodec(self.config.secret)
        self._table = BeaconTable(self.config.candidate_ttl, source=self.name)
        self._transport: asyncio.DatagramTransport | None = None
        self._sender: asyncio.Task[None] | None = None
        self._datagram = b""
        self._last_sent = float("-inf")
        self._wake_sender = asyncio.Event()
        for counter in (
            "beacons_sent",
            "send_failures",
            "beacons_received",
            "beacons_accepted",
            "own_beacons",
            "beacons_malformed",
            "beacons_rejected_hmac",
            "beacons_foreign",
            "expired",
        ):
            self.counters[counter] = 0

    @property
    def address(self) -> tuple[str, int]:
        """The (group, port) beacons go to."""
        return (self.config.group, self.config.port)

    async def _start(self, local: LocalNode) -> None:
        beacon = Beacon(
            node_id=local.node_id,
            name=local.name,
            endpoints=dict(local.endpoints),
            meta=dict(local.metadata),
            public_key=local.public_key,
        )
        self._datagram = self._codec.encode(beacon)
        if len(self._datagram) > 1400:  # stay under a typical MTU: fragments get lost first
            raise ConfigurationError(f"beacon is {len(self._datagram)} bytes; trim metadata (limit 1400)")
        await self._open()

    async def _open(self) -> bool:
        """Open the socket and start beaconing; on failure count, log (rate-limited) and return False."""
        try:
            sock = open_multicast_socket(self.config)
        except OSError as exc:
            # No multicast here (no route, no such interface): a deployment problem, not a crash. The
            # strategy finds nothing until it works; lookups retry. The counter and the log say why.
            self._count("failures")
            self.rate_limited.warning(
                "open", "gossip: cannot open multicast socket %s:%d on %s: %s",
                self.config.group, self.config.port, self.config.interface, exc,
            )
            return False
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        self._transport = transport
        self._mark_success()
        if self.config.announce:
            self._sender = asyncio.create_task(self._send_loop(), name="fabric.discovery.gossip.sender")
        return True

    async def _send_loop(self) -> None:
        while True:
            self._send_beacon()
            self._wake_sender.clear()
            delay = self.config.interval * self._rng.uniform(0.5, 1.5)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_sender.wait(), timeout=delay)

    def _send_beacon(self) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        try:
            self._transport.sendto(self._datagram, self.address)
        except OSError as exc:
            self._on_socket_error(exc)
            return
        self._last_sent = self.clock.now()
        self._count("beacons_sent")

    def _on_socket_error(self, exc: Exception) -> None:
        self._count("send_failures")
        self.rate_limited.warning("send", "gossip: socket error: %r", exc)

    def _on_datagram(self, data: bytes, sender: str) -> None:
        """Handle one datagram (called by the protocol on the loop). Never raises."""
        self._count("beacons_received")
        try:
            beacon = self._codec.decode(data)
            if self.local is not None and beacon.node_id == self.local.node_id:
                self._count("own_beacons")
                return
            changed = self._table.observe(beacon, sender, self.clock.now())
        except MalformedInput as exc:
            counter = {"hmac": "beacons_rejected_hmac", "foreign": "beacons_foreign"}.get(
                exc.category, "beacons_malformed"
            )
            self._count(counter)
            if counter == "beacons_malformed":
                self._count("malformed")
            self.rate_limited.warning(counter, "gossip: dropped datagram from %s: %s", sender, exc)
            return
        self._count("beacons_accepted")
        self._mark_success()
        if changed:
            self._notify_changed()
            # Answer a newcomer at once (at most 4 times per interval) so it does not wait a full interval.
            if self.clock.now() - self._last_sent > self.config.interval / 4:
                self._wake_sender.set()

    async def _lookup(self) -> list[Candidate]:
        if self._transport is None and not await self._open():
            return []
        dropped = self._table.expire(self.clock.now())
        if dropped:
            self._count("expired", len(dropped))
        # The socket is up: an empty table is a real answer ("nobody is beaconing").
        self._mark_success()
        return self._table.candidates()

    async def _stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def default_poll_interval(self) -> float:
        """Expire stale nodes about twice per beacon interval."""
        return self.config.interval / 2

    def send_now(self) -> None:
        """Send a beacon immediately (e.g. after a network change). Raises PluginStateError if not running."""
        if not self.running:
            raise PluginStateError("gossip: send_now() while not running")
        if self.config.announce:
            self._wake_sender.set()

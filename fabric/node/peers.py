"""Peers: links to members and client-role peers, and the HELLO/WELCOME handshake.

:meth:`Peers.handshake` sends HELLO to a membership endpoint (over a temporary link, or over the link
that already serves that endpoint) and waits for WELCOME or REJECT. A HELLO we receive from a member
links it back (:meth:`Peers.link`: per-channel, per-lane sockets), so a link is symmetric; a HELLO from a
client records it as a client (answered over its connection, never a member). A *probe* link opens the
membership channel only (a one-off exchange with a non-neighbour); a full link asked for over a probe
link adds the missing channels.

Loop thread only. The node is told about every new link and every closed one (``on_link`` /
``on_unlink``) and about every member handshake (``on_contact``), which is how membership hears of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from .. import wire
from ..config import MEMBERSHIP_CHANNEL, NodeConfig
from ..errors import CallError, ConfigError, ProtocolError, Unreachable, VersionMismatch
from ..transport.base import Link, Transport
from ..wire import RejectCode, Role
from ..wire.types import K_TOPOLOGY
from .calls import Answer
from .message import PeerInfo, peer_from_header

log = logging.getLogger("fabric.node")

MAX_CLIENTS = 4096
"""Client-role peers remembered at once; beyond it the oldest are forgotten (they never said BYE)."""

HANDSHAKE_LANE = 255
"""Routing-id lane octet of temporary handshake links (see Transport.connect)."""


@dataclass
class LinkedPeer:
    """A member this node holds a link to."""

    info: PeerInfo
    link: bytes
    linked_at: float
    probe: bool = False
    """Only the membership channel is connected (see :class:`~fabric.membership.Connect`)."""


class Peers:
    """The links of one node (see the module docstring).

    Args:
        config: the node's configuration (``accept_clients``, ``metadata``).
        node_id, name: who this node is.
        transport: opens and closes the sockets.
        channels: the channel names this node has (links connect only those).
        hello: builds this node's HELLO frames (called per handshake).
        welcome: ``welcome(version)`` builds this node's WELCOME frames.
        on_topology: a member's HELLO or WELCOME carried its topology state (``tp``): called before the
            link opens, so a newer overlay is adopted before this node contacts the peer.
        answer: sends frames back the way a request came in.
        on_contact: a member completed a handshake (either direction).
        on_link, on_unlink: a link opened / closed (``on_unlink(key, info, reason)``).
        forget: drop everything the node keeps about a source (client records included).
        errors: the node's bad-input counters.
    """

    def __init__(self, config: NodeConfig, node_id: bytes, name: str, transport: Transport, channels: Collection[str],
                 *, hello: Callable[[], list[bytes]], welcome: Callable[[int], list[bytes]], answer: Answer,
                 on_topology: Callable[[Any], None],
                 on_contact: Callable[[PeerInfo], None], on_link: Callable[[PeerInfo], None],
                 on_unlink: Callable[[bytes, PeerInfo, str], None], forget: Callable[[bytes], None],
                 counters: Counter[str], errors: Counter[str]) -> None:
        self._config = config
        self._node_id = node_id
        self._id_text = wire.node_id_str(node_id)
        self._name = name
        self._transport = transport
        self._channels = set(channels)
        self._hello = hello
        self._welcome = welcome
        self._on_topology = on_topology
        self._answer = answer
        self._on_contact = on_contact
        self._on_link = on_link
        self._on_unlink = on_unlink
        self._forget = forget
        self._counters = counters
        self._errors = errors
        self.linked: dict[bytes, LinkedPeer] = {}
        """Node id -> linked member (read on hot paths; change it only through link/unlink)."""
        self.clients: dict[bytes, PeerInfo] = {}
        """Node id -> client-role peer that said HELLO (oldest first)."""
        self._handshakes: dict[Link, asyncio.Future[PeerInfo]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the node's loop."""
        self._loop = loop

    def stop(self) -> None:
        """Fail every handshake in flight; say BYE to every linked member (best effort)."""
        for fut in self._handshakes.values():
            if not fut.done():
                fut.set_exception(Unreachable("node is stopping"))
        bye = wire.bye(self._node_id)
        for peer in list(self.linked.values()):
            try:
                self._transport.send(peer.link, MEMBERSHIP_CHANNEL, 0, bye)
            except Exception:  # best effort: the peer may already be gone
                pass

    # -- handshake -------------------------------------------------------------------------------------

    async def handshake(self, endpoint: str, timeout: float) -> PeerInfo:
        """HELLO/WELCOME with ``endpoint``; returns who answered (links nothing). Raises Unreachable (no
        WELCOME in time), VersionMismatch, CallError (any other rejection)."""
        # Already linked to whoever serves that endpoint: say HELLO over the existing link. A second
        # DEALER would present the same routing id to the same ROUTER, which refuses it.
        link: Link = next((k for k, p in self.linked.items() if p.info.seed == endpoint), ("seed", endpoint))
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

    def on_hello(self, h: dict[str, object], channel: str, route: bytes | None, link: Link | None) -> None:
        """A HELLO arrived: agree on a version, record a client or link a member, answer WELCOME."""
        vmin, vmax = h["vn"], h["vx"]
        assert isinstance(vmin, int) and isinstance(vmax, int)
        version = min(vmax, wire.MAX_VERSION)
        if version < max(vmin, wire.MIN_VERSION):
            self._errors["version_mismatch"] += 1
            self._answer(
                channel,
                route,
                link,
                wire.reject(
                    self._node_id,
                    code=RejectCode.VERSION,
                    message=f"no common protocol version: peer speaks {vmin}..{vmax}, "
                    f"this node speaks {wire.MIN_VERSION}..{wire.MAX_VERSION}",
                ),
            )
            return
        info = peer_from_header(h, version)
        if info.role is Role.CLIENT:
            if not self._config.accept_clients:
                self._answer(channel, route, link, wire.reject(self._node_id, code=RejectCode.ROLE, message="clients are not accepted"))
                return
            src = h["s"]
            assert isinstance(src, bytes)
            self.clients[src] = info
            while len(self.clients) > MAX_CLIENTS:  # clients that vanished without BYE: forget the oldest
                self._forget(next(iter(self.clients)))
        elif info.id != self._id_text:
            if K_TOPOLOGY in h:
                self._on_topology(h[K_TOPOLOGY])
            if not self.link(info):
                self._answer(channel, route, link,
                             wire.reject(self._node_id, code=RejectCode.IDENTITY, message="malformed endpoint in HELLO"))
                return
            self._on_contact(info)
        self._answer(channel, route, link, self._welcome(version))

    def on_handshake_answer(self, env: wire.Envelope, link: Link | None) -> None:
        """A WELCOME or REJECT arrived: complete the handshake it answers."""
        fut = self._handshakes.get(link) if link is not None else None
        if fut is None or fut.done():
            self._counters["unexpected_handshake"] += 1
            return
        h = env.header
        if env.type == wire.MsgType.WELCOME:
            if K_TOPOLOGY in h:
                self._on_topology(h[K_TOPOLOGY])  # before the caller links and contacts this peer
            try:
                fut.set_result(peer_from_header(h, h["v"]))
            except ProtocolError as exc:
                fut.set_exception(Unreachable(f"peer sent a bad WELCOME: {exc}"))
            return
        code = h["ec"]
        message = h.get("em", "")
        if code == RejectCode.VERSION:
            fut.set_exception(VersionMismatch(f"HELLO rejected: {message}"))
        else:
            fut.set_exception(CallError(f"HELLO rejected (code {code}): {message}"))

    # -- links -----------------------------------------------------------------------------------------

    def link(self, info: PeerInfo, *, probe: bool = False) -> bool:
        """Open (or reopen, for a new incarnation) the sockets to a member: every channel, or with
        ``probe`` the membership channel only. A full link asked for over a probe link adds the missing
        channels to it.

        Returns False (counted ``bad_endpoint``, nothing linked) when the peer advertised an endpoint the
        transport cannot connect to: remote input, so it is dropped like any other bad input."""
        key = wire.node_id_bytes(info.id)
        current = self.linked.get(key)
        if current is not None:
            if current.info.incarnation == info.incarnation:
                if current.probe and not probe:
                    current.probe = False
                    if not self._connect(key, info, self._endpoints(info)):
                        self.linked.pop(key, None)
                        self._on_unlink(key, current.info, "bad endpoint")
                        return False
                    self._counters["probe_links_upgraded"] += 1
                return True
            self.unlink(key, reason="restarted")
        # One endpoint serves one node at a time: a link to another id at the same seed is stale (that
        # node died and this one took its address), and its sockets would clash with the new ones.
        for other in [k for k, p in self.linked.items() if info.seed and p.info.seed == info.seed]:
            self.unlink(other, reason="replaced at the same endpoint")
        endpoints = self._endpoints(info)
        if probe:
            endpoints = {name: ep for name, ep in endpoints.items() if name == MEMBERSHIP_CHANNEL}
            self._counters["probe_links_opened"] += 1
        if not self._connect(key, info, endpoints):
            return False
        self.linked[key] = LinkedPeer(info, key, time.monotonic(), probe=probe)
        log.log(logging.DEBUG if probe else logging.INFO, "node %s linked to %s (%s)%s", self._name, info.name,
                info.id[:8], " (probe)" if probe else "")
        self._on_link(info)
        return True

    def _connect(self, key: bytes, info: PeerInfo, endpoints: dict[str, str]) -> bool:
        """Connect the sockets of a link; a malformed advertised endpoint closes what was opened and is
        counted (``errors["bad_endpoint"]``), never raised into the receive path."""
        try:
            self._transport.connect(key, endpoints, self._parallelism(info))
        except ConfigError as exc:
            self._transport.disconnect(key)
            self._errors["bad_endpoint"] += 1
            log.debug("node %s: not linking %s (%s): %s", self._name, info.name, info.id[:8], exc)
            return False
        return True

    def _endpoints(self, info: PeerInfo) -> dict[str, str]:
        return {name: ep for name, ep in info.endpoints.items() if name in self._channels}

    @staticmethod
    def _parallelism(info: PeerInfo) -> dict[str, int]:
        return {name: par for name, (_kind, par) in info.channels.items()}

    def unlink(self, key: bytes, *, reason: str) -> None:
        """Close the link to ``key`` (unknown keys are ignored)."""
        peer = self.linked.pop(key, None)
        if peer is None:
            return
        self._transport.disconnect(key)
        log.log(logging.DEBUG if peer.probe else logging.INFO, "node %s unlinked %s (%s)", self._name, peer.info.name,
                reason)
        self._on_unlink(key, peer.info, reason)

    def disconnect(self, key: bytes) -> None:
        """Say BYE to ``key`` and close the link (unknown keys are ignored)."""
        if key in self.linked:
            try:
                self._transport.send(key, MEMBERSHIP_CHANNEL, 0, wire.bye(self._node_id))
            except KeyError:
                pass
            self.unlink(key, reason="disconnected")

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
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from .. import wire
from ..config import MEMBERSHIP_CHANNEL, NodeConfig
from ..errors import CallError, ConfigError, ProtocolError, Unreachable, VersionMismatch
from ..security.roles import TrustRole
from ..transport.base import ChannelKind, Link, Transport
from ..wire import RejectCode, Role
from ..wire.types import K_CERT, K_PUBKEY, K_TOPOLOGY
from .calls import Answer
from .limits import RateLimitedLog, TokenBuckets, origin_of
from .message import PeerInfo, peer_from_header
from .security import NodeSecurity, split_seed

log = logging.getLogger("fabric.node")

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
        security: secure mode (CURVE): every link is pinned to the peer's public key, a HELLO must come
            from a key trusted for its role (else REJECT ``UNTRUSTED``), a member whose key is unknown or
            untrusted is not linked. None: development mode.
    """

    def __init__(self, config: NodeConfig, node_id: bytes, name: str, transport: Transport, channels: Collection[str],
                 *, hello: Callable[[], list[bytes]], welcome: Callable[[int], list[bytes]], answer: Answer,
                 on_topology: Callable[[Any], None],
                 on_contact: Callable[[PeerInfo], None], on_link: Callable[[PeerInfo], None],
                 on_unlink: Callable[[bytes, PeerInfo, str], None], forget: Callable[[bytes], None],
                 counters: Counter[str], errors: Counter[str], security: NodeSecurity | None = None) -> None:
        self._config = config
        self._sec = security
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
        self._link_sockets: dict[bytes, int] = {}  # node id -> sockets its link holds
        self.sockets_in_use = 0
        """Sockets all links hold together (bounded by ``limits.max_link_sockets``)."""
        self.clients: dict[bytes, PeerInfo] = {}
        """Node id -> client-role peer that said HELLO (longest silent first)."""
        self._client_seen: dict[bytes, float] = {}  # node id -> last heard (loop clock), longest silent first
        self._handshakes: dict[Link, asyncio.Future[PeerInfo]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._expiry_timer: asyncio.TimerHandle | None = None
        limits = config.limits
        self._limits = limits
        self._hello_source = TokenBuckets(limits.hello_rate, limits.hello_burst, limits.rate_sources)
        self._hello_global = TokenBuckets(limits.hello_rate_global, limits.hello_rate_global, 1)
        self._refusals = RateLimitedLog(log, limits.bad_input_log_interval)
        # Lanes a peer may use per channel: broadcast channels have one (more would subscribe twice).
        self._own_lanes = {c.name: c.parallelism for c in config.channels}
        self._one_lane = {c.name for c in config.channels if c.kind is ChannelKind.BROADCAST}

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the node's loop."""
        self._loop = loop
        self._schedule_expiry()

    def stop(self) -> None:
        """Fail every handshake in flight; say BYE to every linked member (best effort)."""
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
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
        WELCOME in time), VersionMismatch, CallError (any other rejection), ConfigError (secure mode: the
        endpoint carries no ``#KEY``)."""
        endpoint, server_key = split_seed(endpoint)
        if self._sec is not None and server_key is None:
            raise ConfigError(f"seed {endpoint} needs #KEY in secure mode (tcp://HOST:PORT#<Z85 or hex public key>; "
                              "foundation-node keys show prints it)")
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
                self._transport.connect(link, {MEMBERSHIP_CHANNEL: endpoint}, routing_lane=HANDSHAKE_LANE,
                                        server_key=server_key if self._sec is not None else None)
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
        """A HELLO arrived: agree on a version, record a client or link a member, answer WELCOME.

        Rate-limited per source and in total (excess HELLOs are dropped unanswered and counted
        ``hello_rate_limited``); a member HELLO beyond ``limits.max_peers``, or advertising more lanes
        or a malformed endpoint, is answered REJECT and counted (docs/security.md)."""
        assert self._loop is not None
        now = self._loop.time()
        source = origin_of(route, link) or h["s"]
        if not self._hello_global.allow(None, now) or not self._hello_source.allow(source, now):
            self._counters["hello_rate_limited"] += 1
            return
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
        if self._sec is not None:
            trusted = self._trusted_hello(h, info)
            if trusted is None:
                self._answer(channel, route, link, wire.reject(
                    self._node_id, code=RejectCode.UNTRUSTED,
                    message=f"key not trusted as {'client' if info.role is Role.CLIENT else 'member'}"))
                return
            info = trusted
        if info.role is Role.CLIENT:
            if not self._config.accept_clients:
                self._answer(channel, route, link, wire.reject(self._node_id, code=RejectCode.ROLE, message="clients are not accepted"))
                return
            src = h["s"]
            assert isinstance(src, bytes)
            self.clients[src] = info
            self.client_heard(src, now)
            while len(self.clients) > self._limits.max_clients:  # forget the longest silent (never said BYE)
                self._counters["clients_evicted"] += 1
                self._forget(next(iter(self._client_seen), next(iter(self.clients))))
        elif info.id != self._id_text:
            refusal = self._refuse_member(info, now)
            if refusal is not None:
                code, message = refusal
                self._answer(channel, route, link, wire.reject(self._node_id, code=code, message=message))
                return
            if K_TOPOLOGY in h:
                self._on_topology(h[K_TOPOLOGY])
            if not self.link(info):
                self._answer(channel, route, link,
                             wire.reject(self._node_id, code=RejectCode.IDENTITY, message="malformed endpoint in HELLO"))
                return
            self._on_contact(info)
        self._answer(channel, route, link, self._welcome(version))

    def _trusted_hello(self, h: dict[str, object], info: PeerInfo) -> PeerInfo | None:
        """Secure mode: the HELLO's authenticated key must be trusted for the role asked for (a client
        may also use a member key). Returns ``info`` carrying the key, or None (counted) to refuse."""
        sec = self._sec
        assert sec is not None
        key = self._transport.peer_key
        if key is None:
            return None
        pk = h.get(K_PUBKEY)
        if pk is not None and pk != key:  # it names a key other than the one it authenticated with
            self._errors["forged_source"] += 1
            return None
        cert = h.get(K_CERT)
        if isinstance(cert, bytes):
            sec.admit_certificate(cert, key)
        roles = sec.roles(key)
        if TrustRole.MEMBER not in roles and (info.role is not Role.CLIENT or TrustRole.CLIENT not in roles):
            self._errors["untrusted_hello"] += 1
            sec.counters["untrusted_hello"] += 1
            log.warning("node %s refused a %s HELLO from untrusted key %s", self._name,
                        "client" if info.role is Role.CLIENT else "member", key.decode(errors="replace"))
            return None
        return dataclasses.replace(info, public_key=key)

    # -- limits ----------------------------------------------------------------------------------------

    def _refuse_member(self, info: PeerInfo, now: float) -> tuple[RejectCode, str] | None:
        """Why a member's HELLO must be refused (counted and logged, rate-limited), or None."""
        key = wire.node_id_bytes(info.id)
        if key not in self.linked and len(self.linked) >= self._limits.max_peers:
            self._counters["peers_refused"] += 1
            self._refusals.warning(now, "node %s refused member %s: %d peers linked (limits.max_peers)",
                                   self._name, info.id[:8], len(self.linked))
            return RejectCode.LIMIT, f"this node links at most {self._limits.max_peers} peers"
        for name, (_kind, lanes) in info.channels.items():
            allowed = self._allowed_lanes(name)
            if name in self._own_lanes and not 1 <= lanes <= allowed:
                self._counters["lanes_refused"] += 1
                self._refusals.warning(now, "node %s refused member %s: %d lanes on channel %s (at most %d)",
                                       self._name, info.id[:8], lanes, name, allowed)
                return RejectCode.LIMIT, f"channel {name}: {lanes} lanes; this node allows 1..{allowed}"
        need = self._sockets_needed(info, self._endpoints(info)) - self._link_sockets.get(key, 0)
        if self.sockets_in_use + need > self._limits.max_link_sockets:
            self._counters["sockets_refused"] += 1
            self._refusals.warning(now, "node %s refused member %s: its link needs %d sockets, %d of %d in use "
                                   "(limits.max_link_sockets)", self._name, info.id[:8], need, self.sockets_in_use,
                                   self._limits.max_link_sockets)
            return RejectCode.LIMIT, f"this node holds at most {self._limits.max_link_sockets} link sockets"
        bad = next((ep for name, ep in self._endpoints(info).items() if not valid_endpoint(ep)), None)
        if bad is not None or not info.seed:
            self._errors["bad_endpoint"] += 1
            self._refusals.warning(now, "node %s refused member %s: malformed endpoint %r", self._name, info.id[:8],
                                   bad if bad is not None else info.seed)
            return RejectCode.IDENTITY, f"malformed endpoint {(bad if bad is not None else info.seed)!r}"[:200]
        return None

    def _allowed_lanes(self, channel: str) -> int:
        if channel in self._one_lane:
            return 1
        return max(self._own_lanes.get(channel, 1), self._limits.max_peer_lanes)

    def usage(self) -> dict[str, int]:
        """Fill levels of the bounded tables kept here (``stats()["limits"]``)."""
        return {"hello_sources": len(self._hello_source), "hello_source_evictions": self._hello_source.evictions,
                "link_sockets": self.sockets_in_use}

    def _sockets_needed(self, info: PeerInfo, endpoints: dict[str, str]) -> int:
        """Sockets a link to ``info`` over ``endpoints`` opens (lanes clamped as :meth:`_parallelism`)."""
        lanes = self._parallelism(info)
        return sum(1 if name in self._one_lane else lanes.get(name, self._own_lanes.get(name, 1)) for name in endpoints)

    def _budget(self, key: bytes, info: PeerInfo, endpoints: dict[str, str]) -> int | None:
        """The sockets a link over ``endpoints`` would hold, or None (counted) beyond ``max_link_sockets``."""
        total = self._sockets_needed(info, endpoints)
        if self.sockets_in_use - self._link_sockets.get(key, 0) + total > self._limits.max_link_sockets:
            self._counters["sockets_refused"] += 1
            return None
        return total

    def _hold(self, key: bytes, sockets: int) -> None:
        self.sockets_in_use += sockets - self._link_sockets.get(key, 0)
        if sockets:
            self._link_sockets[key] = sockets
        else:
            self._link_sockets.pop(key, None)

    def client_heard(self, key: bytes, now: float) -> None:
        """A client said something: it is the most recently heard (expiry and eviction go by silence)."""
        seen = self._client_seen
        if key in self.clients:
            seen.pop(key, None)
            seen[key] = now

    def forget_client(self, key: bytes) -> None:
        """Drop a client's record (it said BYE, expired or was evicted)."""
        self.clients.pop(key, None)
        self._client_seen.pop(key, None)

    def _schedule_expiry(self) -> None:
        if self._loop is not None:
            self._expiry_timer = self._loop.call_later(self._limits.client_expiry / 10, self._expire_clients)

    def _expire_clients(self) -> None:
        """Forget clients silent for ``limits.client_expiry`` (they never said BYE); reschedules itself."""
        assert self._loop is not None
        horizon = self._loop.time() - self._limits.client_expiry
        seen = self._client_seen
        while seen:
            key, at = next(iter(seen.items()))
            if at > horizon:
                break
            self._counters["clients_expired"] += 1
            self._forget(key)
            seen.pop(key, None)  # in case forget did not
        self._schedule_expiry()

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
                info = peer_from_header(h, h["v"])
            except ProtocolError as exc:
                fut.set_exception(Unreachable(f"peer sent a bad WELCOME: {exc}"))
                return
            if self._sec is not None:
                key = self._transport.peer_key  # the key this handshake link is pinned to
                cert = h.get(K_CERT)
                if key is not None and isinstance(cert, bytes) and TrustRole.MEMBER not in self._sec.roles(key):
                    self._sec.admit_certificate(cert, key)  # a member admitted by its CA certificate
                if key is None or TrustRole.MEMBER not in self._sec.roles(key):
                    self._errors["untrusted_welcome"] += 1
                    fut.set_exception(CallError(f"{info.name or info.id}: its key is not trusted as a member here"))
                    return
                info = dataclasses.replace(info, public_key=key)
            fut.set_result(info)
            return
        code = h["ec"]
        message = h.get("em", "")
        if code == RejectCode.VERSION:
            fut.set_exception(VersionMismatch(f"HELLO rejected: {message}"))
        elif code == RejectCode.UNTRUSTED:
            fut.set_exception(CallError(f"HELLO rejected: {message} (add this node's key to the peer's trust file)"))
        else:
            fut.set_exception(CallError(f"HELLO rejected (code {code}): {message}"))

    # -- links -----------------------------------------------------------------------------------------

    def link(self, info: PeerInfo, *, probe: bool = False) -> bool:
        """Open (or reopen, for a restart) the sockets to a member: every channel, or with ``probe`` the
        membership channel only. A full link asked for over a probe link adds the missing channels to it.
        Returns False when no link could be opened: secure mode refuses the member (its key is unknown,
        does not derive its node id, or is not trusted as a member; counted ``untrusted_link``),
        ``limits.max_peers`` links exist (``peers_refused``) or its endpoints are malformed (``bad_endpoint``).

        A new incarnation is a restart, and the link is reopened (messages still queued on the old
        sockets are dropped), unless both sides of the comparison carry the same boot id: then the same
        process refuted a suspicion with a higher incarnation, and only the stored info is updated, the
        sockets and what is queued on them are kept. Without a boot id on either side (an older peer)
        every new incarnation reopens the link."""
        key = wire.node_id_bytes(info.id)
        server_key = None
        if self._sec is not None:
            server_key = info.public_key
            if server_key is not None and self._sec.id_of(server_key) == key:
                # a member learned through gossip may be trusted by its CA certificate, which its
                # membership record carries (metadata ``fabric.cert``); verified like a HELLO's
                self._sec.admit_from_metadata(info.meta, server_key)
            if (server_key is None or self._sec.id_of(server_key) != key
                    or TrustRole.MEMBER not in self._sec.roles(server_key)):
                self._errors["untrusted_link"] += 1
                log.debug("node %s: not linking %s (%s): no trusted key", self._name, info.name, info.id[:8])
                return False
        current = self.linked.get(key)
        if current is not None:
            if current.info.incarnation != info.incarnation and info.boot and info.boot == current.info.boot:
                if info.incarnation > current.info.incarnation:
                    current.info = info  # a refutation: same process, same sockets
                    self._counters["refutations_kept_link"] += 1
                info = current.info
            if current.info.incarnation == info.incarnation:
                if info.boot and not current.info.boot:
                    current.info = info  # learned the boot id (first known from a source without it)
                if current.probe and not probe:
                    full = self._budget(key, info, self._endpoints(info))
                    if full is None:
                        return True  # the probe link stays; the rest waits for room
                    if self._connect(key, info, self._endpoints(info), server_key, keep=True):
                        current.probe = False
                        self._hold(key, full)
                        self._counters["probe_links_upgraded"] += 1
                return True
            self._counters["restart_relinks"] += 1
            self.unlink(key, reason="restarted")
        # One endpoint serves one node at a time: a link to another id at the same seed is stale (that
        # node died and this one took its address), and its sockets would clash with the new ones.
        for other in [k for k, p in self.linked.items() if info.seed and p.info.seed == info.seed]:
            self.unlink(other, reason="replaced at the same endpoint")
        if len(self.linked) >= self._limits.max_peers:
            self._counters["peers_refused"] += 1
            return False
        endpoints = self._endpoints(info)
        if probe:
            endpoints = {name: ep for name, ep in endpoints.items() if name == MEMBERSHIP_CHANNEL}
        sockets = self._budget(key, info, endpoints)
        if sockets is None or not self._connect(key, info, endpoints, server_key):
            return False
        self._hold(key, sockets)
        if probe:
            self._counters["probe_links_opened"] += 1
        self.linked[key] = LinkedPeer(info, key, time.monotonic(), probe=probe)
        log.log(logging.DEBUG if probe else logging.INFO, "node %s linked to %s (%s)%s", self._name, info.name,
                info.id[:8], " (probe)" if probe else "")
        self._on_link(info)
        return True

    def _connect(self, key: bytes, info: PeerInfo, endpoints: dict[str, str], server_key: bytes | None,
                 *, keep: bool = False) -> bool:
        """Open the sockets of a link; a peer-supplied endpoint libzmq refuses is counted (``bad_endpoint``),
        logged once per interval without a traceback, and leaves no half-open link behind (``keep``: the
        link already has sockets that stay)."""
        bad = next((ep for ep in endpoints.values() if not valid_endpoint(ep)), None)
        try:
            if bad is not None:
                raise ConfigError(f"malformed endpoint {bad!r}")
            self._transport.connect(key, endpoints, self._parallelism(info), server_key=server_key)
        except ConfigError as exc:
            if not keep:
                self._transport.disconnect(key)
            self._errors["bad_endpoint"] += 1
            now = self._loop.time() if self._loop is not None else time.monotonic()
            self._refusals.warning(now, "node %s: cannot link %s (%s): %s", self._name, info.name[:64], info.id[:8], exc)
            return False
        return True

    def _endpoints(self, info: PeerInfo) -> dict[str, str]:
        return {name: ep for name, ep in info.endpoints.items() if name in self._channels}

    def _parallelism(self, info: PeerInfo) -> dict[str, int]:
        # Clamped: a member learned from gossip cannot make this node open more sockets than it allows.
        return {name: max(1, min(par, self._allowed_lanes(name))) for name, (_kind, par) in info.channels.items()}

    def unlink(self, key: bytes, *, reason: str) -> None:
        """Close the link to ``key`` (unknown keys are ignored)."""
        peer = self.linked.pop(key, None)
        if peer is None:
            return
        self._transport.disconnect(key)
        self._hold(key, 0)
        log.log(logging.DEBUG if peer.probe else logging.INFO, "node %s unlinked %s (%s)", self._name, peer.info.name,
                reason)
        self._on_unlink(key, peer.info, reason)

    def revoke(self, keys: frozenset[bytes]) -> int:
        """Secure mode: unlink every member and forget every client whose key is in ``keys`` (their
        trust was revoked). Returns how many were dropped."""
        dropped = 0
        for nid, peer in list(self.linked.items()):
            if peer.info.public_key in keys:
                self.unlink(nid, reason="key revoked")
                dropped += 1
        for nid, client in list(self.clients.items()):
            if client.public_key in keys:
                self._forget(nid)
                dropped += 1
        return dropped

    def disconnect(self, key: bytes) -> None:
        """Say BYE to ``key`` and close the link (unknown keys are ignored)."""
        if key in self.linked:
            try:
                self._transport.send(key, MEMBERSHIP_CHANNEL, 0, wire.bye(self._node_id))
            except KeyError:
                pass
            self.unlink(key, reason="disconnected")


def valid_endpoint(endpoint: object) -> bool:
    """True for an endpoint shaped like the ones nodes advertise: ``SCHEME://ADDRESS`` of at most 255
    characters without white space, where a ``tcp://`` address is ``HOST:PORT`` (port 1-65535) and an
    ``ipc://`` path is under 107 bytes. The transport may still refuse it (that is counted too)."""
    if not isinstance(endpoint, str) or len(endpoint) > 255:
        return False
    scheme, sep, rest = endpoint.partition("://")
    if not sep or not scheme.isalpha() or not rest or any(c.isspace() for c in rest):
        return False
    if scheme == "tcp":
        host, sep, port = rest.rpartition(":")
        return bool(sep and host and port.isdigit() and 0 < int(port) < 65536)
    if scheme == "ipc":
        return len(rest.encode()) < 107
    return True

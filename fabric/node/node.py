"""The fabric node: a composition of parts, holding the async public API.

Theory of operation
-------------------
A :class:`Node` binds one endpoint per channel (see :mod:`fabric.transport.zmq`) and *links* to peers:
:meth:`Node.connect` sends HELLO to a peer's membership endpoint, gets WELCOME with the peer's identity and
endpoints, then opens the per-channel, per-lane sockets to it; the peer opens its own sockets back to us
when it accepts our HELLO, so a link is symmetric.

:class:`~fabric.node.endpoint.Endpoint` (shared with :class:`~fabric.Client`) composes the parts, each
owning one concern (they talk through the callbacks and methods passed at construction); ``Node`` adds
membership, services and broadcast on top:

* :class:`~fabric.node.peers.Peers` — links, client-role peers, the HELLO/WELCOME handshake;
* :class:`~fabric.node.outbox.Outboxes` — per (peer, channel, lane) queues, batching, flow control;
* :class:`~fabric.node.calls.Calls` — services, calls, timeouts, ping and clock offset;
* :class:`~fabric.node.subscriptions.Subscriptions` — handlers and where they run;
* :class:`~fabric.node.membership.NodeMembership` — hosts the membership driver shared with the
  simulators (:class:`fabric.topology.driver.MembershipDriver`: overlay core, topology epochs and
  switching, link retention, timers), membership events and ``join``.

Receiving: the transport calls ``Endpoint._on_frames`` on the loop thread for every message. Decoding
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

Peers: every method that takes a peer accepts a :data:`~fabric.node.message.Peer`: a membership
``Member``, a :class:`PeerInfo`, the node id text or the 16 id bytes (``Member.node_id``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .. import wire
from .._values import encode_value
from ..errors import (
    ConfigError,
    NodeStateError,
    Overloaded,
    Unreachable,
)
from ..membership import (
    Identity,
    Member,
    MemberChanged,
    MemberDown,
    MemberLeft,
    MembershipEvent,
    MemberStatus,
    MemberUp,
)
from ..transport.base import ChannelKind
from ..wire import Role
from .endpoint import Endpoint
from .membership import NodeMembership
from .message import (
    MemberListener,
    Peer,
    PeerInfo,
    Service,
    id_text,
    peer_id_bytes,
)
from .security import split_seed

log = logging.getLogger("fabric.node")

_UP = (MemberStatus.ALIVE, MemberStatus.SUSPECT)



class Node(Endpoint):
    """A fabric node (async API). See the module docstring for threads, ordering and peers.

    Identity: ``id`` (UUID text; random per start unless ``config.node_id`` is set), ``name`` and
    ``incarnation`` (wall-clock milliseconds at construction, so it grows across restarts).

    >>> node = Node(NodeConfig.local(name="a"))      # doctest: +SKIP
    >>> await node.start()                            # doctest: +SKIP
    """

    _role = Role.MEMBER

    async def start(self) -> None:
        """Bind every channel, start receiving and start membership. Raises ConfigError when an endpoint
        cannot be bound. A node whose overlay is ``static`` forms with its configured
        ``static_members`` at once (no :meth:`join` needed; ``join()`` waits for them)."""
        await super().start()

    def _started(self, loop: asyncio.AbstractEventLoop) -> None:
        endpoints = {c.name: (c.kind.value, self._endpoints[c.name], c.parallelism)
                     for c in self.config.channels if c.name in self._endpoints}
        identity = Identity(self._id_bytes, self.name, self._incarnation, dict(self._metadata), endpoints, self._boot)
        self._membership = NodeMembership(
            self.config, identity, loop, self._transport, self._peers, self._subs, list(self._channels),
            self._spawn, lambda: self._state == "running", self._member_listeners, self.counters, self.errors,
            self.channel_counters)
        self._links = self._membership.driver.links
        self._note_traffic = self._membership.driver.note_traffic
        if self.config.overlay == "static":
            self._membership.rejoin()  # a static overlay knows its members: form with them now

    def clients(self) -> list[PeerInfo]:
        """Client-role peers that said HELLO (they are never members)."""
        return list(self._peers.clients.values())

    async def broadcast(self, payload: Any, *, channel: str = "events", topic: bytes = b"") -> int:
        """Send ``payload`` to every linked peer on ``channel``; return the number of peers addressed.

        On a broadcast channel this is one PUB send that every subscribed peer receives (a subscriber at
        its high-water mark misses it); ``topic`` lets subscribers filter by prefix. On a control or bulk
        channel it is one send per linked peer under the channel's ``on_full`` policy. On a partial-view
        overlay the overlay's broadcast tree (Plumtree on ``gossip``) carries it to every live member.
        """
        self._require_running()
        ch = self._channel(channel)
        body, ct = encode_value(payload)
        if self._membership is not None and self._membership.driver.overlay_name != "full-mesh" and self._loop is not None:
            # Partial views: no link to most members, so the overlay's broadcast tree (Plumtree on the
            # gossip channel) carries it; receivers deliver it on ``channel`` as if it came directly.
            wrapped = {"c": channel, "t": topic, "ct": int(ct), "p": body}
            self._membership.driver.broadcast(wrapped, self._loop.time())
            self.counters["sent"] += 1
            self.channel_counters[channel][0] += 1
            return max(0, len(self.alive_members()) - 1)
        if ch.kind is ChannelKind.BROADCAST:
            frames = wire.publish(
                self._id_bytes, channel, body, topic=topic, seq=self._out.next_seq("pub", channel, 0), content_type=ct
            )
            if not self._transport.publish(channel, frames):
                self.counters["dropped_full"] += 1
            self.counters["sent"] += 1
            self.channel_counters[channel][0] += 1
            return len(self._peers.linked)
        count = 0
        for link in list(self._peers.linked):
            frames = wire.send(self._id_bytes, channel, body, seq=self._out.next_seq(link, channel, 0), content_type=ct)
            try:
                if await self._out.enqueue(link, ch, 0, frames):
                    count += 1
            except (Unreachable, Overloaded):
                self.counters["broadcast_failed"] += 1
        return count

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
        self._calls.add_service(name, fn)

    def remove_service(self, name: str) -> None:
        """Unregister service ``name`` (callers then get NoSuchService)."""
        self._calls.remove_service(name)

    def services(self) -> list[str]:
        """Names of the registered services."""
        return self._calls.services()

    # -- membership and topology -------------------------------------------------------------------------

    def _require_member(self) -> NodeMembership:
        self._require_running()
        if self._membership is None:
            raise NodeStateError("only members do that; clients connect()")
        return self._membership

    @property
    def overlay(self) -> str:
        """The overlay in use (``full-mesh``, ``hyparview``, ``client-server``, ``static``)."""
        return self._membership.driver.overlay_name if self._membership is not None else self.config.overlay

    async def switch_topology(self, *args: str, expected_epoch: int | None = None) -> dict[str, Any]:
        """Switch the whole cluster to another overlay, live (no restart, same sockets and endpoints).

        ``switch_topology(new)`` or the compare-and-set form ``switch_topology(expected_current, new)``
        (optionally with ``expected_epoch``). The new state ``(overlay, epoch + 1, this node)`` is
        adopted here, announced to every linked member and carried in every membership heartbeat, so
        all members converge on it; concurrent proposals are ordered by (epoch, node id). Returns
        :meth:`current_topology`. Raises TopologyConflict (CAS mismatch), TopologyCooldown (too soon
        after the last switch), ConfigError (a ValueError: unknown overlay), NodeStateError (not a running member).
        """
        self._require_running()
        if self._membership is None or self._loop is None:
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
        self._membership.driver.propose(new, self._loop.time(), expected=cas)
        return self.current_topology()

    def current_topology(self) -> dict[str, Any]:
        """Overlay, epoch, proposer, links (neighbours and on-demand) and sizes, as this node sees them."""
        driver = self._membership.driver if self._membership is not None else None
        state = driver.state if driver is not None else None
        return {
            "overlay": self.overlay,
            "epoch": state.epoch if state else 0,
            "proposer": id_text(state.proposer) if state and state.epoch else None,
            "members": len(self.alive_members()),
            "neighbours": sorted(p.name for p in self.neighbours()),
            "links": len(self._peers.linked),
            "app_links": driver.links.on_demand if driver is not None else 0,
            "auto": self.config.auto_topology,
            "history": list(driver.history) if driver is not None else [],
        }

    def neighbours(self) -> list[PeerInfo]:
        """The peers the overlay keeps links to (on full-mesh: every member)."""
        if self._membership is None:
            return self.peers()
        wanted = set(self._membership.driver.core.neighbours())
        return [p.info for key, p in self._peers.linked.items() if key in wanted]

    def on_member_event(self, listener: MemberListener) -> Callable[[], None]:
        """Call ``listener(event)`` for every membership event, once per change and in order.

        Events: :class:`MemberUp`, :class:`MemberDown`, :class:`MemberLeft`, :class:`MemberChanged`,
        :class:`Joined` (from :mod:`fabric.membership`). Listeners run on the node's loop, one event at
        a time (async listeners are awaited). Returns a function that removes the listener. May be
        called before :meth:`start`.
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

    def phi(self, member: Peer) -> float | None:
        """The failure detector's current phi for ``member`` (any :data:`Peer`); None when this node does
        not monitor it (not an up member; on a partial-view overlay, not an active neighbour; on a
        client). Suspicion starts at
        ``config.membership.phi_threshold``."""
        if self._membership is None or self._loop is None:
            return None
        try:
            key = peer_id_bytes(member)
        except ValueError:
            return None
        core: Any = self._membership.driver.core
        # the detector lives on the core, or on the engine an adapter wraps (``core.core``)
        phi = getattr(core, "phi", None) or getattr(getattr(core, "core", None), "phi", None)
        return phi(key, self._loop.time()) if phi is not None else None

    @property
    def joined(self) -> bool:
        """True once the node is part of a cluster (a peer's state lists it alive), or alone by choice."""
        return self._membership is not None and self._membership.driver.core.joined

    def members(self) -> list[Member]:
        """The full membership as this node sees it (itself included), sorted by node id, each with its
        status (alive, suspect, down, left: down and left ones until their tombstones expire),
        incarnation, metadata and endpoints. Empty on a client."""
        return self._membership.driver.members() if self._membership is not None else []

    def alive_members(self) -> list[Member]:
        """Members that are up (alive or suspect), this node included."""
        return self._membership.driver.alive_members() if self._membership is not None else []

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
        member: discovery is never liveness). Unreachable seeds are retried with backoff. ``join()``
        with no seeds starts a cluster alone (or, on the ``static`` overlay, waits for the configured
        ``static_members``).

        Raises :class:`JoinTimeout` after ``timeout`` seconds (None: wait forever); the node keeps
        trying in the background. Raises NodeStateError on a client or a stopped node.
        """
        self._require_running()
        if self._membership is None:
            raise NodeStateError("only members join; clients connect()")
        if self._sec is not None:
            for seed in seeds:  # a one-line ConfigError now, not a failed dial in the background
                if split_seed(seed)[1] is None:
                    raise ConfigError(f"seed {seed} needs #KEY in secure mode (tcp://HOST:PORT#<Z85 or hex public "
                                      "key>; foundation-node keys show prints it)")
        return await self._membership.join(seeds, discovery, min_members, timeout)

    def health(self) -> dict[str, Any]:
        """A summary for operators: state, identity, endpoints, peers, membership, topology, bad-input totals."""
        return {**super().health(), "joined": self.joined, "members": len(self.alive_members()),
                "topology": self.current_topology()}


def members_of(nodes: Iterable[Node]) -> dict[str, list[str]]:
    """Debug helper: each node's name -> names of its linked peers."""
    return {n.name: sorted(p.name for p in n.peers()) for n in nodes}


__all__ = ["Node", "members_of"]

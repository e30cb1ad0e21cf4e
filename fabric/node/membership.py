"""The Node's side of membership: hosts the :class:`~fabric.topology.driver.MembershipDriver` on the
node's transport and loop, publishes membership events to listeners, and runs ``join`` (static seeds and
discovery plugins).

The driver (shared with the simulators in :mod:`fabric.testing`) owns the overlay core, topology epochs
and switching, event de-duplication, link retention and timers; this module only performs what it asks:
overlay messages on the ``membership`` channel (tree messages on ``gossip``), links through
:class:`~fabric.node.peers.Peers`, dials as HELLO/WELCOME handshakes, broadcasts delivered to the
subscriptions, events queued for the listeners (one at a time, in order).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .. import wire
from ..config import MEMBERSHIP_CHANNEL, OVERLAYS, NodeConfig
from ..errors import CallError, ConfigError, JoinTimeout, NodeStateError
from ..membership import (
    BadMembershipMessage,
    Deliver,
    Identity,
    Member,
    MemberDown,
    MemberLeft,
    MembershipEvent,
    MemberUp,
    Overlay,
    make_overlay,
)
from ..topology import TopologyManager
from ..topology.driver import AutoTopology, MembershipDriver
from ..transport.base import Transport
from ..wire import MsgType, Role
from .message import MemberListener, Message, PeerInfo, identity_of, peer_of
from .peers import Peers
from .subscriptions import Subscriptions

log = logging.getLogger("fabric.node")

APP_LINK_IDLE = 60.0
"""Seconds an on-demand link to a non-neighbour stays open after its last use."""


def make_node_overlay(config: NodeConfig, name: str, identity: Identity, now: float) -> Overlay:
    """The overlay core called ``name`` for a node with ``config`` (:func:`fabric.membership.make_overlay`)."""
    return make_overlay(name, identity, membership=config.membership, role=config.overlay_role, static_members=config.static_members, rng=random.Random(), now=now)


class NodeMembership:
    """Membership of one running member node (see the module docstring); implements
    :class:`~fabric.topology.driver.DriverHost`."""

    def __init__(self, config: NodeConfig, identity: Identity, loop: asyncio.AbstractEventLoop, transport: Transport,
                 peers: Peers, subscriptions: Subscriptions, channels: Sequence[str],
                 spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]], running: Callable[[], bool],
                 listeners: list[MemberListener], counters: Counter[str], errors: Counter[str], channel_counters: dict[str, list[int]]) -> None:
        self._config = config
        self._node_id = identity.node_id
        self._name = identity.name
        self._loop = loop
        self._transport = transport
        self._peers = peers
        self._subs = subscriptions
        self._channels = set(channels)
        self._tree_channel = "gossip" if "gossip" in self._channels else MEMBERSHIP_CHANNEL
        self._spawn = spawn
        self._running = running
        self._errors = errors
        self._channel_counters = channel_counters
        self._timer: asyncio.TimerHandle | None = None
        self._dialing: set[str] = set()
        self._listeners = listeners  # shared with the Node: listeners may be added before start
        self._events: asyncio.Queue[MembershipEvent] = asyncio.Queue()
        self.changed = asyncio.Event()
        """Set whenever a membership event is published (``join`` waits on it)."""
        self.static_seeds: list[str] = []
        self.discovered_seeds: list[str] = []
        self.discovery: Any = None  # a fabric.discovery.DiscoveryPlugin once join(discovery=...) ran
        auto = AutoTopology(config.auto_threshold, config.auto_hysteresis, config.auto_dwell) if config.auto_topology else None
        self.driver = MembershipDriver(
            self, identity, config.overlay, lambda name, ident, now: make_node_overlay(config, name, ident, now), OVERLAYS,
            loop.time(), cooldown=config.topology_cooldown, auto=auto,
            links=TopologyManager(idle_close=APP_LINK_IDLE, stray_grace=APP_LINK_IDLE), settle=APP_LINK_IDLE,
            counters=counters, errors=errors, max_traffic_sources=config.limits.max_traffic_sources,
        )
        spawn(self._pump_events())

    # -- DriverHost ------------------------------------------------------------------------------------

    def send_overlay(self, to: bytes, tree: bool, op: str, body: dict[str, Any]) -> bool | None:
        if to not in self._peers.linked:
            return None
        if tree:
            channel, frames = self._tree_channel, wire.membership(self._node_id, op, body, mtype=MsgType.TREE)
        else:
            channel, frames = MEMBERSHIP_CHANNEL, wire.membership(self._node_id, op, body)
        self._channel_counters[channel][0] += 1
        try:
            return self._transport.send(to, channel, 0, frames)
        except KeyError:  # the peer advertised no endpoint for that channel: there is no socket to send on
            return None

    def linked(self) -> dict[bytes, bool]:
        return {k: p.probe for k, p in self._peers.linked.items()}

    def linked_identities(self) -> list[Identity]:
        out = []
        for peer in list(self._peers.linked.values()):
            try:
                out.append(identity_of(peer.info))
            except ValueError:
                self._errors["bad_membership"] += 1
        return out

    def link(self, identity: Identity, probe: bool) -> None:
        self._peers.link(peer_of(identity), probe=probe)

    def unlink(self, node_id: bytes, reason: str) -> None:
        self._peers.unlink(node_id, reason=reason)

    def dial(self, endpoint: str) -> None:
        if endpoint not in self._dialing and self._running():
            self._dialing.add(endpoint)
            self._spawn(self._dial(endpoint))

    def deliver(self, effect: Deliver) -> None:
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
            self._errors["bad_header"] += 1
            return
        channel = raw["c"]
        self._channel_counters[channel][1] += 1
        msg = Message(channel, effect.origin, raw["p"], 0, None, raw.get("t", b""), raw.get("ct", 0))
        if not self._subs.deliver(channel, msg):
            self.driver.counters["undelivered"] = self.driver.counters.get("undelivered", 0) + 1

    def member_event(self, event: MembershipEvent) -> None:
        self._events.put_nowait(event)
        self.changed.set()

    def set_timer(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._running():
            self.driver.on_timer(self._loop.time())

    async def _dial(self, endpoint: str) -> None:
        try:
            info = await self._peers.handshake(endpoint, self._config.connect_timeout)
        except (CallError, OSError, ConfigError) as exc:  # ConfigError: a seed without #KEY in secure mode
            self.driver.counters["dial_failures"] = self.driver.counters.get("dial_failures", 0) + 1
            log.debug("node %s: dialling %s failed: %s", self._name, endpoint, exc)
            return
        finally:
            self._dialing.discard(endpoint)
        if info.id != wire.node_id_str(self._node_id) and self._running() and self._peers.link(info):
            self.contact(info)

    # -- inputs from the node --------------------------------------------------------------------------

    def contact(self, info: PeerInfo) -> None:
        """A member completed a handshake with this node."""
        if info.role is not Role.MEMBER:
            return
        try:
            identity = identity_of(info)
        except (BadMembershipMessage, ValueError):
            self._errors["bad_membership"] += 1
            return
        self.driver.contact(identity, self._loop.time())

    def receive(self, env: wire.Envelope) -> None:
        """A MEMBERSHIP or TREE envelope arrived."""
        try:
            body = wire.unpackb(env.payload)
        except Exception as exc:  # ProtocolError: counted like any bad membership body
            self._errors["bad_membership"] += 1
            log.debug("node %s: bad membership message: %s", self._name, exc)
            return
        self.driver.receive(env.header["s"], env.type == MsgType.TREE, env.header["op"], body, self._loop.time())

    def stop(self) -> None:
        """Say goodbye to the cluster and stop the timers."""
        self.driver.leave(self._loop.time())
        self.driver.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- events ----------------------------------------------------------------------------------------

    async def _pump_events(self) -> None:
        """Deliver membership events to listeners one at a time, in order (sync inline, async awaited)."""
        while True:
            event = await self._events.get()
            if isinstance(event, MemberUp | MemberDown | MemberLeft):
                log.info("node %s: %s %s", self._name, type(event).__name__, event.member.name)
            for listener in list(self._listeners):
                try:
                    result = listener(event)
                    if inspect.isawaitable(result):
                        await result
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.driver.counters["listener_errors"] = self.driver.counters.get("listener_errors", 0) + 1
                    log.exception("membership listener failed")

    # -- join ------------------------------------------------------------------------------------------

    async def join(self, seeds: Sequence[str], discovery: Any, min_members: int, timeout: float | None) -> list[Member]:
        """See :meth:`fabric.Node.join`."""
        self.static_seeds = list(dict.fromkeys([*self.static_seeds, *seeds]))
        if discovery is not None:
            await self._use_discovery(discovery)
        self.rejoin()
        driver = self.driver

        def ready() -> bool:
            return driver.core.joined and len(driver.alive_members()) >= min_members

        deadline = None if timeout is None else self._loop.time() + timeout
        while not ready():
            self.changed.clear()
            remaining = None if deadline is None else deadline - self._loop.time()
            if remaining is not None and remaining <= 0:
                raise JoinTimeout(
                    f"node {self._name}: {len(driver.alive_members())} of {min_members} members after {timeout:g}s "
                    f"(joined={driver.core.joined}, seeds={self.static_seeds + self.discovered_seeds})"
                )
            try:
                async with asyncio.timeout(remaining):
                    await self.changed.wait()
            except TimeoutError:
                continue
        return driver.members()

    def rejoin(self) -> None:
        """Join again through every seed known (static and discovered)."""
        seeds = list(dict.fromkeys([*self.static_seeds, *self.discovered_seeds]))
        self.driver.join(seeds, self._loop.time())

    async def _use_discovery(self, plugin: Any) -> None:
        from ..discovery import LocalNode

        if self.discovery is not None and self.discovery is not plugin:
            raise NodeStateError("this node already uses a discovery plugin")
        self.discovery = plugin
        if not plugin.running:
            ident = self.driver.core.local
            await plugin.start(LocalNode(node_id=wire.node_id_str(self._node_id), name=self._name,
                                         endpoints={ch: spec[1] for ch, spec in ident.endpoints.items()},
                                         metadata=dict(self._config.metadata)))
        self.discovered_seeds = [c.seed for c in await plugin.lookup()]
        self._spawn(self._follow_discovery(plugin))

    async def _follow_discovery(self, plugin: Any) -> None:
        """Feed the candidate list into the membership core each time it changes."""
        async for candidates in plugin.watch():
            seeds = [c.seed for c in candidates]
            if seeds != self.discovered_seeds and self._running():
                log.info("node %s: discovery offers %d candidates", self._name, len(seeds))
                self.discovered_seeds = seeds
                self.rejoin()

    async def stop_discovery(self) -> None:
        """Stop the discovery plugin, if any (never raises: it must not keep a node from stopping)."""
        if self.discovery is not None:
            try:
                await self.discovery.stop()
            except Exception:
                log.exception("node %s: stopping discovery failed", self._name)

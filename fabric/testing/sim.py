"""Deterministic multi-node simulation: the real membership core over real wire envelopes, in one process.

Theory of operation
-------------------
A :class:`Simulation` owns a :class:`~fabric.clock.ManualClock`, a seeded :class:`random.Random` and a
:class:`~fabric.transport.memory.MemoryNetwork`. Each :class:`SimNode` is what a ``fabric.Node`` is
minus the event loop: a :class:`~fabric.transport.memory.MemoryTransport` bound on the ``membership``
channel, a :class:`~fabric.membership.fullmesh.FullMeshMembership` core, and the
:class:`~fabric.topology.driver.MembershipDriver` (the Node's effect interpreter) whose host it is:

* it encodes every overlay message with :func:`fabric.wire.membership` and decodes every arrival with
  :func:`fabric.wire.decode` / :func:`fabric.wire.unpackb` (bad input is counted, never raised);
* it performs a ``Dial`` as the real handshake: HELLO on the seed's membership endpoint, WELCOME back
  through the seed's ROUTER (``respond``), then ``contact``;
* it performs Connect / Disconnect on the transport, and records membership events in
  :attr:`Simulation.log`;
* the driver keeps one timer on the clock.

Everything random (node ids, gossip targets, network faults) comes from the one seed, and the clock
breaks ties in scheduling order, so one seed always replays the same run: the same event log, message
for message. The seed is printed when the simulation is created (pytest shows it for a failed test).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import wire
from ..clock import ManualClock, TimerHandle
from ..errors import ConfigError, ProtocolError
from ..membership import (
    Effect,
    FullMeshMembership,
    Identity,
    Joined,
    Member,
    MemberChanged,
    MemberDown,
    MemberLeft,
    MembershipEvent,
    MemberStatus,
    MemberUp,
)
from ..membership.config import MembershipConfig
from ..membership.overlay import Deliver, FullMeshOverlay, Overlay, OverlayEffect
from ..topology.driver import MembershipDriver
from ..topology.manager import TopologyManager
from ..transport.base import ChannelKind, ChannelSpec, Link
from ..transport.memory import Faults, MemoryNetwork, MemoryTransport

MEMBERSHIP_CHANNEL = "membership"
HANDSHAKE_LANE = 255


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One membership event as an observer saw it.

    ``observer`` is the observing node's name; ``kind`` is ``"up"``, ``"down"``, ``"left"``, ``"changed"`` or ``"joined"``; ``subject`` and
    ``incarnation`` name the member (empty / -1 for ``joined``); ``detail`` is the down reason, or the
    new status for ``changed``.
    """

    time: float
    observer: str
    observer_instance: int
    """Which process of that name (0, 1, ... in spawn/restart order across the simulation)."""
    observer_incarnation: int
    kind: str
    subject: str
    subject_id: bytes
    incarnation: int
    detail: str


class SimNode:
    """One simulated node (create it with :meth:`Simulation.spawn`).

    Attributes:
        name: the node's name (and its transport's name: endpoints are ``mem://<name>/<channel>``).
        instance: a number unique to this node object in its simulation (a restart gets a new one).
        core: the membership core, for inspection (``members()``, ``stats()`` ...).
        transport: its memory transport.
        crashed / left: whether it was crashed or left (it then processes nothing).
        errors: counts of bad input by ProtocolError category.
    """

    def __init__(self, sim: Simulation, name: str, node_id: bytes, incarnation: int,
                 metadata: Mapping[str, str] | None = None) -> None:
        self.sim = sim
        self.name = name
        self.node_id = node_id
        self.instance = sim._instances
        sim._instances += 1
        self.crashed = False
        self.left = False
        self.errors: dict[str, int] = {}
        self.transport: MemoryTransport = sim.network.transport(name)
        endpoints = self.transport.bind(
            [ChannelSpec(MEMBERSHIP_CHANNEL, ChannelKind.CONTROL)], self._receive,
            bytes((wire.ROUTING_MEMBER,)) + node_id,
        )
        self.endpoint = endpoints[MEMBERSHIP_CHANNEL]
        identity = Identity(node_id, name, incarnation, dict(metadata or {}),
                            {MEMBERSHIP_CHANNEL: (ChannelKind.CONTROL.value, self.endpoint, 1)})
        self.core = FullMeshMembership(identity, sim.config, rng=random.Random(sim.rng.getrandbits(64)),
                                       now=sim.clock.now())
        self._timer: TimerHandle | None = None

        def build(overlay: str, ident: Identity, now: float) -> Overlay:
            if overlay != "full-mesh" or ident is not identity:
                raise ConfigError("a Simulation runs full-mesh only; switch overlays in an OverlaySim")
            return FullMeshOverlay(self.core)

        # The link manager never reconciles here (interval inf): a full-mesh core links every member itself.
        self.driver = MembershipDriver(self, identity, "full-mesh", build, ("full-mesh",), sim.clock.now(),
                                       links=TopologyManager(interval=math.inf), errors=self.errors)

    def __repr__(self) -> str:
        return f"SimNode({self.name}, inc={self.core.incarnation})"

    @property
    def incarnation(self) -> int:
        """The core's current incarnation."""
        return self.core.incarnation

    @property
    def active(self) -> bool:
        """Neither crashed nor left."""
        return not self.crashed and not self.left

    def members(self) -> list[Member]:
        """The core's view (see :meth:`FullMeshMembership.members`)."""
        return self.core.members()

    def view(self) -> dict[str, MemberStatus]:
        """name -> status of every member in this node's view (this node included)."""
        return {m.name: m.status for m in self.core.members()}

    # -- driver ------------------------------------------------------------------------------------

    def _count_error(self, category: str) -> None:
        self.errors[category] = self.errors.get(category, 0) + 1

    def _receive(self, channel: str, frames: list[bytes], route: bytes | None, link: Link | None) -> None:
        if not self.active:
            return
        now = self.sim.clock.now()
        driver = self.driver
        try:
            env = wire.decode(frames)
            if env.type == wire.MsgType.HELLO:
                if route is None or env.header.get("ro") != wire.Role.MEMBER:
                    return
                ident = Identity.from_header(env.header)
                me = self.core.local
                self.transport.respond(channel, route, wire.welcome(
                    me.node_id, version=wire.PROTOCOL_VERSION, incarnation=me.incarnation, name=me.name,
                    endpoints={ch: list(spec) for ch, spec in me.endpoints.items()}, meta=me.metadata))
                driver.contact(ident, now)
            elif env.type == wire.MsgType.WELCOME:
                if isinstance(link, tuple) and link[:1] == ("dial",):
                    self.transport.disconnect(link)
                driver.contact(Identity.from_header(env.header), now)
            elif env.type == wire.MsgType.MEMBERSHIP or env.type == wire.MsgType.TREE:
                body = wire.unpackb(env.payload)
                driver.receive(env.source, env.type == wire.MsgType.TREE, env.header["op"], body, now)
            else:
                driver.note_traffic(env.source, now)
        except ProtocolError as exc:
            self._count_error(exc.category)

    # -- DriverHost ------------------------------------------------------------------------------------

    def send_overlay(self, to: bytes, tree: bool, op: str, body: dict[str, Any]) -> bool | None:
        if to not in self.transport._links:
            self._count_error("unlinked_send")
            return None
        mtype = wire.MsgType.TREE if tree else wire.MsgType.MEMBERSHIP
        if not self.transport.send(to, MEMBERSHIP_CHANNEL, 0, wire.membership(self.node_id, op, body, mtype=mtype)):
            self._count_error("hwm_full")
            return False
        return True

    def linked(self) -> dict[bytes, bool]:
        return {k: False for k in self.transport.links() if isinstance(k, bytes)}

    def linked_identities(self) -> list[Identity]:
        linked = set(self.transport.links())
        return [m.identity() for m in self.core.members() if m.node_id in linked]

    def link(self, identity: Identity, probe: bool) -> None:
        self.transport.connect(identity.node_id, {ch: spec[1] for ch, spec in identity.endpoints.items()},
                               {ch: spec[2] for ch, spec in identity.endpoints.items()})

    def unlink(self, node_id: bytes, reason: str) -> None:
        self.transport.disconnect(node_id)

    def dial(self, endpoint: str) -> None:
        link = ("dial", endpoint)
        self.transport.disconnect(link)
        # lane 255 in the routing id, as fabric.Node does: the handshake link never collides with
        # the lane-0 link that replaces it at the seed's ROUTER
        self.transport.connect(link, {MEMBERSHIP_CHANNEL: endpoint}, routing_lane=HANDSHAKE_LANE)
        me = self.core.local
        self.transport.send(link, MEMBERSHIP_CHANNEL, 0, wire.hello(
            me.node_id, role=wire.Role.MEMBER, incarnation=me.incarnation, name=me.name,
            endpoints={ch: list(spec) for ch, spec in me.endpoints.items()}, meta=me.metadata))

    def deliver(self, effect: Deliver) -> None:
        self.sim.deliveries.append((self.name, effect.origin, effect.payload))

    def member_event(self, event: MembershipEvent) -> None:
        self.sim._record(self.sim.clock.now(), self, event)

    def set_timer(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.sim.clock.call_at(at, self._on_timer)

    def _stop(self) -> None:
        self.driver.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if self.active:
            self.driver.on_timer(self.sim.clock.now())

    def apply(self, effects: Sequence[Effect | OverlayEffect]) -> None:
        """Perform effects a test obtained from ``self.core`` directly (e.g. ``core.set_metadata``)."""
        self.driver.apply(effects)


class Simulation:
    """N full-mesh nodes on one :class:`MemoryNetwork` driven by one :class:`ManualClock`.

    Args:
        seed: the run's seed; None picks one at random. Printed as ``seed=<n>`` either way.
        faults: initial network faults (changeable later through :attr:`network`'s ``faults``).
        config: membership configuration of every node (default :meth:`MembershipConfig.local`).
        start: initial clock time.
    """

    def __init__(self, seed: int | None = None, *, faults: Faults | None = None,
                 config: MembershipConfig | None = None, start: float = 0.0) -> None:
        if seed is None:
            seed = random.SystemRandom().randrange(2**32)
        self.seed = seed
        print(f"seed={seed}")
        self.rng = random.Random(seed)
        self.clock = ManualClock(start)
        self.config = config if config is not None else MembershipConfig.local()
        self.network = MemoryNetwork(self.clock, rng=random.Random(self.rng.getrandbits(64)), faults=faults)
        self.nodes: dict[str, SimNode] = {}
        self.log: list[LogRecord] = []
        self.deliveries: list[tuple[str, bytes, Any]] = []
        """(receiver name, origin id, payload) per broadcast delivered."""
        self._seeds: list[str] = []
        self._counter = 0
        self._instances = 0
        self._listeners: list[Callable[[LogRecord], None]] = []

    # -- building ----------------------------------------------------------------------------------

    def spawn(self, count: int = 1, *, prefix: str = "n", metadata: Mapping[str, str] | None = None) -> list[SimNode]:
        """Create ``count`` nodes named ``<prefix><index>`` (not joined yet); returns them."""
        out = []
        for _ in range(count):
            name = f"{prefix}{self._counter:03d}"
            self._counter += 1
            node = SimNode(self, name, self.rng.randbytes(16), 1, metadata)
            self.nodes[name] = node
            out.append(node)
        return out

    def join(self, node: SimNode, seeds: Iterable[SimNode | str]) -> None:
        """Make ``node`` join through ``seeds`` (nodes or membership endpoints)."""
        endpoints = [s.endpoint if isinstance(s, SimNode) else s for s in seeds]
        node.driver.join(endpoints, self.clock.now())

    def join_all(self, seed: SimNode, nodes: Iterable[SimNode] | None = None) -> None:
        """Every node (default: all) joins through ``seed``; the seed itself starts alone."""
        self._seeds = [seed.endpoint]
        for node in list(nodes) if nodes is not None else list(self.nodes.values()):
            self.join(node, [] if node is seed else [seed])

    def on_event(self, listener: Callable[[LogRecord], None]) -> None:
        """Call ``listener`` with every :class:`LogRecord` as it is recorded."""
        self._listeners.append(listener)

    # -- running -----------------------------------------------------------------------------------

    def run(self, seconds: float) -> None:
        """Advance simulated time by ``seconds``, running everything that falls due."""
        self.clock.advance(seconds)

    def run_until(self, predicate: Callable[[], bool], *, timeout: float, step: float = 0.1) -> bool:
        """Advance in ``step`` increments until ``predicate()`` holds or ``timeout`` simulated seconds
        pass; returns whether it held. Bounded: at most ``timeout / step + 1`` steps."""
        end = self.clock.now() + timeout
        while True:
            if predicate():
                return True
            if self.clock.now() >= end:
                return False
            self.clock.run_until(min(end, self.clock.now() + step))

    @property
    def now(self) -> float:
        """Simulated time."""
        return self.clock.now()

    # -- faults ------------------------------------------------------------------------------------

    def set_faults(self, faults: Faults) -> None:
        """Replace the network faults from now on."""
        self.network.faults = faults

    def partition(self, *groups: Iterable[SimNode]) -> None:
        """Split the network between these groups of nodes (unlisted nodes form one more group)."""
        self.network.partition(*[[n.name for n in group] for group in groups])

    def heal(self) -> None:
        """Remove every partition."""
        self.network.heal()

    def crash(self, node: SimNode) -> None:
        """Kill ``node`` (like ``kill -9``): it stops sending, receiving and running timers."""
        node.crashed = True
        self.network.crash(node.name)
        node._stop()

    def restart(self, node: SimNode, *, new_id: bool = False) -> SimNode:
        """Start a new process in place of crashed (or live: it is crashed first) ``node``: same name and
        endpoints, incarnation + 1, same node id unless ``new_id``; it joins through the seeds of
        :meth:`join_all`. Returns the new node (``self.nodes[name]`` is replaced)."""
        if not node.crashed:
            self.crash(node)
        node.transport.close_now()
        node_id = self.rng.randbytes(16) if new_id else node.node_id
        fresh = SimNode(self, node.name, node_id, node.core.incarnation + 1, node.core.local.metadata)
        self.nodes[node.name] = fresh
        self.join(fresh, [s for s in self._seeds if s != fresh.endpoint])
        return fresh

    def leave(self, node: SimNode) -> None:
        """``node`` leaves gracefully; its transport closes once its goodbyes are delivered."""
        node.driver.leave(self.clock.now())
        node.left = True
        node._stop()
        self.clock.call_later(self.network.faults.max_delay + 1.0, node.transport.close_now)

    # -- observing ---------------------------------------------------------------------------------

    def _record(self, now: float, observer: SimNode, event: Effect | MembershipEvent) -> None:
        if isinstance(event, Joined):
            rec = LogRecord(now, observer.name, observer.instance, observer.core.incarnation, "joined", "", b"", -1, "")
        else:
            if isinstance(event, MemberUp):
                kind, detail, member = "up", "", event.member
            elif isinstance(event, MemberDown):
                kind, detail, member = "down", event.reason, event.member
            elif isinstance(event, MemberLeft):
                kind, detail, member = "left", "", event.member
            elif isinstance(event, MemberChanged):
                kind, detail, member = "changed", event.member.status.value, event.member
            else:  # pragma: no cover - every event type is handled above
                return
            rec = LogRecord(now, observer.name, observer.instance, observer.core.incarnation, kind, member.name,
                            member.node_id, member.incarnation, detail)
        self.log.append(rec)
        for listener in self._listeners:
            listener(rec)

    def active_nodes(self) -> list[SimNode]:
        """Nodes neither crashed nor left."""
        return [n for n in self.nodes.values() if n.active]

    def views(self) -> dict[str, dict[str, MemberStatus]]:
        """Active node name -> its view (member name -> status)."""
        return {n.name: n.view() for n in self.active_nodes()}

    def converged(self, nodes: Iterable[SimNode] | None = None) -> bool:
        """True when every given active node (default: all active) sees exactly the given active nodes,
        at their current incarnations, as ALIVE, and nothing else as alive or suspect."""
        group = [n for n in (nodes if nodes is not None else self.active_nodes()) if n.active]
        expected = {(n.node_id, n.core.incarnation) for n in group}
        for node in group:
            seen = {(m.node_id, m.incarnation) for m in node.core.members() if m.status == MemberStatus.ALIVE}
            suspect = any(m.status == MemberStatus.SUSPECT for m in node.core.members())
            if seen != expected or suspect:
                return False
        return True

    def events(self, kind: str | None = None, *, subject: str | None = None,
               observer: str | None = None) -> list[LogRecord]:
        """Log records filtered by kind, subject name and observer name."""
        return [r for r in self.log if (kind is None or r.kind == kind) and (subject is None or r.subject == subject)
                and (observer is None or r.observer == observer)]

    def stats(self) -> dict[str, int]:
        """Network counters plus the sum of every node's bad-input counters (``error.<category>``)."""
        out = self.network.stats()
        for node in self.nodes.values():
            for key, value in node.errors.items():
                out[f"error.{key}"] = out.get(f"error.{key}", 0) + value
        return out

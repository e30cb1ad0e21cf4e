"""A fast seeded simulator of many overlay nodes (1,000+ in one process) driving the real sans-IO cores.

Theory of operation
-------------------
An :class:`OverlaySim` owns a :class:`~fabric.clock.ManualClock`, one seeded :class:`random.Random` and a
set of :class:`SimOverlayNode`. Each node runs one :class:`~fabric.topology.driver.MembershipDriver` - the
same effect interpreter ``fabric.Node`` uses - around an overlay core (anything implementing
:class:`~fabric.membership.overlay.Overlay`: full-mesh, HyParView, client-server, static), and is its
:class:`~fabric.topology.driver.DriverHost` in memory. So the simulation models what the Node does:
topology epochs (every overlay message carries ``tp`` once the epoch is above 0, stale ones are dropped),
live overlay switches (:meth:`OverlaySim.switch`, adopted from peers, or automatic by size with
``auto=``), event de-duplication across a switch, link retention, and (with ``reconcile=``) the
topology manager's link repair. Effects:

* ``Send`` / ``TreeSend`` travel to the peer as MEMBERSHIP / TREE messages, only over a link the node
  holds (``Connect`` / ``Disconnect``; a send without a link is dropped and counted ``unlinked``, as the
  Node does). Messages already sent when a link closes are still delivered (ZeroMQ linger).
* Each message gets ``latency + uniform(0, jitter)`` of delay, is lost with probability ``drop``, and
  pipes are FIFO per (sender, receiver), like a TCP connection.
* ``Dial`` is the HELLO/WELCOME handshake: after one latency the seed's core gets ``contact(dialer)``,
  then the dialer links to the seed and gets ``contact(seed)``.
* Membership events and :class:`~fabric.membership.overlay.Deliver` go to :attr:`OverlaySim.log` and
  :attr:`OverlaySim.deliveries`.
* One timer per node at the driver's deadline.

Switching needs a core factory per overlay name (``factories={"full-mesh": ..., "hyparview": ...}``);
the plain ``factory`` argument names its overlay ``overlay`` (default ``"custom"``).

Bodies are passed as Python objects (msgpack-native maps, shared by reference: the cores never mutate a
body they sent or received), which is what makes 1,000 nodes fit in seconds. With ``codec=True`` every
message goes through the real wire codec instead (:func:`fabric.wire.membership` and
:func:`fabric.wire.decode` / :func:`fabric.wire.unpackb`) - slower, and a check that every body is
msgpack-native.

Faults: drop and jitter (:class:`NetFaults`), partitions (:meth:`OverlaySim.partition`), crashes
(:meth:`OverlaySim.crash`; with ``link_down_on_crash`` the crashed node's linked peers also get
:meth:`link_down`, as a TCP reset would give). The seed is printed when the simulation is created, and
one seed replays the same run.
"""

from __future__ import annotations

import functools
import heapq
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import wire
from ..clock import ManualClock, TimerHandle
from ..errors import ConfigError, ProtocolError
from ..membership import (
    Identity,
    Joined,
    MemberChanged,
    MemberDown,
    MemberLeft,
    MembershipEvent,
    MemberStatus,
    MemberUp,
)
from ..membership.overlay import Deliver, Overlay, OverlayEffect
from ..topology.driver import AutoTopology, MembershipDriver
from ..topology.manager import TopologyManager

OverlayFactory = Callable[[Identity, random.Random, float], Overlay]
"""Builds one node's overlay core from its identity, its seeded random source and the current time."""


@dataclass(frozen=True, slots=True)
class NetFaults:
    """Network behaviour of the simulation (seconds, probabilities in [0, 1])."""

    latency: float = 0.005
    """Base one-way delay."""
    jitter: float = 0.005
    """Extra delay, uniform in [0, jitter] (pipes stay FIFO)."""
    drop: float = 0.0
    """Probability that a message is lost."""
    link_down_delay: float = 0.05
    """Delay of the link-down report a crash gives the crashed node's peers (with ``link_down_on_crash``)."""

    def __post_init__(self) -> None:
        for name in ("latency", "jitter", "drop", "link_down_delay"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"NetFaults.{name} must be a number >= 0")
        if self.drop > 1:
            raise ConfigError("NetFaults.drop is a probability in [0, 1]")


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One membership event as an observer saw it (``kind``: up, down, left, changed, joined)."""

    time: float
    observer: str
    kind: str
    subject: bytes
    incarnation: int
    detail: str


class SimOverlayNode:
    """One simulated node (create with :meth:`OverlaySim.spawn`); the
    :class:`~fabric.topology.driver.DriverHost` of its driver.

    Attributes:
        name, node_id, endpoint: who it is (the endpoint is ``sim://<name>``).
        driver: the membership driver (overlay core, topology epochs, switching).
        core: the current overlay core (it changes on a topology switch).
        links: node ids it holds a link to.
        crashed: True after :meth:`OverlaySim.crash` (it then processes nothing).
    """

    __slots__ = ("sim", "name", "node_id", "endpoint", "driver", "links", "crashed", "_timer", "identity", "factory")

    def __init__(self, sim: OverlaySim, name: str, node_id: bytes, factory: OverlayFactory,
                 metadata: dict[str, str] | None = None, incarnation: int = 1) -> None:
        self.sim = sim
        self.name = name
        self.node_id = node_id
        self.endpoint = f"sim://{name}"
        self.identity = Identity(node_id, name, incarnation, dict(metadata or {}),
                                 {"membership": ("control", self.endpoint, 1)})
        self.factory = factory
        self.links: set[bytes] = set()
        self.crashed = False
        self._timer: TimerHandle | None = None
        rng = random.Random(sim.rng.getrandbits(64))

        def build(overlay: str, identity: Identity, now: float) -> Overlay:
            make = factory if overlay == sim.overlay else sim.factories.get(overlay)
            if make is None:
                raise ConfigError(f"OverlaySim has no factory for overlay {overlay!r}")
            return make(identity, rng, now)

        self.driver = MembershipDriver(
            self, self.identity, sim.overlay, build, tuple(dict.fromkeys([sim.overlay, *sim.factories])),
            sim.clock.now(), cooldown=sim.cooldown, auto=sim.auto,
            links=TopologyManager(idle_close=sim.settle, stray_grace=sim.settle, interval=sim.reconcile),
            settle=sim.settle, counters=sim.driver_counters, errors=sim.driver_counters)

    def __repr__(self) -> str:
        return f"SimOverlayNode({self.name})"

    @property
    def core(self) -> Overlay:
        """The current overlay core."""
        return self.driver.core

    def execute(self, effects: Sequence[OverlayEffect]) -> None:
        """Perform effects (those a test got from ``self.core`` directly, too)."""
        self.driver.apply(effects)

    # -- DriverHost ------------------------------------------------------------------------------------

    def send_overlay(self, to: bytes, tree: bool, op: str, body: dict[str, Any]) -> bool | None:
        return self.sim._transmit(self, to, tree, op, body)

    def linked(self) -> dict[bytes, bool]:
        return dict.fromkeys(self.links, False)

    def linked_identities(self) -> list[Identity]:
        by_id = self.sim.by_id
        return [by_id[k].core.local for k in sorted(self.links) if k in by_id]

    def link(self, identity: Identity, probe: bool) -> None:
        self.links.add(identity.node_id)

    def unlink(self, node_id: bytes, reason: str) -> None:
        self.links.discard(node_id)
        self.driver.links.forget(node_id)

    def dial(self, endpoint: str) -> None:
        self.sim._dial(self, endpoint)

    def deliver(self, effect: Deliver) -> None:
        self.sim._deliver(self, effect)

    def member_event(self, event: MembershipEvent) -> None:
        self.sim._record(self, event)

    def set_timer(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.sim.clock.call_at(max(at, self.sim.clock.now()), self._on_timer)

    def _stop(self) -> None:
        self.driver.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if not self.crashed:
            self.driver.on_timer(self.sim.clock.now())


class OverlaySim:
    """Many overlay nodes on a simulated network with a manual clock (see the module docstring).

    Args:
        seed: the run's seed (None: a random one). Printed as ``seed=<n>``.
        factory: builds each node's overlay core (see :data:`OverlayFactory`).
        faults: network behaviour.
        codec: pass every message through the real wire codec (slower).
        link_down_on_crash: a crash also reports ``link_down`` to the crashed node's linked peers.
        overlay: the name of ``factory``'s overlay (what topology states call it).
        factories: cores of other overlays by name, for live switches (:meth:`switch`).
        auto: automatic switching by size (needs ``reconcile``: it is decided on the reconcile pass).
        reconcile: seconds between two link reconciliations per node (None: never; reconciling reads
            every node's membership, which costs time at 1,000 nodes).
        cooldown: seconds between two topology switches.
        settle: seconds after a switch during which inherited links are held and members up before the
            switch are not announced again (the Node uses 60).
    """

    def __init__(self, seed: int | None, factory: OverlayFactory, *, faults: NetFaults | None = None,
                 codec: bool = False, link_down_on_crash: bool = False, overlay: str = "custom",
                 factories: dict[str, OverlayFactory] | None = None, auto: AutoTopology | None = None,
                 reconcile: float | None = None, cooldown: float = 10.0, settle: float = 60.0) -> None:
        if seed is None:
            seed = random.SystemRandom().randrange(2**32)
        self.seed = seed
        print(f"seed={seed}")
        self.rng = random.Random(seed)
        self.net_rng = random.Random(self.rng.getrandbits(64))
        self.clock = ManualClock(0.0)
        self.factory = factory
        self.faults = faults if faults is not None else NetFaults()
        self.codec = codec
        self.link_down_on_crash = link_down_on_crash
        self.overlay = overlay
        self.factories: dict[str, OverlayFactory] = {overlay: factory, **(factories or {})}
        self.auto = auto
        self.reconcile = math.inf if reconcile is None else reconcile
        self.cooldown = cooldown
        self.settle = settle
        self.driver_counters: dict[str, int] = {}
        """The drivers' counters summed over every node (``stale_topology_messages``, ``bad_membership``...)."""
        self.nodes: dict[str, SimOverlayNode] = {}
        self.by_id: dict[bytes, SimOverlayNode] = {}
        self.by_endpoint: dict[str, SimOverlayNode] = {}
        self.log: list[EventRecord] = []
        self.deliveries: list[tuple[str, bytes, Any, bool, int]] = []
        """(receiver name, origin id, payload, relayed, hops) per Deliver."""
        self.sent: dict[str, int] = {}
        """Messages sent per op (``tree.<op>`` or ``membership.<op>``)."""
        self.dropped: dict[str, int] = {}
        """Messages not delivered, by reason (unlinked, drop, partition, crashed, bad)."""
        self.payload_sends: dict[Any, int] = {}
        """Gossip (payload) messages sent per broadcast id."""
        self.ihave_ids: dict[Any, int] = {}
        """Times each broadcast id was carried in an IHAVE (batched: many ids share one message)."""
        self.graft_ids: dict[Any, int] = {}
        """Times each broadcast id was asked for in a GRAFT."""
        self._groups: dict[str, int] | None = None
        self._pipes: dict[tuple[bytes, bytes], float] = {}
        self._msgs: list[tuple[float, int, SimOverlayNode, SimOverlayNode, bool, str, Any]] = []
        self._seq = 0
        self._counter = 0

    # -- building ------------------------------------------------------------------------------------

    def spawn(self, count: int = 1, *, prefix: str = "n", factory: OverlayFactory | None = None,
              metadata: dict[str, str] | None = None) -> list[SimOverlayNode]:
        """Create ``count`` nodes named ``<prefix><index>`` (not joined); returns them."""
        out = []
        for _ in range(count):
            name = f"{prefix}{self._counter:04d}"
            self._counter += 1
            node = SimOverlayNode(self, name, self.rng.randbytes(16), factory or self.factory, metadata)
            self.nodes[name] = node
            self.by_id[node.node_id] = node
            self.by_endpoint[node.endpoint] = node
            out.append(node)
        return out

    def join(self, node: SimOverlayNode, seeds: Iterable[SimOverlayNode]) -> None:
        """``node`` joins through ``seeds`` now (an empty list: it starts alone)."""
        node.execute(node.core.join([s.endpoint for s in seeds], self.clock.now()))

    def switch(self, node: SimOverlayNode, overlay: str, *, expected: str | None = None) -> int:
        """``node`` proposes a live switch of the whole cluster to ``overlay`` (``Node.switch_topology``);
        returns the new epoch. Raises as :meth:`~fabric.topology.TopologyCoordinator.propose`."""
        return node.driver.propose(overlay, self.clock.now(), expected=expected).epoch

    def join_storm(self, seed: SimOverlayNode, nodes: Iterable[SimOverlayNode], *, spread: float) -> None:
        """``seed`` starts alone; every other node joins through it at a random instant in [0, spread]."""
        self.join(seed, [])
        for node in nodes:
            if node is not seed:
                at = self.clock.now() + self.rng.uniform(0, spread)
                self.clock.call_at(at, functools.partial(self._storm_join, node, seed))

    def _storm_join(self, node: SimOverlayNode, seed: SimOverlayNode) -> None:
        if not node.crashed:
            self.join(node, [seed])

    # -- running -------------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """Simulated time."""
        return self.clock.now()

    def run(self, seconds: float) -> None:
        """Advance simulated time by ``seconds``, running every message and timer due, in time order
        (timers first at equal times)."""
        self._run_to(self.clock.now() + seconds)

    def _run_to(self, deadline: float) -> None:
        clock = self.clock
        msgs = self._msgs
        while True:
            timer_at = clock.next_deadline()
            msg_at = msgs[0][0] if msgs else math.inf
            if msg_at > deadline and (timer_at is None or timer_at > deadline):
                break
            if timer_at is not None and timer_at <= msg_at:
                clock.run_until(timer_at)
                continue
            at, _, src, dst, tree, op, payload = heapq.heappop(msgs)
            clock.run_until(at)  # moves the clock; no timer is due before ``at``
            self._arrive(src, dst, tree, op, payload)
        clock.run_until(deadline)

    def run_until(self, predicate: Callable[[], bool], *, timeout: float, step: float = 0.5) -> bool:
        """Advance in ``step`` increments until ``predicate()`` or ``timeout`` simulated seconds pass."""
        end = self.clock.now() + timeout
        while not predicate():
            if self.clock.now() >= end:
                return False
            self._run_to(min(end, self.clock.now() + step))
        return True

    # -- faults --------------------------------------------------------------------------------------

    def crash(self, nodes: Iterable[SimOverlayNode]) -> None:
        """Kill these nodes at once (they stop sending, receiving and ticking)."""
        crashed = []
        for node in nodes:
            node.crashed = True
            node._stop()
            crashed.append(node)
        if self.link_down_on_crash:
            for node in crashed:
                for peer in self.active_nodes():
                    if node.node_id in peer.links:
                        self.clock.call_later(self.faults.link_down_delay,
                                              functools.partial(self._link_down, peer, node.node_id))

    def restart(self, node: SimOverlayNode, seeds: Iterable[SimOverlayNode]) -> SimOverlayNode:
        """Start a new process in place of ``node`` (crashed first if it is not): same name, node id and
        endpoint, incarnation + 1, same factory; it joins through ``seeds``. Returns the new node."""
        if not node.crashed:
            self.crash([node])
        fresh = SimOverlayNode(self, node.name, node.node_id, node.factory, dict(node.identity.metadata),
                               node.core.local.incarnation + 1)
        self.nodes[node.name] = fresh
        self.by_id[fresh.node_id] = fresh
        self.by_endpoint[fresh.endpoint] = fresh
        self.join(fresh, seeds)
        return fresh

    def _link_down(self, peer: SimOverlayNode, node_id: bytes) -> None:
        if not peer.crashed:
            peer.driver.link_down(node_id, self.clock.now())

    def partition(self, *groups: Iterable[SimOverlayNode]) -> None:
        """Split the network between these groups (unlisted nodes form one more group)."""
        self._groups = {}
        for index, group in enumerate(groups):
            for node in group:
                self._groups[node.name] = index

    def heal(self) -> None:
        """Remove the partition."""
        self._groups = None

    def _reachable(self, a: SimOverlayNode, b: SimOverlayNode) -> bool:
        groups = self._groups
        return groups is None or groups.get(a.name, -1) == groups.get(b.name, -1)

    # -- network -------------------------------------------------------------------------------------

    def _transmit(self, src: SimOverlayNode, to: bytes, tree: bool, op: str, body: dict[str, Any]) -> bool | None:
        key = ("tree." if tree else "membership.") + op
        self.sent[key] = self.sent.get(key, 0) + 1
        if tree and op == "gossip":
            mid = body.get("i")
            self.payload_sends[mid] = self.payload_sends.get(mid, 0) + 1
        elif tree and op in ("ihave", "graft"):
            for mid in body.get("i", ()):
                counter = self.ihave_ids if op == "ihave" else self.graft_ids
                counter[mid] = counter.get(mid, 0) + 1
        if to not in src.links:
            self.dropped["unlinked"] = self.dropped.get("unlinked", 0) + 1
            return None
        dst = self.by_id.get(to)
        faults = self.faults
        if dst is None:
            return True
        if faults.drop and self.net_rng.random() < faults.drop:
            self.dropped["drop"] = self.dropped.get("drop", 0) + 1
            return True
        payload: Any = body
        if self.codec:
            mtype = wire.MsgType.TREE if tree else wire.MsgType.MEMBERSHIP
            payload = wire.membership(src.node_id, op, body, mtype=mtype)
        now = self.clock.now()
        at = now + faults.latency + (self.net_rng.random() * faults.jitter if faults.jitter else 0.0)
        pipe = (src.node_id, to)
        last = self._pipes.get(pipe, 0.0)
        if at < last:
            at = last
        self._pipes[pipe] = at
        # messages sit in their own heap of plain tuples (several times cheaper than clock timers);
        # run() interleaves it with the clock's timers in time order
        self._seq += 1
        heapq.heappush(self._msgs, (at, self._seq, src, dst, tree, op, payload))
        return True

    def _arrive(self, src: SimOverlayNode, dst: SimOverlayNode, tree: bool, op: str, payload: Any) -> None:
        if dst.crashed:
            self.dropped["crashed"] = self.dropped.get("crashed", 0) + 1
            return
        if not self._reachable(src, dst):
            self.dropped["partition"] = self.dropped.get("partition", 0) + 1
            return
        try:
            if self.codec:
                env = wire.decode(payload)
                op = env.header["op"]
                body = wire.unpackb(env.payload)
                tree = env.type == wire.MsgType.TREE
            else:  # the driver pops ``tp``, but it made that dict for this one message
                body = payload
        except ProtocolError:
            self.dropped["bad"] = self.dropped.get("bad", 0) + 1
            return
        dst.driver.receive(src.node_id, tree, op, body, self.clock.now())

    def _dial(self, node: SimOverlayNode, endpoint: str) -> None:
        # the handshake runs on clock timers (rare) rather than the message heap
        target = self.by_endpoint.get(endpoint)
        if target is None:
            return

        def hello() -> None:
            if target.crashed or node.crashed or not self._reachable(node, target):
                return
            target.links.add(node.node_id)  # the Node links a member that says HELLO (Peers.on_hello)
            target.driver.contact(node.core.local, self.clock.now())
            self.clock.call_later(self.faults.latency, welcome)

        def welcome() -> None:
            if target.crashed or node.crashed or not self._reachable(node, target):
                return
            node.links.add(target.node_id)
            node.driver.contact(target.core.local, self.clock.now())

        self.clock.call_later(self.faults.latency, hello)

    # -- observing -----------------------------------------------------------------------------------

    def _deliver(self, node: SimOverlayNode, effect: Deliver) -> None:
        self.deliveries.append((node.name, effect.origin, effect.payload, effect.relayed, effect.hops))

    def _record(self, node: SimOverlayNode, event: OverlayEffect) -> None:
        now = self.clock.now()
        if isinstance(event, Joined):
            self.log.append(EventRecord(now, node.name, "joined", b"", -1, ""))
        elif isinstance(event, MemberUp):
            self.log.append(EventRecord(now, node.name, "up", event.member.node_id, event.member.incarnation, ""))
        elif isinstance(event, MemberDown):
            self.log.append(EventRecord(now, node.name, "down", event.member.node_id, event.member.incarnation,
                                        event.reason))
        elif isinstance(event, MemberLeft):
            self.log.append(EventRecord(now, node.name, "left", event.member.node_id, event.member.incarnation, ""))
        elif isinstance(event, MemberChanged):
            self.log.append(EventRecord(now, node.name, "changed", event.member.node_id, event.member.incarnation,
                                        event.member.status.value))

    def active_nodes(self) -> list[SimOverlayNode]:
        """Nodes not crashed and not leaving."""
        return [n for n in self.nodes.values() if not n.crashed and not getattr(n.core, "leaving", False)]

    def broadcast(self, node: SimOverlayNode, payload: Any) -> bytes | None:
        """``node`` broadcasts ``payload``; returns the broadcast id (None when nothing was sent)."""
        before = node.core.last_broadcast_id
        node.execute(node.core.broadcast(payload, self.clock.now()))
        after = node.core.last_broadcast_id
        return after if after != before else None

    def broadcast_cost(self, msg_id: bytes) -> dict[str, int]:
        """Messages one broadcast cost so far: ``payload`` (gossip copies), ``ihave_ids`` (times its id
        rode in an IHAVE; IHAVEs are batched, so this bounds the IHAVE messages it caused) and
        ``graft_ids``."""
        return {"payload": self.payload_sends.get(msg_id, 0), "ihave_ids": self.ihave_ids.get(msg_id, 0),
                "graft_ids": self.graft_ids.get(msg_id, 0)}

    def send_to(self, node: SimOverlayNode, target: SimOverlayNode, payload: Any, *, ttl: int | None = None) -> None:
        """``node`` sends ``payload`` to ``target`` (directly or relayed)."""
        node.execute(node.core.send_to(target.node_id, payload, self.clock.now(), ttl=ttl))

    def leave(self, node: SimOverlayNode) -> None:
        """``node`` leaves gracefully (its goodbyes still go out)."""
        node.execute(node.core.leave(self.clock.now()))

    def receivers(self, payload: Any) -> set[str]:
        """Names of the nodes that got a Deliver of ``payload``."""
        return {d[0] for d in self.deliveries if d[2] == payload}

    def neighbour_graph(self) -> dict[bytes, set[bytes]]:
        """Live node id -> the live node ids it keeps as neighbours."""
        live = {n.node_id for n in self.active_nodes()}
        return {n.node_id: {p for p in n.core.neighbours() if p in live} for n in self.active_nodes()}

    def connected(self) -> bool:
        """True when the live nodes' neighbour graph is connected (as an undirected graph)."""
        graph = self.neighbour_graph()
        if not graph:
            return True
        undirected: dict[bytes, set[bytes]] = {k: set(v) for k, v in graph.items()}
        for a, peers in graph.items():
            for b in peers:
                undirected.setdefault(b, set()).add(a)
        start = next(iter(graph))
        seen = {start}
        stack = [start]
        while stack:
            for peer in undirected[stack.pop()]:
                if peer not in seen:
                    seen.add(peer)
                    stack.append(peer)
        return seen >= set(graph)

    def symmetric(self) -> bool:
        """True when every live neighbour link is held by both ends."""
        graph = self.neighbour_graph()
        return all(a in graph.get(b, ()) for a, peers in graph.items() for b in peers)

    def healed(self) -> bool:
        """True when no live node keeps a crashed node as a neighbour and the live neighbour graph is
        connected and symmetric (what "the overlay healed" means after crashes)."""
        live = {n.node_id for n in self.active_nodes()}
        if any(p not in live for n in self.active_nodes() for p in n.core.neighbours()):
            return False
        return self.connected() and self.symmetric()

    def membership_converged(self) -> bool:
        """True when every live node sees exactly the live nodes as alive (or suspect)."""
        live = {n.node_id for n in self.active_nodes()}
        for node in self.active_nodes():
            seen = {m.node_id for m in node.core.members() if m.status in (MemberStatus.ALIVE, MemberStatus.SUSPECT)}
            if seen != live:
                return False
        return True

    def events(self, kind: str | None = None, *, observer: str | None = None) -> list[EventRecord]:
        """Log records filtered by kind and observer."""
        return [r for r in self.log if (kind is None or r.kind == kind) and (observer is None or r.observer == observer)]

"""In-memory transport: many nodes in one process, with seeded fault injection.

Theory of operation
-------------------
A :class:`MemoryNetwork` is the "wire": it owns the bound endpoints (``mem://<name>/<channel>``), the
partitions, the fault settings and one seeded :class:`random.Random`. Each node gets a
:class:`MemoryTransport` from :meth:`MemoryNetwork.transport`; it implements
:class:`fabric.transport.base.Transport` with the same model and delivery guarantees as the ZeroMQ
transport:

* control: a bound "ROUTER" receives with ``route`` = the sender's routing id (prefix + lane octet, or
  ``routing_lane``) and answers with :meth:`MemoryTransport.respond`; the reply arrives at the
  connecting side with its ``link``. As with the ZeroMQ transport's default (no ROUTER_HANDOVER), a
  second live connection presenting a routing id in use at that endpoint is refused until the first
  goes away (``MemoryNetwork(router_handover=True)`` lets the newest take over).
* bulk: the bound "PULL" receives with neither route nor link.
* broadcast: :meth:`MemoryTransport.connect` creates a "SUB" to the peer's bound "PUB";
  :meth:`MemoryTransport.publish` reaches every live subscriber, which receives it with its ``link``.

Every message travels through a *pipe* (one per sender lane, per ROUTER route, per PUB subscriber). A pipe
counts messages in flight: :meth:`MemoryTransport.send` returns False when a lane has ``sndhwm`` messages
in flight, a PUB drops for a subscriber past its HWM. Delivery is scheduled on an injected scheduler: a
:class:`fabric.clock.ManualClock` for deterministic simulations or :class:`AsyncioScheduler` under a
real event loop. Pipes are FIFO (a message is never delivered before an earlier one of its pipe),
unless the reorder fault picks it.

Faults (:class:`Faults`, changeable at any time through :attr:`MemoryNetwork.faults`) are drawn from the
network's seeded random source at send time: latency + uniform jitter, drop, duplication, reordering
(an extra uniform delay that bypasses the FIFO). Partitions, crashes and disconnects are checked at
*delivery* time, so a message in flight when a partition starts is lost, as on a real network. A
crashed transport neither sends nor receives (its calls still succeed, like writes into a dead
process's buffers); :meth:`MemoryNetwork.recover` undoes it.

Not thread-safe: everything runs on the scheduler's thread (the simulation, or the event loop).
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from ..errors import ConfigError
from .base import ChannelKind, ChannelSpec, Link, LinkGenerations, Receiver, Transport
from .faults import FaultInjector, FaultPolicy, Faults, arrival_peer, route_peer

SCHEME = "mem://"

__all__ = ["SCHEME", "AsyncioScheduler", "Cancellable", "Faults", "MemoryNetwork", "MemoryTransport", "Scheduler"]


class Cancellable(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None:
        """Stop the callback from running."""
        ...


class Scheduler(Protocol):
    """Time source + timer queue the network schedules deliveries on (ManualClock fits it)."""

    def now(self) -> float:
        """Current time in seconds."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        """Run ``callback`` after ``delay`` seconds."""
        ...


class AsyncioScheduler:
    """:class:`Scheduler` over an asyncio loop (``loop.time()`` / ``loop.call_later``).

    Args:
        loop: the loop to schedule on; default: the running loop at construction time.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()

    def now(self) -> float:
        """The loop's time."""
        return self._loop.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        """``loop.call_later(delay, callback)``."""
        return self._loop.call_later(max(0.0, delay), callback)


class _Pipe:
    """One FIFO path from a sender to a receiver, with its in-flight count."""

    __slots__ = ("src", "target", "deliver", "hwm", "in_flight", "last_at", "fifo", "closed", "waiters")

    def __init__(self, src: MemoryTransport, target: Callable[[], MemoryTransport | None],
                 deliver: Callable[[MemoryTransport, list[bytes]], None], hwm: int) -> None:
        self.src = src
        self.target = target
        self.deliver = deliver
        self.hwm = hwm
        self.in_flight = 0
        self.last_at = -math.inf
        self.fifo: deque[list[bytes]] = deque()
        self.closed = False
        self.waiters: list[asyncio.Future[None]] = []

    def full(self) -> bool:
        return self.hwm > 0 and self.in_flight >= self.hwm

    def release(self) -> None:
        self.in_flight -= 1
        if self.waiters and not self.full():
            for fut in self.waiters:
                if not fut.done():
                    fut.set_result(None)
            self.waiters.clear()


class _Conn:
    """The connecting side of one (link, channel): lanes for control/bulk, a subscription for broadcast."""

    __slots__ = ("owner", "link", "channel", "endpoint", "kind", "pipes", "rids")

    def __init__(self, owner: MemoryTransport, link: Link, channel: str, endpoint: str, kind: ChannelKind | None) -> None:
        self.owner = owner
        self.link = link
        self.channel = channel
        self.endpoint = endpoint
        self.kind = kind
        self.pipes: list[_Pipe] = []
        self.rids: list[bytes] = []

    def live(self) -> bool:
        return not self.owner.closed and bool(self.pipes) and not self.pipes[0].closed


class MemoryNetwork:
    """The in-memory "wire" that :class:`MemoryTransport` instances share.

    Args:
        scheduler: where deliveries are scheduled (ManualClock, or AsyncioScheduler).
        seed: seed of the network's random source (faults); or pass ``rng``.
        faults: initial faults (none by default).
        rng: a ready random source (overrides ``seed``).
        router_handover: like ZMQ_ROUTER_HANDOVER on every bound control channel. Off (the ZeroMQ
            transport's default): a second live connection presenting a routing id in use at that
            endpoint is refused (its messages are lost and counted as ``refused_routing_id``) until the
            first one goes away. On: the newest connection takes the routing id over.
    """

    def __init__(self, scheduler: Scheduler, *, seed: int = 0, faults: Faults | None = None,
                 rng: random.Random | None = None, router_handover: bool = False) -> None:
        self.scheduler = scheduler
        self.router_handover = router_handover
        self.rng = rng if rng is not None else random.Random(seed)
        self.faults = faults if faults is not None else Faults()
        self._bound: dict[str, tuple[MemoryTransport, ChannelSpec]] = {}
        self._routes: dict[tuple[str, bytes], _Conn] = {}  # (ROUTER endpoint, routing id) -> DEALER conn
        self._subs: dict[str, list[_Conn]] = {}  # PUB endpoint -> SUB conns
        self._groups: dict[str, int] = {}
        self._transports: dict[str, MemoryTransport] = {}
        self.counters: dict[str, int] = {}

    # -- topology & faults -------------------------------------------------------------------------

    def transport(self, name: str) -> MemoryTransport:
        """A new transport whose endpoints will be ``mem://<name>/<channel>``.

        Raises ConfigError if a live (not closed) transport already has that name.
        """
        if not name or "/" in name:
            raise ConfigError(f"memory transport name {name!r} must be non-empty without '/'")
        old = self._transports.get(name)
        if old is not None and not old.closed:
            raise ConfigError(f"memory transport {name!r} exists (close it first)")
        transport = MemoryTransport(self, name)
        self._transports[name] = transport
        return transport

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the network: transports (by name) in different groups cannot exchange messages.

        Names not listed form one more group together. Replaces any previous partition.
        """
        self._groups = {}
        for index, group in enumerate(groups):
            for name in group:
                self._groups[name] = index

    def isolate(self, name: str) -> None:
        """Cut ``name`` off from everyone else (a partition of one)."""
        self.partition([name])

    def heal(self) -> None:
        """Remove every partition."""
        self._groups = {}

    def can_talk(self, a: str, b: str) -> bool:
        """False when a partition separates the transports named ``a`` and ``b``."""
        return self._groups.get(a, -1) == self._groups.get(b, -1)

    def crash(self, name: str) -> None:
        """The transport ``name`` stops sending and receiving (messages to and from it are lost)."""
        self._transports[name].crashed = True

    def recover(self, name: str) -> None:
        """Undo :meth:`crash` (messages lost meanwhile stay lost)."""
        self._transports[name].crashed = False

    def stats(self) -> dict[str, int]:
        """Network-wide counters: delivered, dropped (fault), duplicated, reordered, partitioned,
        crashed, discarded (disconnected link), unroutable, hwm_full."""
        return dict(self.counters)

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    # -- the wire ----------------------------------------------------------------------------------

    def _claim_route(self, endpoint: str, rid: bytes, conn: _Conn) -> bool:
        """Give ``rid`` at ``endpoint`` to ``conn`` unless another live connection holds it (no handover)."""
        key = (endpoint, rid)
        holder = self._routes.get(key)
        if holder is conn:
            return True
        if holder is not None and holder.live() and not self.router_handover:
            return False
        self._routes[key] = conn
        return True

    def _transmit(self, pipe: _Pipe, frames: list[bytes]) -> None:
        faults = self.faults
        rng = self.rng
        if faults.drop and rng.random() < faults.drop:
            self._count("dropped")
            return
        copies = 1
        if faults.duplicate and rng.random() < faults.duplicate:
            copies = 2
            self._count("duplicated")
        now = self.scheduler.now()
        for _ in range(copies):
            delay = faults.latency + (rng.uniform(0.0, faults.jitter) if faults.jitter else 0.0)
            pipe.in_flight += 1
            if faults.reorder and rng.random() < faults.reorder:
                self._count("reordered")
                delay += rng.uniform(0.0, faults.reorder_delay)
                self.scheduler.call_later(delay, functools.partial(self._arrive, pipe, frames))
                continue
            at = max(now + delay, pipe.last_at)
            pipe.last_at = at
            pipe.fifo.append(frames)
            self.scheduler.call_later(at - now, functools.partial(self._arrive_fifo, pipe))

    def _arrive_fifo(self, pipe: _Pipe) -> None:
        # pop the head rather than a captured message: FIFO even if the scheduler breaks ties freely
        self._arrive(pipe, pipe.fifo.popleft())

    def _arrive(self, pipe: _Pipe, frames: list[bytes]) -> None:
        pipe.release()
        if pipe.closed:
            self._count("discarded")
            return
        src = pipe.src
        dst = pipe.target()
        if dst is None or dst.closed:
            self._count("unroutable")
            return
        if src.crashed or dst.crashed:
            self._count("crashed")
            return
        if not self.can_talk(src.name, dst.name):
            self._count("partitioned")
            return
        self._count("delivered")
        pipe.deliver(dst, frames)


class MemoryTransport(Transport):
    """A node's transport on a :class:`MemoryNetwork` (see the module docstring). Create it with
    :meth:`MemoryNetwork.transport`."""

    def __init__(self, network: MemoryNetwork, name: str) -> None:
        self.network = network
        self.name = name
        self.crashed = False
        self.closed = False
        self._receiver: Receiver | None = None
        self._prefix = b""
        self._specs: dict[str, ChannelSpec] = {}
        self._endpoints: dict[str, str] = {}
        self._links: dict[Link, dict[str, _Conn]] = {}
        self._generations = LinkGenerations()
        self._reply_pipes: dict[tuple[str, bytes], tuple[_Conn, _Pipe]] = {}
        self._pub_pipes: dict[tuple[str, int], tuple[_Conn, _Pipe]] = {}
        self.counters: dict[str, int] = {}
        self._faults: FaultInjector | None = None

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def set_faults(self, policy: FaultPolicy | None) -> None:
        """This node's per-peer :class:`~fabric.transport.faults.FaultPolicy` (None: off), applied as by the
        ZeroMQ transport: outbound in :meth:`send`/:meth:`respond` (``fault_dropped_out``), inbound before
        the receiver (``fault_dropped_in``). On top of the network-wide :class:`Faults` and partitions."""
        self._faults = None if policy is None or policy.empty else FaultInjector(policy)

    @property
    def faults(self) -> FaultPolicy | None:
        """The per-peer fault policy in force, None when off."""
        return self._faults.policy if self._faults is not None else None

    def _deliver_to_receiver(self, channel: str, frames: list[bytes], route: bytes | None, link: Link | None) -> None:
        if self._receiver is None:
            return
        faults = self._faults
        if faults is not None:
            spec = self._specs.get(channel)
            broadcast = spec is not None and spec.kind == ChannelKind.BROADCAST
            if faults.drop_in(arrival_peer(frames, route, link, broadcast)):
                self._count("fault_dropped_in")
                return
        self._count(f"in_msgs.{channel}")
        self._count(f"in_bytes.{channel}", sum(len(f) for f in frames))
        self._receiver(channel, frames, route, link)

    # -- Transport ---------------------------------------------------------------------------------

    def bind(self, channels: Sequence[ChannelSpec], receiver: Receiver, routing_id_prefix: bytes) -> dict[str, str]:
        """Bind ``mem://<name>/<channel>`` for each channel. Raises ConfigError if already bound."""
        if self.closed:
            raise ConfigError("transport is closed")
        out: dict[str, str] = {}
        for spec in channels:
            endpoint = f"{SCHEME}{self.name}/{spec.name}"
            holder = self.network._bound.get(endpoint)
            if holder is not None and holder[0] is not self:
                raise ConfigError(f"endpoint {endpoint} is already bound")
            self.network._bound[endpoint] = (self, spec)
            self._specs[spec.name] = spec
            self._endpoints[spec.name] = endpoint
            out[spec.name] = endpoint
        self._receiver = receiver
        self._prefix = bytes(routing_id_prefix)
        return out

    def connect(
        self,
        link: Link,
        endpoints: Mapping[str, str],
        parallelism: Mapping[str, int] | None = None,
        *,
        routing_lane: int | None = None,
        server_key: bytes | None = None,
    ) -> None:
        """Create the connecting side per channel (lanes from ``parallelism``, else the bound spec's, else 1).

        The channel kind is taken from the bound endpoint when it exists, else from our own spec of the
        same channel name, else control. ``routing_lane`` gives a single-lane link that lane octet in its
        routing id (handshake links use 255). Idempotent per (link, channel). ``server_key`` is ignored:
        the in-memory network has no CURVE (a node in secure mode refuses this transport).
        """
        if self.closed:
            return
        conns = self._links.setdefault(link, {})
        for channel, endpoint in endpoints.items():
            if channel in conns:
                continue
            bound = self.network._bound.get(endpoint)
            spec = bound[1] if bound is not None else self._specs.get(channel)
            kind = spec.kind if spec is not None else ChannelKind.CONTROL
            conn = _Conn(self, link, channel, endpoint, kind)
            if kind == ChannelKind.BROADCAST:
                self.network._subs.setdefault(endpoint, []).append(conn)
            else:
                lanes = (parallelism or {}).get(channel) or (spec.parallelism if spec is not None else 1)
                lanes = max(1, min(255, int(lanes)))  # as the ZeroMQ transport: a lane is one octet
                if routing_lane is not None:
                    lanes = 1
                own = self._specs.get(channel)
                hwm = own.sndhwm if own is not None else (spec.sndhwm if spec is not None else 1000)
                for lane in range(lanes):
                    rid = self._prefix + self._generations.of(link) + bytes((lane if routing_lane is None else routing_lane,))
                    conn.rids.append(rid)
                    conn.pipes.append(self._lane_pipe(conn, lane, rid, hwm))
                    if kind == ChannelKind.CONTROL:
                        self.network._claim_route(endpoint, rid, conn)
            conns[channel] = conn

    def _lane_pipe(self, conn: _Conn, lane: int, route: bytes, hwm: int) -> _Pipe:
        network = self.network

        def target() -> MemoryTransport | None:
            bound = network._bound.get(conn.endpoint)
            return bound[0] if bound is not None else None

        def deliver(dst: MemoryTransport, frames: list[bytes]) -> None:
            bound = network._bound.get(conn.endpoint)
            if bound is None:
                return
            channel = bound[1].name
            if conn.kind == ChannelKind.CONTROL:
                if not network._claim_route(conn.endpoint, route, conn):
                    network._count("refused_routing_id")
                    return
                dst._deliver_to_receiver(channel, frames, route, None)
            else:
                dst._deliver_to_receiver(channel, frames, None, None)

        return _Pipe(self, target, deliver, hwm)

    def disconnect(self, link: Link) -> None:
        """Close every connecting socket of ``link``; messages in flight on them are discarded."""
        conns = self._links.pop(link, None)
        self._generations.forget(link)
        if not conns:
            return
        for conn in conns.values():
            self._close_conn(conn)

    def _close_conn(self, conn: _Conn) -> None:
        for pipe in conn.pipes:
            pipe.closed = True
            for fut in pipe.waiters:  # writers waiting for room learn of the close at once
                if not fut.done():
                    fut.set_result(None)
            pipe.waiters.clear()
        network = self.network
        if conn.kind == ChannelKind.BROADCAST:
            subs = network._subs.get(conn.endpoint, [])
            if conn in subs:
                subs.remove(conn)
        for rid in conn.rids:
            key = (conn.endpoint, rid)
            if network._routes.get(key) is conn:
                del network._routes[key]

    def send(self, link: Link, channel: str, lane: int, frames: Sequence[bytes]) -> bool:
        """Queue a message on a lane; False at the lane's HWM. Raises KeyError when ``link`` has no
        sending socket for ``channel`` (unknown link/channel, or a broadcast subscription), ValueError
        for a lane out of range."""
        conn = self._links[link][channel]
        if conn.kind == ChannelKind.BROADCAST:
            raise KeyError(f"{channel!r} is a broadcast subscription on link {link!r}: use publish()")
        if not 0 <= lane < len(conn.pipes):
            raise ValueError(f"lane {lane} out of range 0..{len(conn.pipes) - 1}")
        pipe = conn.pipes[lane]
        if pipe.full():
            self._count("hwm_full")
            self.network._count("hwm_full")
            return False
        if self._faults is not None and self._faults.drop_out(link):
            self._count("fault_dropped_out")
            return True
        self._count(f"out_msgs.{channel}")
        self._count(f"out_bytes.{channel}", sum(len(f) for f in frames))
        if self.crashed:
            self.network._count("crashed")
            return True
        self.network._transmit(pipe, list(frames))
        return True

    def notify_writable(self, link: Link, channel: str, lane: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` once when the lane is below its HWM or closes; see the base class. Raises
        KeyError like :meth:`send`."""
        conn = self._links[link][channel]
        if not 0 <= lane < len(conn.pipes):
            raise ValueError(f"lane {lane} out of range 0..{len(conn.pipes) - 1}")
        pipe = conn.pipes[lane]
        loop = asyncio.get_running_loop()
        if not pipe.full() or pipe.closed:
            loop.call_soon(callback)
            return
        fut: asyncio.Future[None] = loop.create_future()
        fut.add_done_callback(lambda _f: callback())
        pipe.waiters.append(fut)

    def set_send_hwm(self, link: Link, channel: str, lane: int, hwm: int) -> None:
        """The lane's in-flight limit; a lane past it refuses sends until deliveries bring it below."""
        conn = self._links[link][channel]
        if not 0 <= lane < len(conn.pipes):
            raise ValueError(f"lane {lane} out of range 0..{len(conn.pipes) - 1}")
        conn.pipes[lane].hwm = max(1, hwm)

    def respond(self, channel: str, route: bytes, frames: Sequence[bytes]) -> bool:
        """Answer through our bound control channel to ``route``; False if no such peer or its reply
        path is at the HWM."""
        endpoint = self._endpoints.get(channel)
        if endpoint is None:
            raise KeyError(f"channel {channel!r} is not bound")
        conn = self.network._routes.get((endpoint, bytes(route)))
        if conn is None or conn.owner.closed:
            self._count("respond_unroutable")
            return False
        if self._faults is not None and self._faults.drop_out(route_peer(route)):
            self._count("fault_dropped_out")
            return True
        key = (channel, bytes(route))
        held = self._reply_pipes.get(key)
        if held is not None and held[0] is conn and not held[1].closed:
            pipe = held[1]
        else:
            pipe = self._reply_pipe(conn)
            self._reply_pipes[key] = (conn, pipe)
        if pipe.full():
            self._count("hwm_full")
            self.network._count("hwm_full")
            return False
        self._count(f"out_msgs.{channel}")
        if self.crashed:
            self.network._count("crashed")
            return True
        self.network._transmit(pipe, list(frames))
        return True

    def _reply_pipe(self, conn: _Conn) -> _Pipe:
        def target() -> MemoryTransport | None:
            return conn.owner

        def deliver(dst: MemoryTransport, frames: list[bytes]) -> None:
            if conn.pipes and conn.pipes[0].closed:
                # the DEALER was closed: a reply to it goes nowhere
                dst.network._count("discarded")
                return
            dst._deliver_to_receiver(conn.channel, frames, None, conn.link)

        spec = self._specs[conn.channel] if conn.channel in self._specs else None
        return _Pipe(self, target, deliver, spec.sndhwm if spec is not None else 1000)

    def publish(self, channel: str, frames: Sequence[bytes]) -> bool:
        """Send to every subscriber of our bound broadcast ``channel``; a subscriber past the HWM
        misses it (counted). Returns True. Raises KeyError when ``channel`` is not a bound broadcast."""
        endpoint = self._endpoints.get(channel)
        spec = self._specs.get(channel)
        if endpoint is None or spec is None or spec.kind != ChannelKind.BROADCAST:
            raise KeyError(f"channel {channel!r} is not a bound broadcast channel")
        self._count(f"out_msgs.{channel}")
        if self.crashed:
            self.network._count("crashed")
            return True
        subs = list(self.network._subs.get(endpoint, []))
        if len(self._pub_pipes) > 2 * len(subs) + 16:
            # forget pipes of subscribers that went away (keys are id()s, which get reused)
            live = {(channel, id(c)) for c in subs}
            self._pub_pipes = {k: v for k, v in self._pub_pipes.items() if k in live or k[0] != channel}
        for conn in subs:
            key = (channel, id(conn))
            held = self._pub_pipes.get(key)
            if held is not None and held[0] is conn and not held[1].closed:
                pipe = held[1]
            else:
                pipe = self._sub_pipe(conn, spec.sndhwm)
                self._pub_pipes[key] = (conn, pipe)
            if pipe.full():
                self._count("pub_hwm_dropped")
                self.network._count("hwm_full")
                continue
            self.network._transmit(pipe, list(frames))
        return True

    def _sub_pipe(self, conn: _Conn, hwm: int) -> _Pipe:
        network = self.network

        def target() -> MemoryTransport | None:
            return conn.owner

        def deliver(dst: MemoryTransport, frames: list[bytes]) -> None:
            if conn not in network._subs.get(conn.endpoint, []):
                network._count("discarded")
                return
            dst._deliver_to_receiver(conn.channel, frames, None, conn.link)

        return _Pipe(self, target, deliver, hwm)

    def links(self) -> list[Link]:
        """The links with at least one connecting socket."""
        return list(self._links)

    def connected_channels(self, link: Link) -> list[str]:
        """Channels ``link`` has connecting sockets for (empty when unknown)."""
        return list(self._links.get(link, {}))

    def stats(self) -> dict[str, Any]:
        """Per-channel ``in_msgs.<ch>``, ``in_bytes.<ch>``, ``out_msgs.<ch>``, ``out_bytes.<ch>``,
        ``hwm_full``, ``pub_hwm_dropped``, ``respond_unroutable``, ``fault_dropped_out``/``fault_dropped_in``
        (the per-peer fault policy's drops)."""
        return dict(self.counters)

    def close_now(self) -> None:
        """Synchronous :meth:`close` (for simulations): unbind, drop every link. Idempotent."""
        if self.closed:
            return
        for link in list(self._links):
            self.disconnect(link)
        for endpoint in self._endpoints.values():
            holder = self.network._bound.get(endpoint)
            if holder is not None and holder[0] is self:
                del self.network._bound[endpoint]
                self.network._subs.pop(endpoint, None)
        for _, pipe in [*self._reply_pipes.values(), *self._pub_pipes.values()]:
            pipe.closed = True
        self.closed = True
        self._receiver = None

    async def close(self) -> None:
        """Close every socket (see :meth:`close_now`); never blocks."""
        self.close_now()

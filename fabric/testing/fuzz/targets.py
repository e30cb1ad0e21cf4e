"""The fuzz targets: the wire decoder, the membership/overlay/topology handlers, and a node's receive path.

Theory of operation
-------------------
Each target is a harness with one method, ``feed(item)``, taking one structured input (msgpack-native,
so the coverage-guided engine can carry it as bytes), and ``check_bounds()``. The invariants:

* **decoder** (:class:`DecoderTarget`): ``wire.decode``, ``decode_head``, ``split_batch`` (and the inner
  messages), ``unpackb`` with and without ``max_bytes``, ``decode_value`` and ``parse_routing_id`` raise
  nothing but :class:`~fabric.errors.ProtocolError` subclasses on any frames.
* **membership** (:class:`MembershipTarget`): one :class:`~fabric.topology.driver.MembershipDriver` per
  overlay (full-mesh, HyParView + Plumtree, client-server, static) receives MEMBERSHIP and TREE messages
  (every op, ``topo`` included, with any epoch); the driver counts a bad body (a ProtocolError from the
  core) and drops it, so *no* exception may leave ``receive``; timers run between inputs; an operator's
  ``propose`` after hostile input keeps the epoch inside the protocol's range (0..2**63-1).
* **node** (:class:`NodeTarget`): a running :class:`~fabric.Node` on the in-memory transport gets
  frames on every channel kind as the transport would hand them over (ROUTER side with a route,
  connecting side with a link, broadcast with a topic frame, bulk with neither): HELLO/WELCOME/REJECT
  (peers), CALL/REPLY/ERROR/PING/PONG (calls), SEND/PUBLISH, MEMBERSHIP/TREE, BATCH, BYE. Nothing may
  escape ``_on_frames``. Its transport refuses malformed endpoints as ZeroMQ does (ConfigError).

``check_bounds`` walks the harness's objects and measures every dict, set, list and deque reachable
from them (:func:`container_sizes`); each must stay under :data:`DEFAULT_BOUND` or its named limit in
:data:`LIMITS` after any number of inputs: whatever a remote can make a node remember is bounded.

Valid inputs to mutate come from :func:`membership_corpus` (messages harvested from seeded simulated
clusters of every overlay, a live topology switch, broadcasts and relays included) and
:func:`node_corpus` (one valid message of every type, built by the wire encoders).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import io
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ... import wire
from ..._values import decode_value
from ...config import OVERLAYS, NodeConfig
from ...errors import ConfigError, ProtocolError
from ...membership import (
    Deliver,
    Identity,
    MembershipConfig,
    MembershipEvent,
    make_overlay,
)
from ...membership.config import HyParViewConfig, PlumtreeConfig
from ...settings import check_endpoint
from ...topology import TopologyManager
from ...topology.coordinator import TopologyError
from ...topology.driver import MembershipDriver
from ...transport.memory import AsyncioScheduler, MemoryNetwork, MemoryTransport

MAX_MEMBERS = 48
"""``max_members`` of the fuzzed membership cores (small, so a bound is reached quickly)."""
SEEN = 96
"""Plumtree ``seen_size`` and ``cache_size`` of the fuzzed cores."""
DEFAULT_BOUND = 512
"""Largest size any container reachable from a harness may reach, unless named in :data:`LIMITS`."""
LIMITS: dict[str, int] = {
    "_told": 4096,  # MembershipDriver: sources told the topology (halved at 4096)
    "_traffic_noted": 4096,  # MembershipDriver: last sign of life per source (halved at 4096)
    "_seen": 65536,  # FullMeshOverlay / Relays: broadcast ids remembered (seen_size)
    "clients": 4096,  # Peers.clients: MAX_CLIENTS
    "_cache": 4096,  # id_text / node_id_bytes caches and similar LRU tables
}
"""Per attribute name: the limit the code documents for that map (named after the attribute)."""


class InvariantViolation(AssertionError):
    """A harness found a bug: an exception escaped a handler, or state outgrew its bound."""


# -- bounds ---------------------------------------------------------------------------------------------


def container_sizes(root: object, *, max_objects: int = 5000) -> dict[str, int]:
    """Sizes of the containers reachable from ``root`` through attributes of fabric objects, keyed by
    ``Class.attribute`` (the largest size seen under that key). Elements of containers are followed
    (the first few of each) so per-peer state counts too."""
    sizes: dict[str, int] = {}
    seen: set[int] = set()
    stack: list[tuple[str, object]] = [("", root)]
    while stack and len(seen) < max_objects:
        where, obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, dict | set | frozenset | list | tuple | collections.deque):
            if where and not isinstance(obj, tuple | frozenset):
                sizes[where] = max(sizes.get(where, 0), len(obj))
            items = list(obj.values())[:4] if isinstance(obj, dict) else list(obj)[:4]
            stack.extend((where, item) for item in items if _followed(item))
            continue
        if not _followed(obj):
            continue
        names = list(getattr(obj, "__dict__", {}))
        for cls in type(obj).__mro__:
            names.extend(s for s in getattr(cls, "__slots__", ()) if isinstance(s, str))
        for name in names:
            try:
                value = getattr(obj, name)
            except AttributeError:
                continue
            if _followed(value) or isinstance(value, dict | set | list | collections.deque):
                stack.append((f"{type(obj).__name__}.{name}", value))
    return sizes


def _followed(obj: object) -> bool:
    if isinstance(obj, dict | set | list | collections.deque):
        return True
    module = type(obj).__module__
    return module.startswith("fabric.") and not isinstance(obj, type)


def check_sizes(sizes: Mapping[str, int], *, allowed: Iterable[str] = ()) -> None:
    """Raise :class:`InvariantViolation` when a container outgrew its bound (``allowed``: keys known to
    be unbounded in this version, reported by the caller instead)."""
    skip = set(allowed)
    for key, size in sizes.items():
        attr = key.rsplit(".", 1)[-1]
        limit = LIMITS.get(attr, DEFAULT_BOUND)
        if size > limit and key not in skip:
            raise InvariantViolation(f"{key} holds {size} entries (bound {limit}): state grows with remote input")


# -- membership -----------------------------------------------------------------------------------------


def _membership_config() -> MembershipConfig:
    return MembershipConfig.local(max_members=MAX_MEMBERS, max_records=MAX_MEMBERS, hyparview=HyParViewConfig(),
                                  plumtree=PlumtreeConfig(cache_size=SEEN, seen_size=SEEN, max_ihave=64))


def _factory(rng: random.Random, static: list[Identity | str]) -> Callable[[str, Identity, float], Any]:
    def build(name: str, identity: Identity, now: float) -> Any:
        role = "client" if identity.node_id[0] % 3 == 0 else "server"
        return make_overlay(name, identity, membership=_membership_config(),
                            role=role, static_members=static, rng=rng, now=now)
    return build


@functools.lru_cache(maxsize=1)
def membership_corpus(seed: int = 16) -> tuple[tuple[int, bool, str, Any], ...]:
    """Valid ``(overlay index, tree, op, body)`` messages harvested from seeded simulated clusters of every
    overlay (joins, heartbeats, syncs, probes, shuffles, a topology switch, broadcasts and relays)."""
    out: list[tuple[int, bool, str, Any]] = []
    for index, overlay in enumerate(OVERLAYS):
        out.extend(_harvest(index, overlay, seed + index))
    return tuple(out)


def _harvest(index: int, overlay: str, seed: int) -> list[tuple[int, bool, str, Any]]:
    """The messages one simulated cluster running ``overlay`` sends (a few of each op)."""
    from ..overlay_sim import OverlaySim, SimOverlayNode

    out: list[tuple[int, bool, str, Any]] = []
    seen_ops: collections.Counter[tuple[bool, str]] = collections.Counter()
    other = "hyparview" if overlay != "hyparview" else "full-mesh"

    class Recorder(OverlaySim):
        def _transmit(self, src: SimOverlayNode, to: bytes, tree: bool, op: str, body: dict[str, Any]) -> bool | None:
            if seen_ops[(tree, op)] < 24:  # a few of each op is plenty; the mutations do the rest
                seen_ops[(tree, op)] += 1
                out.append((index, tree, op, _plain(body)))
            return super()._transmit(src, to, tree, op, body)

    build = _factory(random.Random(seed), [f"sim://n{i:04d}" for i in range(6)])  # static: the nodes' endpoints

    def make(name: str) -> Callable[[Identity, random.Random, float], Any]:
        return lambda ident, _rng, now: build(name, ident, now)

    with contextlib.redirect_stdout(io.StringIO()):  # the simulator prints its seed: fixed here
        sim = Recorder(seed, make(overlay), overlay=overlay, factories={other: make(other)}, cooldown=0.0)
    nodes = sim.spawn(6)
    sim.join(nodes[0], [])
    for node in nodes[1:]:
        sim.join(node, [nodes[0]])
    sim.run(20.0)
    sim.broadcast(nodes[1], {"c": "events", "p": b"hello", "t": b""})
    sim.send_to(nodes[2], nodes[3], {"c": "coordination", "p": b"relay"})
    sim.run(5.0)
    sim.crash([nodes[5]])
    sim.run(10.0)
    sim.switch(nodes[0], other)
    sim.run(10.0)
    sim.broadcast(nodes[2], {"c": "events", "p": b"after", "t": b"x"})
    sim.run(5.0)
    return out


def _plain(value: Any) -> Any:
    """A body as msgpack would deliver it: tuples become lists (what the codec does on the wire)."""
    return wire.unpackb(wire.packb(value))


class _Host:
    """The :class:`~fabric.topology.driver.DriverHost` of a fuzzed driver: links in memory, I/O counted."""

    def __init__(self) -> None:
        self.driver: MembershipDriver | None = None
        self.links: dict[bytes, Identity] = {}
        self.probes: dict[bytes, bool] = {}
        self.counters: collections.Counter[str] = collections.Counter()
        self.timer_at = float("inf")

    def send_overlay(self, to: bytes, tree: bool, op: str, body: dict[str, Any]) -> bool | None:
        wire.packb(body)  # everything the driver sends must be encodable (a TypeError here is a bug)
        self.counters["sent"] += 1
        return True if to in self.links else None

    def linked(self) -> dict[bytes, bool]:
        return dict(self.probes)

    def linked_identities(self) -> list[Identity]:
        return list(self.links.values())

    def link(self, identity: Identity, probe: bool) -> None:
        self.links[identity.node_id] = identity
        self.probes[identity.node_id] = probe

    def unlink(self, node_id: bytes, reason: str) -> None:
        self.links.pop(node_id, None)
        self.probes.pop(node_id, None)
        if self.driver is not None:
            self.driver.links.forget(node_id)

    def dial(self, endpoint: str) -> None:
        self.counters["dials"] += 1

    def deliver(self, effect: Deliver) -> None:
        self.counters["delivered"] += 1

    def member_event(self, event: MembershipEvent) -> None:
        self.counters["events"] += 1

    def set_timer(self, at: float) -> None:
        self.timer_at = at


class MembershipTarget:
    """Membership, overlay and topology handlers under hostile MEMBERSHIP/TREE messages (see the module
    docstring). ``item = [overlay index, tree, op, source selector, body]``."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.now = 100.0
        self.fed = 0
        self.known = [bytes([i]) * 16 for i in range(1, 9)]  # sources the cores may have heard of
        self.hosts: list[_Host] = []
        for i, overlay in enumerate(OVERLAYS):
            host = _Host()
            me = Identity(bytes([0xF0 + i]) * 16, f"fuzz-{overlay}", 1, {},
                          {"membership": ("control", f"mem://fuzz-{i}/membership", 1)})
            static: list[Identity | str] = [Identity(k, f"s{j}", 1, {}, {"membership": ("control", f"mem://s{j}/membership", 1)})
                                            for j, k in enumerate(self.known[:3])]
            host.driver = MembershipDriver(host, me, overlay, _factory(random.Random(seed + i), static), OVERLAYS,
                                           self.now, cooldown=0.0,
                                           links=TopologyManager(idle_close=5.0, stray_grace=5.0), settle=5.0)
            host.driver.join(["mem://seed/membership"], self.now)
            for k in self.known[:4]:
                host.driver.contact(Identity(k, "peer", 1, {}, {"membership": ("control", f"mem://{k.hex()[:6]}/membership", 1)}),
                                    self.now)
            self.hosts.append(host)

    def corpus(self) -> list[Any]:
        """Valid items to start mutating from."""
        return [[index, tree, op, n % 9, body] for n, (index, tree, op, body) in enumerate(membership_corpus())]

    def feed(self, item: Any) -> None:
        """One message to one driver; then, now and then, the timers and an operator's switch."""
        if not isinstance(item, list) or len(item) != 5:
            return
        index, tree, op, source, body = item
        host = self.hosts[index % len(self.hosts) if isinstance(index, int) else 0]
        driver = host.driver
        assert driver is not None
        if isinstance(source, bytes) and len(source) == 16:
            src = source
        elif isinstance(source, int) and not isinstance(source, bool):
            src = self.known[source % len(self.known)] if source % 9 != 8 else self.rng.randbytes(16)
        else:
            src = self.rng.randbytes(16)
        if not isinstance(op, str):
            op = str(op)
        op = op[:255]  # the wire refuses longer ops
        self.fed += 1
        self.now += 0.05
        try:
            driver.receive(src, bool(tree), op, body, self.now)
            if self.fed % 7 == 0:
                self.now += 0.5
                driver.on_timer(self.now)
            if self.fed % 97 == 0:
                self._operator_switch(driver)
        except Exception as exc:
            raise InvariantViolation(f"{type(exc).__name__} escaped the {driver.overlay_name} driver on op {op!r}: "
                                     f"{exc}") from exc
        epoch = driver.state.epoch
        if not 0 <= epoch < 2**63:
            raise InvariantViolation(f"topology epoch {epoch} outside the protocol's range after op {op!r}")

    def _operator_switch(self, driver: MembershipDriver) -> None:
        target = self.rng.choice([o for o in OVERLAYS if o != driver.overlay_name])
        try:
            driver.propose(target, self.now)
        except (TopologyError, ConfigError):
            pass  # refused (cooldown, conflict, exhausted epochs): a one-line error for the operator

    def check_bounds(self) -> dict[str, int]:
        """Measure every container; raise when one outgrew its bound. Returns the sizes."""
        sizes = container_sizes(self.hosts)
        check_sizes(sizes)
        return sizes


# -- decoder --------------------------------------------------------------------------------------------


class DecoderTarget:
    """The decoder and its helpers on arbitrary frames. ``item = [frame, ...]`` (bytes)."""

    def __init__(self, seed: int = 0) -> None:
        self.fed = 0
        self.counts: collections.Counter[str] = collections.Counter()

    def corpus(self) -> list[Any]:
        """Valid messages of every type (and a batch), as frame lists: each as raw bytes, and once more with
        the head as a structured map ``{"t", "v", "h"}`` so mutations reach inside the header."""
        out: list[Any] = []
        for channel, frames in _valid_messages():
            frames = frames[1:] if channel == "events" else frames  # the node strips the topic first
            out.append(frames)
            mtype, version, header = wire.decode_head(frames[0])
            out.append([{"t": mtype, "v": version, "h": header}, *frames[1:]])
        return out

    def feed(self, item: Any) -> None:
        """Decode ``item``'s frames every way the node does; only ProtocolError may escape."""
        if isinstance(item, bytes):
            frames = [item]
        elif isinstance(item, list):
            parts = [_frame(p) if isinstance(p, dict) else p for p in item]
            frames = [f for f in parts if isinstance(f, bytes)]
            if len(frames) != len(parts):
                return
        else:
            return
        self.fed += 1
        try:
            self._decode(frames)
            self.counts["ok"] += 1
        except ProtocolError as exc:
            self.counts[exc.category] += 1
        except Exception as exc:
            raise InvariantViolation(f"{type(exc).__name__} escaped the decoder: {exc}") from exc

    def _decode(self, frames: list[bytes]) -> None:
        if frames:
            wire.parse_routing_id(frames[0])
            for limit in (None, 64):
                try:
                    wire.unpackb(frames[0], max_bytes=limit)
                except ProtocolError:
                    pass
        env = wire.decode(frames)
        if env.type == wire.MsgType.BATCH:
            for inner in wire.split_batch(env):
                self._payload(wire.decode(inner))
        else:
            self._payload(env)

    @staticmethod
    def _payload(env: wire.Envelope) -> None:
        if env.type in (wire.MsgType.MEMBERSHIP, wire.MsgType.TREE):
            wire.unpackb(env.payload)
        else:
            decode_value(env.payload, env.header.get("ct", 0))

    def check_bounds(self) -> dict[str, int]:
        """The decoder keeps no state: nothing to measure."""
        return {}


# -- node -----------------------------------------------------------------------------------------------

_SRC = bytes(range(16))
_NODE_CHANNELS = ("membership", "coordination", "gossip", "data", "events")


def _valid_messages() -> list[tuple[str, list[bytes]]]:
    """One valid message of every type, with the channel it would arrive on."""
    ep = {"membership": ["control", "mem://fz-peer/membership", 1], "coordination": ["control", "mem://fz-peer/coordination", 1],
          "data": ["bulk", "mem://fz-peer/data", 2], "events": ["broadcast", "mem://fz-peer/events", 1]}
    tp = {"e": 3, "p": _SRC, "o": "hyparview"}
    msgs: list[tuple[str, list[bytes]]] = [
        ("membership", wire.hello(_SRC, role=wire.Role.MEMBER, incarnation=7, name="fz", endpoints=ep, meta={"k": "v"},
                                  topology=tp)),
        ("membership", wire.hello(bytes(16), role=wire.Role.CLIENT, incarnation=1, name="cl")),
        ("membership", wire.welcome(_SRC, version=1, incarnation=7, name="fz", endpoints=ep, topology=tp)),
        ("membership", wire.reject(_SRC, code=wire.RejectCode.VERSION, message="no")),
        ("coordination", wire.send(_SRC, "coordination", b"payload", seq=5)),
        ("data", wire.send(_SRC, "data", b"bulk", lane=1, seq=1)),
        ("events", wire.publish(_SRC, "events", b"event", topic=b"t", seq=2)),
        ("coordination", wire.call(_SRC, "echo", wire.packb({"a": 1}), msg_id=9, channel="coordination",
                                   timeout_ms=500, content_type=wire.ContentType.MSGPACK)),
        ("coordination", wire.call(_SRC, "nope", b"", msg_id=10, channel="coordination")),
        ("coordination", wire.reply(_SRC, 1, wire.packb([1, 2]), content_type=wire.ContentType.MSGPACK)),
        ("coordination", wire.error(_SRC, 2, code=2, etype="ValueError", message="bad")),
        ("membership", wire.ping(_SRC, msg_id=3, wall_ms=1)),
        ("membership", wire.pong(_SRC, corr=3, wall_ms=1)),
        ("membership", wire.bye(_SRC)),
        ("coordination", wire.encode_batch(_SRC, [wire.send(_SRC, "coordination", b"a", seq=6),
                                                  wire.call(_SRC, "echo", b"b", msg_id=11, channel="coordination")])),
    ]
    for _index, tree, op, body in membership_corpus()[::5]:
        mtype = wire.MsgType.TREE if tree else wire.MsgType.MEMBERSHIP
        msgs.append(("gossip" if tree else "membership", wire.membership(_SRC, op, body, mtype=mtype)))
    return msgs


def _frame(part: Any) -> bytes | None:
    """One frame of a structured item: bytes as they are, ``{"t", "v", "h"}`` as a head frame (preamble +
    msgpack header), anything else msgpack-encoded; None when msgpack cannot encode it."""
    if isinstance(part, bytes):
        return part
    if isinstance(part, dict) and set(part) == {"t", "v", "h"}:
        t, v = part["t"], part["v"]
        if not isinstance(t, int) or not isinstance(v, int):
            return None
        try:
            return wire.SIGNATURE + bytes((v & 0xFF, t & 0xFF)) + wire.packb(part["h"])
        except (TypeError, ValueError, OverflowError):
            return None
    value = part["msgpack"] if isinstance(part, dict) and set(part) == {"msgpack"} else part
    try:
        return wire.packb(value)
    except (TypeError, ValueError, OverflowError):
        return None


class _StrictMemoryTransport(MemoryTransport):
    """The in-memory transport, refusing endpoints ZeroMQ would refuse (as ``ZmqTransport`` does, with a
    ConfigError), so the fuzzer sees what a malformed advertised endpoint does to a real node."""

    def connect(self, link: Any, endpoints: Mapping[str, str], parallelism: Mapping[str, int] | None = None, *,
                routing_lane: int | None = None, server_key: bytes | None = None) -> None:
        for channel, endpoint in endpoints.items():
            if not endpoint.startswith("mem://"):
                try:
                    check_endpoint(endpoint, resolve=False)
                except ValueError as exc:
                    raise ConfigError(f"cannot connect channel {channel!r} to {endpoint!r}: {exc}") from None
        super().connect(link, endpoints, parallelism, routing_lane=routing_lane, server_key=server_key)


class NodeTarget:
    """A running node's receive path (see the module docstring). ``item = {"c": channel index,
    "m": [frames], "r": route selector}`` where a frame is bytes, or a map ``{"t": type, "v": version,
    "h": header}`` encoded as a head frame, or any other value encoded as msgpack."""

    def __init__(self, seed: int = 0) -> None:
        from ...node import Node

        self.rng = random.Random(seed)
        self.loop = asyncio.new_event_loop()
        self.network = MemoryNetwork(AsyncioScheduler(self.loop), seed=seed)
        transport = _StrictMemoryTransport(self.network, "fuzz-node")
        self.network._transports["fuzz-node"] = transport
        self.node = Node(NodeConfig.local(name="fuzz-node", call_timeout=0.5, connect_timeout=0.5), transport=transport)
        self.node.add_service("echo", lambda request: request)
        self.loop.run_until_complete(self.node.start())
        self.fed = 0
        self.channels = [c for c in _NODE_CHANNELS if c in self.node.endpoints]

    def close(self) -> None:
        """Stop the node and close its loop."""
        self.loop.run_until_complete(self.node.stop())
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()

    def corpus(self) -> list[Any]:
        """Valid messages of every type on their channels, heads as structured maps."""
        out = []
        for n, (channel, frames) in enumerate(_valid_messages()):
            head = frames[0] if channel != "events" else frames[1]
            mtype, version, header = wire.decode_head(head)
            structured: list[Any] = [{"t": mtype, "v": version, "h": header}]
            rest = frames[1:] if channel != "events" else frames[2:]
            for frame in rest:
                try:
                    structured.append({"msgpack": wire.unpackb(frame)})
                except ProtocolError:
                    structured.append(frame)
            if channel == "events":
                structured.insert(0, frames[0])
            out.append({"c": self.channels.index(channel), "m": structured, "r": n})
        return out

    def feed(self, item: Any) -> None:
        """Hand ``item``'s frames to the node as the transport would; nothing may escape."""
        if not isinstance(item, dict) or not isinstance(item.get("m"), list):
            return
        r = item.get("r")
        r = r if isinstance(r, int) and not isinstance(r, bool) else 0
        parts = item["m"][:80]
        if self.rng.random() < 0.3:  # a source id never seen before (a remote can claim any id in development mode)
            parts = [dict(p, h={**p["h"], "s": self.rng.randbytes(16)})
                     if isinstance(p, dict) and set(p) == {"t", "v", "h"} and isinstance(p["h"], dict) else p
                     for p in parts]
        frames = [_frame(p) for p in parts]
        if any(f is None for f in frames):
            return
        c = item.get("c")
        channel = self.channels[c % len(self.channels) if isinstance(c, int) else 0]
        kind = self.node._channels[channel].kind.value
        route: bytes | None = None
        link: Any = None
        if kind == "control":
            if r % 3 == 2:  # the connecting side: an answer on a link we opened
                link = next(iter(self.node._peers.linked), ("seed", "mem://fz-peer/membership"))
            else:
                route = wire.routing_id(_SRC if r % 2 else self.rng.randbytes(16), r % 256)
        elif kind == "broadcast":
            link = next(iter(self.node._peers.linked), _SRC)
        self.fed += 1
        try:
            self.node._on_frames(channel, frames, route, link)
            if self.fed % 16 == 0:
                self.loop.run_until_complete(asyncio.sleep(0))
                self.loop.run_until_complete(asyncio.sleep(0))
        except Exception as exc:
            raise InvariantViolation(f"{type(exc).__name__} escaped the node's receive path on {channel}: {exc}") from exc

    def check_bounds(self, *, allowed: Iterable[str] = ()) -> dict[str, int]:
        """Measure the node's state (its transport's network excluded); raise when a map outgrew its bound."""
        self.loop.run_until_complete(asyncio.sleep(0))
        sizes = container_sizes(self.node)
        check_sizes(sizes, allowed=allowed)
        return sizes


TARGETS: dict[str, type[DecoderTarget] | type[MembershipTarget] | type[NodeTarget]] = {
    "decoder": DecoderTarget,
    "membership": MembershipTarget,
    "node": NodeTarget,
}
"""Target name -> harness class (what ``python -m fabric.testing.fuzz NAME`` runs)."""

__all__ = ["DEFAULT_BOUND", "LIMITS", "TARGETS", "DecoderTarget", "InvariantViolation", "MembershipTarget",
           "NodeTarget", "check_sizes", "container_sizes", "membership_corpus"]

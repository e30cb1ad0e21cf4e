"""Plumtree epidemic broadcast trees (Leitao, Pereira, Rodrigues, SRDS 2007) as a sans-IO core.

Theory of operation
-------------------
A node splits its overlay neighbours in two sets. **Eager** peers get every new message in full at
once (``gossip``); **lazy** peers only get its id, batched once per lazy round (``ihave``). Neighbours
start eager, so the first broadcasts flood the overlay. A node that receives a copy it has
already seen moves the sender to lazy and answers ``prune``, which moves it to lazy on the sender too.
After a few broadcasts the eager links form a spanning tree of the overlay: every later broadcast costs
exactly N - 1 payload messages, whatever its origin (one shared tree, as in the paper; a tree has no
cycle, so no duplicate). One deviation: a node already on the tree adds *new* links as lazy (see
:meth:`Plumtree.add_neighbour`), so view changes in a stable overlay do not keep creating cycles.

Repair. A node that learns an id through ``ihave`` and has not received the message within
``graft_timeout`` sends ``graft`` to the announcer, which moves that link to eager and sends the
payload. If nothing comes within ``graft_retry`` the next announcer is grafted. When a neighbour fails,
the overlay calls :meth:`Plumtree.remove_neighbour`; the lazy links still carry ihaves, so the first
message that misses the broken branch grafts a new edge: the tree heals itself.

Bounded state. Seen ids (duplicate detection) are kept ``seen_ttl`` and at most ``seen_size``; payloads
(to answer grafts) ``cache_ttl`` and at most ``cache_size``. Ids are ``origin (16) + epoch (4, big
endian) + sequence (8)``: the epoch is the origin's incarnation, so a restarted node never reuses an id.

Routing. The neighbour that delivered the first copy of a message from origin O is on a short path
back to O (it is O's branch of the tree): :meth:`Plumtree.route` returns it, which is how relayed
messages find a member that is not a neighbour.

Message ops (TREE envelopes; body is a msgpack map)::

    op      body                                          meaning
    gossip  {i: bin28, h: int, k: int, p: any}            a message: id, hops so far, kind, payload
    ihave   {i: [bin28]}                                  ids the sender has (lazy push)
    graft   {i: [bin28]}                                  send me these; make our link eager
    prune   {}                                            make our link lazy

``k`` tells the overlay what the payload is (0 = application broadcast, 1 = membership record). Not
thread-safe: one core per node, driven by its overlay.
"""

from __future__ import annotations

import heapq
import math
import struct
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from .config import PlumtreeConfig
from .errors import BadMembershipMessage

OP_GOSSIP = "gossip"
OP_IHAVE = "ihave"
OP_GRAFT = "graft"
OP_PRUNE = "prune"
TREE_OPS = (OP_GOSSIP, OP_IHAVE, OP_GRAFT, OP_PRUNE)
"""The Plumtree ops (TREE envelopes)."""

KIND_APP = 0
"""Gossip kind: an application broadcast (delivered to the application)."""
KIND_RECORD = 1
"""Gossip kind: a membership record (consumed by the overlay)."""

ID_BYTES = 28
_MAX_HOPS = 2**31


@dataclass(frozen=True, slots=True)
class TreeSend:
    """Send a TREE message: ``wire.membership(local_id, op, body, mtype=MsgType.TREE)`` to ``to`` (on the
    overlay's broadcast channel: ``gossip`` on the Node)."""

    to: bytes
    op: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message received for the first time (returned by :meth:`Plumtree.receive` to its overlay)."""

    msg_id: bytes
    origin: bytes
    kind: int
    payload: Any
    hops: int
    source: bytes


def message_origin(msg_id: bytes) -> bytes:
    """The origin node id of a Plumtree message id."""
    return msg_id[:16]


def _bad(message: str) -> BadMembershipMessage:
    return BadMembershipMessage(message)


def _ids(body: dict[str, Any], limit: int) -> list[bytes]:
    ids = body.get("i")
    if not isinstance(ids, list) or len(ids) > limit or \
            not all(isinstance(i, bytes) and len(i) == ID_BYTES for i in ids):
        raise _bad(f"i must be a list of at most {limit} message ids of {ID_BYTES} octets")
    return ids


class Plumtree:
    """The broadcast-tree state of one node (see the module docstring).

    Args:
        node_id: this node's id (16 octets), the origin of the messages it broadcasts.
        epoch: this node's incarnation (part of every id it creates).
        config: timers and bounds.
        now: current time (seconds, monotonic).
    """

    def __init__(self, node_id: bytes, epoch: int, config: PlumtreeConfig | None = None, *, now: float = 0.0) -> None:
        self.node_id = node_id
        self.config = config if config is not None else PlumtreeConfig()
        self._prefix = node_id + struct.pack(">I", epoch & 0xFFFFFFFF)
        self._seq = 0
        self.eager: set[bytes] = set()
        self.lazy: set[bytes] = set()
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._cache: OrderedDict[bytes, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lazy_queue: dict[bytes, list[bytes]] = {}
        self._next_lazy = math.inf
        self._missing: dict[bytes, deque[bytes]] = {}
        self._missing_heap: list[tuple[float, bytes]] = []
        self._route: dict[bytes, bytes] = {}
        self.counters: dict[str, int] = {}

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def set_epoch(self, epoch: int) -> None:
        """The node's incarnation changed: new ids use it."""
        self._prefix = self.node_id + struct.pack(">I", epoch & 0xFFFFFFFF)
        self._seq = 0

    # -- neighbours ---------------------------------------------------------------------------------

    def neighbours(self) -> set[bytes]:
        """Eager and lazy peers."""
        return self.eager | self.lazy

    def add_neighbour(self, peer: bytes, now: float | None = None) -> None:
        """A new overlay link. The paper makes every new link eager; here only while this node has no
        eager link (it is not on the tree yet). A node already on the tree adds the link as lazy: in a
        stable overlay, view changes (promotions, shuffles) would otherwise keep adding cycles that cost
        duplicates until pruned. A lazy link still carries ihaves, so a graft makes it eager when it is
        needed (a broken branch)."""
        if peer not in self.eager and peer not in self.lazy:
            (self.lazy if self.eager else self.eager).add(peer)
            if now is not None:
                self._announce_recent(peer, now)
        self._ensure_eager()

    def _announce_recent(self, peer: bytes, now: float) -> None:
        """Queue an ihave of the messages received in the last ``recent_window`` to a new neighbour.

        Why: ihaves queued for a link are lost when the link goes (view churn), so a node whose links
        change while a message spreads can miss it; the new neighbour grafts what it lacks within a lazy
        round and a graft timeout, instead of waiting for anti-entropy (membership records) or never
        (application broadcasts)."""
        since = now - self.config.recent_window
        recent: list[bytes] = []
        for msg_id, (at, _) in reversed(self._cache.items()):
            if at < since or len(recent) >= self.config.max_ihave:
                break
            recent.append(msg_id)
        if recent:
            recent.reverse()
            self._lazy_queue.setdefault(peer, []).extend(recent)
            if self._next_lazy == math.inf:
                self._next_lazy = now + self.config.lazy_interval
            self._count("recent_announced", len(recent))

    def _ensure_eager(self) -> None:
        # a node whose every link is lazy is off the tree: it would receive, and spread its own
        # broadcasts, only through ihave + graft (a lazy round plus a graft timeout per hop); one lazy
        # link made eager puts it back (the far side adds us on the first copy, or prunes a duplicate)
        if not self.eager and self.lazy:
            peer = min(self.lazy)
            self.lazy.discard(peer)
            self.eager.add(peer)
            self._count("eager_restored")

    def remove_neighbour(self, peer: bytes) -> None:
        """An overlay link went away (failure or view change): forget it everywhere."""
        self.eager.discard(peer)
        self.lazy.discard(peer)
        self._ensure_eager()
        self._lazy_queue.pop(peer, None)
        for announcers in self._missing.values():
            if peer in announcers:
                announcers.remove(peer)

    def has_seen(self, msg_id: Any) -> bool:
        """True when ``msg_id`` was delivered (or originated) here and is still remembered."""
        return msg_id in self._seen if isinstance(msg_id, bytes) else False

    def route(self, target: bytes) -> bytes | None:
        """The neighbour that brought the latest first copy of a message from ``target``, if still a
        neighbour: the next hop towards ``target`` along its branch of the tree."""
        hop = self._route.get(target)
        if hop is not None and (hop in self.eager or hop in self.lazy):
            return hop
        return None

    # -- inputs -------------------------------------------------------------------------------------

    def broadcast(self, payload: Any, kind: int, now: float) -> tuple[bytes, list[TreeSend]]:
        """Originate a message; returns its id and the eager sends (ihaves go out on the next round)."""
        self._seq += 1
        msg_id = self._prefix + struct.pack(">Q", self._seq)
        body = {"i": msg_id, "h": 0, "k": kind, "p": payload}
        self._remember(msg_id, body, now)
        self._ensure_eager()
        out: list[TreeSend] = []
        self._forward(body, self.node_id, now, out)
        self._count("broadcasts")
        return msg_id, out

    def receive(self, source: bytes, op: str, body: Any, now: float, *,
                linked: bool = True) -> tuple[list[TreeSend], Delivery | None]:
        """A TREE message from ``source``. Returns the sends it causes and the delivery (first copy of a
        gossip), if any. ``linked=False``: the source is not (or no longer) an overlay neighbour; a
        gossip is still delivered and forwarded, but the tree sets do not change and nothing is sent
        back to it.

        Raises BadMembershipMessage (nothing changed) when the body violates the op's schema.
        """
        if not isinstance(body, dict):
            raise _bad(f"{op} body must be a map")
        out: list[TreeSend] = []
        if op == OP_GOSSIP:
            msg_id = body.get("i")
            hops = body.get("h")
            kind = body.get("k")
            if not isinstance(msg_id, bytes) or len(msg_id) != ID_BYTES:
                raise _bad("gossip i must be a message id")
            if not isinstance(hops, int) or isinstance(hops, bool) or not 0 <= hops < _MAX_HOPS:
                raise _bad("gossip h must be a small int")
            if kind not in (KIND_APP, KIND_RECORD):
                raise _bad("gossip k must be 0 or 1")
            self._count("recv_gossip")
            if msg_id in self._seen:
                # a duplicate: this link is redundant for the tree
                self._count("duplicates")
                if linked:
                    # the sender holds us eager (it pushed to us) even if we hold it lazy: prune anyway,
                    # or an asymmetric link would cost a duplicate on every broadcast
                    self.eager.discard(source)
                    self.lazy.add(source)
                    self._send(out, source, OP_PRUNE, {})
                return out, None
            fwd = {"i": msg_id, "h": hops + 1, "k": kind, "p": body.get("p")}
            self._remember(msg_id, fwd, now)
            self._missing.pop(msg_id, None)
            origin = msg_id[:16]
            if linked:
                # it proved to be a good path: the paper makes the sender eager
                self.lazy.discard(source)
                self.eager.add(source)
                if origin != self.node_id:
                    self._route[origin] = source
            self._forward(fwd, source, now, out)
            self._count("delivered")
            return out, Delivery(msg_id, origin, kind, fwd["p"], hops + 1, source)
        if not linked:
            self._count("unlinked_control")
            return out, None
        if op == OP_IHAVE:
            ids = _ids(body, self.config.max_ihave)
            self._count("recv_ihave")
            for msg_id in ids:
                if msg_id in self._seen:
                    continue
                announcers = self._missing.get(msg_id)
                if announcers is None:
                    self._missing[msg_id] = deque((source,))
                    heapq.heappush(self._missing_heap, (now + self.config.graft_timeout, msg_id))
                elif source not in announcers:
                    announcers.append(source)
            return out, None
        if op == OP_GRAFT:
            ids = _ids(body, self.config.max_ihave)
            self._count("recv_graft")
            self.lazy.discard(source)
            self.eager.add(source)
            for msg_id in ids:
                cached = self._cache.get(msg_id)
                if cached is not None:
                    self._send(out, source, OP_GOSSIP, cached[1])
                else:
                    self._count("graft_miss")
            return out, None
        if op == OP_PRUNE:
            self._count("recv_prune")
            if source in self.eager:
                self.eager.discard(source)
                self.lazy.add(source)
            return out, None
        self._count("unknown_op")
        return out, None

    def tick(self, now: float) -> list[TreeSend]:
        """Run the due timers: the lazy round (batched ihaves) and graft timeouts."""
        out: list[TreeSend] = []
        if now >= self._next_lazy:
            self._next_lazy = math.inf
            limit = self.config.max_ihave
            for peer in sorted(self._lazy_queue):
                ids = self._lazy_queue[peer]
                for start in range(0, len(ids), limit):
                    self._send(out, peer, OP_IHAVE, {"i": ids[start:start + limit]})
            self._lazy_queue.clear()
        grafts: dict[bytes, list[bytes]] = {}
        heap = self._missing_heap
        while heap and heap[0][0] <= now:
            _, msg_id = heapq.heappop(heap)
            announcers = self._missing.get(msg_id)
            if announcers is None or msg_id in self._seen:
                continue
            # skip announcers that stopped being neighbours
            while announcers and announcers[0] not in self.eager and announcers[0] not in self.lazy:
                announcers.popleft()
            if not announcers:
                del self._missing[msg_id]
                self._count("graft_gave_up")
                continue
            # prefer a link already eager (or grafted in this round): after a mass failure a node misses
            # many messages at once, and grafting each from a different announcer would add as many
            # eager links - cycles that every following broadcast pays for in duplicates until pruned
            peer = next((a for a in announcers if a in grafts), None) or \
                next((a for a in announcers if a in self.eager), None) or announcers[0]
            announcers.remove(peer)
            self.lazy.discard(peer)
            self.eager.add(peer)
            grafts.setdefault(peer, []).append(msg_id)
            heapq.heappush(heap, (now + self.config.graft_retry, msg_id))
        for peer in sorted(grafts):
            self._send(out, peer, OP_GRAFT, {"i": grafts[peer]})
        self._expire(now)
        return out

    def next_deadline(self) -> float:
        """When :meth:`tick` must next run (inf when nothing is pending)."""
        deadline = self._next_lazy
        heap = self._missing_heap
        while heap and heap[0][1] not in self._missing:
            heapq.heappop(heap)
        if heap:
            deadline = min(deadline, heap[0][0])
        return deadline

    # -- internals ----------------------------------------------------------------------------------

    def _send(self, out: list[TreeSend], to: bytes, op: str, body: dict[str, Any]) -> None:
        self._count(f"sent_{op}")
        out.append(TreeSend(to, op, body))

    def _forward(self, body: dict[str, Any], source: bytes, now: float, out: list[TreeSend]) -> None:
        msg_id = body["i"]
        for peer in sorted(self.eager):
            if peer != source:
                self._send(out, peer, OP_GOSSIP, body)
        queued = False
        for peer in self.lazy:
            if peer != source:
                self._lazy_queue.setdefault(peer, []).append(msg_id)
                queued = True
        if queued and self._next_lazy == math.inf:
            self._next_lazy = now + self.config.lazy_interval

    def _remember(self, msg_id: bytes, body: dict[str, Any], now: float) -> None:
        self._seen[msg_id] = now
        self._cache[msg_id] = (now, body)
        self._expire(now)

    def _expire(self, now: float) -> None:
        cfg = self.config
        seen, cache = self._seen, self._cache
        while seen and (len(seen) > cfg.seen_size or next(iter(seen.values())) < now - cfg.seen_ttl):
            seen.popitem(last=False)
        while cache and (len(cache) > cfg.cache_size or next(iter(cache.values()))[0] < now - cfg.cache_ttl):
            cache.popitem(last=False)

    def stats(self) -> dict[str, int]:
        """Counters plus the sizes of the bounded structures."""
        out = dict(self.counters)
        out.update(eager=len(self.eager), lazy=len(self.lazy), seen=len(self._seen), cached=len(self._cache),
                   missing=len(self._missing), routes=len(self._route))
        return out

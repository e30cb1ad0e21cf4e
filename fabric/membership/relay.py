"""Relayed direct messages over a partial view: hop-by-hop routing with a hop limit, exactly once.

A ``relay`` (TREE envelope) carries ``{o: origin, t: target, h: hops left, i: relay id, n?: hops so far,
p: payload}``. The next hop is ``t`` itself when it is a neighbour, else a learnt route - the neighbour
a relay from ``t`` last came from (the reverse path of its first copies), or the tree branch ``t``'s
broadcasts come down - else every neighbour but the previous hop (a flood bounded by the hop limit; the
relay id makes it exactly-once). A relay whose hops run out is dropped and counted (``relay_expired``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection
from typing import Any

from .interface import OP_RELAY, Deliver, _bad, _relay_body
from .plumtree import TreeSend


class Relays:
    """Routing state of relayed messages (ids seen, learnt routes) for one node.

    Args:
        seen_size: relay ids remembered for duplicate detection (the oldest are forgotten first).
    """

    def __init__(self, seen_size: int) -> None:
        self._seq = 0
        self._seen: dict[bytes, None] = {}
        self._routes: dict[bytes, bytes] = {}
        self._seen_size = seen_size
        self.counters: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def send(self, me: bytes, incarnation: int, target: bytes, payload: Any, hops: int,
             neighbours: Collection[bytes], tree_route: Callable[[bytes], bytes | None]) -> list[TreeSend]:
        """Start relaying ``payload`` from this node (``me``) to ``target`` with ``hops`` hops at most."""
        self._seq += 1
        relay_id = me + struct.pack(">IQ", incarnation & 0xFFFFFFFF, self._seq)
        self._seen[relay_id] = None
        return self._forward({"o": me, "t": target, "h": hops, "i": relay_id, "p": payload}, me, neighbours,
                             tree_route)

    def receive(self, me: bytes, source: bytes, body: Any, neighbours: Collection[bytes],
                tree_route: Callable[[bytes], bytes | None]) -> list[TreeSend | Deliver]:
        """A ``relay`` from ``source``: deliver it here, forward it, or drop a duplicate / an expired one.

        Raises BadMembershipMessage on a bad body."""
        origin, target, hops = _relay_body(body)
        relay_id = body.get("i")
        if not isinstance(relay_id, bytes) or len(relay_id) != 28:
            raise _bad("relay i must be a relay id")
        self._count("recv_relay")
        if relay_id in self._seen:
            self._count("relay_duplicates")
            return []
        if source in neighbours and origin != me:
            # reverse path, from first copies only (a duplicate may come from further away): the
            # first copies of a flood form a shortest-delay tree rooted at the origin
            self._routes[origin] = source
        self._seen[relay_id] = None
        if len(self._seen) > self._seen_size:
            del self._seen[next(iter(self._seen))]
        if target == me:
            return [Deliver(origin, body.get("p"), True, body.get("n", 1))]
        if hops <= 1:
            self._count("relay_expired")
            return []
        return list(self._forward({"o": origin, "t": target, "h": hops - 1, "i": relay_id, "p": body.get("p"),
                                   "n": body.get("n", 1) + 1}, source, neighbours, tree_route))

    def _forward(self, body: dict[str, Any], previous: bytes, neighbours: Collection[bytes],
                 tree_route: Callable[[bytes], bytes | None]) -> list[TreeSend]:
        """Next hop: the target if it is a neighbour; else a known route; else a bounded flood."""
        target = body["t"]
        if target in neighbours:
            hops = [target]
        else:
            hop = self._routes.get(target)
            if hop is None or hop not in neighbours:
                hop = tree_route(target)
            hops = [hop] if hop is not None and hop != previous else [n for n in sorted(neighbours) if n != previous]
        if not hops:
            self._count("relay_no_route")
            return []
        if len(hops) > 1:
            self._count("relay_floods")
        out = []
        for hop in hops:
            self._count("sent_relay")
            out.append(TreeSend(hop, OP_RELAY, body))
        return out

"""HyParView partial views (Leitao, Pereira, Rodrigues, DSN 2007) as a sans-IO overlay, with Plumtree
broadcast and cluster-wide membership records on top (see :mod:`fabric.membership.overlay`).

Theory of operation
-------------------
Each node keeps a small symmetric **active view** (``active_max``, default 6): the only nodes it links
to, heartbeats and monitors, and the links Plumtree broadcasts over. A larger **passive view**
(``passive_max``, 30) holds identities only: backups to replace failed active neighbours.

Join. The joiner dials a seed (HELLO/WELCOME); on :meth:`HyParView.contact` it adds the seed to its
active view and sends ``join``. The contact node adds the joiner (dropping a random active neighbour
with ``disconnect`` when full), answers with its membership state (``sync``), announces the joiner's
record (batched with other changes, see :mod:`fabric.membership.overlay`), and sends ``forward_join`` with TTL ``arwl`` to its other active neighbours. Each hop of that
random walk adds the joiner to its passive view when the TTL equals ``prwl``, and the hop where the TTL
reaches 0 (or whose only neighbour is the previous hop) adds it to its active view and sends it a
high-priority ``neighbor`` request, which the joiner always accepts: views stay symmetric.

Neighbor requests. A node short of active neighbours promotes a random passive node: it links to it and
sends ``neighbor`` with priority high (its active view is empty) or low. High is always accepted
(dropping a random neighbour if full); low only when there is room. The answer is ``neighbor_reply``
(a=1 accepted, a=0 rejected); without an answer within ``neighbor_timeout`` the passive node is
considered dead and dropped. A rejecting node links only to send the answer.

Failure. Heartbeats go to active neighbours only; phi over the threshold for ``suspect_timeout``, or a
:meth:`link_down` report from the transport, makes the neighbour failed: it leaves the active view
(not to the passive one), its record is marked down and broadcast, and a passive node is promoted at
once. Every ``promotion_interval`` a node below ``active_max`` promotes again. A heartbeat from a node
that is not an active neighbour (a view that became asymmetric through a race) is answered with
``disconnect``.

Non-neighbours. Every ``probe_interval`` a node also pings one random alive member that is not a
neighbour (``ping``/``pong``, two attempts ``neighbor_timeout`` apart): a crashed member whose active
neighbours all crashed with it is then reported within seconds instead of ``record_ttl`` (SWIM's random
probing, one message pair per node per interval). The same timer probes one random *down* member with a
high-priority ``neighbor`` request, which is how the two sides of a healed partition link again.

Shuffle. Every ``shuffle_interval`` a node sends ``shuffle`` with itself, ``ka`` active and ``kp``
passive identities on a random walk of ``shuffle_ttl`` hops; the node where it stops answers with as
many of its passive identities (``shuffle_reply``), routed back along the recorded path (each hop is an
active neighbour, so no temporary link is needed), and both merge what they received into their passive
views (evicting what they sent first).

Message ops (MEMBERSHIP envelopes on the ``membership`` channel; the body is a msgpack map)::

    op              body                                       meaning
    hb              {in: int}                                  heartbeat to an active neighbour
    join            {m: ENTRY}                                 the sender joins through us
    forward_join    {m: ENTRY, t: int}                         random walk of a joiner, t = TTL left
    neighbor        {m: ENTRY, p: 0|1}                         add me to your active view (p=1 high)
    neighbor_reply  {m: ENTRY, a: 0|1}                         accepted (1) or rejected (0)
    disconnect      {}                                         I dropped you from my active view
    shuffle         {o: ENTRY, t: int, n: [ENTRY], p: [id]}    passive-view exchange; p = path so far
    shuffle_reply   {n: [ENTRY], p: [id]}                      answer, routed back along p
    ping            {m: ENTRY}                                 are you alive? (to a non-neighbour member)
    pong            {}                                         yes
    sync            {s?: u64, d?: [[id, in, v, st]],           anti-entropy (see overlay.py): summary,
                     m?: [RECORD], w?: [id]}                   digest, records, wanted ids

    ENTRY  = {id: bin16, nm: str, in: int, md: {str: str}, ep: {channel: [kind, endpoint, parallelism]}}
    RECORD = ENTRY + {v: int, st: 0|2|3}

Plumtree's TREE ops (gossip/ihave/graft/prune) and ``relay`` are documented in
:mod:`fabric.membership.plumtree` and :mod:`fabric.membership.overlay`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from .config import MembershipConfig
from .overlay import (
    OP_HEARTBEAT,
    OP_SYNC,
    ST_ALIVE,
    ST_DOWN,
    ST_LEFT,
    OverlayEffect,
    RecordOverlay,
    _bad,
    _node_id,
    _Record,
    _uint,
    identity_from_wire,
    identity_to_wire,
)
from .types import Connect, Disconnect, Identity, Member

OP_JOIN = "join"
OP_FORWARD_JOIN = "forward_join"
OP_NEIGHBOR = "neighbor"
OP_NEIGHBOR_REPLY = "neighbor_reply"
OP_DISCONNECT = "disconnect"
OP_SHUFFLE = "shuffle"
OP_SHUFFLE_REPLY = "shuffle_reply"
OP_PING = "ping"
OP_PONG = "pong"
HYPARVIEW_OPS = (OP_HEARTBEAT, OP_SYNC, OP_JOIN, OP_FORWARD_JOIN, OP_NEIGHBOR, OP_NEIGHBOR_REPLY, OP_DISCONNECT,
                 OP_SHUFFLE, OP_SHUFFLE_REPLY, OP_PING, OP_PONG)
"""The MEMBERSHIP ops HyParView sends and understands."""

_MAX_LIST = 64


def _entries(raw: Any, name: str, parse: Callable[[Any], Identity]) -> list[Identity]:
    if not isinstance(raw, list) or len(raw) > _MAX_LIST:
        raise _bad(f"{name} must be a list of at most {_MAX_LIST} entries")
    return [parse(e) for e in raw]


class HyParView(RecordOverlay):
    """A HyParView node (see the module docstring); the :class:`~fabric.membership.overlay.Overlay`
    interface plus :meth:`active_view` / :meth:`passive_view`.

    Args:
        identity: this node.
        config: overlay configuration (views in ``config.hyparview``, broadcast in ``config.plumtree``).
        rng: seeded random source (walks, promotions, shuffles).
        now: current time.
    """

    membership_ops = HYPARVIEW_OPS

    def __init__(self, identity: Identity, config: MembershipConfig | None = None, *,
                 rng: random.Random | None = None, now: float = 0.0) -> None:
        super().__init__(identity, config, rng=rng, now=now)
        self.hv = self.config.hyparview
        self._passive: dict[bytes, Identity] = {}
        self._pending: dict[bytes, float] = {}  # promoted passive node -> answer deadline
        self._next_shuffle = now + self.hv.shuffle_interval * (0.5 + self._rng.random())
        self._next_promotion = now + self.hv.promotion_interval
        self._shuffled: set[bytes] = set()  # passive ids we sent in our last shuffle (evicted first)
        self._next_probe = now + self.hv.probe_interval if self.hv.probe_interval > 0 else math.inf
        self._probing: set[bytes] = set()  # down members we sent a probe to
        self._pings: dict[bytes, tuple[float, int]] = {}  # pinged member -> (answer deadline, attempt)
        self._ids_cache: list[bytes] | None = None

    # -- views ---------------------------------------------------------------------------------------

    def active_view(self) -> list[bytes]:
        """Node ids of the active view (sorted)."""
        return sorted(self._nbrs)

    def passive_view(self) -> list[bytes]:
        """Node ids of the passive view (sorted)."""
        return sorted(self._passive)

    def stats(self) -> dict[str, int]:
        """See :meth:`RecordOverlay.stats`, plus the view sizes."""
        out = super().stats()
        out.update(active=len(self._nbrs), passive=len(self._passive), pending=len(self._pending))
        return out

    def _identity(self, raw: Any) -> Identity:
        """Parse an ENTRY, reusing the identity we already hold for that (id, incarnation): parsing
        endpoints and metadata is most of the cost of a view message."""
        if isinstance(raw, dict):
            nid, inc = raw.get("id"), raw.get("in")
            if isinstance(nid, bytes):
                held = self._records.get(nid)
                known = held.identity if held is not None else self._passive.get(nid)
                if known is not None and known.incarnation == inc and not isinstance(inc, bool):
                    return known
        return identity_from_wire(raw)

    def _entry(self) -> dict[str, Any]:
        return identity_to_wire(self.local)

    def _add_active(self, identity: Identity, now: float, effects: list[OverlayEffect]) -> None:
        nid = identity.node_id
        if nid == self.node_id or nid in self._nbrs:
            return
        self._pending.pop(nid, None)
        if len(self._nbrs) >= self.hv.active_max:
            victim = self._rng.choice(sorted(self._nbrs))
            self._send(effects, victim, OP_DISCONNECT, {})
            victim_identity = self._nbrs[victim].identity
            self._drop_neighbour(victim, effects)
            self._add_passive(victim_identity)
        self._passive.pop(nid, None)
        self._add_neighbour(identity, now, effects)

    def _add_passive(self, identity: Identity, avoid: set[bytes] | None = None) -> None:
        nid = identity.node_id
        if nid == self.node_id or nid in self._nbrs or nid in self._passive:
            return
        rec = self._records.get(nid)
        if rec is not None and rec.st != ST_ALIVE and rec.identity.incarnation >= identity.incarnation:
            return  # known dead
        if len(self._passive) >= self.hv.passive_max:
            candidates = [p for p in sorted(self._passive) if avoid and p in avoid] or sorted(self._passive)
            del self._passive[self._rng.choice(candidates)]
        self._passive[nid] = identity

    def _promote(self, now: float, effects: list[OverlayEffect]) -> None:
        """Ask one random passive node to become an active neighbour."""
        choices = [p for p in sorted(self._passive) if p not in self._pending]
        if not choices:
            return
        nid = self._rng.choice(choices)
        identity = self._passive[nid]
        self._pending[nid] = now + self.hv.neighbor_timeout
        self._count("promotions")
        effects.append(Connect(identity, probe=True))
        # high priority when the view is empty (the paper), and also below active_min: in a cluster where
        # every view is full, low-priority requests from a node left with one or two links are all refused
        high = len(self._nbrs) < self.hv.active_min
        self._send(effects, nid, OP_NEIGHBOR, {"m": self._entry(), "p": 1 if high else 0})

    def _probe_down(self, now: float, effects: list[OverlayEffect]) -> None:
        """Ask one random down member to be our neighbour (high priority): how a healed partition finds
        the other side again. A dead one times out like any unanswered promotion."""
        if not self._joined:
            return
        down = [nid for nid, rec in sorted(self._records.items())
                if rec.st == ST_DOWN and nid not in self._pending and nid not in self._nbrs]
        if not down:
            return
        nid = self._rng.choice(down)
        self._pending[nid] = now + self.hv.neighbor_timeout
        self._probing.add(nid)
        self._count("probes")
        effects.append(Connect(self._records[nid].identity, probe=True))
        self._send(effects, nid, OP_NEIGHBOR, {"m": self._entry(), "p": 1})

    def _ping_member(self, now: float, effects: list[OverlayEffect]) -> None:
        """Ping one random alive member that is not a neighbour. Its neighbours watch it, but when they all
        crashed with it nobody would report it until ``record_ttl``: one ping per probe interval per node
        finds such a member within about N / (N - 1) probe intervals per survivor (SWIM's idea)."""
        if not self._joined:
            return
        if not self._records:
            return
        # a few random draws instead of a scan of every record (O(1) per round at any cluster size)
        ids = self._record_ids()
        for _ in range(8):
            nid = ids[self._rng.randrange(len(ids))]
            rec = self._records.get(nid)
            if rec is not None and rec.st == ST_ALIVE and nid not in self._nbrs and nid not in self._pings \
                    and nid not in self._pending:
                break
        else:
            return
        self._pings[nid] = (now + self.hv.neighbor_timeout, 1)
        self._count("pings")
        effects.append(Connect(self._records[nid].identity, probe=True))
        self._send(effects, nid, OP_PING, {"m": self._entry()})

    def _record_ids(self) -> list[bytes]:
        """Sorted record ids, cached until the set of records changes."""
        if self._ids_cache is None or len(self._ids_cache) != len(self._records):
            self._ids_cache = sorted(self._records)
        return self._ids_cache

    def _ping_timeouts(self, now: float, effects: list[OverlayEffect]) -> None:
        for nid in sorted(self._pings):
            deadline, attempt = self._pings[nid]
            if deadline > now:
                continue
            rec = self._records.get(nid)
            if rec is None or rec.st != ST_ALIVE or nid in self._nbrs:
                del self._pings[nid]
                continue
            if attempt < 2:  # one lost message is not a failure
                self._pings[nid] = (now + self.hv.neighbor_timeout, attempt + 1)
                self._send(effects, nid, OP_PING, {"m": self._entry()})
                continue
            del self._pings[nid]
            self._count("ping_failures")
            if nid not in self._pending:
                effects.append(Disconnect(nid))
            self._set_status(rec, ST_DOWN, "unreachable", now, effects)
            self._broadcast_record(rec, now, effects, observed=True)

    def _fill(self, now: float, effects: list[OverlayEffect], *, urgent_only: bool = True) -> None:
        """Promote passive nodes: at once up to ``active_min`` (one request per missing slot); with
        ``urgent_only=False`` (the promotion timer) one more request while below ``active_max``.

        Why not fill to ``active_max`` at once: when every view is nearly full (an odd number of free
        slots cannot pair up), each rejection would trigger the next request, forever."""
        hv = self.hv
        while len(self._nbrs) + len(self._pending) < hv.active_min:
            before = len(self._pending)
            self._promote(now, effects)
            if len(self._pending) == before:
                return
        if not urgent_only and not self._pending and len(self._nbrs) < hv.active_max:
            self._promote(now, effects)

    def _on_neighbour_lost(self, node_id: bytes, failed: bool, now: float, effects: list[OverlayEffect]) -> None:
        self._fill(now, effects)

    def _on_record(self, rec: _Record, before: int | None, now: float, effects: list[OverlayEffect]) -> None:
        if rec.st == ST_ALIVE:
            return
        nid = rec.node_id
        self._passive.pop(nid, None)
        if nid in self._pending:
            del self._pending[nid]
            effects.append(Disconnect(nid))
        # a down record about a neighbour we still hear from is someone else's broken link: our own
        # detector decides (and the neighbour refutes); a left one goes at once
        if rec.st == ST_LEFT and self._drop_neighbour(nid, effects):
            self._on_neighbour_lost(nid, False, now, effects)

    # -- protocol ------------------------------------------------------------------------------------

    def adopt(self, members: Sequence[Member], now: float) -> list[OverlayEffect]:
        """See :meth:`Overlay.adopt`; a random sample of them also fills the passive view, so once joined
        the node promotes real members instead of waiting for shuffles to bring candidates."""
        effects = super().adopt(members, now)
        others = sorted((m for m in members if m.node_id != self.node_id), key=lambda m: m.node_id)
        for m in self._rng.sample(others, min(len(others), self.hv.passive_max)):
            self._add_passive(m.identity())
        return effects

    def contact(self, identity: Identity, now: float) -> list[OverlayEffect]:
        """The handshake with a seed completed: while joining, make it an active neighbour and ``join``."""
        effects: list[OverlayEffect] = []
        if self._leaving or identity.node_id == self.node_id or not self._dialing:
            return effects
        if identity.node_id in self._nbrs:
            return effects
        self._add_active(identity, now, effects)
        self._send(effects, identity.node_id, OP_JOIN, {"m": self._entry()})
        # the contact's state is a snapshot, and announcements made while our first links change hands
        # (in a join storm the contact soon drops us for the next joiner) can miss us: compare state with
        # a neighbour soon instead of one sync interval later
        cfg = self.config
        self._next_sync = min(self._next_sync, now + 2 * cfg.plumtree.graft_timeout + 4 * cfg.announce_interval)
        return effects

    def _receive_op(self, source: bytes, op: str, body: dict[str, Any], now: float,
                    effects: list[OverlayEffect]) -> None:
        hv = self.hv
        if op == OP_JOIN:
            joiner = self._identity(body.get("m"))
            if joiner.node_id != source:
                raise _bad("join m must be the sender's entry")
            self._add_active(joiner, now, effects)
            # the joiner's record goes out in our next announcement batch (a join storm through one seed
            # costs a few broadcasts, not one per joiner); the joiner gets our state at once
            rec = _Record(joiner, 0, ST_ALIVE, now)
            old = self._records.get(source)
            if old is None or old.key() < rec.key():
                self._merge(rec, now, effects)
                self._broadcast_record(self._records.get(source, rec), now, effects)
            self._send(effects, source, OP_SYNC, {"m": self._state()})
            entry = body["m"]
            for nid in sorted(self._nbrs):
                if nid != source:
                    self._send(effects, nid, OP_FORWARD_JOIN, {"m": entry, "t": hv.arwl})
            return
        if op == OP_FORWARD_JOIN:
            joiner = self._identity(body.get("m"))
            ttl = _uint(body.get("t"), "forward_join t")
            if joiner.node_id == self.node_id:
                return
            others = [n for n in sorted(self._nbrs) if n not in (source, joiner.node_id)]
            if ttl == 0 or not others:
                if joiner.node_id not in self._nbrs:
                    self._add_active(joiner, now, effects)
                    self._send(effects, joiner.node_id, OP_NEIGHBOR, {"m": self._entry(), "p": 1})
                return
            if ttl == hv.prwl:
                self._add_passive(joiner)
            self._send(effects, self._rng.choice(others), OP_FORWARD_JOIN, {"m": body["m"], "t": ttl - 1})
            return
        if op == OP_NEIGHBOR:
            peer = self._identity(body.get("m"))
            high = body.get("p") == 1
            if peer.node_id != source:
                raise _bad("neighbor m must be the sender's entry")
            if source in self._nbrs:
                self._send(effects, source, OP_NEIGHBOR_REPLY, {"m": self._entry(), "a": 1})
                return
            if high or len(self._nbrs) < hv.active_max:
                self._add_active(peer, now, effects)
                self._send(effects, source, OP_NEIGHBOR_REPLY, {"m": self._entry(), "a": 1})
            else:
                # link only to answer; the driver delivers queued messages before closing the link
                self._count("neighbor_rejected")
                effects.append(Connect(peer, probe=True))
                self._send(effects, source, OP_NEIGHBOR_REPLY, {"m": self._entry(), "a": 0})
                effects.append(Disconnect(source))
                self._add_passive(peer)
            return
        if op == OP_NEIGHBOR_REPLY:
            peer = self._identity(body.get("m"))
            if peer.node_id != source:
                raise _bad("neighbor_reply m must be the sender's entry")
            accepted = body.get("a") == 1
            was_pending = self._pending.pop(source, None) is not None
            probed = source in self._probing
            self._probing.discard(source)
            if source in self._nbrs:
                return
            if accepted and (probed or len(self._nbrs) < hv.active_max):
                # a probed down member answered: keep the link even if full, it may be the only one to
                # the other side of a healed partition
                self._add_active(peer, now, effects)
            elif accepted:
                # it took us in, but we filled up meanwhile: undo its side
                if not was_pending:
                    effects.append(Connect(peer, probe=True))
                self._send(effects, source, OP_DISCONNECT, {})
                effects.append(Disconnect(source))
                self._add_passive(peer)
            else:
                effects.append(Disconnect(source))
                self._add_passive(peer)
                self._fill(now, effects)
            return
        if op == OP_PING:
            peer = self._identity(body.get("m"))
            if peer.node_id != source:
                raise _bad("ping m must be the sender's entry")
            if source in self._nbrs:
                self._send(effects, source, OP_PONG, {})
            else:
                # link only to answer
                effects.append(Connect(peer, probe=True))
                self._send(effects, source, OP_PONG, {})
                if source not in self._pending and source not in self._pings:
                    effects.append(Disconnect(source))
            return
        if op == OP_PONG:
            if self._pings.pop(source, None) is not None and source not in self._nbrs \
                    and source not in self._pending:
                effects.append(Disconnect(source))
            return
        if op == OP_DISCONNECT:
            if source in self._nbrs:
                identity = self._nbrs[source].identity
                self._drop_neighbour(source, effects)
                self._add_passive(identity)
                self._count("disconnected_by_peer")
                self._fill(now, effects)
            return
        if op == OP_SHUFFLE:
            raw_origin = body.get("o")
            origin_id = _node_id(raw_origin.get("id") if isinstance(raw_origin, dict) else None, "shuffle o id")
            ttl = _uint(body.get("t"), "shuffle t")
            path = body.get("p")
            if not isinstance(path, list) or len(path) > _MAX_LIST:
                raise _bad("shuffle p must be a list of node ids")
            for nid in path:
                _node_id(nid, "shuffle p")
            others = [n for n in sorted(self._nbrs) if n not in (source, origin_id)]
            if ttl > 0 and others and len(path) < _MAX_LIST:
                # forwarded as is: the entries are parsed only where the walk stops
                self._send(effects, self._rng.choice(others), OP_SHUFFLE,
                           {"o": raw_origin, "t": ttl - 1, "n": body.get("n"), "p": [*path, self.node_id]})
                return
            origin = self._identity(raw_origin)
            sample = _entries(body.get("n"), "shuffle n", self._identity)
            if origin.node_id == self.node_id or not path or path[-1] != source:
                return
            reply = [self._passive[p] for p in self._rng.sample(sorted(self._passive), min(len(sample), len(self._passive)))]
            self._send(effects, source, OP_SHUFFLE_REPLY,
                       {"n": [identity_to_wire(i) for i in reply], "p": path[:-1]})
            sent = {i.node_id for i in reply}
            for identity in [origin, *sample]:
                self._add_passive(identity, sent)
            return
        if op == OP_SHUFFLE_REPLY:
            sample = _entries(body.get("n"), "shuffle_reply n", self._identity)
            path = body.get("p")
            if not isinstance(path, list) or len(path) > _MAX_LIST:
                raise _bad("shuffle_reply p must be a list of node ids")
            for nid in path:
                _node_id(nid, "shuffle_reply p")
            if path:
                nxt = path[-1]
                if nxt in self._nbrs:
                    self._send(effects, nxt, OP_SHUFFLE_REPLY, {"n": body["n"], "p": path[:-1]})
                else:
                    self._count("shuffle_reply_lost")
                return
            for identity in sample:
                self._add_passive(identity, self._shuffled)
            return

    def _on_stray_heartbeat(self, source: bytes, body: dict[str, Any], now: float,
                            effects: list[OverlayEffect]) -> None:
        # the sender holds us in its active view but we do not hold it: restore symmetry
        self._count("stray_hb")
        rec = self._records.get(source)
        identity = rec.identity if rec is not None else self._passive.get(source)
        if identity is None or source in self._pending:
            return
        effects.append(Connect(identity, probe=True))
        self._send(effects, source, OP_DISCONNECT, {})
        effects.append(Disconnect(source))

    # -- timers --------------------------------------------------------------------------------------

    def _policy_deadline(self) -> float:
        deadline = min(self._next_shuffle, self._next_promotion, self._next_probe)
        if self._pings:
            deadline = min(deadline, min(d for d, _ in self._pings.values()))
        if self._pending:
            deadline = min(deadline, min(self._pending.values()))
        return deadline

    def _policy_tick(self, now: float, effects: list[OverlayEffect]) -> None:
        hv = self.hv
        for nid in sorted(self._pending):
            if self._pending[nid] <= now:
                # no answer: consider it dead
                del self._pending[nid]
                self._probing.discard(nid)
                self._passive.pop(nid, None)
                self._count("promotion_timeouts")
                if nid not in self._nbrs:
                    effects.append(Disconnect(nid))
                self._fill(now, effects)
        if now >= self._next_promotion:
            self._next_promotion = now + hv.promotion_interval
            if self._joined:
                self._fill(now, effects, urgent_only=False)
        if self._pings:
            self._ping_timeouts(now, effects)
        if now >= self._next_probe:
            self._next_probe = now + hv.probe_interval
            self._probe_down(now, effects)
            self._ping_member(now, effects)
        if now >= self._next_shuffle:
            self._next_shuffle = now + hv.shuffle_interval
            if self._nbrs:
                active = [self._nbrs[n].identity for n in self._rng.sample(sorted(self._nbrs), min(hv.shuffle_ka, len(self._nbrs)))]
                passive = [self._passive[n] for n in self._rng.sample(sorted(self._passive), min(hv.shuffle_kp, len(self._passive)))]
                self._shuffled = {i.node_id for i in passive}
                target = self._rng.choice(sorted(self._nbrs))
                self._send(effects, target, OP_SHUFFLE, {
                    "o": self._entry(), "t": hv.shuffle_ttl,
                    "n": [identity_to_wire(i) for i in [self.local, *active, *passive]], "p": [self.node_id]})

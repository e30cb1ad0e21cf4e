"""Full-mesh membership: the policy of the membership engine in which every node links to and monitors
every other node.

Theory of operation
-------------------
State (the engine's, :mod:`fabric.membership.engine`). Each node holds one *entry* - the member record of
:mod:`fabric.membership.records`, the same CRDT every overlay merges - per known node id: identity (name,
incarnation, metadata, endpoints) plus a gossip status ``st``: 0 alive, 2 down, 3 left, and a metadata
version ``v``. Records merge like a CRDT register per node id: the one with the larger key
``(incarnation, st, v)`` wins. So down and left are terminal *for an incarnation*, only the owner can
raise its own incarnation or metadata version, and stale gossip can never bring an old incarnation back.

What this policy adds to the engine: neighbours are every alive member (each one monitored by its own
detector), a changed record is pushed straight to each, anti-entropy is digest push-pull, and a member
is up only with direct evidence of its incarnation; tombstones, graves and name replacement.

Dissemination (push + anti-entropy). A node that *originates* a change (a seed accepting a join, an
observer declaring a peer down, a leave, a refutation, a metadata change) pushes the changed entries at
once to every peer it links to (full mesh: it links to all). Loss is repaired by push-pull
anti-entropy: every ``gossip_interval`` a node sends ``gossip_fanout`` random peers a *digest* of its
state (``sync`` with ``d`` = ``[id, in, st, v]`` per entry, plus its own entry); the receiver answers
with the entries it holds newer or the sender lacks (``m``) and the ids it wants (``w``); the opener
sends those. Three messages at most, one in steady state. Digests are O(members) but a quarter of the
full state; that is fine for a full mesh, whose heartbeats are O(members) anyway.

Local view. A gossiped entry is a *claim*. A member becomes locally **up** (``MemberUp``) only when the
claim is alive *and* this node has direct evidence of that incarnation: a handshake (``contact``) or a
membership message from the node carrying the same incarnation. So a crashed node whose alive claim is
still circulating never shows up, and an old incarnation is never resurrected.

Failure detection is the engine's one loop (:meth:`~fabric.membership.engine.MemberEngine._monitor`);
this policy monitors every up member. Every ``heartbeat_interval`` a node sends ``hb`` to every node it
believes alive. A :class:`~fabric.membership.detector.PhiAccrualDetector` per up member is fed by every
sign of life (membership messages and, through :meth:`FullMeshMembership.traffic`, any other traffic).
When phi crosses the threshold the member is locally *suspect* (``MemberChanged``), ``indirect_probes``
other members are asked to probe it, and it is probed directly ``suspect_probes`` times (``hb`` with
``a=1``, answered at once by a live node, so a run of randomly lost heartbeats does not kill it); a member
still suspect after its (Lifeguard) suspicion timeout is declared **down** (``MemberDown``) and the down
entry is pushed to everyone.

Refutation. A live node that receives its own entry marked down (a false suspicion, or the far side of a
healed partition) or with a higher incarnation (it restarted with the same node id and a lower number)
takes a new incarnation ``max(mine, theirs) + 1`` and pushes it. Others see ``MemberDown`` for the old
incarnation and ``MemberUp`` for the new: a new incarnation, never confused with the old. A node with a
new id but the same *name* and a higher incarnation replaces the old one if that one has gone silent
(it is declared down, reason ``"replaced"``): names are unique in a cluster. Two live nodes sharing a
name (a misconfiguration) are both kept and counted as ``name_conflicts``, never flapping.

Healing. Down entries are kept as tombstones for ``tombstone_ttl`` and one of them is probed (full state
push) every ``probe_down_interval``: when a partition heals, the probe reaches the other side, whose
nodes learn they were declared down and refute, and both sides re-merge. Left members are disconnected
at once. Tombstones expire into *graves* (node id -> last dead incarnation, kept ``grave_ttl``): a
claim for a buried incarnation becomes a tombstone again, never up, and is answered with its down
entry so a live owner refutes. State is bounded (``max_members`` caps entries and graves).

Joining. :meth:`FullMeshMembership.join` returns :class:`Dial` effects: the driver performs the HELLO /
WELCOME handshake with each seed endpoint and reports the seed's identity with :meth:`contact`; the core
then sends ``join`` with its own entry. The seed merges it, pushes it to everyone, and answers with its
full state. The node is *joined* once a peer's state lists it alive. Seeds are re-dialled with
exponential backoff until then, and again whenever the node has no live peer left; a joined node also
dials, every ``join_retry_max``, any seed that is not among its live members (how a partition that
outlived the tombstones heals).

Message ops (MEMBERSHIP envelopes on the ``membership`` channel; the body is a msgpack map)::

    op     body                                       meaning
    hb     {in: int, a?: int}                         heartbeat; ``in`` = sender's incarnation; a=1: a
                                                      suspecter's probe, answer with a heartbeat at once
    join   {in: int, m: ENTRY}                        ask a seed to admit the sender (``m`` = its entry)
    sync   {in: int, m?: [ENTRY], r?: int,            merge ``m``; r=1: ``m`` is the sender's full state,
            d?: [[id, in, st, v]], w?: [id]}          answer with what it lacks; d: digest of the sender's
                                                      state, answer with what it lacks (m) and the ids we
                                                      want (w); w: answer with those entries

    ENTRY = {id: bin16, nm: str, in: int, st: int (0 alive, 2 down, 3 left), v: int, mv: int,
             md: {str: str}, ep: {channel: [kind: str, endpoint: str, parallelism: int]}}

ENTRY is the overlays' RECORD; ``mv`` repeats ``v`` for full-mesh peers of earlier versions (either is read).

Unknown ops are ignored and counted (append-only rule); unknown body keys are ignored. A body that
violates the schema raises :class:`~fabric.membership.errors.BadMembershipMessage` and changes nothing.

Driving it. All methods take ``now`` (seconds, monotonic) and return a list of effects to perform in
order: :class:`Send`, :class:`Connect`, :class:`Disconnect`, :class:`Dial`, and the membership events
:class:`MemberUp`, :class:`MemberDown`, :class:`MemberLeft`, :class:`MemberChanged`, :class:`Joined`.
Call :meth:`FullMeshMembership.tick` at :meth:`FullMeshMembership.next_deadline`. Not thread-safe: one
core per node, driven from the node's loop.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from .config import MembershipConfig
from .engine import MemberEngine, reconcile
from .health import (
    PROBE_OPS,
)
from .records import Key, _digest_from_wire, _Record, _record_from_wire, mesh_wire
from .types import (
    ST_ALIVE,
    ST_DOWN,
    ST_LEFT,
    Connect,
    Dial,
    Disconnect,
    Effect,
    Identity,
    Joined,
    MemberChanged,
    MemberDown,
    MemberLeft,
    _bad,
    _int,
)

OP_HEARTBEAT = "hb"
OP_JOIN = "join"
OP_SYNC = "sync"
OPS = (OP_HEARTBEAT, OP_JOIN, OP_SYNC, *PROBE_OPS)
"""Membership ops this implementation sends and understands."""

__all__ = ["OPS", "FullMeshMembership"]


class FullMeshMembership(MemberEngine[MembershipConfig]):
    """The full-mesh policy of the membership engine (see the module docstring): every alive member is
    a neighbour, changes are pushed straight to each, anti-entropy is digest push-pull; a member is up
    only with direct evidence of its incarnation.

    Args:
        identity: this node (its incarnation may grow later by refutation: read :attr:`local`).
        config: timers and thresholds.
        rng: the seeded random source for gossip target choice.
        now: current time; the first heartbeat and gossip round are due one interval later.

    Raises:
        MembershipError: when the identity's node id is not 16 octets.
    """

    def __init__(self, identity: Identity, config: MembershipConfig | None = None, *,
                 rng: random.Random | None = None, now: float = 0.0) -> None:
        cfg = config if config is not None else MembershipConfig()
        # a member is up only with direct evidence of its incarnation, and a member coming up replaces an
        # older silent incarnation under its name; every sign of life is a detector sample
        super().__init__(identity, cfg, rng=rng, now=now, evidence_required=True, replace_names=True,
                         window_size=cfg.window_size, suspect_probes=cfg.suspect_probes, life_resolution=0.0)
        self._sync_asked: dict[bytes, float] = {}
        self._next_gossip = now + self.config.gossip_interval
        self._next_probe = now + self.config.probe_down_interval
        self._next_seed_check = now + self.config.join_retry_max
        self._state_cache: list[dict[str, Any]] | None = None
        self._digest_cache: list[list[Any]] | None = None
        # next_deadline() without an O(members) scan per message: the engine's loop keeps the detector
        # crossings in a heap; tombstone expiry and probes are rescanned only after a structural change.
        self._gen = 0
        self._scan: tuple[int, float] = (-1, math.inf)

    # -- properties -------------------------------------------------------------------------------

    def neighbours(self) -> list[bytes]:
        """Every up member other than this node (full mesh: everyone is a neighbour and monitored)."""
        return super().neighbours()

    def stats(self) -> dict[str, int]:
        """Counters: messages sent/received per op, bad/unknown input, refutations, declared down ..."""
        out = super().stats()
        out["entries"] = len(self._records)
        out["up"] = len(self._watched)  # monitored: every up member
        return out

    def _dirty(self) -> None:
        self._state_cache = None
        self._digest_cache = None
        self._gen += 1

    # -- inputs -----------------------------------------------------------------------------------

    def contact(self, identity: Identity, now: float) -> list[Effect]:
        """The handshake with ``identity`` completed (it is direct evidence of that incarnation).

        While joining, this also sends ``join`` to it.
        """
        if self._leaving or identity.node_id == self._self.node_id:
            return []
        candidate = _Record(identity, 0, ST_ALIVE, now)
        effects: list[Effect] = []
        self._merge(candidate, now, effects, origin=True)
        self._evidence_from(identity.node_id, identity.incarnation, now, effects)
        entry = self._records.get(identity.node_id)
        if self._dialing and entry is not None and entry.st != ST_LEFT and entry.incarnation == identity.incarnation:
            # also to a seed we hold as down (a long partition): its answer carries our own down entry,
            # if it has one, and we refute; either way both sides re-merge
            self._send(effects, identity.node_id, OP_JOIN, {"in": self._self.incarnation, "m": mesh_wire(self._self)})
        return effects

    def adopt(self, identities: Sequence[Identity], now: float) -> list[Effect]:
        """Start from members another overlay knew alive (a live topology switch): each is merged as
        alive and taken as up, as if its handshake had just completed (the previous overlay had that
        evidence), with a fresh failure detector; nothing is pushed (everyone switching knows them).
        Returns the effects (``Connect`` and ``MemberUp`` per new member)."""
        effects: list[Effect] = []
        if self._leaving:
            return effects
        for identity in identities:
            if identity.node_id == self._self.node_id:
                continue
            candidate = _Record(identity, 0, ST_ALIVE, now)
            self._merge(candidate, now, effects, origin=False)
            self._evidence_from(identity.node_id, identity.incarnation, now, effects)
        self._count("adopted", len(identities))
        return effects

    def traffic(self, source: bytes, now: float) -> list[Effect]:
        """Any non-membership message from ``source`` arrived: a sign of life for its current incarnation."""
        if self._leaving:
            return []
        effects: list[Effect] = []
        self._life(source, now, effects)
        return effects

    def link_up(self, node_id: bytes, now: float) -> list[Effect]:
        """A link (re)connected: exchange state with the peer at once instead of waiting for gossip."""
        entry = self._records.get(node_id)
        effects: list[Effect] = []
        if not self._leaving and entry is not None and entry.st != ST_LEFT:
            self._send(effects, node_id, OP_SYNC, self._gossip_body())
        return effects

    def link_down(self, node_id: bytes, now: float) -> list[Effect]:
        """A link broke. Only a hint: the phi detector alone declares members down."""
        self._count("link_down_hints")
        return []

    def leave(self, now: float) -> list[Effect]:
        """Leave gracefully: mark our entry left and push it to every peer. Afterwards input is ignored
        and no timer fires; the driver may close the node once the effects are sent."""
        if self._leaving:
            return []
        self._leaving = True
        self._self.st = ST_LEFT
        self._self.changed_at = now
        self._dirty()
        effects: list[Effect] = []
        body = {"in": self._self.incarnation, "r": 0, "m": [mesh_wire(self._self)]}
        for entry in self._sorted_entries():
            if entry.st == ST_ALIVE:
                self._send(effects, entry.node_id, OP_SYNC, body)
        return effects

    def receive(self, source: bytes, op: str, body: Any, now: float) -> list[Effect]:
        """A MEMBERSHIP message from ``source``. It is also a sign of life: do not call :meth:`traffic`
        for it.

        Raises BadMembershipMessage (nothing changed) when the body violates the op's schema.
        """
        if self._leaving:
            return []
        if op not in OPS:
            self._count("unknown_op")
            return []
        if not isinstance(body, dict):
            raise _bad(f"{op} body must be a map")
        inc = _int(body.get("in"), f"{op} in")
        effects: list[Effect] = []
        if op == OP_HEARTBEAT:
            self._count("recv_hb")
            self._evidence_from(source, inc, now, effects)
            ack = body.get("a", 0)
            if ack and source in self._records and self._records[source].st == ST_ALIVE:
                self._send(effects, source, OP_HEARTBEAT, {"in": self._self.incarnation})  # a suspecter's probe
            return effects
        if op in PROBE_OPS:
            self._receive_probe(source, op, body, inc, now, effects)
            return effects
        if op == OP_JOIN:
            entry = _record_from_wire(body.get("m"), now)
            if entry.node_id != source or entry.incarnation != inc or entry.st != ST_ALIVE:
                raise _bad("join entry must be the sender's own alive entry")
            self._count("recv_join")
            self._merge(entry, now, effects, origin=True)
            self._evidence_from(source, inc, now, effects)
            if self._records.get(source) is not None:
                self._send(effects, source, OP_SYNC, {"in": self._self.incarnation, "r": 0, "m": self._state()})
            return effects
        # OP_SYNC
        limit = self.config.max_members + 1
        raw = body.get("m", [])
        if not isinstance(raw, list) or len(raw) > limit:
            raise _bad("sync m must be a list of at most max_members + 1 entries")
        want_reply = body.get("r", 0)
        if not isinstance(want_reply, int) or isinstance(want_reply, bool):
            raise _bad("sync r must be an int")
        digest = _digest_from_wire(body.get("d"), limit)
        wanted = body.get("w", [])
        if not isinstance(wanted, list) or len(wanted) > limit or \
                not all(isinstance(w, bytes) and len(w) == 16 for w in wanted):
            raise _bad("sync w must be a list of at most max_members + 1 node ids")
        entries = [_record_from_wire(item, now) for item in raw]  # validate all before changing anything
        self._count("recv_sync")
        theirs: dict[bytes, tuple[int, int, int]] = {}
        for entry in entries:
            theirs[entry.node_id] = entry.key()
            self._merge(entry, now, effects, origin=False)
        self._evidence_from(source, inc, now, effects)
        if digest is not None and not self._joined:
            # A digest listing us alive at our current key also says a peer holds us in the cluster: after
            # a refutation (a restart under the same node id) our new entry may come back only this way,
            # since the peer has nothing newer to send us.
            mine = digest.get(self._self.node_id)
            if mine is not None and mine == self._self.key() and mine[1] == ST_ALIVE:
                self._joined = True
                self._dialing = False
                effects.append(Joined())
        peer = self._records.get(source)
        if peer is None or peer.st == ST_LEFT or not (want_reply or digest is not None or wanted):
            return effects
        out: dict[bytes, _Record] = {}
        ask: list[bytes] = []
        ours = {e.node_id: e for e in self._all_entries()}
        if want_reply:  # ``m`` was the sender's full state: answer with what it lacks
            out.update(reconcile(ours, theirs, complete=True)[0])
        if digest is not None:  # a digest of the sender's whole state: send what it lacks, ask what we lack
            more, ask = reconcile(ours, digest, complete=True)
            out.update(more)
        for nid in wanted:
            held = self._self if nid == self._self.node_id else self._records.get(nid)
            if held is not None:
                out[nid] = held
        if out or ask:
            reply: dict[str, Any] = {"in": self._self.incarnation, "m": [mesh_wire(e) for e in out.values()]}
            if ask:
                reply["w"] = ask
            self._send(effects, source, OP_SYNC, reply)
        return effects

    # probe hooks of the engine's indirect probes: every member is linked; evidence is per incarnation

    def _heard(self, source: bytes, inc: int, now: float, effects: list[Effect]) -> None:
        self._evidence_from(source, inc, now, effects)

    def _reachable(self, rec: _Record) -> bool:
        return rec.st == ST_ALIVE and rec.up

    # the engine's failure-detection loop: every up member is monitored; failing one declares it down

    def _on_up(self, rec: _Record, now: float, effects: list[Effect]) -> None:
        self._watch(rec.identity, now)

    def _fail(self, node_id: bytes, reason: str, now: float, effects: list[Effect]) -> None:
        rec = self._records.get(node_id)
        if rec is not None:
            self._declare_down(rec, now, reason, effects)

    def _heartbeat_targets(self) -> list[bytes]:
        # every member believed alive, up or not yet: a heartbeat is how a claimed member hears of us
        return [e.node_id for e in self._sorted_entries() if e.st == ST_ALIVE]

    # -- timers -----------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must next be called (None after :meth:`leave`)."""
        if self._leaving:
            return None
        deadline = min(self._next_hb, self._next_gossip)
        if self._dialing:
            deadline = min(deadline, self._next_dial)
        elif self._seeds:
            deadline = min(deadline, self._next_seed_check)
        if self._scan[0] != self._gen:
            self._scan = (self._gen, self._structural_deadline())
        self._due = min(deadline, self._scan[1], self._monitor_deadline())
        return self._due

    def _structural_deadline(self) -> float:
        """Earliest tombstone expiry or down-member probe (changes only with the state)."""
        deadline = math.inf
        probe = self.config.probe_down_interval > 0
        for entry in self._records.values():
            if entry.st != ST_ALIVE:
                deadline = min(deadline, entry.changed_at + self.config.tombstone_ttl)
                if probe and entry.st == ST_DOWN:
                    deadline = min(deadline, self._next_probe)
        return deadline

    def tick(self, now: float) -> list[Effect]:
        """Run every timer due at ``now``: heartbeats, gossip, probes, failure detection, tombstone
        expiry, seed re-dialling."""
        if self._leaving:
            return []
        effects: list[Effect] = []
        cfg = self.config
        self._monitor(now, effects)  # failure detection first: a heartbeat round never masks a suspicion
        # tombstone expiry: the entry shrinks to a grave (node id -> last dead incarnation and status)
        for entry in self._sorted_entries():
            if entry.st != ST_ALIVE and now >= entry.changed_at + cfg.tombstone_ttl:
                del self._records[entry.node_id]
                self._evidence.pop(entry.node_id, None)
                self._sync_asked.pop(entry.node_id, None)
                self._dirty()
                if entry.st == ST_DOWN:
                    effects.append(Disconnect(entry.node_id))
                self._count("tombstones_expired")
                self._bury(entry, now, ttl=cfg.grave_ttl, cap=cfg.max_members)
        self._sweep_graves(now, cfg.tombstone_ttl)
        alive = [e for e in self._sorted_entries() if e.st == ST_ALIVE]
        self._heartbeats(now, effects)
        if now >= self._next_gossip:
            if alive:
                targets = self._rng.sample(alive, min(cfg.gossip_fanout, len(alive)))
                body = self._gossip_body()
                for entry in targets:
                    self._send(effects, entry.node_id, OP_SYNC, body)
            self._next_gossip = max(self._next_gossip + cfg.gossip_interval, now)
        if cfg.probe_down_interval > 0 and now >= self._next_probe:
            down = [e for e in self._sorted_entries() if e.st == ST_DOWN]
            if down:
                target = self._rng.choice(down)
                self._count("probes")
                self._send(effects, target.node_id, OP_SYNC, {"in": self._self.incarnation, "r": 1, "m": self._state()})
            self._next_probe = max(self._next_probe + cfg.probe_down_interval, now)
            self._gen += 1
        # seeds: keep dialling until joined, and again when every peer is gone
        if self._seeds and not self._dialing and not alive:
            self._dialing = True
            self._dial_backoff = cfg.join_retry_initial
            self._next_dial = now
        if self._dialing and now >= self._next_dial:
            if self._joined and alive:
                self._dialing = False
            else:
                effects.extend(self._dial(now))
        # joined, but a seed is not among the live members (a partition that outlived the tombstones):
        # handshake with it now and then; contact + gossip re-merge the two sides
        if self._seeds and not self._dialing and now >= self._next_seed_check:
            self._next_seed_check = now + cfg.join_retry_max
            live = {spec[1] for e in alive if e.up for spec in e.identity.endpoints.values()}
            for seed in self._seeds:
                if seed not in live:
                    self._count("seed_checks")
                    effects.append(Dial(seed))
        return effects

    # -- internals --------------------------------------------------------------------------------

    def _sorted_entries(self) -> list[_Record]:
        # deterministic order (dict order depends on arrival order, which is itself deterministic in a
        # seeded simulation, but sorting makes the order independent of history)
        return [self._records[k] for k in sorted(self._records)]

    def _all_entries(self) -> list[_Record]:
        return [self._self, *self._sorted_entries()]

    def _gossip_body(self) -> dict[str, Any]:
        """An anti-entropy opener: our own entry (so the peer can answer even if it never heard of us)
        and the digest of our whole state."""
        if self._digest_cache is None:
            self._digest_cache = [[e.node_id, e.incarnation, e.st, e.v] for e in self._all_entries()]
        return {"in": self._self.incarnation, "m": [mesh_wire(self._self)], "d": self._digest_cache}

    def _state(self) -> list[dict[str, Any]]:
        if self._state_cache is None:
            self._state_cache = [mesh_wire(e) for e in self._all_entries()]
        return self._state_cache

    def _push(self, changed: list[_Record], effects: list[Effect]) -> None:
        """Eager push of entries this node originated a change for, to every peer believed alive."""
        if not changed:
            return
        body = {"in": self._self.incarnation, "r": 0, "m": [mesh_wire(e) for e in changed]}
        for entry in self._sorted_entries():
            if entry.st == ST_ALIVE and entry.node_id not in {c.node_id for c in changed}:
                self._send(effects, entry.node_id, OP_SYNC, body)

    def _evidence_from(self, source: bytes, inc: int, now: float, effects: list[Effect]) -> None:
        """Direct traffic from ``source`` speaking as incarnation ``inc`` (see the engine's
        :meth:`_direct_evidence`); a newer incarnation than the one held makes us ask for its entry."""
        entry = self._direct_evidence(source, inc, now, effects)
        if entry is None:
            return
        if inc > entry.incarnation:
            # It restarted (or refuted) and we have not seen the new entry yet: ask it, at most once
            # per gossip interval.
            if now >= self._sync_asked.get(source, -1e300) + self.config.gossip_interval and entry.st != ST_LEFT:
                self._sync_asked[source] = now
                self._send(effects, source, OP_SYNC, self._gossip_body())

    def _declare_down(self, entry: _Record, now: float, reason: str, effects: list[Effect]) -> None:
        self._unwatch(entry.node_id)
        was_up = entry.up
        entry.st = ST_DOWN
        entry.changed_at = now
        self._dirty()
        self._count("declared_down")
        if was_up:
            effects.append(MemberDown(entry.member(), reason))
        self._push([entry], effects)

    def _refute(self, theirs: _Record, now: float, effects: list[Effect]) -> bool:
        if theirs.key() <= self._self.key():
            if theirs.incarnation == self._self.incarnation and theirs.st == ST_ALIVE and not self._joined:
                # a peer lists us alive: we are in the cluster
                self._joined = True
                self._dialing = False
                effects.append(Joined())
            return False
        return super()._refute(theirs, now, effects)

    def _own_record_changed(self, before: Key, now: float, effects: list[Effect]) -> None:
        """Push our changed record: a refutation (new incarnation) to everyone, down members included
        (they may be the side that declared us down); a metadata change to every live member."""
        self._dirty()
        me = self._self
        if me.incarnation == before[0]:
            self._push([me], effects)
            return
        body = {"in": me.incarnation, "r": 0, "m": [mesh_wire(me)]}
        for entry in self._sorted_entries():
            if entry.st != ST_LEFT:
                self._send(effects, entry.node_id, OP_SYNC, body)

    def _merge(self, new: _Record, now: float, effects: list[Effect], *, origin: bool) -> None:
        """Merge one gossiped entry. ``origin``: this node admitted it (join/contact) and pushes it."""
        if new.node_id == self._self.node_id:
            self._refute(new, now, effects)
            return
        old = self._records.get(new.node_id)
        if old is None:
            if len(self._records) >= self.config.max_members:
                self._count("rejected_full")
                return
            if self._unbury(new):
                # a buried incarnation: a tombstone again, never up (probes carry its down entry to it)
                self._records[new.node_id] = new
                self._dirty()
                if new.st == ST_DOWN:
                    effects.append(Connect(new.identity))
                return
            self._records[new.node_id] = new
            self._dirty()
            if new.st == ST_ALIVE:
                effects.append(Connect(new.identity))
                self._alive_record(new, now, effects)
                if origin:
                    self._push([new], effects)
            return
        if new.key() <= old.key():
            return
        self._dirty()
        if new.incarnation > old.incarnation:
            # a newer incarnation supersedes the old one entirely
            self._unwatch(old.node_id)
            if old.up and old.st == ST_ALIVE:
                old.st = ST_DOWN
                effects.append(MemberDown(old.member(), "restarted"))
            # A restart's sockets must be reopened; a refutation by the same process (same boot id,
            # known) keeps them, and what is queued on them (the Connect below updates the link).
            same_process = bool(new.identity.boot) and new.identity.boot == old.identity.boot
            if old.st != ST_LEFT and not same_process:
                effects.append(Disconnect(old.node_id))
            self._records[new.node_id] = new
            if new.st == ST_ALIVE:
                effects.append(Connect(new.identity))
                self._alive_record(new, now, effects)
            if origin:
                self._push([new], effects)
            return
        # same incarnation: a status or metadata change
        if new.st != old.st:
            before_up = old.up and old.st == ST_ALIVE
            old.st = new.st
            old.v = new.v
            old.identity = new.identity
            old.changed_at = now
            self._unwatch(old.node_id)
            if new.st == ST_DOWN and before_up:
                effects.append(MemberDown(old.member(), "reported"))
            elif new.st == ST_LEFT:
                if before_up:
                    effects.append(MemberLeft(old.member()))
                effects.append(Disconnect(old.node_id))
            return
        before = self._view(old)
        endpoints_changed = old.identity.endpoints != new.identity.endpoints
        old.v = new.v
        old.identity = new.identity
        if endpoints_changed and old.st == ST_ALIVE:
            effects.append(Disconnect(old.node_id))
            effects.append(Connect(old.identity))
        if old.up and old.st == ST_ALIVE and before != self._view(old):
            effects.append(MemberChanged(self._view(old), before))

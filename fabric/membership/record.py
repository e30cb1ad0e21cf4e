"""The record-based overlay core shared by HyParView, client-server and static.

Theory of operation
-------------------
Record-based overlays (:class:`RecordOverlay`: HyParView, client-server, static) keep one *record* per
node id - the member-record CRDT of :mod:`fabric.membership.records`, the same one the full-mesh core
merges: key ``(in, st, v)``, down and left terminal for an incarnation, refutation with a new
incarnation. Records travel as Plumtree broadcasts (kind 1) over the overlay's links:

* changes are *announced*: queued for ``announce_interval`` and sent as one Plumtree broadcast (kind 1,
  a list of records), so a join storm through one seed costs a few broadcasts, not one per joiner;
* a node's alive record is announced when it joins (by the contact node) and refreshed by the owner
  every ``refresh_interval``; an alive record not refreshed for ``record_ttl`` expires (down, reason
  ``"expired"``, local only) - the last-resort backstop for crashes nobody observed;
* a neighbour's failure (the engine's failure-detection loop - phi, suspicion, indirect probes - over
  the neighbours, or a :meth:`link_down` report from the transport) marks its record down and announces
  it (after a random delay, cancelled if another observer's announcement arrives first); a live node
  that hears itself declared down refutes with a new incarnation
  (:func:`~fabric.membership.records.refute_key`);
* a leave broadcasts the left record to every neighbour;
* anti-entropy every ``sync_interval`` with one random neighbour repairs what broadcasts missed (a
  64-bit summary of the alive records first; the digest and records only when summaries differ).

Staleness of ``members()`` on a partial view: a join or leave is seen everywhere after one broadcast
(tree depth x latency, plus a lazy round and a graft timeout on a broken branch); a crash after the
failure detection time of one of its neighbours plus one broadcast; a crash nobody observed after at most
``record_ttl``. Members that are neighbours can also be SUSPECT (phi over the threshold).

Relay ops (TREE envelopes; body is a msgpack map)::

    op     body                                          meaning
    relay  {o: bin16, t: bin16, h: int, i: bin28,        to ``t`` from origin ``o``; ``h`` hops left, ``i``
            n?: int, p: any}                             relay id (exactly-once), ``n`` hops so far

The next hop is ``t`` itself when it is a neighbour, else a learnt route: the neighbour a relay from
``t`` last came from, or the one that brought ``t``'s latest broadcast (its tree branch); without a
route, every neighbour but the previous hop (a flood bounded by the hop limit; the relay id makes it
exactly-once). A relay whose hops run out is dropped and counted (``relay_expired``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from .config import MembershipConfig
from .engine import MemberEngine, reconcile
from .errors import BadMembershipMessage, MembershipError
from .health import (
    PROBE_OPS,
)
from .interface import (
    OP_HEARTBEAT,
    OP_RELAY,
    OP_SYNC,
    Deliver,
    OverlayEffect,
    _bad,
    _node_id,
    _uint,
    identity_to_wire,
)
from .plumtree import KIND_APP, KIND_RECORD, TREE_OPS, Plumtree
from .records import Key, _key_hash, _Record, _record_from_wire, _wire_key
from .relay import Relays
from .types import (
    ST_ALIVE,
    ST_DOWN,
    ST_LEFT,
    Connect,
    Disconnect,
    Identity,
    Joined,
    Member,
    MemberChanged,
    MemberDown,
    MemberLeft,
)


class RecordOverlay(MemberEngine[MembershipConfig]):
    """The partial-view policy of the membership engine, shared by HyParView, client-server and static
    (see the module docstring).

    The engine (:class:`~fabric.membership.engine.MemberEngine`) keeps the records, the owner's rules,
    joining and the failure-detection loop; this class has it monitor the neighbours, spreads records
    with Plumtree over them, runs summary-first anti-entropy, record expiry, relays and leaves.
    Subclasses decide which neighbours to keep.

    Args:
        identity: this node.
        config: timers and bounds (default :meth:`MembershipConfig.lan`).
        rng: the seeded random source (peer choice, refresh jitter).
        now: current time.

    Raises:
        MembershipError: when the node id is not 16 octets.
    """

    membership_ops: tuple[str, ...] = (OP_HEARTBEAT, OP_SYNC)
    redial_when_joined = True  # join() links to the seeds' neighbourhood even when already linked

    def __init__(self, identity: Identity, config: MembershipConfig | None = None, *,
                 rng: random.Random | None = None, now: float = 0.0) -> None:
        # a merged alive record is up at once (only neighbours are ever heard from directly); a burst of
        # traffic from a neighbour is one detector sample per quarter heartbeat interval
        super().__init__(identity, config if config is not None else MembershipConfig(), rng=rng, now=now,
                         evidence_required=False, replace_names=False, window_size=100, suspect_probes=0,
                         life_resolution=0.25)
        self._summary = _key_hash(identity.node_id, self._self.key())
        self._nbrs = self._watched  # the neighbours are exactly the members the engine's loop monitors
        self.tree = Plumtree(identity.node_id, identity.incarnation, self.config.plumtree, now=now)
        cfg = self.config
        self._next_sync = now + cfg.sync_interval * (0.5 + self._rng.random())
        self._next_refresh = now + cfg.refresh_interval * (0.5 + self._rng.random() / 2)
        self._next_sweep = now + min(cfg.refresh_interval, cfg.record_ttl / 4)
        self.last_broadcast_id: bytes | None = None
        """Id of the latest :meth:`broadcast` (matches :attr:`Deliver.msg_id` on the receivers)."""
        self._outbox: dict[bytes, _Record] = {}
        self._next_announce = math.inf
        self._relays = Relays(self.config.plumtree.seen_size)

    # -- identity and views --------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """The engine's counters plus Plumtree's (prefixed ``tree_``) and the relays'."""
        out = super().stats()
        out.update({f"tree_{k}": v for k, v in self.tree.stats().items()})
        for name, n in self._relays.counters.items():
            out[name] = out.get(name, 0) + n
        out["records"] = len(self._records)
        out["neighbours"] = len(self._nbrs)
        return out

    # -- neighbours (for subclasses) -----------------------------------------------------------------

    def _add_neighbour(self, identity: Identity, now: float, effects: list[OverlayEffect]) -> None:
        if identity.node_id in self._nbrs or identity.node_id == self.node_id:
            return
        self._watch(identity, now)
        self.tree.add_neighbour(identity.node_id, now)
        effects.append(Connect(identity))
        rec = self._records.get(identity.node_id)
        if rec is not None and rec.st != ST_ALIVE:
            # a link to a member we hold as down (a probe answered, a partition healed): compare state now
            self._send(effects, identity.node_id, OP_SYNC, {"s": self._summary})
        if not self._joined:
            self._joined = True
            self._dialing = False
            effects.append(Joined())

    def _drop_neighbour(self, node_id: bytes, effects: list[OverlayEffect], *, disconnect: bool = True) -> bool:
        if not self._unwatch(node_id):
            return False
        self.tree.remove_neighbour(node_id)
        if disconnect:
            effects.append(Disconnect(node_id))
        return True

    def _neighbour_failed(self, node_id: bytes, reason: str, now: float, effects: list[OverlayEffect]) -> None:
        """A neighbour is unreachable: drop the link, mark its record down and tell everyone."""
        if not self._drop_neighbour(node_id, effects):
            return
        self._count("neighbour_failed")
        rec = self._records.get(node_id)
        if rec is not None and rec.st == ST_ALIVE:
            self._set_status(rec, ST_DOWN, reason, now, effects)
            self._broadcast_record(rec, now, effects, observed=True)
        self._on_neighbour_lost(node_id, True, now, effects)

    def _fail(self, node_id: bytes, reason: str, now: float, effects: list[OverlayEffect]) -> None:
        self._neighbour_failed(node_id, reason, now, effects)

    def _on_neighbour_lost(self, node_id: bytes, failed: bool, now: float, effects: list[OverlayEffect]) -> None:
        """Hook: a neighbour link went away (``failed``: unreachable, else left / record down)."""

    def _on_record(self, rec: _Record, before: int | None, now: float, effects: list[OverlayEffect]) -> None:
        """Hook: a record was added or changed status (``before``: previous status, None when new)."""

    def _sign_of_life(self, source: bytes, now: float, effects: list[OverlayEffect]) -> bool:
        if not self._life(source, now, effects):
            return False
        rec = self._records.get(source)
        if rec is not None:
            rec.seen = now
        return True

    # -- records -------------------------------------------------------------------------------------

    def _set_status(self, rec: _Record, st: int, reason: str, now: float, effects: list[OverlayEffect]) -> None:
        before = rec.st
        self._summary_remove(rec)
        rec.st = st
        rec.wire = None
        rec.changed_at = now
        rec.reason = reason
        self._summary_add(rec)
        if before == ST_ALIVE and st == ST_DOWN:
            effects.append(MemberDown(rec.member(), reason))
        elif before == ST_ALIVE and st == ST_LEFT:
            effects.append(MemberLeft(rec.member()))
        self._on_record(rec, before, now, effects)

    def _summary_add(self, rec: _Record) -> None:
        if rec.st == ST_ALIVE:
            self._summary = (self._summary + _key_hash(rec.node_id, rec.key())) & 0xFFFFFFFFFFFFFFFF

    def _summary_remove(self, rec: _Record) -> None:
        if rec.st == ST_ALIVE:
            self._summary = (self._summary - _key_hash(rec.node_id, rec.key())) & 0xFFFFFFFFFFFFFFFF

    def _merge_wire(self, raw: Any, now: float, effects: list[OverlayEffect]) -> bool:
        """Merge a wire RECORD (parsed in full only when newer than what we hold); True if it changed
        our state."""
        node_id, key = _wire_key(raw)
        queued = self._outbox.get(node_id)
        if queued is not None and queued is not self._self and key >= queued.key():
            del self._outbox[node_id]  # someone announced it (or newer) already
            self._count("announcements_suppressed")
        held = self._self if node_id == self.node_id else self._records.get(node_id)
        if held is not None and key <= held.key():
            if key == held.key() and held is not self._self:
                held.seen = max(held.seen, now)
            return False
        return self._merge(_record_from_wire(raw, now), now, effects)

    def _merge(self, new: _Record, now: float, effects: list[OverlayEffect]) -> bool:
        """Merge one record; True when it changed our state."""
        if new.node_id == self.node_id:
            self._refute(new, now, effects)
            return False
        old = self._records.get(new.node_id)
        if old is None:
            if len(self._records) >= self.config.max_records:
                self._count("rejected_full")
                return False
            self._unbury(new)  # a claim for an incarnation whose tombstone expired stays down
            self._records[new.node_id] = new
            self._summary_add(new)
            if new.st == ST_ALIVE:
                self._alive_record(new, now, effects)
            self._on_record(new, None, now, effects)
            return True
        if new.key() <= old.key():
            if new.key() == old.key():
                old.seen = max(old.seen, now)
            return False
        if new.identity.incarnation > old.identity.incarnation:
            # a new incarnation (a restart, or the owner's refutation of a down record): the old one
            # ends, the new one starts
            if old.st == ST_ALIVE:
                effects.append(MemberDown(old.member(), "restarted"))
            self._summary_remove(old)
            self._records[new.node_id] = new
            self._summary_add(new)
            if new.st == ST_ALIVE:
                self._alive_record(new, now, effects)
            self._on_record(new, old.st, now, effects)
            return True
        if new.st != old.st:
            old.v = new.v
            old.identity = new.identity
            self._set_status(old, new.st, "reported", now, effects)
            return True
        # same status, newer version: metadata / endpoints
        before = self._view(old)
        self._summary_remove(old)
        old.v, old.identity, old.wire, old.seen = new.v, new.identity, None, now
        self._summary_add(old)
        if before != self._view(old):
            effects.append(MemberChanged(self._view(old), before))
        return True

    def _own_record_changed(self, before: Key, now: float, effects: list[OverlayEffect]) -> None:
        """This node's record changed (refutation, metadata): keep the summary, move Plumtree to the new
        epoch after a new incarnation, and announce the record."""
        me = self._self
        self._summary = (self._summary - _key_hash(me.node_id, before) + _key_hash(me.node_id, me.key())) \
            & 0xFFFFFFFFFFFFFFFF
        if me.incarnation != before[0]:
            self.tree.set_epoch(me.incarnation)
        self._broadcast_record(me, now, effects)

    def _broadcast_record(self, rec: _Record, now: float, effects: list[OverlayEffect], *,
                          observed: bool = False) -> None:
        """Queue ``rec`` for the next announcement (one broadcast carries every record queued within
        ``announce_interval``).

        ``observed``: a failure this node saw, which every other neighbour of the failed node sees at
        about the same time. The announcement then waits a random extra delay (up to the larger of 4
        announce intervals and 2 graft timeouts), and is dropped from the queue if someone else's
        announcement of it arrives first (see :meth:`_merge_wire`): about one broadcast per failure
        instead of one per observer."""
        self._outbox[rec.node_id] = rec
        cfg = self.config
        delay = cfg.announce_interval
        if observed:
            # long enough for the first observer's announcement to reach the others even through a tree
            # that the failure itself broke (a graft timeout per broken branch)
            delay += self._rng.random() * max(4 * cfg.announce_interval, 2 * cfg.plumtree.graft_timeout)
        self._next_announce = min(self._next_announce, now + delay)

    def _announce(self, now: float, effects: list[OverlayEffect]) -> None:
        self._next_announce = math.inf
        if not self._outbox:
            return
        batch = [rec.to_wire() for _, rec in sorted(self._outbox.items())]
        self._outbox.clear()
        self._count("announcements")
        _, sends = self.tree.broadcast(batch, KIND_RECORD, now)
        effects.extend(sends)

    # -- inputs --------------------------------------------------------------------------------------

    def adopt(self, members: Sequence[Member], now: float) -> list[OverlayEffect]:
        """See :meth:`Overlay.adopt`: alive records at version 0 (anti-entropy brings newer versions),
        never announced; records already held are kept."""
        effects: list[OverlayEffect] = []
        for m in members:
            if m.node_id == self.node_id or m.node_id in self._records:
                continue
            self._merge(_Record(m.identity(), 0, ST_ALIVE, now), now, effects)
        self._count("adopted", len(members))
        return effects

    def contact(self, identity: Identity, now: float) -> list[OverlayEffect]:
        """The handshake with ``identity`` completed; subclasses decide what to do with it."""
        return []

    def traffic(self, source: bytes, now: float) -> list[OverlayEffect]:
        """Any other message from ``source``: a sign of life if it is a neighbour."""
        effects: list[OverlayEffect] = []
        if not self._leaving:
            self._sign_of_life(source, now, effects)
        return effects

    def link_up(self, node_id: bytes, now: float) -> list[OverlayEffect]:
        """A link (re)connected: nothing to do (neighbour links are set up by the protocol)."""
        return []

    def link_down(self, node_id: bytes, now: float) -> list[OverlayEffect]:
        """The transport reports the link to a neighbour broke: treat it as failed at once (HyParView's
        use of TCP as the failure detector)."""
        effects: list[OverlayEffect] = []
        if not self._leaving and node_id in self._nbrs:
            self._count("link_down")
            self._neighbour_failed(node_id, "unreachable", now, effects)
        return effects

    def receive(self, source: bytes, op: str, body: Any, now: float) -> list[OverlayEffect]:
        """A MEMBERSHIP message from ``source`` (also a sign of life).

        Raises BadMembershipMessage (nothing changed) when the body violates the op's schema.
        """
        if self._leaving:
            return []
        if not isinstance(body, dict):
            raise _bad(f"{op} body must be a map")
        effects: list[OverlayEffect] = []
        if op == OP_HEARTBEAT:
            self._count("recv_hb")
            if not self._sign_of_life(source, now, effects):
                self._on_stray_heartbeat(source, body, now, effects)
            elif body.get("a"):
                self._send(effects, source, OP_HEARTBEAT, {"in": self.incarnation})  # a suspecter's probe
            return effects
        if op == OP_SYNC:
            self._receive_sync(source, body, now, effects)
            self._sign_of_life(source, now, effects)
            return effects
        if op in PROBE_OPS:
            self._receive_probe(source, op, body, body.get("in", 0), now, effects)
            self._sign_of_life(source, now, effects)
            return effects
        if op in self.membership_ops:
            self._count(f"recv_{op}")
            self._receive_op(source, op, body, now, effects)
            self._sign_of_life(source, now, effects)
            return effects
        self._count("unknown_op")
        return effects

    def _receive_op(self, source: bytes, op: str, body: dict[str, Any], now: float,
                    effects: list[OverlayEffect]) -> None:
        """Hook: a subclass's own MEMBERSHIP op (listed in ``membership_ops``)."""

    def _on_stray_heartbeat(self, source: bytes, body: dict[str, Any], now: float,
                            effects: list[OverlayEffect]) -> None:
        """Hook: a heartbeat from a node that is not a neighbour."""
        self._count("stray_hb")

    def _receive_sync(self, source: bytes, body: dict[str, Any], now: float, effects: list[OverlayEffect]) -> None:
        limit = self.config.max_records + 1
        raw = body.get("m", [])
        if not isinstance(raw, list) or len(raw) > limit:
            raise _bad("sync m must be a list of records")
        for r in raw:
            _wire_key(r)  # the shape of every record before any change
        summary = body.get("s")
        if summary is not None and (not isinstance(summary, int) or isinstance(summary, bool)
                                    or not 0 <= summary < 2**64):
            raise _bad("sync s must be a 64-bit unsigned int")
        digest = body.get("d")
        if digest is not None and (not isinstance(digest, list) or len(digest) > limit):
            raise _bad("sync d must be a list")
        wanted = body.get("w", [])
        if not isinstance(wanted, list) or len(wanted) > limit:
            raise _bad("sync w must be a list")
        parsed: list[tuple[bytes, tuple[int, int, int]]] = []
        for item in digest or []:
            if not isinstance(item, list) or len(item) != 4:
                raise _bad("sync d items must be [id, in, v, st]")
            # wire order [id, in, v, st]; the merge key is (in, st, v)
            parsed.append((_node_id(item[0], "d id"), (_uint(item[1], "d in"), _uint(item[3], "d st"),
                                                       _uint(item[2], "d v"))))
        for w in wanted:
            _node_id(w, "sync w")
        self._count("recv_sync")
        repaired = False
        for r in raw:
            try:
                repaired = self._merge_wire(r, now, effects) or repaired
            except BadMembershipMessage:
                self._count("bad_record")  # one malformed record does not spoil the others
        if repaired and source in self._nbrs:
            # anti-entropy found something the broadcasts missed (view churn drops queued ihaves): more
            # may be missing, so compare again soon rather than one full interval later
            self._count("sync_repairs")
            self._next_sync = min(self._next_sync, now + self.config.sync_interval / 4)
        if source not in self._nbrs:
            return
        if summary is not None and digest is None and summary != self._summary:
            # step 2: our digest of alive records (plus our own)
            self._send(effects, source, OP_SYNC, {"d": self._digest()})
            return
        out: dict[bytes, _Record] = {}
        ask: list[bytes] = []
        if digest is not None:  # it lists the peer's alive records only
            out, ask = reconcile({self.node_id: self._self, **self._records}, dict(parsed), complete=False)
        for nid in wanted:
            held = self._self if nid == self.node_id else self._records.get(nid)
            if held is not None:
                out[nid] = held
        if out or ask:
            reply: dict[str, Any] = {"m": [r.to_wire() for r in out.values()]}
            if ask:
                reply["w"] = ask
            self._send(effects, source, OP_SYNC, reply)

    def _digest(self) -> list[list[Any]]:
        recs = [self._self, *(r for r in self._records.values() if r.st == ST_ALIVE)]
        return [[r.node_id, r.incarnation, r.v, r.st] for r in recs]  # wire order: [id, in, v, st]

    def _state(self) -> list[dict[str, Any]]:
        """Every alive record we hold plus our own (what a joiner gets)."""
        return [self._self.to_wire(), *(r.to_wire() for r in self._records.values() if r.st == ST_ALIVE)]

    def receive_tree(self, source: bytes, op: str, body: Any, now: float) -> list[OverlayEffect]:
        """A TREE message from ``source``: Plumtree ops and relays.

        Raises BadMembershipMessage (nothing changed) when the body violates the op's schema.
        """
        if self._leaving:
            return []
        effects: list[OverlayEffect] = []
        if op == OP_RELAY:
            effects.extend(self._relays.receive(self.node_id, source, body, self._nbrs, self.tree.route))
            self._sign_of_life(source, now, effects)
            return effects
        if op not in TREE_OPS:
            self._count("unknown_op")
            return effects
        linked = source in self._nbrs
        if op == "gossip" and isinstance(body, dict) and body.get("k") == KIND_RECORD \
                and not self.tree.has_seen(body.get("i")):
            # validate the batch's shape before Plumtree remembers and forwards it
            batch = body.get("p")
            if not isinstance(batch, list) or len(batch) > self.config.max_records + 1:
                raise _bad("a record announcement must be a list of records")
            for raw in batch:
                _wire_key(raw)
        sends, delivery = self.tree.receive(source, op, body, now, linked=linked)
        effects.extend(sends)
        if delivery is not None:
            if delivery.kind == KIND_APP:
                effects.append(Deliver(delivery.origin, delivery.payload, False, delivery.hops, delivery.msg_id))
            else:
                for raw in delivery.payload:
                    try:
                        self._merge_wire(raw, now, effects)
                    except BadMembershipMessage:
                        self._count("bad_record")  # the others in the batch still count
        self._sign_of_life(source, now, effects)
        return effects

    def broadcast(self, payload: Any, now: float) -> list[OverlayEffect]:
        """Broadcast ``payload`` to every live member over the tree (not delivered locally)."""
        if self._leaving:
            return []
        self.last_broadcast_id, sends = self.tree.broadcast(payload, KIND_APP, now)
        return list(sends)

    def send_to(self, target: bytes, payload: Any, now: float, *, ttl: int | None = None) -> list[OverlayEffect]:
        """Send ``payload`` to ``target``: directly when it is a neighbour, else relayed hop by hop with at
        most ``ttl`` hops (default ``relay_ttl``). To this node itself: delivered at once.

        Raises MembershipError when ``ttl`` < 1."""
        if target == self.node_id:
            return [Deliver(self.node_id, payload, True, 0)]
        hops = self.config.relay_ttl if ttl is None else ttl
        if hops < 1:
            raise MembershipError("ttl must be >= 1")
        return list(self._relays.send(self.node_id, self.incarnation, target, payload, hops, self._nbrs, self.tree.route))

    def leave(self, now: float) -> list[OverlayEffect]:
        """Leave: broadcast the left record to every neighbour (eager and lazy: no lazy round will come),
        then ignore input. The driver may close the node once the effects are sent."""
        if self._leaving:
            return []
        effects: list[OverlayEffect] = []
        me = self._self
        self._summary_remove(me)
        me.st = ST_LEFT
        me.wire = None
        for nid in list(self.tree.lazy):
            self.tree.lazy.discard(nid)
            self.tree.eager.add(nid)
        self._outbox[me.node_id] = me
        self._announce(now, effects)  # now: no timer runs after a leave
        self._leaving = True
        for nid in sorted(self._nbrs):
            effects.append(Disconnect(nid))
            self._unwatch(nid)  # nothing is monitored any more (suspicions and probes end too)
        return effects

    # -- timers --------------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must next run (None after :meth:`leave`)."""
        if self._leaving:
            return None
        deadline = min(self._next_hb, self._next_sync, self._next_refresh, self._next_sweep, self._next_announce,
                       self.tree.next_deadline(), self._policy_deadline(), self._monitor_deadline())
        if self._dialing:
            deadline = min(deadline, self._next_dial)
        self._due = deadline
        return deadline

    def _policy_deadline(self) -> float:
        """Hook: the subclass's earliest timer."""
        return math.inf

    def tick(self, now: float) -> list[OverlayEffect]:
        """Run every due timer: heartbeats + failure detection, Plumtree rounds, anti-entropy, record
        refresh and expiry, join retries, and the subclass's timers."""
        if self._leaving:
            return []
        cfg = self.config
        effects: list[OverlayEffect] = []
        self._monitor(now, effects)  # failure detection first: a heartbeat round never masks a suspicion
        self._heartbeats(now, effects)
        if now >= self._next_announce:
            self._announce(now, effects)
        effects.extend(self.tree.tick(now))
        if now >= self._next_sync:
            self._next_sync = max(self._next_sync + cfg.sync_interval, now)
            if self._nbrs:
                peer = self._rng.choice(sorted(self._nbrs))
                self._send(effects, peer, OP_SYNC, {"s": self._summary})
        if now >= self._next_refresh:
            self._next_refresh = max(self._next_refresh + cfg.refresh_interval, now)
            if self._nbrs:
                self._broadcast_record(self._self, now, effects)
        if now >= self._next_sweep:
            self._next_sweep = now + min(cfg.refresh_interval, cfg.record_ttl / 4)
            self._sweep(now, effects)
        if self._dialing and now >= self._next_dial:
            if self._nbrs:
                self._dialing = False
            else:
                effects.extend(self._dial(now))
        elif self._seeds and not self._nbrs and not self._dialing:
            # every link is gone: start over through the seeds
            self._dialing = True
            self._dial_backoff = cfg.join_retry_initial
            self._next_dial = now
        self._policy_tick(now, effects)
        return effects

    def _policy_tick(self, now: float, effects: list[OverlayEffect]) -> None:
        """Hook: the subclass's timers."""

    # probe hooks of the engine's indirect probes: only neighbours are linked and monitored

    def _linked(self, node_id: bytes) -> bool:
        return node_id in self._nbrs

    def _probe_entry(self) -> dict[str, Any] | None:
        return identity_to_wire(self.local)

    def _sweep(self, now: float, effects: list[OverlayEffect]) -> None:
        cfg = self.config
        for nid in sorted(self._records):
            rec = self._records[nid]
            if rec.st == ST_ALIVE:
                if nid not in self._nbrs and now - rec.seen > cfg.record_ttl:
                    self._count("expired")
                    self._set_status(rec, ST_DOWN, "expired", now, effects)
            elif now - rec.changed_at > cfg.record_tombstone_ttl:
                del self._records[nid]
                self._count("tombstones_expired")
                # a grave outlives the tombstone by another record_tombstone_ttl: a stale alive claim of that
                # incarnation (a node partitioned away that long) never brings it back up
                self._bury(rec, now, ttl=cfg.record_tombstone_ttl, cap=cfg.max_records)
        self._sweep_graves(now, cfg.record_tombstone_ttl)

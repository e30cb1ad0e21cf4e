"""The membership engine every overlay core is built on: one record CRDT, one refutation rule, one
failure-detector configuration, one join procedure, one views API.

:class:`MemberEngine` owns what every membership core shares, whatever neighbours it keeps:

* **state**: this node's own record and one record per known node id - the member-record CRDT of
  :mod:`fabric.membership.records` (key ``(in, st, v)``, down and left terminal for an incarnation);
* **the owner's rules**: :meth:`MemberEngine._refute` (a record about this node with a larger key: take
  the incarnation ``max(mine, theirs) + 1``) and :meth:`MemberEngine.set_metadata` (``v + 1``);
* **failure handling**: the detector fields of :class:`~fabric.membership.config.MembershipConfig`,
  SWIM's indirect probes - the ``preq`` / ``iping`` / ``iack`` / ``pres`` ops are handled here once,
  :meth:`MemberEngine._receive_probe` - and Lifeguard's local health (:mod:`fabric.membership.health`),
  and the dynamic suspicion timeout;
* **graves**: an expired tombstone leaves its node id and last incarnation behind for a while, so a
  stale alive claim of a buried incarnation becomes a tombstone again, never a member;
* **joining**: seeds dialled with exponential backoff (``join_retry_initial`` .. ``join_retry_max``);
* **anti-entropy reconciliation** (:func:`reconcile`): what to send and what to ask for, given a peer's
  digest;
* **views**: :meth:`members`, :meth:`member`, :meth:`alive_members`, :meth:`digest`, :meth:`stats`.

A *policy* subclass decides the rest - which members are neighbours (monitored links) and how a changed
record reaches everyone:

==================  ===============================  ==================================================
policy              neighbours                       dissemination / anti-entropy
==================  ===============================  ==================================================
full-mesh           every alive member               direct push to each; digest push-pull
                    (:mod:`~.fullmesh`)              (``gossip_fanout`` random peers per round)
HyParView           the active view                  Plumtree announcements; summary-first sync with
                    (:mod:`~.hyparview`)             one neighbour per round (:mod:`~.record`)
client-server       clients: the servers             as HyParView
static              the configured members           as HyParView
==================  ===============================  ==================================================

Failure detection is one loop for every policy (:meth:`MemberEngine._monitor`): one phi-accrual detector
per *monitored* member, their crossing times in a deadline heap, a suspicion started at the exact
crossing (``MemberChanged`` to SUSPECT, SWIM indirect probes through ``indirect_probes`` other monitored
members, ``suspect_probes`` direct probes), and the member failed once the suspicion outlives Lifeguard's
dynamic timeout times the local health multiplier; a late tick (a starved node) declares nothing until a
recheck. The policy only says *which* members are monitored (:meth:`_watch` / :meth:`_unwatch`: full mesh
every up member, the record overlays their active neighbours), what failing one means (:meth:`_fail`),
and two flags: :attr:`~MemberEngine.evidence_required` (an alive record is up - ``MemberUp``, listed - only
once its incarnation was heard from directly; full mesh) and :attr:`~MemberEngine.replace_names` (a member
coming up replaces an older silent incarnation under its name; full mesh).

Other hooks a policy implements: :meth:`_own_record_changed` (tell everyone this node's record changed),
:meth:`_on_up` (a record came up), :meth:`_heartbeat_targets`, and for the probes :meth:`_linked`,
:meth:`_probe_entry`, :meth:`_heard` and :meth:`_reachable`.
"""

from __future__ import annotations

import abc
import dataclasses
import heapq
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from .config import MembershipConfig
from .detector import PhiAccrualDetector
from .errors import MembershipError
from .health import OP_INDIRECT_ACK, OP_INDIRECT_PING, OP_PING_REQ, IndirectProbes, LocalHealth, ping_body
from .interface import OP_HEARTBEAT, identity_from_wire
from .records import NO_KEY, Key, _Neighbour, _Record, refute_key
from .types import (
    ST_ALIVE,
    ST_DOWN,
    Connect,
    Contact,
    Dial,
    Effect,
    Identity,
    InputEvent,
    Joined,
    JoinRequest,
    LeaveRequest,
    LinkDown,
    LinkUp,
    Member,
    MemberChanged,
    MemberStatus,
    MemberUp,
    Received,
    Send,
    Tick,
    Traffic,
    _check_meta,
)

ConfigT = TypeVar("ConfigT", bound=MembershipConfig)


def reconcile(ours: Mapping[bytes, _Record], theirs: Mapping[bytes, Key], *,
              complete: bool) -> tuple[dict[bytes, _Record], list[bytes]]:
    """Anti-entropy: compare our records with a peer's digest (node id -> key).

    Returns the records to send (those we hold newer, and those the peer lacks) and the ids to ask for
    (those the peer holds newer or we lack). ``complete``: the digest lists every record the peer holds
    (full-mesh); otherwise it lists only alive ones (record overlays), so of the records missing from it
    only alive ones are sent (a down record missing from it may be one the peer holds down too).
    """
    out: dict[bytes, _Record] = {}
    ask: list[bytes] = []
    for nid, key in theirs.items():
        held = ours.get(nid)
        if held is None or held.key() < key:
            ask.append(nid)
    for nid, rec in ours.items():
        key = theirs.get(nid, NO_KEY)
        if key < rec.key() and (complete or key != NO_KEY or rec.st == ST_ALIVE):
            out[nid] = rec
    return out, ask


class MemberEngine(abc.ABC, Generic[ConfigT]):
    """The state and rules every membership core shares (see the module docstring).

    Args:
        identity: this node (its incarnation may grow later by refutation: read :attr:`local`).
        config: the membership configuration (the policy reads its own fields and the detector's).
        rng: the seeded random source.
        now: current time.

    Raises:
        MembershipError: when the identity's node id is not 16 octets.
    """

    redial_when_joined = False
    """Whether :meth:`join` dials the seeds even when this node is already in a cluster."""

    def __init__(self, identity: Identity, config: ConfigT, *, rng: random.Random | None = None,
                 now: float = 0.0, evidence_required: bool = False, replace_names: bool = False,
                 window_size: int = 100, suspect_probes: int = 0, life_resolution: float = 0.0) -> None:
        if len(identity.node_id) != 16:
            raise MembershipError("node id must be 16 octets")
        self.config: ConfigT = config
        self.evidence_required = evidence_required
        """Policy flag: an alive record is up (``MemberUp``, listed, monitored if the policy monitors it)
        only once this node heard from that incarnation directly; else as soon as it is merged."""
        self.replace_names = replace_names
        """Policy flag: a member coming up declares down (reason ``"replaced"``) an older incarnation of
        another node id under the same name that has gone silent (names are unique in the cluster)."""
        self._window_size = window_size
        self._suspect_probes = suspect_probes
        self._life_resolution = life_resolution * config.heartbeat_interval
        self._rng = rng if rng is not None else random.Random(0)
        self._self = _Record(Identity(identity.node_id, identity.name, identity.incarnation,
                                      dict(identity.metadata), dict(identity.endpoints), identity.boot), 0, ST_ALIVE, now)
        self._records: dict[bytes, _Record] = {}
        self.counters: dict[str, int] = {}
        self._joined = False
        self._leaving = False
        self._seeds: list[str] = []
        self._dialing = False
        self._dial_backoff = config.join_retry_initial
        self._next_dial = now
        self.health = LocalHealth(config.local_health_max, config.heartbeat_interval)
        """Lifeguard's local health score of this node (see :mod:`fabric.membership.health`)."""
        self._probes = IndirectProbes(config.indirect_probes, config.probe_timeout)
        self._due = math.inf  # the deadline last handed out: a tick later than it ran late
        # the one failure-detection loop (see "failure detection" below): the monitored members, the
        # suspects among them, and their detectors' crossing times in a heap (stale items are skipped)
        self._watched: dict[bytes, _Neighbour] = {}
        self._suspects: set[bytes] = set()
        self._crossings: list[tuple[float, bytes]] = []
        self._recheck_at = math.inf  # after a late tick: when suspicions are looked at again
        self._evidence: dict[bytes, int] = {}  # node id -> highest incarnation heard from it directly
        self._next_hb = now + config.heartbeat_interval
        self._graves: dict[bytes, tuple[int, int, float]] = {}  # node id -> (incarnation, st, forget at)
        self._next_grave_sweep = now

    # -- identity and views ----------------------------------------------------------------------------

    @property
    def node_id(self) -> bytes:
        """This node's id."""
        return self._self.node_id

    @property
    def local(self) -> Identity:
        """This node's current identity (the incarnation grows when it refutes a false down)."""
        return self._self.identity

    @property
    def incarnation(self) -> int:
        """This node's current incarnation."""
        return self._self.identity.incarnation

    @property
    def joined(self) -> bool:
        """True once this node is part of a cluster (or alone by choice)."""
        return self._joined

    @property
    def leaving(self) -> bool:
        """True after ``leave()``."""
        return self._leaving

    def _listed(self, rec: _Record) -> bool:
        """Whether :meth:`members` shows this record: with :attr:`evidence_required` only once it was up
        (a gossiped claim nobody confirmed directly is not a member yet)."""
        return rec.up or not self.evidence_required

    def _suspected(self, rec: _Record) -> bool:
        """Whether this alive record is locally suspect (a monitored member over the phi threshold)."""
        return rec.node_id in self._suspects

    def _view(self, rec: _Record) -> Member:
        """The record as :meth:`members` shows it (SUSPECT when locally suspect)."""
        return rec.member(self._suspected(rec))

    def members(self) -> list[Member]:
        """This node and every member it lists (down/left ones until their tombstones expire), sorted by
        node id. Members over the phi threshold are SUSPECT."""
        out = [self._self.member(False)]  # LEFT after leave()
        out.extend(rec.member(self._suspected(rec)) for rec in self._records.values() if self._listed(rec))
        out.sort(key=lambda m: m.node_id)
        return out

    def member(self, node_id: bytes) -> Member | None:
        """The member with this id as :meth:`members` lists it, else None."""
        if node_id == self.node_id:
            return self._self.member(False)
        rec = self._records.get(node_id)
        return rec.member(self._suspected(rec)) if rec is not None and self._listed(rec) else None

    def neighbours(self) -> list[bytes]:
        """Node ids of the members this node links to and monitors (sorted): the policy's choice."""
        return sorted(self._watched)

    def phi(self, node_id: bytes, now: float) -> float | None:
        """Current phi of a monitored member, None when this node does not monitor it."""
        watch = self._watched.get(node_id)
        return watch.detector.phi(now) if watch is not None else None

    def alive_members(self) -> list[Member]:
        """Members (this node included) that are ALIVE or SUSPECT."""
        return [m for m in self.members() if m.status in (MemberStatus.ALIVE, MemberStatus.SUSPECT)]

    def digest(self) -> dict[bytes, Key]:
        """node id -> record key ``(incarnation, st, v)``, this node included. Two nodes that have
        exchanged all their state have equal digests (for tests and debugging)."""
        out = {nid: rec.key() for nid, rec in self._records.items()}
        out[self.node_id] = self._self.key()
        return out

    def stats(self) -> dict[str, int]:
        """Counters (``sent_<op>`` per op, events, bad input ...), the probes' and local health's."""
        out = dict(self.counters)
        out["monitored"] = len(self._watched)
        out.update(self._probes.stats())
        out.update(self.health.stats())
        return out

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def _send(self, effects: list[Any], to: bytes, op: str, body: dict[str, Any]) -> None:
        self._count(f"sent_{op}")
        effects.append(Send(to, op, body))

    # -- inputs (each policy implements them; see fabric.membership.interface.Overlay) ------------------

    @abc.abstractmethod
    def contact(self, identity: Identity, now: float) -> list[Any]:
        """The handshake with ``identity`` completed."""

    @abc.abstractmethod
    def receive(self, source: bytes, op: str, body: Any, now: float) -> list[Any]:
        """A MEMBERSHIP message from ``source``."""

    @abc.abstractmethod
    def traffic(self, source: bytes, now: float) -> list[Any]:
        """Any other message from ``source`` (a sign of life)."""

    @abc.abstractmethod
    def link_up(self, node_id: bytes, now: float) -> list[Any]:
        """The transport reports the link to ``node_id`` (re)connected."""

    @abc.abstractmethod
    def link_down(self, node_id: bytes, now: float) -> list[Any]:
        """The transport reports the link to ``node_id`` broke."""

    @abc.abstractmethod
    def leave(self, now: float) -> list[Any]:
        """Leave the cluster gracefully."""

    @abc.abstractmethod
    def tick(self, now: float) -> list[Any]:
        """Run every timer due at ``now``."""

    def handle(self, event: InputEvent, now: float) -> list[Any]:
        """Dispatch an input event to the method of the same meaning; returns its effects."""
        if isinstance(event, Received):
            return self.receive(event.source, event.op, event.body, now)
        if isinstance(event, Traffic):
            return self.traffic(event.source, now)
        if isinstance(event, Tick):
            return self.tick(now)
        if isinstance(event, Contact):
            return self.contact(event.identity, now)
        if isinstance(event, JoinRequest):
            return self.join(event.seeds, now)
        if isinstance(event, LinkUp):
            return self.link_up(event.node_id, now)
        if isinstance(event, LinkDown):
            return self.link_down(event.node_id, now)
        if isinstance(event, LeaveRequest):
            return self.leave(now)
        raise TypeError(f"unknown membership input {event!r}")

    # -- the owner's rules -----------------------------------------------------------------------------

    def _own_record_changed(self, before: Key, now: float, effects: list[Any]) -> None:
        """Hook: this node's record changed from key ``before`` (refutation, metadata): tell everyone."""

    def _set_own(self, identity: Identity, v: int, now: float, effects: list[Any]) -> None:
        me = self._self
        before = me.key()
        me.identity, me.v, me.changed_at = identity, v, now
        self._own_record_changed(before, now, effects)

    def _refute(self, theirs: _Record, now: float, effects: list[Any]) -> bool:
        """A record about this node arrived: when it beats ours (a false down, or a higher incarnation
        left by an earlier process with our node id), take a new incarnation above it (the refutation
        rule of :func:`~fabric.membership.records.refute_key`). True when this node refuted."""
        key = refute_key(self._self.key(), theirs.key())
        if key is None or self._leaving:
            return False
        ident = self._self.identity
        self._count("refuted")
        if theirs.st == ST_DOWN:
            self.health.worse(now, "self_refuted")  # others could not hear us: we may be the slow one
        self._set_own(Identity(ident.node_id, ident.name, key[0], ident.metadata, ident.endpoints, ident.boot), key[2], now,
                      effects)
        return True

    def set_metadata(self, metadata: Mapping[str, str], now: float) -> list[Any]:
        """Replace this node's metadata (raises BadMembershipMessage if it is not str -> str within the
        wire limits) and tell everyone (version ``v + 1``)."""
        ident = self._self.identity
        effects: list[Effect] = []
        self._set_own(Identity(ident.node_id, ident.name, ident.incarnation, _check_meta(dict(metadata)),
                               ident.endpoints, ident.boot), self._self.v + 1, now, effects)
        return effects

    # -- tombstones and graves -------------------------------------------------------------------------

    def _bury(self, rec: _Record, now: float, *, ttl: float, cap: int) -> None:
        """An expired tombstone shrinks to a grave (node id -> last dead incarnation and status), kept
        ``ttl`` seconds, at most ``cap`` graves."""
        if len(self._graves) < cap:
            self._graves[rec.node_id] = (rec.incarnation, rec.st, now + ttl)

    def _unbury(self, new: _Record) -> bool:
        """A claim about a node id this node holds no record of. If it is for an incarnation we buried (a
        partition that outlived the tombstone, or stale gossip) it becomes a tombstone again, at the
        grave's key - never up - and True is returned; if the node is in fact alive, sync answers then
        carry its down record to it and it refutes with a new incarnation."""
        grave = self._graves.pop(new.node_id, None)
        if grave is None or new.incarnation > grave[0]:
            return False
        self._count("buried_claims")
        new.identity = dataclasses.replace(new.identity, incarnation=grave[0])
        new.st, new.v = grave[1], 0
        return True

    def _sweep_graves(self, now: float, every: float) -> None:
        """Forget graves past their time (looked at once per ``every`` seconds)."""
        if self._graves and now >= self._next_grave_sweep:
            self._next_grave_sweep = now + every
            self._graves = {k: v for k, v in self._graves.items() if v[2] > now}

    # -- joining ---------------------------------------------------------------------------------------

    def join(self, seeds: Sequence[str], now: float) -> list[Any]:
        """Start joining through ``seeds`` (membership endpoints; our own endpoint is skipped): one
        :class:`Dial` per seed, re-dialled with exponential backoff until this node is in a cluster. With
        no seed left the node is alone and joined at once."""
        own = {spec[1] for spec in self._self.identity.endpoints.values()}
        self._seeds = [s for s in dict.fromkeys(seeds) if s not in own]
        if not self._seeds:
            if self._joined:
                return []
            self._joined = True
            return [Joined()]
        self._dialing = self.redial_when_joined or not self._joined
        self._dial_backoff = self.config.join_retry_initial
        return self._dial(now) if self._dialing else []

    def _dial(self, now: float) -> list[Any]:
        self._next_dial = now + self._dial_backoff
        self._dial_backoff = min(self._dial_backoff * 2, self.config.join_retry_max)
        self._count("dials", len(self._seeds))
        return [Dial(seed) for seed in self._seeds]

    # -- failure handling ------------------------------------------------------------------------------

    def _linked(self, node_id: bytes) -> bool:
        """Hook: whether this node holds a link to ``node_id`` (else a probe link is opened to answer)."""
        return True

    def _probe_entry(self) -> dict[str, Any] | None:
        """Hook: our identity for the ``iping`` of a helper that may have no link to us (None: it has)."""
        return None

    def _heard(self, source: bytes, inc: int, now: float, effects: list[Any]) -> None:
        """Hook: a probe op from ``source`` speaking as incarnation ``inc`` (a sign of life)."""

    def _reachable(self, rec: _Record) -> bool:
        """Hook: whether this node can probe the member on someone's behalf."""
        return rec.st == ST_ALIVE

    def _is_suspect(self, node_id: bytes) -> bool:
        """Whether this node suspects ``node_id`` (a member it monitors)."""
        return node_id in self._suspects

    def _receive_probe(self, source: bytes, op: str, body: dict[str, Any], inc: int, now: float,
                       effects: list[Any]) -> None:
        """The indirect-probe ops (SWIM's ping-req, :mod:`fabric.membership.health`), the same for every
        policy; ``inc``: the sender's incarnation (the body's ``in``). Each op is also a sign of life."""
        me = self.incarnation
        if op == OP_INDIRECT_PING:
            seq = ping_body(body)
            self._count("recv_iping")
            self._heard(source, inc, now, effects)
            if not self._linked(source) and "m" in body:
                # a helper we have no link to: answer over a probe link
                effects.append(Connect(identity_from_wire(body["m"]), probe=True))
            self._send(effects, source, OP_INDIRECT_ACK, {"in": me, "s": seq})
            return
        if op == OP_INDIRECT_ACK:
            ping_body(body)
            self._count("recv_iack")
            self._heard(source, inc, now, effects)
            for send in self._probes.on_ack(source, body, me):
                self._send(effects, send.to, send.op, send.body)
            return
        if op == OP_PING_REQ:
            target_id = body.get("t")
            rec = self._records.get(target_id) if isinstance(target_id, bytes) else None
            reachable = rec is not None and self._reachable(rec)
            tid, sends = self._probes.on_request(source, body, me, now, reachable=reachable,
                                                 entry=self._probe_entry(), scale=self.health.multiplier)
            self._heard(source, inc, now, effects)
            if self._is_suspect(tid):
                # the requester suspects it too: an independent confirmation of our own suspicion
                self._probes.confirm(tid, source)  # the suspicion timeout shrinks
            if reachable and rec is not None and not self._linked(tid):
                effects.append(Connect(rec.identity, probe=True))
            for send in sends:
                self._send(effects, send.to, send.op, send.body)
            return
        # OP_PING_RESULT
        result = self._probes.on_result(source, body)
        self._count("recv_pres")
        self._heard(source, inc, now, effects)
        if result is None:
            return
        tid, ok = result
        if not self._is_suspect(tid):
            return
        if ok:  # a helper reached it: it is alive, whatever our own link to it does
            self._probes.finish(tid)
            self._life(tid, now, effects, force=True)
        # else a nack: one more member cannot reach it either (counted by the probes: the timeout shrinks)

    def _suspicion_timeout(self, node_id: bytes) -> float:
        """Lifeguard: ``suspect_timeout_max`` shrinking with confirmations, times the local health."""
        cfg = self.config
        base = self._probes.suspicion_timeout(node_id, cfg.suspect_timeout, cfg.suspect_timeout_max)
        return base * self.health.multiplier

    # -- the failure-detection loop ----------------------------------------------------------------------
    #
    # One loop for every policy. The policy says which members are monitored (_watch / _unwatch: full
    # mesh every up member, the record overlays their neighbours) and what failing one means (_fail);
    # the engine keeps one phi detector per monitored member and their crossing times in a heap, starts
    # a suspicion at the exact crossing, and fails the member when the suspicion outlives Lifeguard's
    # dynamic timeout times the local health multiplier.

    def _watch(self, identity: Identity, now: float) -> _Neighbour:
        """Start monitoring ``identity`` (a fresh detector, heard from ``now``); returns its watch."""
        watch = self._watched.get(identity.node_id)
        if watch is not None:
            return watch
        cfg = self.config
        detector = PhiAccrualDetector(
            threshold=cfg.phi_threshold, max_sample_size=self._window_size, min_std_deviation=cfg.min_std_deviation,
            acceptable_heartbeat_pause=cfg.acceptable_heartbeat_pause,
            first_heartbeat_estimate=cfg.heartbeat_interval, min_interval=cfg.heartbeat_interval)
        detector.heartbeat(now)
        watch = self._watched[identity.node_id] = _Neighbour(identity, detector)
        self._push_crossing(identity.node_id, detector)
        return watch

    def _unwatch(self, node_id: bytes) -> bool:
        """Stop monitoring ``node_id`` (its suspicion and probes end); False when it was not monitored."""
        if self._watched.pop(node_id, None) is None:
            return False
        self._suspects.discard(node_id)
        self._probes.finish(node_id)
        return True

    def _push_crossing(self, node_id: bytes, detector: PhiAccrualDetector) -> None:
        at = detector.suspect_at()
        if at is not None:
            heapq.heappush(self._crossings, (at, node_id))
        if len(self._crossings) > 8 * len(self._watched) + 64:
            # a driver that rarely asks next_deadline(): rebuild from the live detectors
            self._crossings = [(w.detector.suspect_at() or 0.0, nid) for nid, w in self._watched.items()
                               if nid not in self._suspects]
            heapq.heapify(self._crossings)

    def _life(self, node_id: bytes, now: float, effects: list[Any], *, force: bool = False) -> bool:
        """A sign of life from ``node_id``: feed its detector and end its suspicion (``MemberChanged``).
        False when it is not monitored. Within the policy's life resolution of the last sample, a sign of
        life from a member that is not suspect is not sampled again (a burst needs one sample), unless
        ``force``."""
        watch = self._watched.get(node_id)
        if watch is None:
            return False
        last = watch.detector.last
        if (not force and watch.suspect_since is None and last is not None
                and now - last < self._life_resolution):
            return True
        watch.detector.heartbeat(now)
        if watch.suspect_since is not None:
            watch.suspect_since = None
            self._suspects.discard(node_id)
            self._probes.finish(node_id)
            rec = self._records.get(node_id)
            if rec is not None and rec.st == ST_ALIVE:
                effects.append(MemberChanged(rec.member(False), rec.member(True)))
        self._push_crossing(node_id, watch.detector)
        return True

    def _fail(self, node_id: bytes, reason: str, now: float, effects: list[Any]) -> None:
        """Hook: the member failed (``"unreachable"``: its suspicion timed out; ``"replaced"``: a newer
        process took its name). The policy stops monitoring it and marks it down its own way."""
        self._unwatch(node_id)

    def _heartbeat_targets(self) -> list[bytes]:
        """Hook: who gets a heartbeat every ``heartbeat_interval`` (default: the monitored members)."""
        return sorted(self._watched)

    def _heartbeats(self, now: float, effects: list[Any]) -> None:
        """Send the heartbeat round when it is due."""
        if now >= self._next_hb:
            self._next_hb = max(self._next_hb + self.config.heartbeat_interval, now)
            body = {"in": self.incarnation}
            for nid in self._heartbeat_targets():
                self._send(effects, nid, OP_HEARTBEAT, body)

    def _probe_due(self, watch: _Neighbour) -> float:
        """When the next direct probe of a suspect is due (spread evenly over ``suspect_timeout``)."""
        assert watch.suspect_since is not None
        return watch.suspect_since + watch.probes_sent * self.config.suspect_timeout / max(1, self._suspect_probes)

    def _monitor_deadline(self) -> float:
        """The loop's next deadline: the earliest detector crossing, suspicion timeout, direct probe or
        indirect-probe nack (held until the recheck after a late tick)."""
        crossing = math.inf
        heap = self._crossings
        while heap:
            at, node_id = heap[0]
            watch = self._watched.get(node_id)
            if watch is not None and watch.suspect_since is None and watch.detector.suspect_at() == at:
                crossing = at
                break
            heapq.heappop(heap)  # stale: a newer sign of life moved it, or the member is not monitored
        held = self._probes.next_deadline()
        for node_id in self._suspects:
            watch = self._watched[node_id]
            assert watch.suspect_since is not None
            held = min(held, watch.suspect_since + self._suspicion_timeout(node_id))
            if watch.probes_sent < self._suspect_probes:
                held = min(held, self._probe_due(watch))
        if self._recheck_at != math.inf:
            # after a late tick, suspicions and nacks wait for the recheck (else a deadline already past
            # would make the driver tick again at once, forever)
            crossing = max(crossing, self._recheck_at)
            held = max(held, self._recheck_at)
        return min(crossing, held)

    def _monitor(self, now: float, effects: list[Any]) -> None:
        """Run the failure-detection loop at ``now`` (first in a tick, so a heartbeat round never masks a
        due suspicion)."""
        cfg = self.config
        # Lifeguard: a timer that ran late means this node was starved; the silence it measured is its
        # own, and the messages that queued meanwhile have not been read yet. Such a tick declares
        # nothing; suspicions are looked at again once the input had a chance to run (a recheck is never
        # deferred again, so a chronically late node still detects crashes, only later).
        due, self._due = self._due, math.inf  # lateness is measured once per deadline handed out
        if now >= self._recheck_at:
            self._recheck_at = math.inf
        elif cfg.local_health_max and due < now and self.health.timer(due, now) and self._recheck_at == math.inf:
            self._recheck_at = now + cfg.heartbeat_interval / 2
        if self._recheck_at != math.inf:
            return  # a helper's nack, too, waits until its own backlog had a chance to run
        for send in self._probes.tick(now, self.incarnation):
            self._send(effects, send.to, send.op, send.body)
        due_ids = set(self._suspects)
        heap = self._crossings
        while heap and heap[0][0] <= now:
            at, node_id = heapq.heappop(heap)
            watch = self._watched.get(node_id)
            if watch is not None and watch.suspect_since is None and watch.detector.suspect_at() == at:
                due_ids.add(node_id)
        for node_id in sorted(due_ids):  # node id order: the random draws do not depend on heap ties
            watch = self._watched.get(node_id)
            if watch is None:
                continue  # no longer monitored (failed earlier in this pass)
            if watch.suspect_since is None:
                self._start_suspicion(node_id, watch, now, effects)
            since = watch.suspect_since
            assert since is not None
            if now >= since + self._suspicion_timeout(node_id):
                if self._probes.finish(node_id):
                    self.health.worse(now, "missed_nacks")  # helpers we asked stayed silent: our links?
                self._fail(node_id, "unreachable", now, effects)
            elif watch.probes_sent < self._suspect_probes and now >= self._probe_due(watch):
                # ask the suspect for an immediate heartbeat: a run of lost heartbeats (random loss) gets
                # more chances before a live member is declared down
                watch.probes_sent += 1
                self._count("suspect_probes")
                self._send(effects, node_id, OP_HEARTBEAT, {"in": self.incarnation, "a": 1})

    def _start_suspicion(self, node_id: bytes, watch: _Neighbour, now: float, effects: list[Any]) -> None:
        """Phi crossed the threshold for ``node_id``: suspect it (``MemberChanged``) and ask up to
        ``indirect_probes`` other monitored members, not suspect themselves, to probe it."""
        watch.suspect_since = now
        watch.probes_sent = 0
        self._suspects.add(node_id)
        self._count("suspicions")
        rec = self._records.get(node_id)
        if rec is not None and rec.st == ST_ALIVE:
            effects.append(MemberChanged(rec.member(True), rec.member(False)))
        k = self.config.indirect_probes
        if k:
            helpers = [h for h in sorted(self._watched) if h != node_id and h not in self._suspects]
            chosen = self._rng.sample(helpers, min(k, len(helpers)))
            for send in self._probes.request(node_id, chosen, self.incarnation):
                self._send(effects, send.to, send.op, send.body)

    # -- the two policy flags: direct evidence before MemberUp, name replacement -------------------------

    def _alive_record(self, rec: _Record, now: float, effects: list[Any]) -> None:
        """An alive record was merged (new, or a new incarnation): it is up at once or, with
        :attr:`evidence_required`, once that incarnation has been heard from directly."""
        if not self.evidence_required or self._evidence.get(rec.node_id) == rec.incarnation:
            self._mark_up(rec, now, effects)

    def _direct_evidence(self, source: bytes, inc: int, now: float, effects: list[Any]) -> _Record | None:
        """``source`` spoke to this node as incarnation ``inc``: remember it, and bring its record up (it
        is that incarnation and alive) or count a sign of life. Returns the record held, if any."""
        rec = self._records.get(source)
        if rec is None:
            return None
        if inc > self._evidence.get(source, -1):
            self._evidence[source] = inc
        if inc == rec.incarnation and rec.st == ST_ALIVE:
            if rec.up:
                self._life(source, now, effects)
            else:
                self._mark_up(rec, now, effects)
        return rec

    def _mark_up(self, rec: _Record, now: float, effects: list[Any]) -> None:
        """The record is up: ``MemberUp``, the policy's :meth:`_on_up`, then (with :attr:`replace_names`)
        an older, silent incarnation under the same name fails, reason ``"replaced"``."""
        rec.up = True
        effects.append(MemberUp(rec.member()))
        self._on_up(rec, now, effects)
        if not self.replace_names or not rec.name:
            return
        # Names are unique: an older incarnation under the same name (another node id) that has gone
        # silent is the previous process of this node. One still heard from within the last heartbeat
        # interval is a misconfigured twin: replacing it would make the two refute and replace each other
        # forever, so it is only counted (and left to the failure detector).
        for nid in sorted(self._records):
            other = self._records[nid]
            if other is rec or other.name != rec.name or other.st != ST_ALIVE or other.incarnation >= rec.incarnation:
                continue
            watch = self._watched.get(nid)
            last = watch.detector.last if watch is not None else None
            if last is not None and now - last <= self.config.heartbeat_interval:
                self._count("name_conflicts")
                continue
            self._fail(nid, "replaced", now, effects)

    def _on_up(self, rec: _Record, now: float, effects: list[Any]) -> None:
        """Hook: the record just came up (the full-mesh policy monitors it from now on)."""

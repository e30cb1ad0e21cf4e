"""What every membership core shares to keep one slow node or one bad link from killing healthy members:
SWIM's indirect probes and Lifeguard's local health awareness and dynamic suspicion timeout.

Theory of operation
-------------------
Indirect probes (SWIM ``ping-req``, Das et al. 2002). When this node starts to suspect member ``t`` it
probes ``t`` directly *and* asks ``k`` (``indirect_probes``) other members to probe it:

    requester --preq{t, s}--> helper --iping{s'}--> t --iack{s'}--> helper --pres{t, s, ok=1}--> requester

A helper that gets no ``iack`` within ``probe_timeout`` answers ``pres`` with ``ok=0`` (a *nack*,
Lifeguard's addition): the nack tells the requester that the helper is reachable, so its own silence
is not the requester's fault, and it is an independent confirmation of the suspicion. A helper that
already holds ``t`` down, or does not know it, answers ``ok=0`` at once. Any ``ok=1`` clears the
suspicion: one lossy or one-way-broken link between two members no longer flaps a healthy member,
as long as some other member still hears it.

Local health (Lifeguard's LHM, Dadgar et al. 2018). A node that is itself slow - its timers fire late
because the process is starved of CPU, or its probes and requests go unanswered - would otherwise
blame the others for its own lateness. :class:`LocalHealth` keeps a saturating score ``0..max``:

* +1 when a timer ran later than half a heartbeat interval after it was due (the late tick itself
  declares nothing: it first lets the input that queued up meanwhile be processed);
* +1 when a suspicion ended with helpers that sent neither an ack nor a nack (missed nacks);
* +1 when this node learns that others declared it down (it refutes);
* -1 after every four heartbeat intervals without any of those.

Suspicion timeouts are multiplied by ``1 + score``: a node that runs late waits longer before
declaring anyone down.

Dynamic suspicion timeout (Lifeguard). A suspicion starts with ``suspect_timeout_max`` and shrinks as
independent confirmations ``c`` arrive (a nack, or another member asking us to probe the same node):

    timeout(c) = max(min, max - (max - min) * log(c + 1) / log(k + 1))      (min = ``suspect_timeout``)

with ``k`` the number of helpers actually asked (fewer in a small cluster), so a member that several
others also cannot reach is declared down after ``suspect_timeout``, and one only this node suspects
(or that nobody else could be asked about) gets up to ``suspect_timeout_max`` for its ack to come
through.

Message ops (MEMBERSHIP envelopes; bodies are msgpack maps; all carry ``in``, the sender's incarnation)::

    op     body                              meaning
    preq   {in, t: bin16, s: int}            please probe member ``t``; answer ``pres`` with ``s``
    iping  {in, s: int, m?: ENTRY}           a probe on someone's behalf: answer ``iack`` with ``s`` (``m``:
                                             the helper's identity, so a node without a link can answer)
    iack   {in, s: int}                      the answer to ``iping``
    pres   {in, t: bin16, s: int, ok: int}   the result of a ``preq``: ok=1 ``t`` answered, ok=0 it did not
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import BadMembershipMessage
from .types import Send

OP_PING_REQ = "preq"
OP_INDIRECT_PING = "iping"
OP_INDIRECT_ACK = "iack"
OP_PING_RESULT = "pres"
PROBE_OPS = (OP_PING_REQ, OP_INDIRECT_PING, OP_INDIRECT_ACK, OP_PING_RESULT)
"""The indirect-probe ops every membership core understands."""

HEALTHY_ROUNDS = 4
"""Heartbeat intervals without a late timer or a missed answer after which the health score drops by one."""

_MAX_SEQ = 2**63 - 1


def suspicion_timeout(minimum: float, maximum: float, confirmations: int, expected: int) -> float:
    """Lifeguard's dynamic suspicion timeout: ``maximum`` with no confirmation, decaying logarithmically
    to ``minimum`` once ``expected`` independent confirmations arrived (never below ``minimum``;
    ``expected`` 0 means nothing to wait for: ``minimum``)."""
    if maximum <= minimum or expected <= 0:
        return minimum
    frac = math.log(confirmations + 1) / math.log(expected + 1)
    return max(minimum, maximum - (maximum - minimum) * frac)


class LocalHealth:
    """Lifeguard's local health multiplier (see the module docstring).

    Args:
        maximum: the highest score (timeouts grow at most ``1 + maximum`` times); 0 disables.
        interval: the heartbeat interval, seconds (what "late" and the recovery pace are measured in).
    """

    def __init__(self, maximum: int, interval: float) -> None:
        self.maximum = maximum
        self.interval = interval
        self.score = 0
        self.counters: dict[str, int] = {}
        self._calm_since = 0.0

    @property
    def multiplier(self) -> int:
        """What suspicion timeouts are multiplied by (``1 + score``)."""
        return 1 + self.score

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def worse(self, now: float, reason: str) -> None:
        """Something says this node is unhealthy (``reason`` names the counter)."""
        self._count(reason)
        self._calm_since = now
        if self.score < self.maximum:
            self.score += 1

    def timer(self, due: float, now: float) -> bool:
        """A timer due at ``due`` ran at ``now``. Returns True when it ran late (more than half a
        heartbeat interval): the caller must not take silence measured during the delay as evidence."""
        late = now - due > self.interval / 2
        if late:
            self.worse(now, "late_ticks")
        elif self.score and now - self._calm_since >= HEALTHY_ROUNDS * self.interval:
            self.score -= 1
            self._calm_since = now
        return late

    def stats(self) -> dict[str, int]:
        """Counters (``late_ticks``, ``missed_nacks``, ``self_refuted``) and the current multiplier."""
        out = dict(self.counters)
        out["health_score"] = self.score
        out["health_multiplier"] = self.multiplier
        return out


@dataclass(slots=True)
class _Ask:
    """One suspicion's indirect probe: what we asked and what came back."""

    seq: int
    helpers: set[bytes]
    answered: set[bytes] = field(default_factory=set)
    confirmations: set[bytes] = field(default_factory=set)


@dataclass(slots=True)
class _Relay:
    """A probe we make on a requester's behalf."""

    target: bytes
    requester: bytes
    seq: int
    deadline: float


def _node_id(value: Any, name: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 16:
        raise BadMembershipMessage(f"{name} must be a 16-octet node id")
    return value


def _seq(body: dict[str, Any]) -> int:
    seq = body.get("s")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= _MAX_SEQ:
        raise BadMembershipMessage("probe s must be an int in 0..2**63-1")
    return seq


class IndirectProbes:
    """The bookkeeping of SWIM's ping-req on both sides, shared by every membership core.

    The core decides whom to ask and whether it can reach a target; this class builds the messages,
    matches answers to requests and times helpers out. Every method returns :class:`Send` effects.

    Args:
        k: helpers asked per suspicion (``indirect_probes``; 0 disables).
        timeout: seconds a helper waits for the target's ``iack`` before it answers with a nack.
    """

    def __init__(self, k: int, timeout: float) -> None:
        self.k = k
        self.timeout = timeout
        self._seq = 0
        self._asks: dict[bytes, _Ask] = {}
        self._relays: dict[int, _Relay] = {}
        self.counters: dict[str, int] = {}

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # -- requester side -------------------------------------------------------------------------------

    def request(self, target: bytes, helpers: Iterable[bytes], inc: int) -> list[Send]:
        """Ask ``helpers`` (at most ``k`` of them, chosen by the caller) to probe ``target``."""
        chosen = set(helpers)
        if not chosen or self.k == 0:
            return []
        ask = self._asks.get(target)
        if ask is None:
            ask = self._asks[target] = _Ask(self._next_seq(), set())
        ask.helpers |= chosen
        self._count("sent_ping_req", len(chosen))
        return [Send(h, OP_PING_REQ, {"in": inc, "t": target, "s": ask.seq}) for h in sorted(chosen)]

    def confirm(self, target: bytes, by: bytes) -> None:
        """``by`` independently suspects ``target`` (it asked us to probe it)."""
        ask = self._asks.get(target)
        if ask is not None:
            ask.confirmations.add(by)

    def confirmations(self, target: bytes) -> int:
        """Independent confirmations of the current suspicion of ``target``."""
        ask = self._asks.get(target)
        return len(ask.confirmations) if ask is not None else 0

    def suspicion_timeout(self, target: bytes, minimum: float, maximum: float) -> float:
        """The dynamic suspicion timeout of ``target`` (before the local health multiplier): all the
        helpers actually asked (at most ``k``) confirming brings it down to ``minimum``; with nobody to
        ask it stays ``maximum``."""
        ask = self._asks.get(target)
        if ask is None or not ask.helpers:
            return maximum
        return suspicion_timeout(minimum, maximum, len(ask.confirmations), len(ask.helpers))

    def pending(self, target: bytes) -> bool:
        """True while a suspicion of ``target`` has an indirect probe open."""
        return target in self._asks

    def finish(self, target: bytes) -> bool:
        """The suspicion of ``target`` ended (cleared or declared down). Returns True when some helper
        sent neither an ack nor a nack (Lifeguard's missed nack: this node's own links may be bad)."""
        ask = self._asks.pop(target, None)
        if ask is None:
            return False
        missed = bool(ask.helpers - ask.answered)
        if missed:
            self._count("missed_nacks")
        return missed

    def on_result(self, source: bytes, body: dict[str, Any]) -> tuple[bytes, bool] | None:
        """A ``pres``: returns ``(target, ok)`` when it answers an open request, else None."""
        target = _node_id(body.get("t"), "pres t")
        seq = _seq(body)
        ok = body.get("ok")
        if ok not in (0, 1) or isinstance(ok, bool):
            raise BadMembershipMessage("pres ok must be 0 or 1")
        ask = self._asks.get(target)
        if ask is None or ask.seq != seq or source not in ask.helpers:
            self._count("stale_results")
            return None
        ask.answered.add(source)
        if ok:
            self._count("indirect_acks")
        else:
            self._count("indirect_nacks")
            ask.confirmations.add(source)
        return target, bool(ok)

    # -- helper side ----------------------------------------------------------------------------------

    def on_request(self, source: bytes, body: dict[str, Any], inc: int, now: float, *, reachable: bool,
                   entry: dict[str, Any] | None = None, scale: float = 1.0) -> tuple[bytes, list[Send]]:
        """A ``preq`` from ``source``. ``reachable``: the caller holds the target alive and can link to it
        (else a nack goes back at once). Returns the target and the sends (the ``iping``, or the nack);
        ``entry``: our identity as a wire ENTRY, for a target that has no link to us; ``scale``: the
        helper's local health multiplier (a slow helper waits longer before it nacks)."""
        target = _node_id(body.get("t"), "preq t")
        seq = _seq(body)
        self._count("recv_ping_req")
        if not reachable:
            self._count("ping_req_refused")
            return target, [Send(source, OP_PING_RESULT, {"in": inc, "t": target, "s": seq, "ok": 0})]
        mine = self._next_seq()
        self._relays[mine] = _Relay(target, source, seq, now + self.timeout * scale)
        if len(self._relays) > 4096:  # bounded against a flood of requests
            del self._relays[next(iter(self._relays))]
        ping: dict[str, Any] = {"in": inc, "s": mine}
        if entry is not None:
            ping["m"] = entry
        return target, [Send(target, OP_INDIRECT_PING, ping)]

    def on_ack(self, source: bytes, body: dict[str, Any], inc: int) -> list[Send]:
        """An ``iack``: tell the requester its target answered."""
        relay = self._relays.pop(_seq(body), None)
        if relay is None or relay.target != source:
            return []
        self._count("relayed_acks")
        return [Send(relay.requester, OP_PING_RESULT, {"in": inc, "t": relay.target, "s": relay.seq, "ok": 1})]

    def tick(self, now: float, inc: int) -> list[Send]:
        """Nacks for the probes made on others' behalf that timed out."""
        out: list[Send] = []
        for seq in [s for s, r in self._relays.items() if r.deadline <= now]:
            relay = self._relays.pop(seq)
            self._count("relayed_nacks")
            out.append(Send(relay.requester, OP_PING_RESULT, {"in": inc, "t": relay.target, "s": relay.seq, "ok": 0}))
        return out

    def next_deadline(self) -> float:
        """The earliest helper timeout (inf when none)."""
        return min((r.deadline for r in self._relays.values()), default=math.inf)

    def stats(self) -> dict[str, int]:
        """Counters (``sent_ping_req``, ``indirect_acks``, ``indirect_nacks``, ``missed_nacks``, ...)."""
        return dict(self.counters)


def ping_body(body: Any) -> int:
    """Validate an ``iping`` / ``iack`` body; returns its sequence number."""
    if not isinstance(body, dict):
        raise BadMembershipMessage("probe body must be a map")
    return _seq(body)

"""Indirect probes (SWIM ping-req) and Lifeguard's local health, in seeded simulations on a manual clock.

A small discrete-event harness drives full-mesh membership cores (sans-IO): per-link one-way loss,
latency, crashes, and *slow* nodes - processes starved of CPU that freeze for a while, then run the
timers that came due first and drain their input backlog at a limited pace (as a starved asyncio
loop does). It counts false ``MemberDown`` events (a healthy member declared down) and measures how
long a real crash takes to be declared down.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from fabric.membership import (
    Dial,
    FullMeshMembership,
    Identity,
    MemberDown,
    MembershipConfig,
    Send,
    StaticOverlay,
    TreeSend,
)
from fabric.membership.health import (
    OP_PING_REQ,
    OP_PING_RESULT,
    IndirectProbes,
    LocalHealth,
    suspicion_timeout,
)

LATENCY = (0.001, 0.004)


def ident(i: int) -> Identity:
    name = f"n{i}"
    return Identity(name.encode().ljust(16, b"."), name, 1, {}, {"membership": ("control", f"mem://{name}", 1)})


class Slow:
    """A starved process: from ``start`` it is frozen for ``freeze`` seconds (drawn uniformly), runs for
    ``run`` seconds (drawn uniformly), and so on; every message it handles costs ``cost`` seconds of its
    loop once it runs."""

    def __init__(self, *, start: float, freeze: tuple[float, float], run: tuple[float, float], cost: float,
                 seed: int, until: float = 1000.0) -> None:
        rng = random.Random(seed)
        self.cost = cost
        self.frozen: list[tuple[float, float]] = []
        t = start
        while t < until:
            length = rng.uniform(*freeze)
            self.frozen.append((t, t + length))
            t += length + rng.uniform(*run)
        self._starts = [a for a, _ in self.frozen]

    def wake(self, t: float) -> float:
        """When the node can next run at or after ``t``."""
        k = bisect.bisect_right(self._starts, t) - 1
        if k >= 0 and t < self.frozen[k][1]:
            return self.frozen[k][1]
        return t


@dataclass
class Net:
    """A seeded event-driven network of full-mesh cores."""

    config: MembershipConfig
    seed: int = 1
    loss: dict[tuple[int, int], float] = field(default_factory=dict)
    slow: dict[int, Slow] = field(default_factory=dict)
    static: bool = False
    """Drive :class:`StaticOverlay` cores (every member configured) instead of full-mesh ones."""

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.now = 0.0
        self.cores: dict[int, Any] = {}
        self.ids: dict[bytes, int] = {}
        self.crashed: dict[int, float] = {}
        self.downs: list[tuple[float, int, int, str]] = []  # (time, observer, member, reason)
        self._heap: list[tuple[float, int, int, str, int, Any]] = []
        self._seq = itertools.count()
        self._timer: dict[int, float] = {}
        self._busy: dict[int, float] = {}

    def add(self, n: int) -> None:
        for i in range(n):
            rng = random.Random(self.seed * 1000 + i)
            core: Any
            if self.static:
                core = StaticOverlay(ident(i), [ident(j) for j in range(n)], self.config, rng=rng, now=self.now)
            else:
                core = FullMeshMembership(ident(i), self.config, rng=rng, now=self.now)
            self.cores[i] = core
            self.ids[core.node_id] = i
        seed = self.cores[0].local.endpoints["membership"][1]
        for i, core in self.cores.items():
            self._apply(i, core.join([seed] if i else [], self.now))

    def _push(self, at: float, prio: int, kind: str, node: int, data: Any) -> None:
        heapq.heappush(self._heap, (at, prio, next(self._seq), kind, node, data))

    def _apply(self, i: int, effects: list[Any]) -> None:
        for e in effects:
            if isinstance(e, Send | TreeSend):
                j = self.ids.get(e.to)
                if j is None or self.rng.random() < self.loss.get((i, j), 0.0):
                    continue
                kind = "msg" if isinstance(e, Send) else "tree"
                self._push(self.now + self.rng.uniform(*LATENCY), 1, kind, j, (i, e.op, e.body))
            elif isinstance(e, Dial):
                j = next(k for k, c in self.cores.items() if c.local.endpoints["membership"][1] == e.endpoint)
                if j not in self.crashed:
                    self._push(self.now + 2 * LATENCY[1], 1, "contact", j, i)
                    self._push(self.now + 2 * LATENCY[1], 1, "contact", i, j)
            elif isinstance(e, MemberDown):
                self.downs.append((self.now, i, self.ids[e.member.node_id], e.reason))
        deadline = self.cores[i].next_deadline()
        if deadline is not None and deadline < self._timer.get(i, math.inf):
            self._timer[i] = deadline
            self._push(deadline, 0, "tick", i, deadline)

    def crash(self, i: int) -> None:
        self.crashed[i] = self.now

    def run(self, until: float) -> None:
        while self._heap and self._heap[0][0] <= until:
            at, prio, _, kind, i, data = heapq.heappop(self._heap)
            if i in self.crashed:
                continue
            if kind == "tick" and self._timer.get(i) != data:
                continue  # superseded by an earlier deadline
            slow = self.slow.get(i)
            if slow is not None:
                # a starved loop: nothing runs while frozen; afterwards input is drained one message at a
                # time, and timers that came due in the meantime run first
                run_at = slow.wake(at)
                if kind != "tick":
                    run_at = max(run_at, self._busy.get(i, 0.0))
                if run_at > at:
                    if kind == "tick":
                        self._timer[i] = run_at
                        data = run_at
                    self._push(run_at, prio, kind, i, data)
                    continue
                if kind != "tick":
                    self._busy[i] = at + slow.cost
            self.now = at
            core = self.cores[i]
            if kind == "tick":
                self._timer[i] = math.inf
                self._apply(i, core.tick(at))
            elif kind == "contact":
                self._apply(i, core.contact(self.cores[data].local, at))
            elif kind == "tree":
                src, op, body = data
                self._apply(i, core.receive_tree(self.cores[src].node_id, op, body, at))
            else:
                src, op, body = data
                self._apply(i, core.receive(self.cores[src].node_id, op, body, at))
        self.now = until

    def false_downs(self) -> list[tuple[float, int, int, str]]:
        """MemberDown events about members that had not crashed at that time."""
        return [d for d in self.downs if d[2] not in self.crashed or d[0] < self.crashed[d[2]]]

    def alive_view(self, i: int) -> set[str]:
        return {m.name for m in self.cores[i].alive_members()}


def formed(net: Net, n: int) -> None:
    net.run(3.0)
    for i in range(n):
        assert len(net.alive_view(i)) == n, (i, net.alive_view(i))


# -- the pieces ------------------------------------------------------------------------------------


def test_dynamic_suspicion_timeout_decays_with_confirmations() -> None:
    assert suspicion_timeout(0.2, 1.0, 0, 3) == pytest.approx(1.0)
    assert suspicion_timeout(0.2, 1.0, 3, 3) == pytest.approx(0.2)
    assert suspicion_timeout(0.2, 1.0, 9, 3) == pytest.approx(0.2)  # never below the minimum
    values = [suspicion_timeout(0.2, 1.0, c, 3) for c in range(4)]
    assert values == sorted(values, reverse=True) and len(set(values)) == 4
    assert suspicion_timeout(0.2, 1.0, 0, 0) == 0.2  # no helpers: no confirmation to wait for


def test_local_health_rises_on_late_timers_is_bounded_and_recovers() -> None:
    health = LocalHealth(maximum=3, interval=0.2)
    assert not health.timer(1.0, 1.05)  # a little late is on time
    for k in range(5):
        assert health.timer(2.0 + k, 2.5 + k)
    assert health.score == 3 and health.multiplier == 4
    t = 7.0
    while health.score:
        t += 0.2
        health.timer(t, t)
    assert t == pytest.approx(7.0 + 3 * 4 * 0.2)  # one step per four quiet heartbeat intervals
    assert health.stats()["late_ticks"] == 5


def test_ping_req_round_trip_and_nack() -> None:
    a, b, t = b"a" * 16, b"b" * 16, b"t" * 16
    req, helper = IndirectProbes(3, 0.5), IndirectProbes(3, 0.5)
    [ask] = req.request(t, [b], inc=1)
    assert ask.op == OP_PING_REQ and ask.to == b
    target, [ping] = helper.on_request(a, ask.body, 1, now=0.0, reachable=True)
    assert target == t and ping.to == t
    [result] = helper.on_ack(t, {"in": 1, "s": ping.body["s"]}, 1)
    assert result.op == OP_PING_RESULT and result.to == a and result.body["ok"] == 1
    assert req.on_result(b, result.body) == (t, True)
    assert not req.finish(t)  # everyone answered
    # a helper that cannot reach the target nacks after its timeout: a confirmation
    [ask] = req.request(t, [b], inc=1)
    helper.on_request(a, ask.body, 1, now=1.0, reachable=True)
    assert helper.tick(1.2, 1) == [] and helper.next_deadline() == pytest.approx(1.5)
    [nack] = helper.tick(1.5, 1)
    assert req.on_result(b, nack.body) == (t, False) and req.confirmations(t) == 1
    # an answer to a finished request is stale
    req.finish(t)
    assert req.on_result(b, nack.body) is None
    # a request nobody answered counts as a missed nack
    req.request(t, [b], inc=1)
    assert req.finish(t) and req.stats()["missed_nacks"] == 1


def test_stats_expose_the_health_multiplier_and_probe_counters() -> None:
    core = FullMeshMembership(ident(0), MembershipConfig.local())
    stats = core.stats()
    assert stats["health_multiplier"] == 1 and stats["health_score"] == 0


# -- (a) asymmetric and heavy loss -------------------------------------------------------------------


def lossy(n: int, *, one_way: tuple[int, int], rate: float, seed: int) -> dict[tuple[int, int], float]:
    """One link 100% lossy in one direction, and every link touching node 1 lossy at ``rate``."""
    loss = {(i, 1): rate for i in range(n) if i != 1} | {(1, j): rate for j in range(n) if j != 1}
    loss[one_way] = 1.0
    return loss


@pytest.mark.parametrize("seed", [1, 2])
def test_asymmetric_loss_flaps_no_healthy_member_and_a_crash_is_still_detected(seed: int) -> None:
    n = 6
    cfg = MembershipConfig.local()
    net = Net(cfg, seed=seed)
    net.add(n)
    formed(net, n)
    net.loss = lossy(n, one_way=(2, 3), rate=0.25, seed=seed)
    net.run(63.0)
    assert net.false_downs() == []
    suspicions = sum(c.stats().get("suspicions", 0) for c in net.cores.values())
    acks = sum(c.stats().get("indirect_acks", 0) for c in net.cores.values())
    assert suspicions >= 3 and acks >= 3  # the loss did cause suspicions; indirect acks cleared them
    # a real crash is still declared down by every live node within the documented bound
    net.crash(4)
    crashed_at = net.now
    bound = cfg.detection_bound(max_latency=LATENCY[1], drop=0.25)
    net.run(crashed_at + bound + 1.0)
    for i in (0, 1, 2, 3, 5):
        times = [t for t, obs, m, _ in net.downs if obs == i and m == 4]
        assert times and times[0] - crashed_at <= bound, (i, times, bound)
    assert net.false_downs() == []


def test_without_indirect_probes_the_one_way_link_flaps_a_healthy_member() -> None:
    n = 6
    net = Net(MembershipConfig.local(indirect_probes=0), seed=1)
    net.add(n)
    formed(net, n)
    net.loss = lossy(n, one_way=(2, 3), rate=0.25, seed=1)
    net.run(63.0)
    assert net.false_downs()  # the contrast: node 3 keeps declaring node 2 down


@pytest.mark.parametrize("indirect", [3, 0])
def test_partial_views_ask_other_neighbours_before_failing_one(indirect: int) -> None:
    """The record overlays (here static: every member a neighbour, each node's own opinion) share the
    indirect probes: a one-way-broken link does not fail a healthy neighbour; without them it does."""
    n = 5
    net = Net(MembershipConfig.local(indirect_probes=indirect), seed=3, static=True)
    net.add(n)
    formed(net, n)
    net.loss = {(2, 3): 1.0}
    net.run(33.0)
    flaps = [d for d in net.false_downs() if d[1] == 3 and d[2] == 2]
    if indirect:
        assert flaps == []
        assert net.cores[3].stats()["indirect_acks"] > 0
    else:
        assert flaps
    # a crash is still detected by every neighbour
    net.crash(4)
    crashed_at = net.now
    net.run(crashed_at + 10.0)
    for i in range(4):
        assert any(obs == i and m == 4 for _, obs, m, _ in net.downs), i


# -- (b) slow nodes ------------------------------------------------------------------------------------


# the detector tolerates one missed heartbeat, not a starved observer's 2-3
SLOW_CFG = MembershipConfig.local(acceptable_heartbeat_pause=0.2)
WITHOUT_LIFEGUARD = SLOW_CFG.replace(local_health_max=0, suspect_timeout_max=SLOW_CFG.suspect_timeout)
"""SWIM without Lifeguard: no local health, and a fixed suspicion timeout (no dynamic suspicion)."""


def slow_cluster(cfg: MembershipConfig, seed: int, slow: Slow) -> Net:
    net = Net(cfg, seed=seed, slow={1: slow})
    net.add(5)
    formed(net, 5)
    return net


def starved(seed: int) -> Slow:
    """Node 1 from t = 3 s: frozen 0.4-0.6 s (2-3 heartbeat intervals), then runs 0.1-0.3 s; each message
    costs it 5 ms, so its backlog takes a while to drain (but does not grow for ever)."""
    return Slow(start=3.0, freeze=(0.4, 0.6), run=(0.1, 0.3), cost=0.005, seed=seed)


def backlogged(seed: int) -> Slow:
    """Worse: frozen 0.5-0.7 s (2.5-3.5 intervals), runs only 20-100 ms, 20 ms per message: its input
    queue backs up."""
    return Slow(start=3.0, freeze=(0.5, 0.7), run=(0.02, 0.1), cost=0.02, seed=seed)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_slow_node_declares_no_healthy_member_down_and_still_detects_a_crash(seed: int) -> None:
    net = slow_cluster(SLOW_CFG, seed, starved(seed))
    net.run(63.0)
    assert [d for d in net.false_downs() if d[1] == 1] == []
    stats = net.cores[1].stats()
    assert stats["late_ticks"] > 10 and stats["health_multiplier"] > 1
    # it still detects a real crash, later: its suspicions last up to 1 + local_health_max times longer,
    # and its own freezes (up to 0.6 s) and backlog delay what it hears
    net.crash(3)
    crashed_at = net.now
    bound = SLOW_CFG.detection_bound(max_latency=0.6 + 0.5, health=SLOW_CFG.local_health_max)
    net.run(crashed_at + bound)
    times = [t for t, obs, m, _ in net.downs if obs == 1 and m == 3]
    assert times and times[0] - crashed_at <= bound


@pytest.mark.parametrize("seed", [1, 2])
def test_a_backlogged_node_flaps_healthy_members_only_without_lifeguard(seed: int) -> None:
    net = slow_cluster(SLOW_CFG, seed, backlogged(seed))
    net.run(33.0)
    assert [d for d in net.false_downs() if d[1] == 1] == []
    assert net.cores[1].stats()["health_score"] > 0
    # the contrast: the same node, the same schedule, SWIM without Lifeguard
    net = slow_cluster(WITHOUT_LIFEGUARD, seed, backlogged(seed))
    net.run(33.0)
    assert [d for d in net.false_downs() if d[1] == 1]

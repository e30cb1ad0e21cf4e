"""Full-mesh membership core, driven by hand (no transport): join, events, detection, refutation,
restarts, leave, bad input, bounds."""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import pytest

from fabric import wire
from fabric.membership import (
    Connect,
    Contact,
    Dial,
    Disconnect,
    Effect,
    FullMeshMembership,
    Identity,
    Joined,
    LeaveRequest,
    MemberChanged,
    MemberDown,
    MemberLeft,
    MemberStatus,
    MemberUp,
    Received,
    Send,
    Tick,
)
from fabric.membership.config import MembershipConfig
from fabric.membership.errors import BadMembershipMessage

CFG = MembershipConfig.local()


def ident(name: str, inc: int = 1, node_id: bytes | None = None) -> Identity:
    nid = node_id if node_id is not None else name.encode().ljust(16, b".")
    return Identity(nid, name, inc, {"role": "test"}, {"membership": ("control", f"mem://{name}/membership", 1)})


class Bus:
    """Delivers Send effects between cores in FIFO order; records events per core; drops on request."""

    def __init__(self) -> None:
        self.cores: dict[bytes, FullMeshMembership] = {}
        self.events: dict[bytes, list[Effect]] = {}
        self.effects: dict[bytes, list[Effect]] = {}
        self.queue: deque[tuple[bytes, Send]] = deque()
        self.dead: set[bytes] = set()
        self.now = 0.0

    def add(self, identity: Identity) -> FullMeshMembership:
        core = FullMeshMembership(identity, CFG, rng=random.Random(1), now=self.now)
        self.cores[identity.node_id] = core
        self.events[identity.node_id] = []
        self.effects[identity.node_id] = []
        return core

    def apply(self, core: FullMeshMembership, effects: list[Effect]) -> None:
        for effect in effects:
            self.effects[core.node_id].append(effect)
            if isinstance(effect, Send):
                self.queue.append((core.node_id, effect))
            elif isinstance(effect, Dial):
                seed = next(c for c in self.cores.values() if c.local.endpoints["membership"][1] == effect.endpoint)
                if seed.node_id not in self.dead:
                    # the handshake: both sides learn each other's identity
                    self.apply(seed, seed.contact(core.local, self.now))
                    self.apply(core, core.contact(seed.local, self.now))
            elif not isinstance(effect, Connect | Disconnect):
                self.events[core.node_id].append(effect)

    def pump(self, limit: int = 100_000) -> None:
        for _ in range(limit):
            if not self.queue:
                return
            src, send = self.queue.popleft()
            if send.to in self.dead or src in self.dead or send.to not in self.cores:
                continue
            target = self.cores[send.to]
            # round-trip through the real codec, as the node does
            env = wire.decode(wire.membership(src, send.op, send.body))
            self.apply(target, target.receive(env.source, env.header["op"], wire.unpackb(env.payload), self.now))
        raise AssertionError("message storm")

    def advance(self, seconds: float, step: float = 0.01) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            for nid, core in list(self.cores.items()):
                if nid in self.dead:
                    continue
                deadline = core.next_deadline()
                if deadline is not None and deadline <= self.now:
                    self.apply(core, core.tick(self.now))
            self.pump()

    def kinds(self, core: FullMeshMembership) -> list[tuple[str, str, int]]:
        out = []
        for e in self.events[core.node_id]:
            if isinstance(e, Joined):
                out.append(("joined", "", 0))
            else:
                m = e.member  # type: ignore[union-attr]
                out.append((type(e).__name__, m.name, m.incarnation))
        return out


def cluster(*names: str) -> tuple[Bus, list[FullMeshMembership]]:
    bus = Bus()
    cores = [bus.add(ident(n)) for n in names]
    bus.apply(cores[0], cores[0].join([], bus.now))
    for core in cores[1:]:
        bus.apply(core, core.join([cores[0].local.endpoints["membership"][1]], bus.now))
        bus.pump()
    return bus, cores


def test_join_through_a_seed_learns_everyone_and_fires_up_once() -> None:
    bus, (a, b, c) = cluster("a", "b", "c")
    assert a.joined and b.joined and c.joined
    bus.advance(1.0)
    for core in (a, b, c):
        assert {m.name: m.status for m in core.members()} == {n: MemberStatus.ALIVE for n in "abc"}
        ups = [k for k in bus.kinds(core) if k[0] == "MemberUp"]
        assert sorted(ups) == sorted(("MemberUp", n, 1) for n in "abc" if n != core.local.name)
        assert bus.kinds(core).count(("joined", "", 0)) == 1
    # heard of c through a's push, but up only after direct evidence (c's heartbeat)
    b_effects = bus.effects[b.node_id]
    connect_c = next(i for i, e in enumerate(b_effects) if isinstance(e, Connect) and e.identity.name == "c")
    up_c = next(i for i, e in enumerate(b_effects) if isinstance(e, MemberUp) and e.member.name == "c")
    assert connect_c < up_c


def test_duplicated_messages_do_not_repeat_events() -> None:
    bus, (a, b) = cluster("a", "b")
    bus.advance(0.5)
    before = list(bus.events[b.node_id])
    state = {"in": 1, "r": 0, "m": [a._self.to_wire()]}
    for _ in range(3):
        bus.apply(b, b.receive(a.node_id, "sync", state, bus.now))
    assert bus.events[b.node_id] == before


def test_crash_is_suspected_then_declared_down_within_the_bound() -> None:
    bus, (a, b, c) = cluster("a", "b", "c")
    bus.advance(2.0)
    crash_at = bus.now
    bus.dead.add(c.node_id)
    declared: dict[str, float] = {}
    while len(declared) < 2 and bus.now < crash_at + 3 * CFG.detection_bound():
        bus.advance(0.01)
        for core in (a, b):
            m = core.member(c.node_id)
            if m is not None and m.status == MemberStatus.DOWN:
                declared.setdefault(core.local.name, bus.now)
    assert set(declared) == {"a", "b"}
    # slack: this hand-made loop runs timers on 0.01 s steps (the last heartbeat, the suspicion and the
    # down decision can each be one step late); the simulation tests run timers exactly
    assert max(declared.values()) - crash_at <= CFG.detection_bound() + 0.03
    for core in (a, b):
        assert bus.kinds(core).count(("MemberDown", "c", 1)) == 1
    # observers saw it suspect first (their own detector), then down
    changed = [e for e in bus.events[a.node_id] + bus.events[b.node_id] if isinstance(e, MemberChanged)]
    assert any(e.member.status == MemberStatus.SUSPECT for e in changed)


def test_false_down_is_refuted_with_a_new_incarnation() -> None:
    bus, (a, b) = cluster("a", "b")
    bus.advance(0.5)
    # a peer claims b is down at its current incarnation
    claim = b._self.to_wire() | {"st": 2}
    bus.apply(b, b.receive(a.node_id, "sync", {"in": 1, "r": 0, "m": [claim]}, bus.now))
    assert b.incarnation == 2 and b.stats()["refuted"] == 1
    bus.pump()
    bus.advance(0.5)
    assert a.member(b.node_id).incarnation == 2  # type: ignore[union-attr]
    assert a.member(b.node_id).status == MemberStatus.ALIVE  # type: ignore[union-attr]
    assert ("MemberDown", "b", 1) in bus.kinds(a) and ("MemberUp", "b", 2) in bus.kinds(a)


def test_restart_with_same_id_is_a_new_incarnation_and_the_old_never_returns() -> None:
    bus, (a, b) = cluster("a", "b")
    bus.advance(0.5)
    old_b = b._self.to_wire()
    bus.dead.add(b.node_id)
    b2 = bus.add(ident("b", inc=2))
    bus.dead.discard(b.node_id)
    bus.apply(b2, b2.join([a.local.endpoints["membership"][1]], bus.now))
    bus.pump()
    bus.advance(0.5)
    assert ("MemberDown", "b", 1) in bus.kinds(a) and ("MemberUp", "b", 2) in bus.kinds(a)
    down = next(e for e in bus.events[a.node_id] if isinstance(e, MemberDown))
    assert down.reason == "restarted"
    # stale gossip and a straggler heartbeat of incarnation 1 change nothing
    n = len(bus.events[a.node_id])
    bus.apply(a, a.receive(b.node_id, "sync", {"in": 1, "r": 0, "m": [old_b]}, bus.now))
    bus.apply(a, a.receive(b.node_id, "hb", {"in": 1}, bus.now))
    assert len(bus.events[a.node_id]) == n
    assert a.member(b.node_id).incarnation == 2  # type: ignore[union-attr]


def test_same_name_new_id_replaces_the_old_node() -> None:
    bus, (a, b) = cluster("a", "b")
    bus.advance(0.5)
    bus.dead.add(b.node_id)
    bus.advance(0.5)  # the restart takes a moment: b is silent, though not yet suspected
    assert a.member(b.node_id).status == MemberStatus.ALIVE  # type: ignore[union-attr]
    b2 = bus.add(ident("b", inc=2, node_id=b"B" * 16))
    bus.apply(b2, b2.join([a.local.endpoints["membership"][1]], bus.now))
    bus.pump()
    downs = [e for e in bus.events[a.node_id] if isinstance(e, MemberDown)]
    assert [(d.member.node_id, d.reason) for d in downs] == [(b.node_id, "replaced")]
    assert a.member(b"B" * 16).status == MemberStatus.ALIVE  # type: ignore[union-attr]


def test_two_live_nodes_with_one_name_do_not_flap() -> None:
    bus, (a, b) = cluster("a", "b")
    bus.advance(0.5)
    twin = bus.add(ident("b", inc=2, node_id=b"T" * 16))  # b is alive and still heartbeating
    bus.apply(twin, twin.join([a.local.endpoints["membership"][1]], bus.now))
    bus.pump()
    bus.advance(3.0)
    assert not [e for e in bus.events[a.node_id] if isinstance(e, MemberDown)]
    assert a.stats()["name_conflicts"] >= 1 and b.incarnation == 1
    assert [m.status for m in a.members() if m.name == "b"] == [MemberStatus.ALIVE] * 2


def test_graceful_leave() -> None:
    bus, (a, b, c) = cluster("a", "b", "c")
    bus.advance(0.5)
    bus.apply(c, c.leave(bus.now))
    bus.pump()
    assert c.leaving and c.next_deadline() is None
    for core in (a, b):
        assert ("MemberLeft", "c", 1) in bus.kinds(core)
        assert core.member(c.node_id).status == MemberStatus.LEFT  # type: ignore[union-attr]
        assert any(isinstance(e, Disconnect) and e.node_id == c.node_id for e in bus.effects[core.node_id])
    bus.advance(CFG.detection_bound() * 2)
    for core in (a, b):
        assert not [e for e in bus.events[core.node_id] if isinstance(e, MemberDown)]
    # tombstones expire: state stays bounded
    stale_c = c._self.to_wire() | {"st": 0}
    bus.advance(CFG.tombstone_ttl)
    assert a.member(c.node_id) is None and a.stats()["entries"] == 1
    # ... but the incarnation stays buried: stale gossip of c@1 alive never brings it back
    n = len(bus.events[a.node_id])
    bus.apply(a, a.receive(b.node_id, "sync", {"in": 1, "r": 0, "m": [stale_c]}, bus.now))
    bus.apply(a, a.receive(c.node_id, "hb", {"in": 1}, bus.now))
    assert len(bus.events[a.node_id]) == n and a.member(c.node_id) is None
    assert a.stats()["buried_claims"] == 1 and a.digest()[c.node_id] == (1, 3, 0)


def test_metadata_change_fires_changed_once() -> None:
    bus, (a, b) = cluster("a", "b")
    bus.advance(0.5)
    bus.apply(b, b.set_metadata({"role": "db"}, bus.now))
    bus.pump()
    changed = [e for e in bus.events[a.node_id] if isinstance(e, MemberChanged)]
    assert len(changed) == 1
    assert changed[0].member.metadata == {"role": "db"} and changed[0].previous.metadata == {"role": "test"}


def test_seeds_are_redialled_with_backoff_until_joined() -> None:
    bus = Bus()
    a = bus.add(ident("a"))
    b = bus.add(ident("b"))
    bus.dead.add(a.node_id)
    bus.apply(b, b.join([a.local.endpoints["membership"][1]], bus.now))
    bus.advance(5.0)
    dials = [e for e in bus.effects[b.node_id] if isinstance(e, Dial)]
    # 0.1, 0.2, 0.4, 0.8, 1.6, 2.0 ... within 5 s: t = 0, 0.1, 0.3, 0.7, 1.5, 3.1 (and 5.1 after)
    assert 5 <= len(dials) <= 7
    assert not b.joined
    bus.dead.discard(a.node_id)
    bus.advance(3.0)
    assert b.joined and a.member(b.node_id) is not None


def test_bad_bodies_raise_and_change_nothing() -> None:
    bus, (a, b) = cluster("a", "b")
    before = [(m.node_id, m.incarnation, m.status) for m in a.members()]
    bad: list[tuple[str, Any]] = [
        ("hb", [1, 2]),
        ("hb", {"in": "x"}),
        ("hb", {"in": -1}),
        ("sync", {"in": 1, "m": "nope"}),
        ("sync", {"in": 1, "m": [{"id": b"short", "in": 1, "st": 0}]}),
        ("sync", {"in": 1, "m": [b._self.to_wire(), {"id": b"x" * 16, "in": 1, "st": 9}]}),
        ("sync", {"in": 1, "m": [{"id": b"x" * 16, "in": 1, "st": 0, "ep": {"c": ["control", 5, 1]}}]}),
        ("join", {"in": 1, "m": {"id": b"z" * 16, "in": 1, "st": 0}}),  # not the sender's own entry
    ]
    for op, body in bad:
        with pytest.raises(BadMembershipMessage):
            a.receive(b.node_id, op, body, bus.now)
    assert [(m.node_id, m.incarnation, m.status) for m in a.members()] == before
    assert a.receive(b.node_id, "future-op", {"anything": 1}, bus.now) == []
    assert a.stats()["unknown_op"] == 1


def test_max_members_bounds_state() -> None:
    core = FullMeshMembership(ident("a"), CFG.replace(max_members=3), now=0.0)
    entries = [ident(f"p{i}").__class__(bytes([i]) * 16, f"p{i}", 1, {}, {}) for i in range(10)]
    wire_entries = [{"id": e.node_id, "nm": e.name, "in": 1, "st": 0, "mv": 0, "md": {}, "ep": {}} for e in entries]
    for i in range(0, 10, 2):
        core.receive(entries[0].node_id, "sync", {"in": 1, "r": 0, "m": wire_entries[i:i + 2]}, 0.0)
    with pytest.raises(BadMembershipMessage):  # one message may not carry more than max_members + 1
        core.receive(entries[0].node_id, "sync", {"in": 1, "r": 0, "m": wire_entries}, 0.0)
    assert core.stats()["entries"] == 3 and core.stats()["rejected_full"] == 7


def test_handle_dispatches_input_events() -> None:
    core = FullMeshMembership(ident("a"), CFG, now=0.0)
    peer = ident("b")
    effects = core.handle(Contact(peer), 0.0)
    assert any(isinstance(e, MemberUp) for e in effects)
    assert core.handle(Received(peer.node_id, "hb", {"in": 1}), 0.1) == []
    assert any(isinstance(e, Send) and e.op == "hb" for e in core.handle(Tick(), 1.0))
    assert any(isinstance(e, Send) for e in core.handle(LeaveRequest(), 1.0))
    assert not [e for e in effects if isinstance(e, MemberLeft)]


def test_any_traffic_is_a_sign_of_life() -> None:
    core = FullMeshMembership(ident("a"), CFG, now=0.0)
    peer = ident("b")
    assert any(isinstance(e, MemberUp) for e in core.contact(peer, 0.0))
    # no heartbeat from b at all, only other traffic (e.g. data) every 50 ms for 20 s
    t = 0.0
    while t < 20.0:
        t += 0.05
        core.traffic(peer.node_id, t)
        assert not [e for e in core.tick(t) if isinstance(e, MemberChanged | MemberDown)]
    # the stream's short intervals are clamped to the heartbeat interval: silence is still judged
    # against the heartbeat process, so a pause of a few heartbeats is not a failure ...
    phi = core.phi(peer.node_id, t + 3 * CFG.heartbeat_interval)
    assert phi is not None and phi < CFG.phi_threshold
    # ... and a crash is declared within the bound
    effects: list[Effect] = []
    now = t
    while not any(isinstance(e, MemberDown) for e in effects):
        nxt = core.next_deadline()
        assert nxt is not None
        now = nxt
        effects = core.tick(now)
    assert now - t <= CFG.detection_bound() + 1e-9  # equal here: constant samples, exactly the model


def test_digest_exchange_repairs_both_sides_in_three_messages() -> None:
    a = FullMeshMembership(ident("a"), CFG, now=0.0)
    b = FullMeshMembership(ident("b"), CFG, now=0.0)
    x, y = ident("x"), ident("y")
    a.contact(b.local, 0.0)
    b.contact(a.local, 0.0)
    a.contact(x, 0.0)  # only a knows x
    b.contact(y, 0.0)  # only b knows y
    opener = next(e for e in a.link_up(b.node_id, 0.1) if isinstance(e, Send))
    assert set(opener.body) == {"in", "m", "d"} and len(opener.body["d"]) == 3
    answer = [e for e in b.receive(a.node_id, opener.op, opener.body, 0.1) if isinstance(e, Send)]
    assert len(answer) == 1 and [m["nm"] for m in answer[0].body["m"]] == ["y"]
    assert answer[0].body["w"] == [x.node_id]
    last = [e for e in a.receive(b.node_id, "sync", answer[0].body, 0.1) if isinstance(e, Send)]
    assert len(last) == 1 and set(last[0].body) == {"in", "m"}  # no r, no d: no further answer
    assert not [e for e in b.receive(a.node_id, "sync", last[0].body, 0.1) if isinstance(e, Send)]
    assert a.digest() == b.digest() and len(a.digest()) == 4


def test_a_suspect_is_probed_and_an_answer_clears_the_suspicion() -> None:
    a = FullMeshMembership(ident("a"), CFG, now=0.0)
    b = FullMeshMembership(ident("b"), CFG, now=0.0)
    a.contact(b.local, 0.0)
    b.contact(a.local, 0.0)
    # b's heartbeats are all lost: a suspects b, then probes it
    now, probe = 0.0, None
    while probe is None:
        now = a.next_deadline()  # type: ignore[assignment]
        effects = a.tick(now)
        probe = next((e for e in effects if isinstance(e, Send) and e.to == b.node_id and e.body.get("a")), None)
    assert a.member(b.node_id).status == MemberStatus.SUSPECT  # type: ignore[union-attr]
    answer = [e for e in b.receive(a.node_id, "hb", probe.body, now) if isinstance(e, Send)]
    assert answer == [Send(a.node_id, "hb", {"in": 1})]
    changed = a.receive(b.node_id, "hb", answer[0].body, now + 0.001)
    assert [e.member.status for e in changed if isinstance(e, MemberChanged)] == [MemberStatus.ALIVE]
    # unanswered probes: down after suspect_timeout, with suspect_probes probes sent meanwhile
    a.tick(now + 0.001)
    probes = 0
    while a.member(b.node_id).status != MemberStatus.DOWN:  # type: ignore[union-attr]
        now = a.next_deadline()  # type: ignore[assignment]
        probes += sum(1 for e in a.tick(now) if isinstance(e, Send) and e.body.get("a"))
    assert probes == CFG.suspect_probes

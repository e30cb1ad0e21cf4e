"""One capability suite for every overlay: full-mesh, HyParView, client-server and static.

Each test builds a small seeded cluster in the overlay simulator and checks a capability the Overlay
interface promises, whatever the topology.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from fabric.membership import FullMeshMembership, Identity, MemberStatus
from fabric.membership.clientserver import CLIENT, SERVER, ClientServer
from fabric.membership.config import HyParViewConfig, MembershipConfig
from fabric.membership.hyparview import HyParView
from fabric.membership.overlay import FullMeshOverlay, Overlay
from fabric.membership.static import StaticOverlay
from fabric.testing.overlay_sim import OverlaySim, SimOverlayNode

N = 8
CFG = MembershipConfig.local()
# small views, so a HyParView cluster of 8 has non-neighbours (relays must take several hops)
HV_CFG = MembershipConfig.local(hyparview=HyParViewConfig(active_max=3, active_min=2, passive_max=8,
                                                       shuffle_interval=5.0, neighbor_timeout=0.5,
                                                       promotion_interval=1.0))


@dataclass
class Cluster:
    sim: OverlaySim
    nodes: list[SimOverlayNode]
    seeds: list[SimOverlayNode]
    kind: str

    def live(self) -> list[SimOverlayNode]:
        return self.sim.active_nodes()


def _factory(kind: str, role: str = SERVER) -> Callable[[Identity, random.Random, float], Overlay]:
    if kind == "fullmesh":
        return lambda ident, rng, now: FullMeshOverlay(FullMeshMembership(ident, MembershipConfig.local(), rng=rng, now=now))
    if kind == "hyparview":
        return lambda ident, rng, now: HyParView(ident, HV_CFG, rng=rng, now=now)
    if kind == "clientserver":
        return lambda ident, rng, now: ClientServer(ident, role, CFG, rng=rng, now=now)
    endpoints: list[Identity | str] = [f"sim://n{i:04d}" for i in range(N)]
    return lambda ident, rng, now: StaticOverlay(ident, endpoints, CFG, rng=rng, now=now)


def build(kind: str, seed: int = 11, *, codec: bool = False) -> Cluster:
    sim = OverlaySim(seed, _factory(kind), codec=codec)
    if kind == "clientserver":
        servers = sim.spawn(3, prefix="s", factory=_factory(kind, SERVER))
        clients = sim.spawn(N - 3, prefix="c", factory=_factory(kind, CLIENT))
        nodes = servers + clients
        sim.join(servers[0], [])
        for node in nodes[1:]:
            sim.join(node, [servers[0]])
        seeds = servers
    else:
        nodes = sim.spawn(N)
        sim.join(nodes[0], [])
        for node in nodes[1:]:
            sim.join(node, [nodes[0]])
        seeds = [nodes[0]]
    cluster = Cluster(sim, nodes, seeds, kind)
    assert sim.run_until(sim.membership_converged, timeout=30), f"{kind}: membership did not converge"
    sim.run(3.0)  # let the views and the broadcast tree settle
    return cluster


KINDS = ["fullmesh", "hyparview", "clientserver", "static"]


@pytest.fixture(params=KINDS)
def cluster(request: pytest.FixtureRequest) -> Cluster:
    return build(request.param)


def _ordinary(cluster: Cluster) -> SimOverlayNode:
    """A node whose loss does not take a seed or a server away."""
    return cluster.nodes[-1]


def test_members_and_neighbours(cluster: Cluster) -> None:
    ids = {n.node_id for n in cluster.nodes}
    for node in cluster.nodes:
        core = node.core
        assert isinstance(core, Overlay)
        members = core.members()
        assert {m.node_id for m in members} == ids
        assert all(m.status is MemberStatus.ALIVE for m in members)
        assert [m.node_id for m in members] == sorted(ids)
        neighbours = core.neighbours()
        assert neighbours and set(neighbours) <= ids - {node.node_id}
        if cluster.kind in ("fullmesh", "static"):
            assert set(neighbours) == ids - {node.node_id}
        elif cluster.kind == "hyparview":
            assert len(neighbours) <= HV_CFG.hyparview.active_max
        elif node not in cluster.seeds:  # a client links to the servers only
            assert set(neighbours) == {s.node_id for s in cluster.seeds}
    assert cluster.sim.symmetric()
    assert cluster.sim.connected()


def test_up_events_once_and_in_order(cluster: Cluster) -> None:
    sim = cluster.sim
    for node in cluster.nodes:
        ups = Counter((r.subject, r.incarnation) for r in sim.events("up", observer=node.name))
        assert set(ups) == {(n.node_id, 1) for n in cluster.nodes if n is not node}
        assert set(ups.values()) == {1}
        assert not sim.events("down", observer=node.name)
        joined = [r for r in sim.log if r.observer == node.name and r.kind == "joined"]
        assert len(joined) == 1


def test_broadcast_reaches_every_live_member_once(cluster: Cluster) -> None:
    sim = cluster.sim
    for index, origin in enumerate([cluster.nodes[0], cluster.nodes[-1], cluster.nodes[N // 2]]):
        payload = {"n": index, "data": b"x" * 10}
        msg_id = sim.broadcast(origin, payload)
        assert msg_id is not None
        sim.run(3.0)
        got = Counter(d[0] for d in sim.deliveries if d[2] == payload)
        assert set(got) == {n.name for n in cluster.nodes if n is not origin}
        assert set(got.values()) == {1}
        assert all(d[1] == origin.node_id and not d[3] for d in sim.deliveries if d[2] == payload)


def test_direct_and_relayed_send_with_hop_limit(cluster: Cluster) -> None:
    sim = cluster.sim
    for a in cluster.nodes:
        for b in cluster.nodes:
            sim.send_to(a, b, ["to", a.name, b.name])
    sim.run(2.0)
    for a in cluster.nodes:
        for b in cluster.nodes:
            got = [d for d in sim.deliveries if d[2] == ["to", a.name, b.name]]
            assert len(got) == 1 and got[0][0] == b.name and got[0][1] == a.node_id and got[0][3]
            assert got[0][4] <= CFG.relay_ttl
    # a hop limit of 1 reaches neighbours only
    a = cluster.nodes[-1]
    strangers = [b for b in cluster.nodes if b is not a and b.node_id not in a.core.neighbours()]
    for b in cluster.nodes:
        if b is not a:
            sim.send_to(a, b, ["ttl1", b.name], ttl=1)
    sim.run(2.0)
    reached = {d[0] for d in sim.deliveries if isinstance(d[2], list) and d[2][:1] == ["ttl1"]}
    assert reached == {sim.by_id[n].name for n in a.core.neighbours()}
    if cluster.kind in ("hyparview", "clientserver"):
        assert strangers, "the suite needs non-neighbours on partial views"


def test_crash_gives_one_down_event_everywhere(cluster: Cluster) -> None:
    sim = cluster.sim
    victim = _ordinary(cluster)
    sim.crash([victim])
    assert sim.run_until(sim.membership_converged, timeout=30)
    sim.run(2.0)
    for node in sim.active_nodes():
        member = next(m for m in node.core.members() if m.node_id == victim.node_id)
        assert member.status is MemberStatus.DOWN
        kinds = [r.kind for r in sim.log if r.observer == node.name and r.subject == victim.node_id
                 and r.kind in ("up", "down", "left")]
        assert kinds == ["up", "down"]


def test_leave_gives_one_left_event_everywhere(cluster: Cluster) -> None:
    sim = cluster.sim
    leaver = _ordinary(cluster)
    sim.leave(leaver)
    assert sim.run_until(sim.membership_converged, timeout=30)
    sim.run(2.0)
    for node in sim.active_nodes():
        member = next(m for m in node.core.members() if m.node_id == leaver.node_id)
        assert member.status is MemberStatus.LEFT
        kinds = [r.kind for r in sim.log if r.observer == node.name and r.subject == leaver.node_id
                 and r.kind in ("up", "down", "left")]
        assert kinds == ["up", "left"]
    assert leaver.core.next_deadline() is None


def test_restart_is_a_new_incarnation(cluster: Cluster) -> None:
    sim = cluster.sim
    old = _ordinary(cluster)
    sim.crash([old])
    sim.run(0.5)
    fresh = sim.restart(old, cluster.seeds[:1])
    assert fresh.core.local.incarnation == 2
    assert sim.run_until(sim.membership_converged, timeout=30)
    sim.run(2.0)
    for node in sim.active_nodes():
        if node is fresh:
            continue
        member = next(m for m in node.core.members() if m.node_id == old.node_id)
        assert member.incarnation == 2 and member.status is MemberStatus.ALIVE
        seq = [(r.kind, r.incarnation) for r in sim.log if r.observer == node.name and r.subject == old.node_id
               and r.kind in ("up", "down", "left")]
        assert seq == [("up", 1), ("down", 1), ("up", 2)]


def test_metadata_change_reaches_everyone_once(cluster: Cluster) -> None:
    sim = cluster.sim
    node = cluster.nodes[1]
    node.execute(node.core.set_metadata({"zone": "b"}, sim.now))
    sim.run(3.0)
    for other in cluster.nodes:
        if other is node:
            continue
        member = next(m for m in other.core.members() if m.node_id == node.node_id)
        assert member.metadata.get("zone") == "b"
        changed = [r for r in sim.events("changed", observer=other.name) if r.subject == node.node_id]
        assert len(changed) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_run(kind: str) -> None:
    def run() -> tuple[list[object], list[object], dict[str, int]]:
        c = build(kind, seed=5)
        c.sim.broadcast(c.nodes[1], "hello")
        c.sim.crash([c.nodes[-1]])
        c.sim.run(5.0)
        return list(c.sim.log), list(c.sim.deliveries), dict(c.sim.sent)

    assert run() == run()


@pytest.mark.parametrize("kind", KINDS)
def test_through_the_real_wire_codec(kind: str) -> None:
    """Every message as real MEMBERSHIP / TREE envelopes (msgpack bodies): same capabilities."""
    c = build(kind, seed=3, codec=True)
    sim = c.sim
    sim.broadcast(c.nodes[2], {"k": [1, 2, 3], "b": b"\x00\xff"})
    sim.send_to(c.nodes[-1], c.nodes[1], "direct")
    sim.run(3.0)
    assert sim.receivers({"k": [1, 2, 3], "b": b"\x00\xff"}) == {n.name for n in c.nodes if n is not c.nodes[2]}
    assert sim.receivers("direct") == {c.nodes[1].name}
    sim.crash([c.nodes[-1]])
    assert sim.run_until(sim.membership_converged, timeout=30)
    assert "bad" not in sim.dropped


def test_make_overlay_builds_every_named_policy() -> None:
    from fabric.membership import OVERLAY_NAMES, make_overlay
    from fabric.membership.errors import MembershipError

    me = Identity(b"m" * 16, "me", 1, {}, {"membership": ("control", "sim://me", 1)})
    built = {name: make_overlay(name, me, role="client", static_members=["sim://other"]) for name in OVERLAY_NAMES}
    assert isinstance(built["full-mesh"], FullMeshOverlay)
    assert isinstance(built["hyparview"], HyParView)
    assert isinstance(built["client-server"], ClientServer)
    assert isinstance(built["static"], StaticOverlay)
    assert all(isinstance(core, Overlay) and core.node_id == me.node_id for core in built.values())
    with pytest.raises(MembershipError, match="unknown overlay"):
        make_overlay("ring", me)

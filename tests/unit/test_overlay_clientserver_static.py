"""Client-server (3 servers, 20 clients) and static overlays beyond the shared capability suite."""

from __future__ import annotations

from fabric.membership import MemberStatus
from fabric.membership.clientserver import CLIENT, ROLE_KEY, SERVER, ClientServer
from fabric.membership.config import MembershipConfig
from fabric.membership.static import StaticOverlay
from fabric.testing.overlay_sim import OverlaySim

CFG = MembershipConfig.local()


def test_three_servers_twenty_clients() -> None:
    sim = OverlaySim(8, lambda i, rng, now: ClientServer(i, SERVER, CFG, rng=rng, now=now))
    servers = sim.spawn(3, prefix="s")
    clients = sim.spawn(20, prefix="c", factory=lambda i, rng, now: ClientServer(i, CLIENT, CFG, rng=rng, now=now))
    sim.join(servers[0], [])
    for node in servers[1:] + clients:
        sim.join(node, [servers[0]])
    assert sim.run_until(sim.membership_converged, timeout=30)
    server_ids = {s.node_id for s in servers}
    for c in clients:
        assert set(c.core.neighbours()) == server_ids
        assert c.core.local.metadata[ROLE_KEY] == CLIENT
    for s in servers:
        assert set(s.core.neighbours()) == {n.node_id for n in servers + clients} - {s.node_id}
    assert sim.symmetric()
    # a client's broadcast and a client-to-client message (two hops through a server)
    sim.broadcast(clients[4], "from a client")
    sim.send_to(clients[0], clients[19], "c2c")
    sim.run(3.0)
    assert sim.receivers("from a client") == {n.name for n in servers + clients if n is not clients[4]}
    (hop,) = [d for d in sim.deliveries if d[2] == "c2c"]
    assert hop[0] == clients[19].name and hop[4] == 2
    # a server crashes: everyone sees it down; clients keep the other two
    sim.crash([servers[2]])
    assert sim.run_until(sim.membership_converged, timeout=30)
    # every client's own detector also drops the link (the down record may arrive first)
    assert sim.run_until(lambda: all(set(c.core.neighbours()) == server_ids - {servers[2].node_id} for c in clients),
                         timeout=30)
    sim.broadcast(servers[0], "after")
    sim.run(3.0)
    assert sim.receivers("after") == {n.name for n in servers[1:2] + clients}


def test_client_refuses_to_admit_a_joiner() -> None:
    sim = OverlaySim(9, lambda i, rng, now: ClientServer(i, CLIENT, CFG, rng=rng, now=now))
    a, b = sim.spawn(2)
    sim.join(a, [])
    sim.join(b, [a])
    sim.run(3.0)
    assert a.core.neighbours() == [] and b.core.neighbours() == []
    assert b.core.stats().get("seed_not_server", 0) >= 1


def test_static_member_started_late_comes_up_everywhere() -> None:
    endpoints: list[object] = [f"sim://n{i:04d}" for i in range(5)]
    sim = OverlaySim(10, lambda i, rng, now: StaticOverlay(i, endpoints, CFG, rng=rng, now=now))  # type: ignore[arg-type]
    first = sim.spawn(4)
    for node in first:
        sim.join(node, [])
    assert sim.run_until(sim.membership_converged, timeout=10)
    assert all(len(n.core.members()) == 4 for n in first)
    late = sim.spawn(1)[0]  # n0004, configured from the start, dialled again every join_retry_max
    sim.join(late, [])
    assert sim.run_until(sim.membership_converged, timeout=3 * CFG.join_retry_max)
    assert all(len(n.core.members()) == 5 for n in first + [late])
    # down by each node's own detector, then up again when it is heard again
    sim.partition([late])
    assert sim.run_until(lambda: all(
        next(m for m in n.core.members() if m.node_id == late.node_id).status is MemberStatus.DOWN for n in first),
        timeout=10)
    sim.heal()
    assert sim.run_until(sim.membership_converged, timeout=10)
    kinds = [r.kind for r in sim.log if r.observer == first[0].name and r.subject == late.node_id]
    assert kinds == ["up", "changed", "down", "up"]

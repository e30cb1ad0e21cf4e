"""HyParView across a network partition: each side declares the other down and keeps working; after
the partition heals, probes of down members link the sides again and membership re-merges."""

from __future__ import annotations

from fabric.membership import MemberStatus
from fabric.membership.config import MembershipConfig
from fabric.membership.hyparview import HyParView
from fabric.testing.overlay_sim import NetFaults, OverlaySim, SimOverlayNode

CFG = MembershipConfig.local()


def _sees_other_side_down(side: list[SimOverlayNode], other: list[SimOverlayNode]) -> bool:
    ids = {n.node_id for n in other}
    for node in side:
        statuses = {m.node_id: m.status for m in node.core.members()}
        if any(statuses.get(i) is not MemberStatus.DOWN for i in ids):
            return False
    return True


def test_partition_splits_membership_and_healing_remerges_it() -> None:
    # a node on the far side is declared down by the near-side nodes that had it as an active neighbour
    # (phi), or, when none had, when its record expires (record_ttl): the wait covers both
    sim = OverlaySim(42, lambda i, rng, now: HyParView(i, CFG, rng=rng, now=now),
                     faults=NetFaults(latency=0.005, jitter=0.005, drop=0.01))
    nodes = sim.spawn(40)
    sim.join_storm(nodes[0], nodes, spread=3.0)
    assert sim.run_until(lambda: sim.membership_converged() and sim.healed(), timeout=60)
    left, right = nodes[:20], nodes[20:]
    sim.partition(left, right)
    assert sim.run_until(lambda: _sees_other_side_down(left, right) and _sees_other_side_down(right, left),
                         timeout=200), "each side should declare the other down"
    # each side still broadcasts to all of itself
    sim.run(3.0)
    sim.broadcast(left[3], "split")
    sim.run(3.0)
    assert sim.receivers("split") == {n.name for n in left if n is not left[3]}
    sim.heal()
    assert sim.run_until(lambda: sim.membership_converged() and sim.healed(), timeout=180), "no re-merge"
    sim.run(5.0)
    sim.broadcast(right[5], "merged")
    sim.run(5.0)
    assert sim.receivers("merged") == {n.name for n in nodes if n is not right[5]}
    # every node came back up everywhere: the last event about each peer is "up"
    for observer in nodes:
        last: dict[bytes, str] = {}
        for r in sim.events(observer=observer.name):
            if r.kind in ("up", "down", "left"):
                last[r.subject] = r.kind
        assert set(last.values()) == {"up"}

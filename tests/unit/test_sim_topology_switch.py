"""A cluster switches overlay live (full-mesh -> HyParView -> full-mesh) while nodes join and crash.

Runs in the overlay simulator on a manual clock, through the same :class:`MembershipDriver` the Node
uses (topology epochs, adoption of the cluster's overlay by newcomers, link retention, event
de-duplication). A checker over the recorded state then asserts: every live node is on the same overlay
and epoch, membership converged (every live node lists every other live node up and every crashed one
not up), and one broadcast after convergence reaches every live node exactly once. 50 nodes here; the
200-node run is in tests/stress/test_sim_topology_switch_200.py.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from fabric.membership import FullMeshMembership, Identity, MemberStatus
from fabric.membership.config import MembershipConfig
from fabric.membership.hyparview import HyParView
from fabric.membership.overlay import FullMeshOverlay, Overlay
from fabric.testing.overlay_sim import NetFaults, OverlaySim, SimOverlayNode

# heartbeats every second (not local()'s 0.2 s): five times fewer messages, the same logic
FULL_MESH = MembershipConfig.local(heartbeat_interval=1.0, gossip_interval=1.0)
HYPARVIEW = MembershipConfig.local(heartbeat_interval=1.0, acceptable_heartbeat_pause=1.5, refresh_interval=600.0,
                                record_ttl=1800.0, sync_interval=5.0)
UP = (MemberStatus.ALIVE, MemberStatus.SUSPECT)


def full_mesh_factory(config: MembershipConfig) -> Callable[[Identity, random.Random, float], Overlay]:
    return lambda ident, rng, now: FullMeshOverlay(FullMeshMembership(ident, config, rng=rng, now=now))


def hyparview(ident: Identity, rng: random.Random, now: float) -> Overlay:
    return HyParView(ident, HYPARVIEW, rng=rng, now=now)


@dataclass
class Report:
    """What the checker found (empty ``problems``: all good)."""

    problems: list[str] = field(default_factory=list)
    topology: Counter[tuple[str, int]] = field(default_factory=Counter)

    def __bool__(self) -> bool:
        return not self.problems


def check(sim: OverlaySim, crashed: list[SimOverlayNode], overlay: str, epoch: int) -> Report:
    """The invariants after a switch settled, over the simulator's recorded state."""
    report = Report()
    live = sim.active_nodes()
    live_ids = {n.node_id for n in live}
    crashed_ids = {n.node_id for n in crashed} - live_ids
    for node in live:
        report.topology[(node.driver.overlay_name, node.driver.state.epoch)] += 1
        if (node.driver.overlay_name, node.driver.state.epoch) != (overlay, epoch):
            report.problems.append(f"{node.name} is on {node.driver.overlay_name} epoch {node.driver.state.epoch}")
        up = {m.node_id for m in node.core.members() if m.status in UP}
        if up != live_ids:
            report.problems.append(f"{node.name} sees {len(up & live_ids)}/{len(live_ids)} live up, "
                                   f"{len(up & crashed_ids)} crashed up, {len(up - live_ids - crashed_ids)} strangers")
    return report


def broadcast_once(sim: OverlaySim, rng: random.Random, tag: str) -> list[str]:
    """One broadcast from a random live node; returns the problems (missed or duplicated receivers)."""
    live = sim.active_nodes()
    origin = rng.choice(live)
    payload = {"tag": tag}
    assert sim.broadcast(origin, payload) is not None
    sim.run(5.0)
    got = Counter(d[0] for d in sim.deliveries if d[2] == payload)
    problems = [f"{n.name} missed {tag}" for n in live if n is not origin and got[n.name] == 0]
    problems += [f"{name} got {tag} {count} times" for name, count in got.items() if count != 1]
    return problems


def run_switch_scenario(n: int, seed: int, *, joins: int, crashes: int,
                        full_mesh: MembershipConfig = FULL_MESH) -> dict[str, Any]:
    """Form ``n`` full-mesh nodes, switch to HyParView and back; during each switch ``joins`` newcomers
    (configured full-mesh, epoch 0: they must adopt the cluster's overlay) join and ``crashes`` nodes
    crash. Asserts the invariants after each phase; returns a few figures."""
    sim = OverlaySim(seed, full_mesh_factory(full_mesh), overlay="full-mesh", factories={"hyparview": hyparview},
                     faults=NetFaults(latency=0.005, jitter=0.005), reconcile=1.0, cooldown=5.0, settle=10.0)
    rng = random.Random(seed)
    nodes = sim.spawn(n)
    sim.join_storm(nodes[0], nodes, spread=2.0)
    assert sim.run_until(sim.membership_converged, timeout=60.0), "the full-mesh cluster did not form"
    crashed: list[SimOverlayNode] = []
    figures: dict[str, Any] = {"formed_at": sim.now}
    epoch = 0
    for phase, target in enumerate(("hyparview", "full-mesh")):
        proposer = rng.choice(sim.active_nodes())
        epoch = sim.switch(proposer, target)
        started = sim.now
        # during the switch: random members crash, and newcomers join through random other live members
        victims = rng.sample([x for x in sim.active_nodes() if x is not proposer and x.core.joined], crashes)
        for victim in victims:
            sim.clock.call_later(rng.uniform(0.0, 3.0), lambda v=victim: sim.crash([v]))
        survivors = [x for x in sim.active_nodes() if x not in victims]
        for _ in range(joins):
            newcomer = sim.spawn(1, prefix=f"j{phase}-")[0]
            seed_node = rng.choice(survivors)
            sim.clock.call_later(rng.uniform(0.0, 3.0), lambda a=newcomer, b=seed_node: sim.join(a, [b]))
        crashed.extend(victims)
        sim.run(3.5)

        def settled(target: str = target, epoch: int = epoch) -> bool:
            return bool(check(sim, crashed, target, epoch))

        ok = sim.run_until(settled, timeout=90.0, step=1.0)
        report = check(sim, crashed, target, epoch)
        assert ok, f"phase {phase} ({target}) did not settle: {report.topology} {report.problems[:10]}"
        figures[f"settled_{target}_s"] = sim.now - started
        assert not broadcast_once(sim, rng, f"after-{target}")
    # one topology history entry per switch on every node that lived through both (no flapping)
    for node in sim.active_nodes():
        assert node.driver.state.epoch == epoch == 2
    # events fire once per change: nobody saw a live member come up twice for one incarnation
    ups = Counter((r.observer, r.subject, r.incarnation) for r in sim.events("up"))
    assert max(ups.values()) == 1, [k for k, v in ups.items() if v > 1][:5]
    figures["stale_dropped"] = sim.driver_counters.get("stale_topology_messages", 0)
    return figures


@pytest.mark.parametrize("seed", [7, 8])
def test_fifty_node_cluster_switches_overlay_while_nodes_join_and_crash(seed: int) -> None:
    figures = run_switch_scenario(50, seed, joins=3, crashes=3)
    assert figures["settled_hyparview_s"] < 90 and figures["settled_full-mesh_s"] < 90


def test_switch_scenario_replays_identically_from_its_seed() -> None:
    assert run_switch_scenario(20, 5, joins=2, crashes=2) == run_switch_scenario(20, 5, joins=2, crashes=2)

"""HyParView + Plumtree at scale in the overlay simulator: join storm, broadcast cost, 30 % crash, healing.

:func:`run_scenario` is shared with tests/stress/test_overlay_hyparview_1000.py (1,000 nodes); the default
suite runs it at 200 nodes.
"""

from __future__ import annotations

import copy
import random
import resource
import time
import tracemalloc
from collections import Counter
from typing import Any

from fabric.membership.config import MembershipConfig
from fabric.membership.hyparview import HyParView
from fabric.testing.overlay_sim import NetFaults, OverlaySim

# local timers, but heartbeats every second (lan's interval: 5x fewer messages than local(), which keeps
# 1,000 nodes within the time budget) and a long refresh (no periodic re-broadcast of every record inside
# the simulated minute; orphaned crashes are found by the probes)
SCENARIO_CONFIG = MembershipConfig.local(heartbeat_interval=1.0, acceptable_heartbeat_pause=1.5,
                                      refresh_interval=600.0, record_ttl=1800.0, sync_interval=5.0)


def _control_sent(sim: OverlaySim) -> int:
    return sum(v for k, v in sim.sent.items() if k != "tree.gossip")


def _broadcast_round(sim: OverlaySim, rng: random.Random, tag: str, settle: float) -> dict[str, Any]:
    live = sim.active_nodes()
    origin = rng.choice(live)
    control_before = _control_sent(sim)
    msg_id = sim.broadcast(origin, tag)
    assert msg_id is not None
    sim.run(settle)
    receivers = sim.receivers(tag)
    cost = sim.broadcast_cost(msg_id)
    return {
        "reached": len(receivers & {n.name for n in live}),
        "expected": len(live) - 1,
        "payload": cost["payload"],
        "ihave_ids": cost["ihave_ids"],
        "graft_ids": cost["graft_ids"],
        "control_all": _control_sent(sim) - control_before,  # every control message in the window (hb too)
    }


def _memory_per_node(sim: OverlaySim, rng: random.Random, sample: int = 20) -> float:
    """KiB of one node's overlay state once membership converged, measured with tracemalloc as the size
    of deep copies of sampled cores. A deep copy owns everything it references, as a real node does
    (in the simulation, identities and message bodies are shared between nodes)."""
    cores = [n.core for n in rng.sample(sim.active_nodes(), sample)]
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        copies = [copy.deepcopy(core) for core in cores]
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(copies) == sample
    return round((after - before) / sample / 1024, 1)


def run_scenario(n: int, seed: int, *, measure_memory: bool = False, check_members: bool = True,
                 codec: bool = False) -> dict[str, Any]:
    """Join storm of ``n`` nodes, broadcasts, 30 % crash, healing; returns the figures (also asserts).
    ``codec``: every message through the real wire codec."""
    wall = time.perf_counter()
    cfg = SCENARIO_CONFIG
    sim = OverlaySim(seed, lambda ident, rng, now: HyParView(ident, cfg, rng=rng, now=now),
                     faults=NetFaults(latency=0.005, jitter=0.01), codec=codec)
    rng = random.Random(seed)
    nodes = sim.spawn(n)
    sim.join_storm(nodes[0], nodes, spread=10.0)
    sim.run(10.0)
    assert sim.run_until(lambda: sim.connected() and sim.symmetric(), timeout=30.0), "join storm: not connected"
    report: dict[str, Any] = {"n": n, "seed": seed, "storm_settled_at": round(sim.now, 1)}
    assert sim.connected() and sim.symmetric()
    report["active_view_sizes"] = sorted({len(x.core.neighbours()) for x in nodes})
    if check_members:
        assert sim.run_until(sim.membership_converged, timeout=60.0, step=cfg.heartbeat_interval), "members() did not converge"
        report["members_converged_at"] = round(sim.now, 1)
    if measure_memory:
        report["memory_per_node_kib"] = _memory_per_node(sim, rng)

    # warm-up broadcasts settle the tree; then measure
    for i in range(3):
        _broadcast_round(sim, rng, f"warm{i}", 2.0)
    rounds = [_broadcast_round(sim, rng, f"steady{i}", 2.0) for i in range(3)]
    for r in rounds:
        assert r["reached"] == r["expected"], r
        assert r["payload"] <= 1.1 * (n - 1), r
    report["steady_broadcasts"] = rounds

    # relays between random members that are not neighbours (default hop limit, relay_ttl = 5)
    relays = []
    for i in range(5):
        a = rng.choice(nodes)
        b = rng.choice([x for x in nodes if x is not a and x.node_id not in a.core.neighbours()])
        before = sim.sent.get("tree.relay", 0)
        sim.send_to(a, b, f"relay{i}")
        sim.run(1.0)
        got = [d for d in sim.deliveries if d[2] == f"relay{i}"]
        # the answer: every node the first relay reached learnt the way back to ``a`` (reverse path)
        middle = sim.sent.get("tree.relay", 0)
        sim.send_to(b, a, f"reply{i}")
        sim.run(1.0)
        back = [d for d in sim.deliveries if d[2] == f"reply{i}"]
        relays.append({"delivered": len(got), "hops": got[0][4] if got else None,
                       "messages": middle - before, "reply_delivered": len(back),
                       "reply_hops": back[0][4] if back else None,
                       "reply_messages": sim.sent.get("tree.relay", 0) - middle})
    report["relays"] = relays
    if n <= 200:  # small diameter: every relay arrives within the hop limit, exactly once
        assert all(r["delivered"] == 1 and r["reply_delivered"] == 1 for r in relays), relays
        assert all(r["reply_messages"] == r["reply_hops"] for r in relays), relays  # routed, not flooded

    # 30 % crash at once; the overlay must heal and broadcasts reach every survivor
    victims = rng.sample(nodes[1:], int(0.3 * n))
    sim.crash(victims)
    crashed_at = sim.now
    report["connected_right_after_crash"] = sim.connected()
    step = cfg.heartbeat_interval
    assert sim.run_until(sim.healed, timeout=60.0, step=step), "did not heal"
    healed = sim.now - crashed_at
    report["heal_seconds"] = round(healed, 2)
    report["heal_rounds"] = round(healed / step)  # heartbeat rounds until no view holds a crashed node
    report["active_view_sizes_after"] = sorted({len(x.core.neighbours()) for x in sim.active_nodes()})
    survivors = sim.active_nodes()
    report["survivors"] = len(survivors)
    if check_members:
        assert sim.run_until(sim.membership_converged, timeout=60.0, step=step), "members() after the crash"
        report["members_reconverged_after"] = round(sim.now - crashed_at, 1)
    after = [_broadcast_round(sim, rng, f"after{i}", 4.0) for i in range(3)]
    for r in after:
        assert r["reached"] == r["expected"], r
    report["after_crash_broadcasts"] = after
    if check_members:
        # events: every survivor saw every crashed node go down exactly once, and no live node go down
        live_ids = {x.node_id for x in survivors}
        downs = [r for r in sim.log if r.kind == "down"]
        assert not [r for r in downs if r.subject in live_ids], "a live node was declared down"
        per_pair = Counter((r.observer, r.subject) for r in downs)
        assert set(per_pair.values()) == {1} and len(per_pair) == len(survivors) * len(victims)
    report["messages_total"] = sum(sim.sent.values())
    report["sent_by_op"] = dict(sorted(sim.sent.items()))
    report["dropped"] = dict(sim.dropped)
    report["wall_seconds"] = round(time.perf_counter() - wall, 1)
    report["max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # whole process
    report["_log_len"] = len(sim.log)
    report["_deliveries"] = len(sim.deliveries)
    print(report)
    return report


def test_hyparview_200_nodes_join_storm_broadcast_crash_heal() -> None:
    report = run_scenario(200, seed=20240601, measure_memory=True)
    assert report["survivors"] == 140


def test_hyparview_scenario_replays_identically_from_its_seed() -> None:
    first = run_scenario(60, seed=77)
    second = run_scenario(60, seed=77)
    for key in ("wall_seconds", "max_rss_mib"):
        first.pop(key, None)
        second.pop(key, None)
    assert first == second


def test_hyparview_scenario_through_the_real_wire_codec() -> None:
    report = run_scenario(60, seed=9, codec=True)
    assert "bad" not in report["dropped"]


def test_hyparview_with_message_loss_still_converges_and_delivers() -> None:
    """2 % of all messages lost: joins, broadcasts (repaired by ihave/graft) and failure reports still work."""
    sim = OverlaySim(2024, lambda ident, rng, now: HyParView(ident, SCENARIO_CONFIG, rng=rng, now=now),
                     faults=NetFaults(latency=0.005, jitter=0.02, drop=0.02))
    nodes = sim.spawn(100)
    sim.join_storm(nodes[0], nodes, spread=5.0)
    assert sim.run_until(lambda: sim.membership_converged() and sim.healed(), timeout=120.0)
    for i in range(5):
        sim.broadcast(nodes[i * 7], f"lossy{i}")
        sim.run(3.0)
        assert sim.receivers(f"lossy{i}") == {n.name for n in nodes if n is not nodes[i * 7]}
    sim.crash(nodes[90:])
    assert sim.run_until(lambda: sim.membership_converged() and sim.healed(), timeout=120.0)
    assert sim.dropped.get("drop", 0) > 1000

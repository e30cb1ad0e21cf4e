"""Seeded simulations of full-mesh membership on the in-memory network (real wire envelopes, manual clock).

Every test prints its seed (``seed=<n>``; pytest shows it when a test fails) and replays from it.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from fabric.membership import MemberStatus
from fabric.testing import Faults, LogRecord, Simulation

FAULTS = Faults(latency=0.001, jitter=0.01, drop=0.01, duplicate=0.01, reorder=0.01, reorder_delay=0.02)
"""Default faults of these tests: >= 1 % loss, jitter, duplication and reordering."""


def bound_for(sim: Simulation) -> float:
    """The documented crash-detection bound for this simulation's config and faults."""
    f = sim.network.faults
    return sim.config.detection_bound(max_latency=f.max_delay, jitter=f.max_delay - f.latency, drop=f.drop)


def check_log(log: list[LogRecord]) -> None:
    """Per observer and subject: events are ordered by incarnation and never go back to an old one;
    per incarnation up fires at most once, and down/left at most once and only after up."""
    seen: dict[tuple[int, bytes], list[LogRecord]] = defaultdict(list)
    for rec in log:
        if rec.kind != "joined":
            seen[(rec.observer_instance, rec.subject_id)].append(rec)
    for (observer, _), records in seen.items():
        incs = [r.incarnation for r in records]
        assert incs == sorted(incs), f"{observer}: old incarnation event after a newer one: {records}"
        by_inc: dict[int, list[str]] = defaultdict(list)
        for r in records:
            by_inc[r.incarnation].append(r.kind)
        for inc, kinds in by_inc.items():
            assert kinds[0] == "up" and kinds.count("up") == 1, (observer, inc, kinds)
            ends = [k for k in kinds if k in ("down", "left")]
            assert len(ends) <= 1 and (not ends or kinds[-1] == ends[0]), (observer, inc, kinds)


def test_fifty_nodes_join_through_one_seed_under_faults() -> None:
    sim = Simulation(seed=11, faults=FAULTS)
    nodes = sim.spawn(50)
    sim.join_all(nodes[0])
    assert sim.run_until(sim.converged, timeout=30.0)
    formed_at = sim.now
    sim.run(3.0)  # and it stays formed
    assert sim.converged()
    for node in nodes:
        view = node.view()
        assert len(view) == 50 and set(view.values()) == {MemberStatus.ALIVE}
        assert node.core.joined
    assert not sim.events("down") and not sim.events("left")
    check_log(sim.log)
    stats = sim.stats()
    assert stats["dropped"] > 0 and stats["duplicated"] > 0 and stats["reordered"] > 0
    print(f"formed in {formed_at:.2f} s simulated; {stats['delivered']} messages delivered")


def test_crashed_node_is_declared_down_by_every_other_within_the_bound() -> None:
    sim = Simulation(seed=23, faults=FAULTS)
    nodes = sim.spawn(20)
    sim.join_all(nodes[0])
    assert sim.run_until(sim.converged, timeout=30.0)
    sim.run(5.0)  # let the detectors' windows fill with real samples
    victim = nodes[7]
    crashed_at = sim.now
    sim.crash(victim)
    bound = bound_for(sim)
    sim.run(bound + 2.0)
    survivors = [n for n in nodes if n is not victim]
    for node in survivors:
        downs = [r for r in sim.events("down", observer=node.name) if r.subject == victim.name]
        assert len(downs) == 1, node.name
        assert downs[0].time - crashed_at <= bound, (node.name, downs[0].time - crashed_at, bound)
        assert node.core.member(victim.node_id).status == MemberStatus.DOWN  # type: ignore[union-attr]
    # no live node was ever declared down
    assert {r.subject for r in sim.events("down")} == {victim.name}
    assert sim.converged(survivors)
    check_log(sim.log)
    worst = max(r.time for r in sim.events("down")) - crashed_at
    print(f"detection: worst {worst:.3f} s, bound {bound:.3f} s")


def test_partition_splits_membership_and_healing_remerges_it() -> None:
    sim = Simulation(seed=37, faults=FAULTS)
    nodes = sim.spawn(12)
    sim.join_all(nodes[0])
    assert sim.run_until(sim.converged, timeout=30.0)
    left, right = nodes[:5], nodes[5:]
    sim.partition(left, right)
    assert sim.run_until(lambda: sim.converged(left) and sim.converged(right), timeout=bound_for(sim) + 10)
    for node in left:
        assert {n for n, s in node.view().items() if s == MemberStatus.ALIVE} == {n.name for n in left}
    sim.heal()
    assert sim.run_until(sim.converged, timeout=60.0)
    for node in nodes:
        assert len(node.view()) == 12 and set(node.view().values()) == {MemberStatus.ALIVE}
    check_log(sim.log)
    # the two sides declared each other down, then saw new incarnations come up
    assert any(r.kind == "down" and r.observer == left[0].name and r.subject == right[0].name for r in sim.log)


def test_partition_longer_than_the_tombstones_heals_through_the_seed() -> None:
    sim = Simulation(seed=53, faults=FAULTS)
    nodes = sim.spawn(6)
    sim.join_all(nodes[0])
    assert sim.run_until(sim.converged, timeout=30.0)
    sim.partition(nodes[:3], nodes[3:])
    sim.run(sim.config.tombstone_ttl + 5.0)
    for node in nodes:
        assert len(node.view()) == 3  # the other side is forgotten, not just down
    sim.heal()
    assert sim.run_until(sim.converged, timeout=2 * sim.config.join_retry_max + 10.0)
    check_log(sim.log)


@pytest.mark.parametrize("new_id", [False, True], ids=["same-id", "new-id"])
def test_restarted_node_is_a_new_incarnation(new_id: bool) -> None:
    sim = Simulation(seed=41, faults=FAULTS)
    nodes = sim.spawn(10)
    sim.join_all(nodes[0])
    assert sim.run_until(sim.converged, timeout=30.0)
    old = nodes[4]
    sim.crash(old)
    sim.run(0.3)  # restart before the others even suspect it
    fresh = sim.restart(old, new_id=new_id)
    assert fresh.incarnation == 2 and (fresh.node_id != old.node_id) == new_id
    assert sim.run_until(sim.converged, timeout=30.0)
    sim.run(5.0)
    assert sim.converged()
    for node in sim.active_nodes():
        if node is fresh:
            continue
        about = [(r.kind, r.incarnation, r.detail) for r in sim.log
                 if r.observer_instance == node.instance and r.subject == old.name]
        if new_id:
            # another node id under the same name: whoever sees it first declares the old one down as
            # "replaced", others may hear that by gossip ("reported") before they see the new node
            assert about[0] == ("up", 1, "") and ("up", 2, "") in about, about
            assert [k for k in about if k[0] == "down"] in ([("down", 1, "replaced")], [("down", 1, "reported")])
        else:
            assert about == [("up", 1, ""), ("down", 1, "restarted"), ("up", 2, "")], about
        member = next(m for m in node.members() if m.name == old.name and m.status == MemberStatus.ALIVE)
        assert member.incarnation == 2 and member.node_id == fresh.node_id
    check_log(sim.log)
    if new_id:
        assert any(r.detail == "replaced" for r in sim.events("down"))


def test_heavy_jitter_and_loss_never_declare_a_live_node_down() -> None:
    # jitter of half the heartbeat interval and 3 % loss, for two simulated minutes
    sim = Simulation(seed=47, faults=Faults(latency=0.002, jitter=0.1, drop=0.03, duplicate=0.01, reorder=0.02))
    nodes = sim.spawn(6)
    sim.join_all(nodes[0])
    assert sim.run_until(sim.converged, timeout=30.0)
    sim.run(120.0)
    assert sim.converged() and not sim.events("down")
    assert not [r for r in sim.events("changed") if r.detail == "suspect"]


def test_graceful_leave_is_not_a_failure() -> None:
    sim = Simulation(seed=43, faults=FAULTS)
    nodes = sim.spawn(8)
    sim.join_all(nodes[0])
    assert sim.run_until(sim.converged, timeout=30.0)
    sim.leave(nodes[3])
    sim.run(bound_for(sim) * 2)
    assert sim.converged()
    assert {r.observer for r in sim.events("left", subject=nodes[3].name)} == {n.name for n in sim.active_nodes()}
    assert not sim.events("down")
    check_log(sim.log)


def _scenario(seed: int) -> list[LogRecord]:
    sim = Simulation(seed=seed, faults=FAULTS)
    nodes = sim.spawn(10)
    sim.join_all(nodes[0])
    sim.run(3.0)
    sim.crash(nodes[2])
    sim.run(2.0)
    sim.partition(nodes[:4], nodes[4:])
    sim.run(4.0)
    sim.heal()
    sim.restart(nodes[2])
    sim.run(6.0)
    return sim.log


def test_same_seed_replays_the_same_event_log() -> None:
    first, second = _scenario(5), _scenario(5)
    assert first == second and len(first) > 100
    assert _scenario(6) != first

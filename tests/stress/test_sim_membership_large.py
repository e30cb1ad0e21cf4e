"""Bigger membership simulations (excluded by default; run with ``pytest -m stress tests/stress``)."""

from __future__ import annotations

import pytest

from fabric.membership import MemberStatus
from fabric.membership.config import MembershipConfig
from fabric.testing import Faults, Simulation
from tests.unit.test_sim_membership import bound_for, check_log

HARSH = Faults(latency=0.002, jitter=0.02, drop=0.03, duplicate=0.02, reorder=0.05, reorder_delay=0.03)


@pytest.mark.parametrize("seed", [101, 202, 303])
def test_hundred_nodes_join_and_survive_crashes(seed: int) -> None:
    sim = Simulation(seed=seed, faults=HARSH)
    nodes = sim.spawn(100)
    sim.join_all(nodes[0])
    assert sim.run_until(sim.converged, timeout=60.0)
    sim.run(5.0)
    victims = nodes[10:13]
    crashed_at = sim.now
    for victim in victims:
        sim.crash(victim)
    bound = bound_for(sim)
    sim.run(bound + 3.0)
    for node in sim.active_nodes():
        for victim in victims:
            downs = [r for r in sim.events("down", observer=node.name) if r.subject == victim.name]
            assert len(downs) == 1 and downs[0].time - crashed_at <= bound
    assert {r.subject for r in sim.events("down")} == {v.name for v in victims}
    for victim in victims:
        sim.restart(victim)
    assert sim.run_until(sim.converged, timeout=60.0)
    check_log(sim.log)


@pytest.mark.parametrize("seed", [7, 8])
def test_long_run_with_lan_timers_never_declares_a_live_node_down(seed: int) -> None:
    sim = Simulation(seed=seed, faults=HARSH, config=MembershipConfig.lan())
    nodes = sim.spawn(30)
    sim.join_all(nodes[0])
    assert sim.run_until(sim.converged, timeout=60.0)
    sim.run(600.0)  # ten simulated minutes of 1 s heartbeats at 3 % loss
    assert sim.converged() and not sim.events("down")


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_repeated_partitions_always_remerge(seed: int) -> None:
    sim = Simulation(seed=seed, faults=HARSH)
    nodes = sim.spawn(30)
    sim.join_all(nodes[0])
    assert sim.run_until(sim.converged, timeout=60.0)
    for round_ in range(4):
        members = list(nodes)
        sim.rng.shuffle(members)
        cut = 5 + round_ * 5
        sim.partition(members[:cut], members[cut:])
        sim.run(bound_for(sim) + sim.rng.uniform(0.0, 3.0))
        sim.heal()
        assert sim.run_until(sim.converged, timeout=60.0), f"round {round_}"
    for node in nodes:
        assert set(node.view().values()) == {MemberStatus.ALIVE} and len(node.view()) == 30
    check_log(sim.log)

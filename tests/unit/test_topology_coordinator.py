"""Topology coordination without consensus: CAS, cooldown, and convergence of concurrent proposals."""

from __future__ import annotations

import os
import random

import pytest

from fabric.topology import TopologyConflict, TopologyCooldown, TopologyCoordinator, TopologyState

OVERLAYS = ("full-mesh", "hyparview", "client-server", "static")


def node(i: int, cooldown: float = 5.0) -> TopologyCoordinator:
    return TopologyCoordinator(bytes([i]) * 16, "full-mesh", OVERLAYS, cooldown=cooldown)


def test_compare_and_set_and_cooldown() -> None:
    a = node(1)
    state = a.propose("hyparview", 100.0, expected="full-mesh")
    assert state == TopologyState(1, bytes([1]) * 16, "hyparview")
    with pytest.raises(TopologyCooldown):
        a.propose("full-mesh", 101.0)
    with pytest.raises(TopologyConflict):
        a.propose("full-mesh", 200.0, expected="full-mesh")
    with pytest.raises(TopologyConflict):
        a.propose("full-mesh", 200.0, expected=("hyparview", 7))
    assert a.propose("full-mesh", 200.0, expected=("hyparview", 1)).epoch == 2
    with pytest.raises(ValueError):
        a.propose("ring", 300.0)


def test_merge_adopts_only_newer_states_and_counts_malformed_ones() -> None:
    a, b = node(1), node(2)
    newer = b.propose("hyparview", 10.0)
    assert a.merge(newer.to_wire(), 10.0) == newer
    assert a.merge(newer.to_wire(), 10.0) is None  # the same state again changes nothing
    assert a.merge(TopologyState(0, bytes(16), "full-mesh").to_wire(), 11.0) is None
    for bad in (None, [], {"e": -1, "p": bytes(16), "o": "hyparview"}, {"e": 3, "p": b"x", "o": "hyparview"},
                {"e": 3, "p": bytes(16), "o": "ring"}, {"e": True, "p": bytes(16), "o": "static"}):
        assert a.merge(bad, 12.0) is None
    assert a.counters["malformed"] == 6 and a.state == newer
    # an adopted switch starts the cooldown too
    with pytest.raises(TopologyCooldown):
        a.propose("full-mesh", 12.0)


@pytest.mark.parametrize("seed", [1, 2, 3, int(os.environ.get("TOPOLOGY_SEED", "4"))])
def test_concurrent_conflicting_proposals_converge_on_one_topology(seed: int) -> None:
    print(f"seed={seed}")
    rng = random.Random(seed)
    nodes = [node(i + 1, cooldown=0.0) for i in range(40)]
    now = 0.0
    # several nodes propose different overlays at the same moment, twice, before hearing each other
    proposals = []
    for _ in range(2):
        for proposer in rng.sample(nodes, 6):
            proposals.append(proposer.propose(rng.choice(OVERLAYS), now))
    # heartbeats: each round every node sends its state to 3 random others; 10% of them are lost
    rounds = 0
    while rounds < 100:
        rounds += 1
        now += 1.0
        for sender in nodes:
            for receiver in rng.sample(nodes, 3):
                if rng.random() >= 0.1:
                    receiver.merge(sender.state.to_wire(), now)
        if len({n.state for n in nodes}) == 1:
            break
    states = {n.state for n in nodes}
    assert len(states) == 1, f"not converged after {rounds} rounds: {states}"
    winner = states.pop()
    assert winner == max(proposals)  # the largest (epoch, proposer) of all proposals wins everywhere
    print(f"converged on {winner.overlay!r} epoch {winner.epoch} after {rounds} heartbeat rounds")

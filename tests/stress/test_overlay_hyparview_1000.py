"""1,000 HyParView + Plumtree nodes in the overlay simulator (stress: excluded from the default suite).

The same scenario as tests/unit/test_hyparview_sim.py at 200 nodes: a join storm, broadcasts (100 % of
live nodes, at most 1.1 x (N - 1) payload messages once the tree settled), 30 % of nodes crashing at
once, healing, broadcasts reaching every survivor. Prints the figures (heal time, messages per
broadcast, memory per node with tracemalloc).
"""

from __future__ import annotations

from tests.unit.test_hyparview_sim import run_scenario


def test_hyparview_1000_nodes_join_storm_broadcast_crash_heal() -> None:
    report = run_scenario(1000, seed=1000, measure_memory=True)
    assert report["survivors"] == 700
    assert report["max_rss_mib"] < 4096  # the whole test process, 1,000 nodes included

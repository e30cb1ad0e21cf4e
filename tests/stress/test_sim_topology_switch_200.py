"""200 simulated nodes switch overlay live (full-mesh -> HyParView -> full-mesh) while nodes join and
crash (run with ``pytest -m stress tests/stress``); the 50-node version runs in the default suite."""

from __future__ import annotations

import pytest

from fabric.membership.config import MembershipConfig
from tests.unit.test_sim_topology_switch import run_switch_scenario

# Full-state anti-entropy every 5 s instead of every second: at 200 members each push carries 200 entries,
# and parsing them is most of the run's CPU; heartbeats still go every second.
FULL_MESH_200 = MembershipConfig.local(heartbeat_interval=1.0, gossip_interval=5.0)

pytestmark = pytest.mark.stress


@pytest.mark.timeout(900)
@pytest.mark.parametrize("seed", [200])
def test_two_hundred_node_cluster_switches_overlay_while_nodes_join_and_crash(seed: int) -> None:
    figures = run_switch_scenario(200, seed, joins=8, crashes=8, full_mesh=FULL_MESH_200)
    print(figures)

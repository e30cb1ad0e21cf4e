"""A node joining a cluster adopts the cluster's current overlay and epoch (issue 14, defect 1).

Three OS processes: a cluster of 6 (two processes x 3 nodes) switches full-mesh -> HyParView, then a third
process starts 2 new nodes, one configured full-mesh and one hyparview, which join through a seed within the
normal join bound. Before the fix, a newcomer's join timed out after 35 s: its messages carried no topology
epoch, the cluster dropped them as stale, and nobody told it which overlay the cluster was on.
"""

from __future__ import annotations

from tests.integration.test_overlays_real import Group, groups, received_everywhere
from tests.integration.test_switch_topology_real import converged
from tests.support import short_tmpdir

JOIN_BOUND = 20.0
"""Seconds a join may take here (local preset, loaded 2-core machine); an unadopted overlay never joins."""


def test_new_nodes_join_a_cluster_that_switched_to_hyparview() -> None:
    with short_tmpdir("ffjs") as base, groups() as started:
        first = Group("--prefix", "a", "--count", "3", "--overlay", "full-mesh", "--dir", base, "--min-members", "6")
        started.append(first)
        seed = first.ready["seeds"][0]
        started.append(Group("--prefix", "b", "--count", "3", "--overlay", "full-mesh", "--dir", base,
                             "--seed", seed, "--min-members", "6"))
        for g in started:
            g.expect("joined", 120)
        converged(started, "full-mesh", 6)
        started[1].command("switch 0 full-mesh hyparview")
        switched = started[1].expect("switched")["topology"]
        assert switched["overlay"] == "hyparview"
        converged(started, "hyparview", 6)
        newcomers = Group("--prefix", "c", "--count", "2", "--overlays", "full-mesh,hyparview", "--dir", base,
                          "--seed", seed, "--min-members", "8", "--join-timeout", str(JOIN_BOUND))
        started.append(newcomers)
        newcomers.expect("joined", JOIN_BOUND + 30)  # an error event (JoinTimeout) fails the test
        reports = converged(started, "hyparview", 8)
        assert all(e == switched["epoch"] for r in reports for e in r["epochs"]), reports
        newcomers.command("broadcast 0")
        newcomers.expect("broadcast")
        counts = received_everywhere(started, "cn0")
        assert all(v >= 1 for name, v in counts.items() if name != "cn0"), counts

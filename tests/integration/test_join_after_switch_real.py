"""Issue 14, defect 1, on real processes: after a running cluster switched to HyParView, new nodes join it
within the normal bound, whether they are configured full-mesh or hyparview, and adopt its overlay and
epoch (a member answers a message from an older topology epoch with the current topology)."""

from __future__ import annotations

import time

from tests.integration.test_overlays_real import Group, groups
from tests.integration.test_switch_topology_real import converged
from tests.support import short_tmpdir


def test_two_new_nodes_join_a_cluster_of_six_that_switched_to_hyparview() -> None:
    with short_tmpdir("ffjs") as base, groups() as started:
        first = Group("--prefix", "a", "--count", "3", "--overlay", "full-mesh", "--dir", base, "--min-members", "6")
        started.append(first)
        seed = first.ready["seeds"][0]
        started.append(Group("--prefix", "b", "--count", "3", "--overlay", "full-mesh", "--dir", base, "--seed", seed,
                             "--min-members", "6"))
        for g in started:
            g.expect("joined", 60)
        converged(started, "full-mesh", 6)
        started[1].command("switch 0 full-mesh hyparview")
        assert started[1].expect("switched")["topology"]["overlay"] == "hyparview"
        converged(started, "hyparview", 6)
        # newcomers: one configured full-mesh, one hyparview, both at epoch 0; they must join within the
        # normal bound (before the fix, join() timed out after 35 s) and end on the cluster's overlay
        began = time.monotonic()
        newcomers = Group("--prefix", "c", "--count", "2", "--overlays", "full-mesh,hyparview", "--dir", base,
                          "--seed", seed, "--min-members", "8")
        started.append(newcomers)
        newcomers.expect("joined", 20)
        joined_after = time.monotonic() - began
        reports = converged(started, "hyparview", 8, timeout=30)
        assert joined_after < 20, joined_after
        print(f"2 newcomers joined the switched cluster in {joined_after:.2f}s: {reports[-1]}")

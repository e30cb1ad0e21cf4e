"""Automatic topology with real processes (ipc://, real ZeroMQ sockets): 8 nodes in 2 processes stay a full
mesh; a third process brings the cluster to the threshold (12) and it moves to HyParView; ``kill -9`` of
that process (4 nodes crash at once) brings it to 8 = threshold - hysteresis and it moves back to full-mesh.
One node decides each time; every node's history records both switches."""

from __future__ import annotations

import time

from tests.integration.test_overlays_real import Group, groups
from tests.integration.test_switch_topology_real import converged as settle
from tests.support import short_tmpdir


def heartbeats(group: Group) -> int:
    """Heartbeats received by the group's nodes so far."""
    group.command("stats")
    return int(group.expect("stats")["totals"].get("recv_hb", 0))


def test_cluster_moves_to_hyparview_at_the_threshold_and_back_after_a_crash() -> None:
    per = 4
    with short_tmpdir("ffau") as base, groups() as started:
        common = ("--count", str(per), "--overlay", "full-mesh", "--dir", base, "--auto", "12")
        first = Group("--prefix", "u0", *common, "--min-members", "8")
        started.append(first)
        seed = first.ready["seeds"][0]
        started.append(Group("--prefix", "u1", *common, "--seed", seed, "--min-members", "8"))
        for g in started:
            g.expect("joined", 60)
        settle(started, "full-mesh", 8)
        # 8 < 12 must not switch: wait for 10 heartbeat rounds at every node (>= 1.8 s of the nodes' own
        # timers, past auto_dwell and the once-a-second check) instead of a fixed sleep.
        wanted = [heartbeats(g) + per * 7 * 10 for g in started]
        deadline = time.monotonic() + 60
        while any(heartbeats(g) < w for g, w in zip(started, wanted, strict=True)):
            assert time.monotonic() < deadline, "the nodes stopped heartbeating"
            time.sleep(0.1)
        assert all(h == [] for r in settle(started, "full-mesh", 8) for h in r["history"])

        third = Group("--prefix", "u2", *common, "--seed", seed, "--min-members", "12")
        started.append(third)
        third.expect("joined", 60)
        up = settle(started, "hyparview", 12)
        histories = [h for r in up for h in r["history"]]
        assert all(h[-1]["to"] == "hyparview" and h[-1]["epoch"] == 1 for h in histories)
        deciders = [h[-1] for h in histories if h[-1]["reason"].startswith("auto:")]
        assert len(deciders) == 1 and "12 members >= auto_threshold 12" in deciders[0]["reason"], histories

        started.remove(third)
        third.child.kill9()
        down = settle(started, "full-mesh", 8, timeout=90)
        histories = [h for r in down for h in r["history"]]
        assert all([x["to"] for x in h] == ["hyparview", "full-mesh"] for h in histories), histories
        deciders = [h[-1] for h in histories if h[-1]["reason"].startswith("auto:")]
        assert len(deciders) == 1 and "8 members <= auto_threshold - auto_hysteresis 8" in deciders[0]["reason"]
        third.child.stop()

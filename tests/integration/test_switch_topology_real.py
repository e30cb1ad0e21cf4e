"""Live topology switching with real processes: 20 nodes (4 processes x 5) switch full-mesh -> HyParView ->
full-mesh while a stream of calls flows. Every call gets its reply; PIDs and bound endpoints never change."""

from __future__ import annotations

import time

from tests.integration.test_overlays_real import Group, groups
from tests.support import short_tmpdir


def converged(all_groups: list[Group], overlay: str, total: int, timeout: float = 60.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while True:
        reports = []
        for g in all_groups:
            g.command("topology")
            reports.append(g.expect("topology"))
        if all(o == overlay for r in reports for o in r["overlays"]) and all(a == total for r in reports for a in r["alive"]):
            return reports
        assert time.monotonic() < deadline, f"not converged on {overlay}: {reports}"
        time.sleep(0.2)


def test_twenty_nodes_switch_topology_live_while_calls_flow() -> None:
    processes, per = 4, 5
    total = processes * per
    with short_tmpdir("ffsw") as base, groups() as started:
        first = Group("--prefix", "q0", "--count", str(per), "--overlay", "full-mesh", "--dir", base, "--min-members", str(total))
        started.append(first)
        seed = first.ready["seeds"][0]
        for p in range(1, processes):
            started.append(Group("--prefix", f"q{p}", "--count", str(per), "--overlay", "full-mesh", "--dir", base,
                                 "--seed", seed, "--min-members", str(total)))
        for g in started:
            g.expect("joined", 120)
        before = converged(started, "full-mesh", total)
        # node 0 of process 0 calls every node of the other processes, round-robin, all along
        targets = [i for g in started[1:] for i in g.ready["ids"]]
        first.command("callflow " + ",".join(targets))
        first.expect("callflow")
        started[2].command("switch 1 full-mesh hyparview")
        assert started[2].expect("switched")["topology"]["overlay"] == "hyparview"
        middle = converged(started, "hyparview", total)
        assert all(n <= 6 for r in middle for n in r["neighbours"])  # partial views now
        for attempt in range(300):  # refused while the switch cooldown (1 s in these nodes) runs: retry
            started[3].command("switch 4 hyparview full-mesh")
            try:
                switched = started[3].expect("switched")
                break
            except AssertionError as exc:
                assert "TopologyCooldown" in str(exc) and attempt < 299, exc
                time.sleep(0.05)
        assert switched["topology"]["overlay"] == "full-mesh"
        after = converged(started, "full-mesh", total)
        first.command("callstats")
        stats = first.expect("callstats", 60)
        assert stats["failed"] == [] and stats["ok"] > 0, stats
        print(f"{stats['ok']} calls, none failed, across two live switches")
        for b, a in zip(before, after, strict=True):
            assert b["pid"] == a["pid"] and b["endpoints"] == a["endpoints"]

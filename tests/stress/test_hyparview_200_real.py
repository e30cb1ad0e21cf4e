"""200 real HyParView nodes (4 OS processes x 50, ipc://, real ZeroMQ sockets) form one overlay and a
broadcast reaches every node; the whole run is bounded to 3 minutes.

The nodes use the ``lan()`` overlay timers (1 s heartbeats): 50 nodes per process on a 2-core machine with
``local()``'s 5x faster timers spend most of the CPU on heartbeats, and starved event loops then suspect
healthy neighbours. Prints the formation time and the steady-state cost (CPU ms per node-second,
messages per node-second).
"""

from __future__ import annotations

import time

from tests.integration.test_overlays_real import Group, groups, received_everywhere
from tests.support import short_tmpdir

BUDGET = 180.0


def _alive(started: list[Group]) -> list[int]:
    alive: list[int] = []
    for g in started:
        g.command("members")
        alive += g.expect("members", 30)["alive"]
    return alive


def _stats(started: list[Group]) -> tuple[dict[str, int], float]:
    totals: dict[str, int] = {}
    cpu = 0.0
    for g in started:
        g.command("stats")
        report = g.expect("stats", 30)
        cpu += report["cpu"]
        for k, v in report["totals"].items():
            totals[k] = totals.get(k, 0) + v
    return totals, cpu


def test_two_hundred_real_nodes_form_hyparview_and_a_broadcast_reaches_all() -> None:
    processes, per = 4, 50
    total = processes * per
    start = time.monotonic()
    deadline = start + BUDGET
    with short_tmpdir("ff200") as base, groups() as started:
        common = ("--count", str(per), "--overlay", "hyparview", "--dir", base, "--timers", "lan")
        first = Group("--prefix", "h0", *common)
        started.append(first)
        seed = first.ready["seeds"][0]
        for p in range(1, processes):
            started.append(Group("--prefix", f"h{p}", *common, "--seed", seed))
        for g in started:
            g.expect("joined", max(1.0, deadline - time.monotonic()))
        alive = _alive(started)
        while min(alive) < total:
            assert time.monotonic() < deadline - 40, f"not formed: min {min(alive)} of {total} members"
            time.sleep(2.0)
            alive = _alive(started)
        formed = time.monotonic() - start
        assert alive == [total] * total
        for g in started:
            g.command("topology")
            views = g.expect("topology")["neighbours"]
            assert all(1 <= n <= 6 for n in views), views  # active views stay partial (active_max 6)

        before, cpu0 = _stats(started)
        t0 = time.monotonic()
        started[3].command("broadcast 17")
        started[3].expect("broadcast")
        sender = "h3n17"
        counts = received_everywhere(started, sender, timeout=max(1.0, min(30.0, deadline - time.monotonic())))
        missing = sorted(name for name, n in counts.items() if name != sender and n < 1)
        assert len(counts) == total and not missing, f"broadcast missed {len(missing)}: {missing[:10]}"
        after, cpu1 = _stats(started)
        elapsed = time.monotonic() - t0
        print(f"{total} nodes in {processes} processes: every node sees {total} alive members "
              f"{formed:.1f} s after the first process started; broadcast reached {total - 1} nodes")
        print(f"steady state: {1000 * (cpu1 - cpu0) / elapsed / total:.2f} CPU ms per node-second, "
              f"{(after.get('received', 0) - before.get('received', 0)) / elapsed / total:.1f} overlay messages "
              "received per node-second")
        assert time.monotonic() - start < BUDGET

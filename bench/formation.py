"""Cluster formation time: N real nodes (one OS process each) join through one seed.

    python -m bench.formation                 # N = 3, 8, 16; 5 repetitions each
    python -m bench.formation --sizes 3 --reps 2

Every node process starts, binds and reports ready; then all are told "go" at once over stdin and
call ``node.join([seed], min_members=N)``. Formation time = from the "go" to the moment the *last*
node sees all N members alive (wall clock on one machine, so comparable across processes). Process
start-up is excluded. Uses ``NodeConfig.local()`` timers (gossip every 200 ms).

Once formed, the seed broadcasts one message on the ``events`` channel and every other node reports
whether it arrived (each waits up to 10 s for it): the ``bcast`` column is how many of the N - 1 others
got that one broadcast, worst repetition. A formation that does not complete within 120 s is reported
as such (with the fewest members a node saw), not as a crash. Each node also reports its membership
counters: false suspicions (``suspicions``), members it declared down, late timers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


FORM_TIMEOUT = 120.0
"""Seconds a node waits for all N members before it reports a failed formation."""

BROADCAST_WAIT = 10.0
"""Seconds a node waits for the seed's broadcast before it reports it missing."""


def _overrides(pairs: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        out[key] = float(value) if "." in value or "e" in value else int(value)
    return out


async def _child(name: str, seed: str | None, n: int, membership: list[str]) -> None:
    from fabric import Node, NodeConfig
    from fabric.errors import JoinTimeout
    from fabric.membership import MembershipConfig

    node = Node(NodeConfig.local(name=name, membership=MembershipConfig.local(**_overrides(membership))))
    got = asyncio.Event()
    node.subscribe("events", lambda msg: got.set(), inline=True)
    await node.start()
    print(json.dumps({"ready": node.seed}), flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if line.strip() != "go":
        await node.stop()
        return
    formed: float | None = None
    try:
        await node.join([seed] if seed else [], min_members=n, timeout=FORM_TIMEOUT)
        formed = time.time()
    except JoinTimeout:
        pass
    print(json.dumps({"formed": formed, "members": len(node.alive_members())}), flush=True)
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if line == "bcast":
            print(json.dumps({"addressed": await node.broadcast({"from": name})}), flush=True)
        elif line == "report":
            try:
                await asyncio.wait_for(got.wait(), BROADCAST_WAIT)
            except TimeoutError:
                pass
            counters = node.stats().get("membership", {})
            keep = ("suspicions", "declared_down", "late_ticks", "indirect_acks", "indirect_nacks", "refuted",
                    "health_score")
            print(json.dumps({"got": got.is_set(), "counters": {k: counters.get(k, 0) for k in keep}}), flush=True)
        else:  # "quit" or end of input
            break
    await node.stop()


def _spawn(name: str, seed: str | None, n: int, membership: list[str]) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "bench.formation", "--child", name, "--n", str(n)]
    for pair in membership:
        args += ["--membership", pair]
    if seed:
        args += ["--seed", seed]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)


def _send(p: subprocess.Popen[str], line: str) -> None:
    assert p.stdin is not None
    p.stdin.write(line + "\n")
    p.stdin.flush()


def _read(p: subprocess.Popen[str]) -> dict[str, Any]:
    assert p.stdout is not None
    line = p.stdout.readline()
    if not line:
        raise RuntimeError(f"node process {p.pid} ended early (exit code {p.wait()})")
    return dict(json.loads(line))


def measure(n: int, membership: list[str] | None = None) -> dict[str, Any]:
    """One formation of ``n`` nodes. Returns ``seconds`` (from "go" to the last node seeing all ``n``;
    None when some node did not within :data:`FORM_TIMEOUT`), ``fewest`` (the fewest members a node
    saw), ``reached`` (how many of the others got the seed's one broadcast) and ``counters`` (membership
    counters summed over the nodes)."""
    procs: list[subprocess.Popen[str]] = []
    try:
        membership = membership or []
        seed_proc = _spawn("n0", None, n, membership)
        procs.append(seed_proc)
        assert seed_proc.stdout is not None
        seed = json.loads(seed_proc.stdout.readline())["ready"]
        for i in range(1, n):
            procs.append(_spawn(f"n{i}", seed, n, membership))
        for p in procs[1:]:
            assert p.stdout is not None
            json.loads(p.stdout.readline())
        go = time.time()
        for p in procs:
            _send(p, "go")
        reports = [_read(p) for p in procs]
        formed = [r["formed"] for r in reports]
        seconds = None if None in formed else max(formed) - go
        _send(procs[0], "bcast")
        _read(procs[0])
        for p in procs[1:]:
            _send(p, "report")
        answers = [_read(p) for p in procs[1:]]
        counters: dict[str, int] = {}
        for a in answers:
            for k, v in a["counters"].items():
                counters[k] = counters.get(k, 0) + v
        return {"seconds": seconds, "fewest": min(r["members"] for r in reports),
                "reached": sum(1 for a in answers if a["got"]), "counters": counters}
    finally:
        for p in procs:
            try:
                _send(p, "quit")
            except (BrokenPipeError, OSError):
                pass
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.formation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 8, 16])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--membership", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a MembershipConfig.local() field (repeatable), e.g. heartbeat_interval=0.5")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--seed", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(_child(args.child, args.seed, args.n, args.membership))
        return 0
    print("cluster formation through one seed (real node processes on 127.0.0.1, NodeConfig.local())")
    print(f"{'nodes':>5}  {'median ms':>9}  {'min ms':>7}  {'max ms':>7}  {'formed':>6}  {'bcast':>7}  reps")
    results: dict[int, list[dict[str, Any]]] = {}
    failed = False
    for n in args.sizes:
        runs = [measure(n, args.membership) for _ in range(args.reps)]
        results[n] = runs
        times = [r["seconds"] * 1000 for r in runs if r["seconds"] is not None]
        reached = min(r["reached"] for r in runs)
        failed = failed or len(times) < len(runs) or reached < n - 1
        spread = (f"{statistics.median(times):>9.0f}  {min(times):>7.0f}  {max(times):>7.0f}" if times
                  else f"{'-':>9}  {'-':>7}  {'-':>7}")
        print(f"{n:>5}  {spread}  {len(times):>3}/{len(runs):<2}  {reached:>3}/{n - 1:<3}  {len(runs)}", flush=True)
        for r in runs:
            if r["seconds"] is None:
                print(f"       not formed in {FORM_TIMEOUT:.0f} s: a node saw only {r['fewest']} of {n}")
        totals: dict[str, int] = {}
        for r in runs:
            for k, v in r["counters"].items():
                totals[k] = totals.get(k, 0) + v
        print("       membership counters, all nodes and runs: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "formation.json").write_text(json.dumps({"unit": "ms", "results": results}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

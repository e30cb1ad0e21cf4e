"""Cluster formation time: N real nodes (one OS process each) join through one seed.

    python -m bench.formation                 # N = 3, 8, 16; 5 repetitions each
    python -m bench.formation --sizes 3 --reps 2

Every node process starts, binds and reports ready; then all are told "go" at once over stdin and
call ``node.join([seed], min_members=N)``. Formation time = from the "go" to the moment the *last*
node sees all N members alive (wall clock on one machine, so comparable across processes). Process
start-up is excluded. Uses ``NodeConfig.local()`` timers (gossip every 200 ms).
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

REPO = Path(__file__).resolve().parent.parent


async def _child(name: str, seed: str | None, n: int) -> None:
    from fabric import Node, NodeConfig

    node = Node(NodeConfig.local(name=name))
    await node.start()
    print(json.dumps({"ready": node.seed}), flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if line.strip() != "go":
        await node.stop()
        return
    await node.join([seed] if seed else [], min_members=n, timeout=120)
    print(json.dumps({"formed": time.time(), "members": len(node.alive_members())}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # wait for "quit"
    await node.stop()


def _spawn(name: str, seed: str | None, n: int) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "bench.formation", "--child", name, "--n", str(n)]
    if seed:
        args += ["--seed", seed]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)


def measure(n: int) -> float:
    """One formation of ``n`` nodes; returns seconds from "go" to the last node seeing all ``n``."""
    procs: list[subprocess.Popen[str]] = []
    try:
        seed_proc = _spawn("n0", None, n)
        procs.append(seed_proc)
        assert seed_proc.stdout is not None
        seed = json.loads(seed_proc.stdout.readline())["ready"]
        for i in range(1, n):
            procs.append(_spawn(f"n{i}", seed, n))
        for p in procs[1:]:
            assert p.stdout is not None
            json.loads(p.stdout.readline())
        go = time.time()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        formed = []
        for p in procs:
            assert p.stdout is not None
            report = json.loads(p.stdout.readline())
            assert report["members"] >= n
            formed.append(report["formed"])
        return max(formed) - go
    finally:
        for p in procs:
            try:
                assert p.stdin is not None
                p.stdin.write("quit\n")
                p.stdin.flush()
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
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--seed", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(_child(args.child, args.seed, args.n))
        return 0
    print("cluster formation through one seed (real node processes on 127.0.0.1, NodeConfig.local())")
    print(f"{'nodes':>5}  {'median ms':>9}  {'min ms':>7}  {'max ms':>7}  reps")
    results = {}
    for n in args.sizes:
        times = [measure(n) * 1000 for _ in range(args.reps)]
        results[n] = times
        print(f"{n:>5}  {statistics.median(times):>9.0f}  {min(times):>7.0f}  {max(times):>7.0f}  {len(times)}", flush=True)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "formation.json").write_text(json.dumps({"unit": "ms", "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

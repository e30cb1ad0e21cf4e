"""CURVE on vs off: ``python -m bench.security [--quick] [--reps N] [--only a,b,c,e]``.

The same fabric roles as :mod:`bench.run`, each run twice per repetition, interleaved: once in
development mode (NULL mechanism) and once in secure mode (CURVE on every socket, ZAP handler, per-message
attribution and identity checks; keys and a trust file generated for the run in a temporary directory).
The table's ratio column is curve / plain within this one run, so machine load hits both alike; the load
average before and after is printed with it.

a. control channel one-way throughput, 256 B (msgs/s);  target: CURVE >= 0.8x plain;
b. bulk channel throughput, 1 MiB (MiB/s);
c. call round trip, 256 B (p50/p99 us);
e. call round trip, 1 MiB (p50/p99 us).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Pair  # noqa: E402
from bench.run import RESULTS_DIR, Benchmark, Target, Variant, _meta, render, run_all  # noqa: E402

ROLES = ("bench-rx", "bench-tx", "bench-server", "bench-client")


def make_keys(root: Path) -> None:
    """One key pair per bench role under ``root/<role>/`` and ``root/trust.toml`` trusting them all."""
    from fabric.security import KeyPair, save_keypair

    entries = []
    for role in ROLES:
        kp = KeyPair.generate()
        save_keypair(root / role, kp)
        entries.append(f'[[member]]\nkey = "{kp.public.decode()}"\nname = "{role}"\n')
    (root / "trust.toml").write_text("".join(entries))


def benchmarks(curve_dir: str, small: int, large: int) -> list[Benchmark]:
    """Plain vs CURVE variants of throughput (a, b) and call latency (c, e)."""

    def pair_of(label: str, pair: Pair, args: dict[str, object]) -> tuple[Variant, Variant]:
        return (Variant("plain", f"{label}, development (NULL)", pair, args),
                Variant("curve", f"{label}, CURVE", pair, {**args, "curve_dir": curve_dir}))

    control, bulk = Pair("fabric_control_rx", "fabric_control_tx"), Pair("fabric_bulk_rx", "fabric_bulk_tx")
    rtt = Pair("fabric_rtt_server", "fabric_rtt_client", "client")
    return [
        Benchmark("a", f"a. control channel one-way throughput, {small} B", (("value", "msg/s"),),
                  pair_of("coordination, batching on", control, {"size": small, "batching": True}),
                  (Target("curve", "value", ">=", 0.8, "plain"),), True),
        Benchmark("b", f"b. bulk channel throughput, {large >> 20} MiB", (("value", "MiB/s"),),
                  pair_of("data, one lane", bulk, {"size": large}), (), True),
        Benchmark("c", f"c. call round trip, {small} B", (("p50_us", "p50 us"), ("p99_us", "p99 us")),
                  pair_of("call to echo", rtt, {"size": small}), (), False),
        Benchmark("e", f"e. call round trip, {large >> 20} MiB", (("p50_us", "p50 us"), ("p99_us", "p99 us")),
                  pair_of("call to echo", rtt, {"size": large}), (), False),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.security", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="0.15 s warm-up + 0.4 s windows")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions per variant (default 5)")
    parser.add_argument("--only", default="", help="comma-separated benchmark letters (a, b, c, e)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the JSON results")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be >= 1")
    common = {"warmup": 0.15 if args.quick else 0.5, "duration": 0.4 if args.quick else 3.0, "first_timeout": 20.0}
    only = {s.strip() for s in args.only.split(",") if s.strip()}

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="ffbench-") as tmp:
        make_keys(Path(tmp))
        selected = [b for b in benchmarks(tmp, 256, 1 << 20) if not only or b.key in only]
        if not selected:
            parser.error(f"--only {args.only!r} selects nothing (choose from a, b, c, e)")
        load_before = os.getloadavg()
        report = run_all(selected, args.reps, common, log)
    meta = _meta(args, common, {"small": 256, "large": 1 << 20})
    meta["loadavg_1m_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    print(f"fabric CURVE vs plain  ({meta['time_utc']}, {meta['cpus']} CPUs, pyzmq {meta['pyzmq']}, "
          f"libzmq {meta['libzmq']}, {args.reps} interleaved reps, window {common['warmup']}+{common['duration']} s, "
          f"load {meta['loadavg_1m_before_after']})")
    print(render(selected, report))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "security-latest.json").write_text(json.dumps({"meta": meta, "benchmarks": report}, indent=1))
    print(f"\nJSON: {args.out / 'security-latest.json'}")
    return 1 if any(v["errors"] for b in report.values() for v in b["variants"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())

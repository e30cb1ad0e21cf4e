"""``python -m fabric.testing.chaos [--quick] [--out DIR] [--only a,b] [--mode auto|namespaces|loopback]``.

Runs the chaos scenarios one after the other, prints one line per scenario (always with ``lost N``) and a
summary line last, and writes each full report as ``DIR/<scenario>.json`` plus ``DIR/summary.json``.
Exit status: 0 when every scenario that ran passed, 1 otherwise, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from .cluster import default_network
from .net import ChaosNetError
from .scenarios import FULL, QUICK, SCENARIOS, run_scenario, summary_line


def main(argv: list[str] | None = None) -> int:
    """Run the suite; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m fabric.testing.chaos", description="Fault-injection scenarios on real processes.")
    parser.add_argument("--quick", action="store_true", help="CI sizes (short durations, 3-5 hosts)")
    parser.add_argument("--out", default="chaos-reports", help="folder for the JSON reports (default: ./chaos-reports)")
    parser.add_argument("--only", default="", help="comma-separated scenario keys (" + ",".join(SCENARIOS) + ")")
    parser.add_argument("--mode", choices=("auto", "namespaces", "loopback"), default="auto",
                        help="auto: namespaces when root with ip and nft, else loopback")
    parser.add_argument("--seed", type=int, default=0, help="seed of the churn schedule and the workloads")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.only.split(",") if k.strip()] or list(SCENARIOS)
    unknown = [k for k in keys if k not in SCENARIOS]
    if unknown:
        print(f"error: unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    # SIGTERM (a CI timeout) unwinds like Ctrl-C: clusters stop their hosts (resuming paused ones) and
    # delete their namespaces on the way out. Hosts also exit on their own when their stdin closes.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sizes = QUICK if args.quick else FULL
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        default_network(args.mode).close()  # fail early with one line when the mode cannot run here
    except ChaosNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    reports = []
    for key in keys:
        report = run_scenario(key, sizes, lambda: default_network(args.mode), out / "data", seed=args.seed)
        reports.append(report)
        (out / f"{report['scenario']}.json").write_text(json.dumps(report, indent=1, default=str))
        print(summary_line(report), flush=True)
    ran = [r for r in reports if r.get("supported", True)]
    failed = [r["scenario"] for r in ran if not r.get("passed")]
    mode = reports[0]["mode"] if reports else args.mode
    netem = next((r["netem"] for r in ran if "netem" in r), "not checked")
    faults_by = next((r["network_faults"] for r in reports if "network_faults" in r), None)
    summary = {
        "mode": mode, "network_faults": faults_by, "netem": netem, "size": "quick" if args.quick else "full", "scenarios": len(reports),
        "ran": len(ran), "skipped": len(reports) - len(ran), "passed": len(ran) - len(failed), "failed": failed,
        "lost": sum(int(r.get("lost", 0)) for r in reports), "duplicates": sum(int(r.get("duplicates", 0)) for r in reports),
        "wall_s": round(time.monotonic() - started, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(
        f"chaos summary: mode={mode}{' (network faults by ' + faults_by + ')' if faults_by else ''} "
        f"size={summary['size']} netem: {netem}; {summary['ran']}/{summary['scenarios']} ran, "
        f"{summary['passed']} passed, {len(failed)} failed{' (' + ', '.join(failed) + ')' if failed else ''}, "
        f"{summary['skipped']} skipped; lost {summary['lost']} duplicates {summary['duplicates']} in {summary['wall_s']}s"
    )
    return 0 if not failed and summary["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Throughput of the Foundation 1.x services in one process (no cluster).

Prints, for each operation, the median rate over ``--reps`` repetitions and the spread (min..max):

* events stored/s      ``Events.store`` of pre-built events (validation + indexing + telemetry counter)
* events created+stored/s  ``new_event`` + ``store``
* events queried/s     ``query(event_type=..., limit=100)`` on a store of ``--n`` events (3 types)
* sorted queries/s     the same with ``order_by="timestamp"`` (sorts every match of the type)
* correlation queries/s  ``get_by_correlation`` on the same store
* telemetry emits/s    ``emit_counter`` with two metadata keys (one an allow-listed label)
* histogram emits/s    ``emit_histogram``
* config get/s         ``Config.get(["ai", "provider"])``

Usage: ``python bench/foundation_bench.py [--n 20000] [--reps 5] [--json]``. Single-threaded; every
repetition uses a fresh isolated app (``foundation.start_app``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable

import foundation
from foundation import FoundationApp


def _fresh_app(n: int) -> FoundationApp:
    # Room for every stored event of a repetition so the bounded store never drops during a run.
    return foundation.start_app(config={"storage": {"hot": {"max_events": max(4 * n, 1000)}}},
                                telemetry_config=foundation.TelemetryConfig(enable_vm_metrics=False))


def _rate(count: int, op: Callable[[int], object]) -> float:
    """``count`` calls of ``op(i)`` per second."""
    start = time.perf_counter()
    for i in range(count):
        op(i)
    return count / (time.perf_counter() - start)


def bench_once(n: int) -> dict[str, float]:
    """One repetition of every measurement on a fresh app."""
    app = _fresh_app(n)
    ev, tel, cfg = app.events, app.telemetry, app.config
    try:
        prebuilt = [ev.new_event(("a", "b", "c")[i % 3], {"i": i, "payload": "x" * 32},
                                 correlation_id=f"c{i % 100}") for i in range(n)]
        q = max(n // 100, 20)
        return {
            "events stored/s": _rate(n, lambda i: ev.store(prebuilt[i])),
            "events created+stored/s": _rate(n, lambda i: ev.store(ev.new_event("d", {"i": i}))),
            "events queried/s (limit 100)": _rate(q, lambda i: ev.query(event_type="b", limit=100)),
            "sorted queries/s (by ts, limit 100)": _rate(
                q, lambda i: ev.query(event_type="b", order_by="timestamp", limit=100)),
            "correlation queries/s": _rate(q, lambda i: ev.get_by_correlation(f"c{i % 100}")),
            "telemetry emits/s": _rate(
                n, lambda i: tel.emit_counter(("bench", "requests"), {"status": "ok", "request_id": i})),
            "histogram emits/s": _rate(n, lambda i: tel.emit_histogram(("bench", "latency"), i % 50 / 10)),
            "config get/s": _rate(n, lambda i: cfg.get(("ai", "provider"))),
        }
    finally:
        foundation.ServiceRegistry.cleanup_test_namespace(app.namespace)


def run(n: int, reps: int) -> dict[str, dict[str, float]]:
    """``{metric: {"median", "min", "max"}}`` over ``reps`` repetitions of ``n`` operations each."""
    samples: dict[str, list[float]] = {}
    for _ in range(reps):
        for key, value in bench_once(n).items():
            samples.setdefault(key, []).append(value)
    return {k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="operations per measurement (default 20000)")
    parser.add_argument("--reps", type=int, default=5, help="repetitions, median reported (>= 5 recommended)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.n < 1 or args.reps < 1:
        parser.error("--n and --reps must be >= 1")
    results = run(args.n, args.reps)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"Foundation services, 1 thread, n={args.n}, median of {args.reps} (min..max), Python "
          f"{sys.version.split()[0]}")
    for key, r in results.items():
        print(f"  {key:<36} {r['median']:>12,.0f}   ({r['min']:,.0f} .. {r['max']:,.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

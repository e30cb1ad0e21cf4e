"""A tiny run of bench/foundation_bench.py: it runs, reports every metric, and the rates are positive."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import REPO, python_env

METRICS = {"events stored/s", "events created+stored/s", "events queried/s (limit 100)",
           "sorted queries/s (by ts, limit 100)", "correlation queries/s", "telemetry emits/s",
           "histogram emits/s", "config get/s"}


def test_foundation_bench_tiny_run() -> None:
    out = subprocess.run([sys.executable, str(REPO / "bench" / "foundation_bench.py"), "--n", "300", "--reps", "5",
                          "--json"], capture_output=True, text=True, env=python_env(), timeout=120, check=True)
    results = json.loads(out.stdout)
    assert set(results) == METRICS
    for r in results.values():
        assert 0 < r["min"] <= r["median"] <= r["max"]


def test_foundation_bench_table_output() -> None:
    out = subprocess.run([sys.executable, str(REPO / "bench" / "foundation_bench.py"), "--n", "100", "--reps", "1"],
                         capture_output=True, text=True, env=python_env(), timeout=120, check=True)
    assert "median of 1" in out.stdout and "config get/s" in out.stdout

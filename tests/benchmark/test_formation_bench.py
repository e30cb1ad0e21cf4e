"""Tiny run of bench/formation.py: real node processes form a cluster through one seed."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO, python_env


def test_formation_bench_reports_a_time_per_size() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.formation", "--sizes", "3", "--reps", "1"],
        capture_output=True, text=True, timeout=120, cwd=REPO, env=python_env(),
    )
    assert out.returncode == 0, out.stderr
    row = next(line.split() for line in out.stdout.splitlines() if line.split()[:1] == ["3"])
    assert float(row[1]) > 0
    assert row[4] == "1/1"  # formed in the one repetition
    assert row[5] == "2/2"  # the seed's broadcast reached both others
    assert "membership counters" in out.stdout

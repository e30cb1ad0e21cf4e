"""Tiny run of ``python -m bench.run``: every row is produced with positive numbers (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.run import benchmarks
from tests.support import REPO, python_env


def test_bench_run_quick_produces_every_row() -> None:
    with tempfile.TemporaryDirectory(prefix="ffbench") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.run", "--quick", "--reps", "1", "--warmup", "0.05",
             "--duration", "0.2", "--hol-bulk-size", str(1 << 20), "--out", out, "--quiet"],
            cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=180,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        report = json.loads((Path(out) / "latest.json").read_text())
    expected = {b.key: b for b in benchmarks({"control": 256, "bulk": 1 << 20, "call": 64, "hol_bulk": 1 << 20})}
    results = report["benchmarks"]
    assert sorted(results) == sorted(expected) == ["a", "b", "c", "d"]
    for key, bench in results.items():
        assert sorted(bench["variants"]) == sorted(v.key for v in expected[key].variants), key
        for name, variant in bench["variants"].items():
            assert not variant["errors"], (key, name, variant["errors"])
            assert variant["label"] in proc.stdout, (key, name)
            spec = next(v for v in expected[key].variants if v.key == name)
            wanted = sorted(f for f, _unit in expected[key].figures if f not in spec.not_applicable)
            assert sorted(variant["figures"]) == wanted, (key, name)
            for figure, spread in variant["figures"].items():
                assert spread["n"] == 1, (key, name, figure)
                assert spread["median"] > 0, (key, name, figure, spread)
        for target in bench["targets"]:
            assert target["measured"] is not None and target["measured"] > 0, (key, target)
    assert "fabric vs raw pyzmq" in proc.stdout

"""Tiny run of ``python -m bench.security``: plain and CURVE rows with positive numbers (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support import REPO, python_env


def test_bench_security_quick_produces_plain_and_curve_rows() -> None:
    with tempfile.TemporaryDirectory(prefix="ffbench") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.security", "--quick", "--reps", "1", "--only", "a,c", "--out", out, "--quiet"],
            cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=180,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        report = json.loads((Path(out) / "security-latest.json").read_text())
    results = report["benchmarks"]
    assert sorted(results) == ["a", "c"]
    for key, bench in results.items():
        assert sorted(bench["variants"]) == ["curve", "plain"], key
        for name, variant in bench["variants"].items():
            assert not variant["errors"], (key, name, variant["errors"])
            for figure, spread in variant["figures"].items():
                assert spread["median"] > 0, (key, name, figure)
    target = results["a"]["targets"][0]
    assert target["measured"] is not None and target["measured"] > 0
    assert "fabric CURVE vs plain" in proc.stdout and "load [" in proc.stdout

"""Tiny run of ``python -m bench.topology --quick``: full-mesh 4 nodes (4 processes), HyParView 16 nodes
(2 processes x 8) and 100 simulated nodes form, every broadcast reaches everyone, and the counted messages
are consistent (no wall-clock thresholds)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.topology import mutual_connected
from tests.support import REPO, python_env


def test_mutual_connected_ignores_one_sided_links() -> None:
    # a star of half-open links to "s" (s lists only "a") is not connected; answering the links makes it so
    views = {"s": {"a"}, "a": {"s"}, "b": {"s"}, "c": {"s"}}
    assert not mutual_connected(views)
    views["s"] = {"a", "b", "c"}
    assert mutual_connected(views)


def test_topology_bench_quick_forms_and_reaches_everyone() -> None:
    with tempfile.TemporaryDirectory(prefix="fftopo") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.topology", "--quick", "--out", out, "--bcast-timeout", "5",
             "--form-timeout", "30", "--start-timeout", "30"],
            cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=55,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        report = json.loads((Path(out) / "topology.json").read_text())
    for table in ("A. formation time", "B. broadcast latency", "C. messages per broadcast"):
        assert table in proc.stdout
    rows = {(r["label"], r["nodes"]): r for r in report["configs"]}
    assert sorted(rows) == [("full-mesh real", 4), ("hyparview real", 16), ("hyparview sim", 100)]
    assert rows[("hyparview real", 16)]["processes"] == 2 and rows[("hyparview real", 16)]["per_process"] == 8
    for (label, n), row in rows.items():
        assert not row["errors"], (label, row["errors"])
        assert len(row["reps"]) == 1, label
        rep = row["reps"][0]
        assert 0 < rep["first_node_s"] <= rep["median_node_s"] <= rep["formation_s"], (label, rep)
        if label != "full-mesh real":
            # the active views got connected at some point during formation
            assert rep["connected_s"] is not None and 0 < rep["connected_s"], (label, rep)
        assert len(rep["broadcasts"]) == 5
        for b in rep["broadcasts"]:
            assert b["expected"] == n - 1 and b["reached"] == n - 1, (label, b)
            assert b["latency_ms"] is not None and b["latency_ms"] > 0, (label, b)
            if b["clean"]:
                assert b["payload"] >= n - 1, (label, b)  # every other node got at least one copy
            if label == "full-mesh real":
                assert b["payload"] == n - 1 and b["control"] == 0 and b["sends"] == 1, b
            else:
                assert b["control"] == b["ihave"] + b["graft"] + b["prune"], (label, b)
        summary = row["summary"]
        assert summary["complete"] == summary["broadcasts"] == 5, (label, summary)
        assert summary["clean"] >= 1, (label, summary)  # at least one window free of other tree broadcasts
        assert summary["p50_ms"]["median"] <= summary["p99_ms"]["median"], (label, summary)
        assert summary["payload"]["median"] >= n - 1, (label, summary)
    assert report["meta"]["quick"] is True

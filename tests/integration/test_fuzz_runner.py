"""The one-command fuzz runner: ``python -m fabric.testing.fuzz TARGET --runs N`` runs each target for a
few thousand inputs (coverage-guided with atheris when the ``fuzz`` extra is installed, the seeded random
engine otherwise) and reports the count; the random engine is also run explicitly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fabric.testing.fuzz.__main__ import have_atheris

ENGINES = ["random", "atheris"] if have_atheris() else ["random"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("target", ["decoder", "membership", "node"])
def test_the_runner_fuzzes_a_target_for_a_few_thousand_inputs(target: str, engine: str) -> None:
    runs = 3000
    proc = subprocess.run([sys.executable, "-m", "fabric.testing.fuzz", target, "--runs", str(runs), "--engine", engine,
                           "--json", "--bound-every", "500"], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["target"] == target and result["engine"] == engine
    assert result["inputs"] >= runs
    assert "crash" not in result


def test_an_unknown_target_is_a_one_line_usage_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "fabric.testing.fuzz", "nope"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr and "Traceback" not in proc.stderr

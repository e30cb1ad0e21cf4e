"""examples/secure_cluster_ca.py runs: a CURVE cluster admitted by allowlist and by CA certificate, and a
stranger's key refused."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO, python_env


def test_secure_cluster_example_forms_and_refuses_the_stranger() -> None:
    out = subprocess.run([sys.executable, str(REPO / "examples" / "secure_cluster_ca.py")], capture_output=True,
                         text=True, timeout=120, env=python_env())
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "security: curve"
    assert lines[1] == "members: ['a', 'b', 'c']"
    assert lines[2] == "every node sees all three: True"
    assert lines[3] == "node ids are the keys': True"
    assert lines[4:6] == ["b answers b", "c answers c"]
    assert lines[6].startswith("stranger refused:")
    assert lines[7] == "members after the stranger tried: ['a', 'b', 'c']"

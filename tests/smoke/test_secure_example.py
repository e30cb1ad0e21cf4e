"""examples/secure_cluster.py runs: a CURVE cluster admitted by allowlist and by CA certificate, and a
stranger's key refused. It needs the node's security integration (NodeConfig.security, issue 16's
"curve" slice); without that field the example cannot be written at all, hence the skip."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from fabric import NodeConfig
from tests.support import REPO, python_env

HAS_SECURITY = any(f.name == "security" for f in dataclasses.fields(NodeConfig))


@pytest.mark.skipif(not HAS_SECURITY, reason="needs the curve slice (NodeConfig.security)")
def test_secure_cluster_example_forms_and_refuses_the_stranger() -> None:
    out = subprocess.run([sys.executable, str(REPO / "examples" / "secure_cluster.py")], capture_output=True,
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

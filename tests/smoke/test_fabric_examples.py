"""The user-facing entry points run: the demo, the examples, the generated configuration reference."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from foundation_cli.main import cli
from tests.support import REPO, python_env


@pytest.mark.parametrize("example", ["quickstart.py", "blocking_quickstart.py", "blocking_cluster.py", "discovery_static.py",
                                     "secure_cluster.py"])
def test_example_runs(example: str) -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / example)], capture_output=True, text=True, timeout=60, env=python_env()
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_quickstart_prints_the_call_and_the_message() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py")], capture_output=True, text=True, timeout=60, env=python_env()
    )
    assert out.stdout.splitlines() == ["hello a", "b got {'hi': 1}"]


def test_topology_example_switches_by_hand_and_automatically() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "topology.py")], capture_output=True, text=True, timeout=120, env=python_env()
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "formed: full-mesh with 6 members"
    assert lines[1] == "switched by hand: ['hyparview'] epoch 1" and lines[2] == "and back: ['full-mesh'] epoch 2"
    assert "full-mesh -> hyparview at epoch 3: auto: 8 members >= auto_threshold 8" in lines[3]


def test_transport_faults_example_partitions_and_heals() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "transport_faults.py")], capture_output=True, text=True, timeout=120,
        env=python_env(),
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "formed: ['n0', 'n1', 'n2']"
    assert lines[1].startswith("partitioned: n0 sees ['n0'] n1 sees ['n1', 'n2']") and "messages dropped at n1" in lines[1]
    assert lines[2] == "healed: every node sees ['n0', 'n1', 'n2']"


def test_demo_exercises_every_channel_kind_and_exits_zero() -> None:
    result = CliRunner().invoke(cli, ["demo", "--bulk-mib", "2"])
    assert result.exit_code == 0, result.output
    for needle in ("cluster formed", "sees beta up", "control  :", "bulk     :", "checksums match", "broadcast:", "sees gamma down (left)", "0 bad inputs"):
        assert needle in result.output


def test_demo_runs_as_the_installed_command() -> None:
    exe = REPO / ".venv" / "bin" / "foundation-node"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "foundation_cli.main"]
    out = subprocess.run([*cmd, "demo", "--bulk-mib", "1"], capture_output=True, text=True, timeout=120, env=python_env())
    assert out.returncode == 0, out.stderr
    assert "done:" in out.stdout


def test_configuration_reference_is_generated_from_the_code() -> None:
    from fabric._configdoc import render

    committed = (REPO / "docs" / "configuration.md").read_text()
    assert committed == render(), "regenerate: python -m fabric._configdoc > docs/configuration.md"


def test_limits_example_refuses_and_counts() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "limits.py")], capture_output=True, text=True, timeout=120, env=python_env()
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "still linked to b: ['b'] | echo: ok"
    assert lines[1] == "forged BYEs refused: 10 | 255-lane HELLO refused: 1"
    assert lines[2] == "client HELLOs rate-limited: True | clients kept: 20 <= 20"
    assert lines[3] == "slow subscriber: queued 100 dropped 900"
    assert "Traceback" not in out.stderr


def test_admin_operator_example_refuses_a_switch_without_the_operator_key() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "admin_operator.py")], capture_output=True, text=True, timeout=60,
        env=python_env(),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "status as anyone: prod-1",
        "switch as anyone: refused: 'switch' changes the node and needs an operator key",
        "switch as alice: hyparview",
    ]

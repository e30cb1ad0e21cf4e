"""The installed ``foundation-node`` command end to end: help lists every command, the example config
starts a node that an operator can inspect and ask to leave."""

from __future__ import annotations

from click.testing import CliRunner

from foundation_cli.main import cli
from tests.integration.test_cli_harness import NodeProcess, run_cli
from tests.support import REPO

COMMANDS = ["call", "config", "demo", "discover", "doctor", "health", "keys", "leave", "members", "metrics", "send", "start", "status", "topology"]


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.split("Commands:")[1].strip().splitlines()]
    assert listed == COMMANDS


def test_every_command_has_help() -> None:
    for command in COMMANDS:
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0, command
        assert "Usage:" in result.output


def test_example_config_starts_a_node_that_leaves_on_request() -> None:
    node = NodeProcess("--config", str(REPO / "examples" / "node.toml"))
    try:
        assert node.name == "node-a" and node.http.startswith("http://127.0.0.1:")
        code, out, err = run_cli("status", "--node", node.seed)
        assert code == 0, err
        assert "node-a" in out and node.http in out
        code, out, err = run_cli("doctor", "--node", node.seed, "--config", str(REPO / "examples" / "node.toml"))
        assert code == 0, out + err
        code, out, err = run_cli("leave", "--node", node.seed)
        assert code == 0, err
        assert node.child.proc.wait(15) == 0
    finally:
        node.stop()

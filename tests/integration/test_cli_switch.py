"""foundation-node topology --switch: the operator switches the cluster's overlay live."""

from __future__ import annotations

from click.testing import CliRunner

from foundation_cli.main import cli
from tests.integration.test_cli_harness import local_nodes, wait_until


def test_topology_switch_and_compare_and_set_refusal() -> None:
    with local_nodes("s1", "s2", "s3") as nodes:
        wait_until(lambda: all(len(n.running.node.alive_members()) == 3 for n in nodes if n.running), what="cluster")
        runner = CliRunner()
        result = runner.invoke(cli, ["topology", "--node", nodes[0].seed, "--switch", "hyparview", "--expect", "full-mesh",
                                     "--format", "json"])
        assert result.exit_code == 0, result.output
        assert "switched to hyparview (epoch 1)" in result.output
        wait_until(lambda: all(n.running.node.overlay == "hyparview" for n in nodes if n.running), what="switch")
        stale = runner.invoke(cli, ["topology", "--node", nodes[1].seed, "--switch", "static", "--expect", "full-mesh"])
        assert stale.exit_code != 0 and "switch refused" in stale.output and "Traceback" not in stale.output
        # every node's health shows the switch and why it happened here
        health = runner.invoke(cli, ["health", "--node", nodes[2].seed])
        assert health.exit_code == 0, health.output
        assert "hyparview (epoch 1)" in health.output and "last switch full-mesh -> hyparview: adopted" in health.output
        proposer = runner.invoke(cli, ["health", "--node", nodes[0].seed])
        assert "last switch full-mesh -> hyparview: proposed here" in proposer.output

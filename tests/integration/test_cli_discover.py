"""foundation-node discover: what a strategy sees and why a candidate is not reachable."""

from __future__ import annotations

import json

from click.testing import CliRunner

from fabric import BlockingNode, NodeConfig
from foundation_cli.main import cli


def test_discover_static_reports_reachable_and_refused_candidates() -> None:
    with BlockingNode(NodeConfig.local(name="target")) as node:
        seeds = json.dumps([node.seed, "tcp://127.0.0.1:1"])
        result = CliRunner().invoke(cli, ["discover", "--strategy", "static", "-o", f"seeds={seeds}", "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        by_seed = {c["seed"]: c for c in report["candidates"]}
        assert by_seed[node.seed]["reachable"] is True
        assert all(p["status"] == "zmtp" for p in by_seed[node.seed]["probes"])
        dead = by_seed["tcp://127.0.0.1:1"]
        assert dead["reachable"] is False and dead["probes"][0]["status"] == "refused"
        text = CliRunner().invoke(cli, ["discover", "--strategy", "static", "-o", f"seeds={seeds}"])
        assert "NOT reachable" in text.output and "nothing listens there" in text.output


def test_discover_bad_inputs_are_one_line_errors() -> None:
    runner = CliRunner()
    unknown = runner.invoke(cli, ["discover", "--strategy", "carrier-pigeon"])
    assert unknown.exit_code == 3 and "carrier-pigeon" in unknown.output and "Traceback" not in unknown.output
    bad_option = runner.invoke(cli, ["discover", "--strategy", "static", "-o", "nonsense"])
    assert bad_option.exit_code == 2 and "KEY=VALUE" in bad_option.output
    unreachable = runner.invoke(cli, ["discover", "--strategy", "static", "-o", 'seeds=["tcp://127.0.0.1:1"]'])
    assert unreachable.exit_code == 1


def test_doctor_reuses_discovery_and_names_an_unreachable_candidate() -> None:
    with BlockingNode(NodeConfig.local(name="target")) as node:
        seeds = json.dumps([node.seed, "tcp://127.0.0.1:1"])
        result = CliRunner().invoke(
            cli, ["doctor", "--node", node.seed, "--strategy", "static", "-o", f"seeds={seeds}", "--json"]
        )
        findings = json.loads(result.output)
        discovery = [f for f in findings if f["check"] == "discovery"]
        assert any(f["level"] == "ok" and node.seed in f["message"] for f in discovery)
        assert any(f["level"] == "fail" and "tcp://127.0.0.1:1" in f["message"] and "refused" in f["message"] for f in discovery)
        assert result.exit_code == 1
        none = CliRunner().invoke(cli, ["doctor", "--strategy", "static", "-o", "seeds=[]"])
        assert none.exit_code == 1 and "found no candidate" in none.output

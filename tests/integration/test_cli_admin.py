"""Operator commands through click's CliRunner against real nodes (run_node on loop threads, real sockets)."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from fabric import BlockingNode, NodeConfig
from fabric.admin import ADMIN_SERVICE, AdminClient
from foundation_cli.main import EXIT_FAILED, EXIT_UNREACHABLE, EXIT_UNSUPPORTED, EXIT_USAGE, cli
from tests.integration.test_cli_harness import LocalNode, cli_command, local_nodes, wait_until
from tests.support import Child


@pytest.fixture(scope="module")
def trio() -> Iterator[list[LocalNode]]:
    with local_nodes("alpha", "beta", "gamma", http=True) as nodes:
        wait_until(lambda: all(len(n.running.node.peers()) == 2 for n in nodes if n.running), what="full mesh")
        yield nodes


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_members_lists_the_node_and_its_peers_and_never_the_cli_client(trio: list[LocalNode]) -> None:
    code, out = invoke("members", "--node", trio[0].seed)
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[0].split()[:2] == ["NAME", "STATE"]
    assert "alpha *" in lines[1] and "alive" in lines[1]
    assert [line.split()[0] for line in lines[2:]] == ["beta", "gamma"]
    code, out = invoke("members", "--node", trio[0].seed, "--json")
    members = json.loads(out)
    assert [(m["name"], m["state"], m["self"]) for m in members] == [
        ("alpha", "alive", True), ("beta", "alive", False), ("gamma", "alive", False)
    ]
    assert not any(m["name"].startswith("cli-") for m in members)


def test_members_watch_is_bounded_by_count(trio: list[LocalNode]) -> None:
    code, out = invoke("members", "--node", trio[1].seed, "--watch", "--interval", "0.1", "--count", "3", "--json")
    assert code == 0, out
    views = [json.loads(line) for line in out.strip().splitlines()]
    assert len(views) == 3 and all(len(v) == 3 for v in views)


def test_members_wait_reports_progress_and_returns(trio: list[LocalNode]) -> None:
    result = CliRunner().invoke(cli, ["members", "--node", trio[0].seed, "--wait", "3"])
    assert result.exit_code == 0, result.output
    assert "waiting for members: 3/3 alive" in result.output


def test_node_reads_the_environment_variable(trio: list[LocalNode]) -> None:
    result = CliRunner(env={"FOUNDATION_NODE": trio[2].seed}).invoke(cli, ["status", "--json"])
    assert result.exit_code == 0, result.output
    st = json.loads(result.output)
    assert st["name"] == "gamma" and st["peers"] == 2 and ADMIN_SERVICE in st["services"]
    assert {s["seed"] for s in st["seeds"]} == {trio[0].seed, trio[1].seed} and all(s["linked"] for s in st["seeds"])


def test_status_and_health(trio: list[LocalNode]) -> None:
    code, out = invoke("status", "--node", trio[0].seed)
    assert code == 0 and "alpha" in out and "overlay   full-mesh; 2 peers" in out and "channel   data" in out
    code, out = invoke("health", "--node", trio[0].seed)
    assert code == 0, out
    assert "2/2 peers answer PING" in out and out.strip().endswith("alpha: healthy")
    assert "topology   full-mesh (epoch 0), 2 neighbours, 2 links" in out


def test_call_and_send_reach_the_node_and_its_members(trio: list[LocalNode]) -> None:
    beta = trio[1].running
    assert beta is not None
    got: list[object] = []
    arrived = threading.Event()

    def keep(msg: object) -> None:
        got.append(msg.value())  # type: ignore[attr-defined]
        arrived.set()

    beta.node._loop.call_soon_threadsafe(lambda: beta.node.subscribe("coordination", keep, inline=True))  # type: ignore[union-attr]
    beta.node.add_service("echo", lambda req: {"echo": req})
    code, out = invoke("call", "--node", trio[0].seed, "--to", "beta", "echo", '{"n": 1}')
    assert code == 0, out
    assert json.loads(out) == {"echo": {"n": 1}}
    code, out = invoke("call", "--node", trio[1].seed, "echo", "plain text")
    assert json.loads(out) == {"echo": "plain text"}
    code, out = invoke("send", "--node", trio[0].seed, "--to", "beta", '{"hello": "beta"}')
    assert code == 0 and "sent to beta on coordination" in out
    assert arrived.wait(10)
    assert got[0] == {"hello": "beta"}
    code, out = invoke("call", "--node", trio[0].seed, "--to", "beta", "missing")
    assert code == EXIT_FAILED and "missing" in out


def test_unknown_member_is_one_line_and_non_zero(trio: list[LocalNode]) -> None:
    code, out = invoke("send", "--node", trio[0].seed, "--to", "nobody", "x")
    assert code == EXIT_FAILED
    assert out.count("\n") == 1 and "unknown member 'nobody'" in out and "Traceback" not in out


def test_topology_formats(trio: list[LocalNode], tmp_path: object) -> None:
    code, out = invoke("topology", "--node", trio[0].seed)
    assert code == 0
    assert "alpha -- beta: coordination, data, events, gossip, membership" in out
    assert "beta -- gamma" in out  # learnt from beta's own links
    code, out = invoke("topology", "--node", trio[0].seed, "--format", "json")
    topo = json.loads(out)
    assert len(topo["nodes"]) == 3 and len(topo["links"]) == 3 * 5 and topo["overlay"] == "full-mesh"
    code, dot = invoke("topology", "--node", trio[0].seed, "--format", "dot")
    assert dot.startswith("graph fabric {") and dot.count(" -- ") == 15
    code, svg = invoke("topology", "--node", trio[0].seed, "--format", "svg")
    assert svg.startswith("<svg") and svg.count('class="member"') == 3 and svg.count('class="link"') == 15
    code, page = invoke("topology", "--node", trio[0].seed, "--format", "html")
    assert code == 0 and f"{trio[0].http}/topology.json" in page and "<script>" in page


def test_metrics_command_and_http_endpoint_agree(trio: list[LocalNode]) -> None:
    code, out = invoke("metrics", "--node", trio[0].seed)
    assert code == 0
    families = {f.name: f for f in text_string_to_metric_families(out)}
    assert {"fabric_members", "fabric_bad_input", "fabric_channel_queue_depth", "fabric_node_events"} <= set(families)
    alive = [s.value for s in families["fabric_members"].samples if s.labels.get("state") == "alive"]
    assert alive == [3.0]
    with urllib.request.urlopen(f"{trio[0].http}/metrics", timeout=5) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        http_families = {f.name for f in text_string_to_metric_families(resp.read().decode())}
    # the HTTP endpoint adds its own request and rejection counters (issue 16)
    assert http_families == set(families) | {"fabric_http_requests", "fabric_http_rejected"}
    with urllib.request.urlopen(f"{trio[0].http}/topology.json", timeout=5) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert {n["name"] for n in json.load(resp)["nodes"]} == {"alpha", "beta", "gamma"}


def test_http_endpoint_is_read_only(trio: list[LocalNode]) -> None:
    req = urllib.request.Request(f"{trio[0].http}/topology.json", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 405
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{trio[0].http}/nope", timeout=5)
    assert err.value.code == 404


def test_config_get_set_watch(trio: list[LocalNode]) -> None:
    code, out = invoke("config", "get", "--node", trio[0].seed, "ai.provider")
    assert code == 0 and json.loads(out) == "mock"
    code, original = invoke("config", "get", "--node", trio[0].seed, "dev.verbose_logging")
    watcher = Child([*cli_command(), "config", "watch", "--node", trio[0].seed, "--count", "1"])
    try:
        # the watcher subscribes with its first poll; keep setting until it reports a change (bounded)
        line = ""
        for value in range(50):
            code, out = invoke("config", "set", "--node", trio[0].seed, "dev.verbose_logging", "true" if value % 2 else "false")
            assert code == 0, out
            try:
                line = watcher.readline(timeout=0.3)
                break
            except TimeoutError:
                continue
        change = json.loads(line)
        assert change["event"] == "updated" and change["path"] == ["dev", "verbose_logging"]
        assert watcher.proc.wait(10) == 0
    finally:
        watcher.stop()
        invoke("config", "set", "--node", trio[0].seed, "dev.verbose_logging", original.strip())  # process-global config
    code, out = invoke("config", "set", "--node", trio[0].seed, "ai.api_key", "secret")
    assert code == EXIT_FAILED and "api_key" in out


def test_leave_stops_the_node_and_peers_see_it_left() -> None:
    with local_nodes("one", "two") as (one, two):
        wait_until(lambda: len(one.running.node.peers()) == 1, what="link")  # type: ignore[union-attr]
        code, out = invoke("leave", "--node", two.seed)
        assert code == 0 and "two" in out and "leaving" in out
        assert two.wait_stopped() and two.reason == "leave"
        code, out = invoke("members", "--node", one.seed, "--json")
        assert [(m["name"], m["state"]) for m in json.loads(out)] == [("one", "alive"), ("two", "left")]


def test_node_without_admin_service_and_unsupported_ops() -> None:
    with BlockingNode(NodeConfig.local(name="plain")) as plain:
        code, out = invoke("status", "--node", plain.seed)
        assert code == EXIT_UNSUPPORTED and "no admin service" in out
    with local_nodes("solo") as (solo,):
        with AdminClient(solo.seed) as admin:
            assert "status" in admin.op("hello")["ops"]
        code, out = invoke("topology", "--node", solo.seed, "--format", "html")
        assert code == EXIT_UNSUPPORTED and "--http-port" in out
        code, out = invoke("leave", "--node", "tcp://127.0.0.1:1", "--timeout", "0.5")
        assert code == EXIT_UNREACHABLE


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["members"], EXIT_USAGE, "no node given"),
        (["members", "--node", "nonsense"], EXIT_UNREACHABLE, "is not an endpoint"),
        (["status", "--node", "tcp://no-such-host.invalid:7946"], EXIT_UNREACHABLE, "cannot resolve host"),
        (["status", "--node", "tcp://127.0.0.1:1", "--timeout", "0.5"], EXIT_UNREACHABLE, "no fabric node answers"),
        (["members", "--node", "tcp://127.0.0.1:1", "--count", "0"], EXIT_USAGE, "--count"),
        (["topology", "--node", "tcp://127.0.0.1:1", "--format", "png"], EXIT_USAGE, "png"),
    ],
)
def test_bad_operator_input_is_one_line(args: list[str], code: int, needle: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code, result.output
    assert needle in result.output
    assert result.output.count("\n") == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output

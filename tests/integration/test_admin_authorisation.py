"""Admin authorisation (issue 16 item 4) with real processes and sockets.

A ``foundation-node start`` process in secure mode (``security.keys`` + ``security.trust``) serves its
admin endpoint as a CURVE server: without an operator key every op that changes the node is refused with
a one-line error, a member key trusted as ``member`` only is refused too, read-only ops work on the
loopback endpoint with an ephemeral key, and an operator key may change the node (switch, leave). Over the
cluster channels the ``fabric.admin`` service answers read-only ops only, in every mode.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from fabric import BlockingClient, NodeConfig
from fabric.admin import ADMIN_SERVICE, MUTATING_OPS, AdminClient, AdminEndpoint
from fabric.errors import InsecureBindError, RemoteHandlerError
from fabric.security.keys import KeyPair, save_keypair
from foundation_cli.main import EXIT_FAILED, EXIT_UNREACHABLE, cli
from tests.integration.test_cli_harness import LocalNode, NodeProcess, run_cli, wait_until

MUTATIONS = [
    ("leave",),
    ("topology", "--switch", "hyparview"),
    ("send", "hi", "--to", "someone"),
    ("call", "echo", "x", "--to", "someone"),
    ("config", "set", "app.x", "1"),
]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("adm")
    out: dict[str, Path] = {}
    trust_lines = []
    for name, role in (("node", "member"), ("member", "member"), ("operator", "operator")):
        kp = KeyPair.generate()
        save_keypair(base / name, kp)
        out[name] = base / name
        trust_lines += [f"[[{role}]]", f'key = "{kp.public.decode()}"', f'name = "{name}"', ""]
    (base / "trust.toml").write_text("\n".join(trust_lines))
    out["trust"] = base / "trust.toml"
    return out


@pytest.fixture(scope="module")
def secure(keys: dict[str, Path]) -> Iterator[NodeProcess]:
    node = NodeProcess("--name", "sec", "--preset", "local", "--set", f"security.keys={keys['node']}",
                       "--set", f"security.trust={keys['trust']}", "--set", "topology_cooldown=0")
    try:
        assert "#" in node.admin, node.admin  # the CURVE server's key travels in the address
        yield node
    finally:
        node.stop()


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_read_only_ops_work_on_the_loopback_admin_endpoint_without_a_key(secure: NodeProcess) -> None:
    code, out = invoke("status", "--node", secure.admin, "--json")
    assert code == 0, out
    status = json.loads(out)
    assert status["name"] == "sec" and status["admin"]["security"] == "curve"
    code, out = invoke("members", "--node", secure.admin)
    assert code == 0 and "sec" in out


@pytest.mark.parametrize("key", [None, "member"])
def test_without_an_operator_key_every_mutating_op_is_refused_in_one_line(secure: NodeProcess, keys: dict[str, Path],
                                                                         key: str | None) -> None:
    for args in MUTATIONS:
        extra = ["--key", str(keys[key])] if key else []
        code, out = invoke(*args, "--node", secure.admin, *extra)
        if "no Foundation config" in out or "not offer" in out:
            continue  # config ops need the Foundation services; the rest are always offered
        assert code == EXIT_FAILED, (args, out)
        assert "operator key" in out and out.count("\n") == 1, (args, out)
    code, out = invoke("status", "--node", secure.admin, "--json")
    assert json.loads(out)["admin"]["refused"]["not_operator"] >= 4


def test_without_the_nodes_key_in_the_address_nothing_answers(secure: NodeProcess) -> None:
    code, out = invoke("status", "--node", secure.admin.split("#")[0], "--timeout", "1")
    assert code == EXIT_UNREACHABLE and "no fabric node answers" in out and out.count("\n") == 1


def test_an_operator_key_may_change_the_node(keys: dict[str, Path]) -> None:
    node = NodeProcess("--name", "ops", "--preset", "local", "--set", f"security.keys={keys['node']}",
                       "--set", f"security.trust={keys['trust']}", "--set", "topology_cooldown=0")
    try:
        code, out, err = run_cli("topology", "--node", node.admin, "--switch", "hyparview", "--key", str(keys["operator"]))
        assert code == 0, out + err
        wait_until(lambda: invoke("status", "--node", node.admin, "--json")[1].count('"hyparview"') > 0,
                   what="the switch to show in status")
        code, out, err = run_cli("leave", "--node", node.admin, "--key", str(keys["operator"]))
        assert code == 0 and "leaving" in out, out + err
        assert node.child.proc.wait(20) == 0
    finally:
        node.stop()


def test_the_cluster_channels_serve_only_read_only_admin_ops() -> None:
    node = LocalNode("devnode")
    try:
        with BlockingClient(NodeConfig.local(name="outsider")) as client:
            peer = client.connect(node.seed)
            assert client.call(peer.id, ADMIN_SERVICE, {"op": "hello"})["endpoint"] == "node"
            for op in sorted(MUTATING_OPS):
                with pytest.raises(RemoteHandlerError) as info:
                    client.call(peer.id, ADMIN_SERVICE, {"op": op, "new": "hyparview", "to": "x", "path": ["a"]})
                assert info.value.remote_type in ("AdminForbidden", "AdminUnsupported"), (op, info.value)
        assert node.running is not None and node.running.admin.refused["not_admin_endpoint"] >= 4
        # development mode: the loopback admin endpoint keeps today's behaviour (the CLI follows the seed there)
        with AdminClient(node.seed) as admin:
            assert admin.admin_endpoint is not None and admin.op("hello")["endpoint"] == "admin"
            assert admin.op("switch", new="hyparview")["overlay"] == "hyparview"
    finally:
        node.stop()


def test_a_non_loopback_admin_bind_needs_keys_or_insecure() -> None:
    node = LocalNode("bindcheck")
    try:
        assert node.running is not None
        with pytest.raises(InsecureBindError):
            AdminEndpoint(node.running.admin, bind="tcp://10.1.2.3:*")
        with pytest.raises(InsecureBindError):
            AdminEndpoint(node.running.admin, bind="tcp://127.0.0.1:*", keys=KeyPair.generate())  # keys need trust
    finally:
        node.stop()


"""``foundation-node doctor`` names each injected fault: wrong port, unresolvable name, dead node,
version mismatch, skewed clock, bad config; and passes a healthy node."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from click.testing import CliRunner

from fabric import wire
from fabric.wire import MsgType, RejectCode
from foundation_cli.doctor import diagnose, probe_zmtp
from foundation_cli.main import EXIT_USAGE, cli
from tests.integration.test_cli_harness import LocalNode, NodeProcess, local_nodes, wait_until


def doctor(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["doctor", "--timeout", "1", *args], catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def pair() -> Iterator[list[LocalNode]]:
    with local_nodes("doc-a", "doc-b", http=True) as nodes:
        wait_until(lambda: len(nodes[0].running.node.peers()) == 1, what="link")  # type: ignore[union-attr]
        yield nodes


def test_healthy_node_passes(pair: list[LocalNode]) -> None:
    code, out = doctor("--node", pair[0].seed)
    assert code == 0, out
    assert "no problems found" in out
    assert "channel data (bulk) reachable" in out and "member doc-b answers PING" in out


def test_wrong_port_another_channel(pair: list[LocalNode]) -> None:
    assert pair[0].running is not None
    data = pair[0].running.node.endpoints["data"]
    code, out = doctor("--node", data)
    assert code == 1
    assert "wrong port" in out and "PULL socket" in out and "fix:" in out


def test_wrong_port_not_zeromq(pair: list[LocalNode]) -> None:
    port = int(pair[0].http.rsplit(":", 1)[1])
    code, out = doctor("--node", f"tcp://127.0.0.1:{port}")
    assert code == 1
    assert "wrong port" in out and "not a ZeroMQ endpoint" in out


def test_nothing_listening() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    code, out = doctor("--node", f"tcp://127.0.0.1:{port}")
    assert code == 1 and "nothing listens" in out and "connection refused" in out


def test_unresolvable_name() -> None:
    code, out = doctor("--node", "tcp://no-such-node.invalid:7946")
    assert code == 1
    assert "unresolvable name" in out and "no-such-node.invalid" in out and "fix:" in out


def test_skewed_clock() -> None:
    node = LocalNode("skewed", clock=lambda: time.time() + 30.0)
    try:
        code, out = doctor("--node", node.seed)
    finally:
        node.stop()
    assert code == 1
    assert "clock skew" in out and "ahead of" in out and "NTP" in out


def test_version_mismatch() -> None:
    """A fake node that answers every HELLO with REJECT VERSION (it speaks protocol 7..9)."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    port = router.bind_to_random_port("tcp://127.0.0.1")
    done = threading.Event()

    def serve() -> None:
        me = wire.new_node_id()
        while not done.is_set():
            if router.poll(50):
                route, *frames = router.recv_multipart()
                try:
                    env = wire.decode(frames)
                except Exception:
                    continue
                if env.type == MsgType.HELLO:
                    reject = wire.reject(me, code=RejectCode.VERSION, message="no common protocol version: this node speaks 7..9",
                                         min_version=7, max_version=9)
                    router.send_multipart([route, *reject])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        code, out = doctor("--node", f"tcp://127.0.0.1:{port}")
    finally:
        done.set()
        thread.join(5)
        router.close()
    assert code == 1
    assert "version mismatch" in out and "7..9" in out and "fix:" in out


def _stopped(pid: int) -> bool:
    """Every thread of ``pid`` is in the stopped state ('T' in /proc/PID/task/TID/stat)."""
    tasks = os.listdir(f"/proc/{pid}/task")
    states = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        except OSError:
            continue
    return bool(states) and all(state == "T" for state in states)


def test_dead_node_process_and_dead_member() -> None:
    """SIGSTOP a node process: doctor of it says dead node; doctor of its peer names the silent member."""
    a = NodeProcess("--name", "live")
    b = NodeProcess("--name", "frozen", "--seed", a.seed)
    try:
        # both alive members first (bounded): on a loaded machine the link may take a moment
        members = CliRunner().invoke(cli, ["members", "--node", a.seed, "--wait", "2", "--wait-timeout", "30"])
        assert members.exit_code == 0, members.output
        deadline = time.monotonic() + 30
        while (result := doctor("--node", a.seed))[0] != 0:
            assert time.monotonic() < deadline, result[1]
            time.sleep(0.2)
        os.kill(b.pid, signal.SIGSTOP)
        try:
            # SIGSTOP lands when the kernel next schedules the process: wait until every thread is stopped,
            # or libzmq's I/O thread may still answer the probe (a loaded machine showed it)
            wait_until(lambda: _stopped(b.pid), what="SIGSTOP to take effect")
            code, out = doctor("--node", b.seed)
            assert code == 1 and "dead node" in out and "hung, stopped" in out
            code, out = doctor("--node", a.seed)
            assert code == 1
            # still listed up (its PING times out) or, on a loaded machine, already declared down by then
            assert "dead node: member frozen" in out and ("does not answer PING" in out or "is down" in out), out
        finally:
            os.kill(b.pid, signal.SIGCONT)
    finally:
        b.stop()
        a.stop()


def test_dead_member_after_kill() -> None:
    with local_nodes("survivor") as (survivor,):
        victim = NodeProcess("--name", "victim", "--seed", survivor.seed)
        try:
            wait_until(lambda: len(survivor.running.node.peers()) == 1, what="link")  # type: ignore[union-attr]
            victim.child.kill9()  # no BYE: the survivor still lists it
            code, out = doctor("--node", survivor.seed)
        finally:
            victim.stop()
    assert code == 1 and "dead node: member victim" in out


def test_config_file_checks(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nport = "seven"\n')
    code, out = doctor("--config", str(bad))
    assert code == 1 and "invalid config" in out and "port: expected an integer" in out
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    code, out = doctor("--config", str(broken))
    assert code == 1 and "invalid TOML" in out
    good = tmp_path / "good.toml"
    good.write_text('name = "fine"\nseeds = ["tcp://127.0.0.1:7946"]\n')
    code, out = doctor("--config", str(good))
    assert code == 0 and "is valid" in out


def test_doctor_needs_a_target() -> None:
    code, out = doctor()
    assert code == EXIT_USAGE and "nothing to check" in out


def test_probe_and_diagnose_api(pair: list[LocalNode]) -> None:
    assert pair[0].running is not None
    events = pair[0].running.node.endpoints["events"]
    port = int(events.rsplit(":", 1)[1])
    assert probe_zmtp("127.0.0.1", port, expect="XPUB").socket_type == "XPUB"  # bounds subscriptions (issue 16)
    report = diagnose(pair[1].seed, timeout=1.0)
    assert report.ok and {f.check for f in report.findings} >= {"resolve", "reachable", "version", "clock", "channels", "members"}

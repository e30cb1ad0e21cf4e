"""The chaos harness on real processes in network namespaces: 3 hosts under load, one ``kill -9`` and a
restart with the same identity; no acknowledged write is lost or duplicated and the restarted host is
readmitted. Also: a partition and its heal with nftables, the same in loopback mode with the faults injected
by the hosts' transports (one-way included), and the harness leaves no namespace or process.

CI (``CI=true``) runs as root with ``ip`` and ``nft`` installed by ``.ci/run``: a missing tool fails there.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fabric.testing.chaos import Cluster, LoopbackNetwork, NamespaceNetwork, duplicates, lost_acknowledged
from fabric.testing.chaos.scenarios import summary_line
from tests.support import IN_CI, require_tool


@pytest.fixture
def network() -> Iterator[NamespaceNetwork]:
    require_tool("ip", reason="(Debian package iproute2)")
    require_tool("nft", reason="(Debian package nftables)")
    if os.geteuid() != 0:
        (pytest.fail if IN_CI else pytest.skip)("network namespaces need root (CI runs as root)")
    net = NamespaceNetwork(prefix=f"ffct{os.getpid() % 100000}")
    try:
        yield net
    finally:
        net.close()


def _namespaces(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def test_kill_9_and_restart_loses_no_acknowledged_write(network: NamespaceNetwork, tmp_path: Path) -> None:
    with Cluster(3, network=network, data_root=str(tmp_path)) as c:
        c.start()
        assert c.wait_converged(60) is not None, c.views()
        pids = [h.pid for h in c.hosts]
        c.workload(10)
        assert c.wait_until(lambda: sum(1 for _ in open(tmp_path / "h1" / "receipts.jsonl")) >= 5, 30) is not None
        c.kill(2)
        assert c.wait_converged(30, ["h0", "h1"]) is not None, c.views()
        c.restart(2)
        assert c.hosts[2].pid not in pids and c.hosts[2].run == 1
        assert c.wait_converged(60, ["h0", "h1", "h2"]) is not None, c.views()
        restarted_writes = tmp_path / "h2" / "history.jsonl"
        assert c.wait_until(lambda: '"h2:1:' in restarted_writes.read_text(), 30) is not None  # run 1 issues ops
        c.workload(0)
        time.sleep(c.call_timeout + 0.5)  # calls in flight finish; the checker reads only completed ops
        events, receipts = c.histories()
    acked = [e for e in events if e.type == "ok" and e.kind == "write"]
    assert len(acked) >= 5
    assert lost_acknowledged(events, receipts) == []
    assert duplicates(receipts) == {}
    assert _namespaces(network.prefix) == []  # Cluster.close removed the namespaces
    assert all(not h.running for h in c.hosts)


def test_partition_then_heal_re_merges(network: NamespaceNetwork, tmp_path: Path) -> None:
    with Cluster(3, network=network, data_root=str(tmp_path)) as c:
        c.start()
        assert c.wait_converged(60) is not None, c.views()
        c.partition([0, 1], [2])
        assert c.wait_until(lambda: c.views()["h2"] == ["h2"] and c.views()["h0"] == ["h0", "h1"], 30) is not None
        c.heal()
        assert c.wait_converged(60, ["h0", "h1", "h2"]) is not None, c.views()


def test_loopback_mode_partitions_through_the_transport_and_heals(tmp_path: Path) -> None:
    network = LoopbackNetwork()
    with Cluster(3, network=network, data_root=str(tmp_path)) as c:
        c.start()
        assert c.wait_converged(60) is not None, c.views()
        c.partition([0, 1], [2])
        assert network.policy(2) == {"drop_from": ["h0", "h1"]} and network.policy(0) == {"drop_from": ["h2"]}
        assert c.wait_until(lambda: c.views()["h2"] == ["h2"] and c.views()["h0"] == ["h0", "h1"], 30) is not None
        reply = c.command(2, "stats")
        assert reply is not None and reply["stats"]["transport"]["fault_dropped_in"] > 0
        assert reply["stats"]["transport"]["faults"]["drop_from"] == sorted([c.hosts[0].node_id, c.hosts[1].node_id])
        c.heal()
        assert network.policy(2) == {}
        cleared = c.command(2, "stats")
        assert cleared is not None and cleared["stats"]["transport"]["faults"] is None
        assert c.wait_converged(60, ["h0", "h1", "h2"]) is not None, c.views()
        c.loss(0, 1, 20)
        assert network.policy(1) == {"loss_from": {"h0": 0.2}}
        bad = c.command(0, "faults", drop_from=["nobody"])
        assert bad is not None and "bad faults command" in bad["error"]


def test_cli_names_the_mode_and_the_fault_injection(tmp_path: Path) -> None:
    import sys

    from tests.support import python_env

    report = {"scenario": "a-partition-3-2", "mode": "loopback", "network_faults": "transport", "supported": True,
              "hosts": 5, "attempted": 1, "acknowledged": 1, "lost": 0, "duplicates": 0, "passed": True}
    assert summary_line(report).startswith("a-partition-3-2        mode=loopback   faults-by=transport hosts=5")
    bad = subprocess.run([sys.executable, "-m", "fabric.testing.chaos", "--only", "z", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=60, env=python_env())
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "unknown scenario" in bad.stderr


def test_example_runs_and_reports_no_loss() -> None:
    import sys

    from tests.support import REPO, python_env

    done = subprocess.run([sys.executable, str(REPO / "examples" / "chaos_kill_restart.py")], capture_output=True,
                          text=True, timeout=120, env=python_env())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] in ("mode: namespaces", "mode: loopback")
    assert "None" not in done.stdout, done.stdout  # every wait converged
    assert lines[-1].startswith("acknowledged writes ") and lines[-1].endswith(", lost 0, duplicates 0"), lines[-1]

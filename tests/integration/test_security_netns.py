"""The multi-host path for real: two network namespaces joined by a veth pair, nodes bound to their
non-loopback addresses (10.77.x.y/24) with keys and a trust file and no ``insecure`` flag, form a CURVE
cluster. Needs root and iproute2 (skipped elsewhere, failed in CI)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.security_support import Pki, poll
from tests.integration.test_node_processes import CHILD, NodeChild
from tests.support import IN_CI, Child, require_tool, short_tmpdir


class NsChild(NodeChild):
    """node_child.py inside a network namespace."""

    def __init__(self, ns: str, *args: str) -> None:
        self.child = Child(["ip", "netns", "exec", ns, sys.executable, CHILD, *args])
        self.backlog = []
        self.ready = self.expect("ready", timeout=30)


@pytest.fixture
def veth_pair() -> Iterator[tuple[str, str]]:
    """Two namespaces, ``ffs-...-1`` (10.77.N.1) and ``-2`` (10.77.N.2), one veth pair between them."""
    ip = require_tool("ip", reason="(Debian package iproute2)")
    if os.geteuid() != 0:
        (pytest.fail if IN_CI else pytest.skip)("creating network namespaces needs root (CI runs as root)")
    tag = uuid.uuid4().hex[:6]
    names = (f"ffs{tag}1", f"ffs{tag}2")
    made: list[str] = []
    try:
        for ns in names:
            done = subprocess.run([ip, "netns", "add", ns], capture_output=True, text=True, timeout=10)
            if done.returncode != 0:
                (pytest.fail if IN_CI else pytest.skip)(f"cannot create a network namespace: {done.stderr.strip()}")
            made.append(ns)
        subprocess.run([ip, "-n", names[0], "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
                        "netns", names[1]], check=True, timeout=10)
        for i, (ns, dev) in enumerate(zip(names, ("veth0", "veth1"), strict=True), start=1):
            subprocess.run([ip, "-n", ns, "addr", "add", f"10.77.{int(tag[:2], 16)}.{i}/24", "dev", dev], check=True, timeout=10)
            subprocess.run([ip, "-n", ns, "link", "set", dev, "up"], check=True, timeout=10)
            subprocess.run([ip, "-n", ns, "link", "set", "lo", "up"], check=True, timeout=10)
        yield names[0], names[1]
    finally:
        for ns in made:
            subprocess.run([ip, "netns", "del", ns], capture_output=True, timeout=10)


def test_two_hosts_form_a_curve_cluster_without_the_insecure_flag(veth_pair: tuple[str, str]) -> None:
    ns1, ns2 = veth_pair
    subnet = int(ns1[3:5], 16)
    with short_tmpdir("ffn") as d:
        pki = Pki(Path(d))
        pki.make("h1")
        pki.make("h2")
        pki.write()
        h1 = NsChild(ns1, *pki.args("h1"), "--bind", f"tcp://10.77.{subnet}.1")
        h2: NsChild | None = None
        try:
            assert h1.ready["security"] == "curve"
            assert h1.seed.startswith(f"tcp://10.77.{subnet}.1:")
            h2 = NsChild(ns2, *pki.args("h2"), "--bind", f"tcp://10.77.{subnet}.2", "--join", pki.seed(h1.seed, "h1"),
                         "--min-members", "2")
            assert h2.expect("joined", timeout=60)["members"] == ["h1", "h2"]
            h2.command(f"call {pki.node_id('h1')} echo")
            assert h2.expect("called", timeout=30)["reply"] == "x"
            h1.command(f"call {pki.node_id('h2')} echo")
            assert h1.expect("called", timeout=30)["reply"] == "x"
            h1.command("broadcast 1000")
            sha = h1.expect("broadcast")["sha"]
            assert h2.expect("got", timeout=30, channel="events")["sha"] == sha

            def zap_accepted() -> int:
                h1.command("stats")
                return int(h1.expect("stats", timeout=30)["security"]["zap"].get("accepted", 0))

            assert poll(zap_accepted) >= 1
        finally:
            if h2 is not None:
                h2.stop()
            h1.stop()

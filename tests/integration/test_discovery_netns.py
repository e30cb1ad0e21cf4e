"""Multicast on a bare loopback, inside a network namespace we create (the host is never touched).

Pins what docs/discovery.md reports: with only ``lo`` up (no MULTICAST flag, no routes), gossip works
when it is told to use 127.0.0.1, and with the default ``0.0.0.0`` it fails to join (ENODEV), which the
plugin counts and survives instead of crashing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.integration.test_discovery_gossip import CHILD, ids, wait_stats, wait_view
from tests.support import IN_CI, Child, children, require_tool


@pytest.fixture
def netns() -> Iterator[str]:
    ip = require_tool("ip", reason="(Debian package iproute2)")
    if os.geteuid() != 0:
        (pytest.fail if IN_CI else pytest.skip)("creating a network namespace needs root (CI runs as root)")
    name = f"ffdisc-{uuid.uuid4().hex[:8]}"
    made = subprocess.run([ip, "netns", "add", name], capture_output=True, text=True, timeout=10)
    if made.returncode != 0:
        (pytest.fail if IN_CI else pytest.skip)(f"cannot create a network namespace here: {made.stderr.strip()}")
    try:
        subprocess.run([ip, "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        yield name
    finally:
        subprocess.run([ip, "netns", "del", name], capture_output=True, timeout=10)


def child_in(ns: str, started: list[Child], name: str, port_base: int, options: str) -> tuple[Child, str]:
    child = Child(["ip", "netns", "exec", ns, sys.executable, CHILD, "--strategy", "gossip", "--name", name,
                   "--port-base", str(port_base), "--options", options])
    started.append(child)
    return child, str(json.loads(child.expect("READY ")[len("READY ") :])["node_id"])


def test_gossip_on_a_bare_loopback_namespace(netns: str) -> None:
    with children() as started:
        # Default interface: no route to join the group on -> counted failure, no crash, lookups retry.
        lonely, _ = child_in(netns, started, "default-if", 27000, '{"port": 45892, "interval": 0.2, "candidate_ttl": 1.0}')
        wait_stats(lonely, lambda s: s["failures"] >= 1 and s["beacons_sent"] == 0)

        options = '{"interface": "127.0.0.1", "port": 45892, "interval": 0.2, "candidate_ttl": 2.0}'
        (a, a_id), (b, b_id) = (child_in(netns, started, f"ns{i}", 27010 + 10 * i, options) for i in range(2))
        wait_view(a, lambda v: ids(v) == {b_id})
        wait_view(b, lambda v: ids(v) == {a_id})

"""Overlays on real ZeroMQ sockets: several nodes per OS process, ipc:// between processes.

* 50 nodes (5 processes x 10) form HyParView through one seed; one broadcast reaches every node.
* client-server: 3 servers and 20 clients; clients reach servers and each other, broadcasts reach all.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support import Child, short_tmpdir

CHILD = os.path.join(os.path.dirname(__file__), "overlay_child.py")


class Group:
    """One overlay_child process."""

    def __init__(self, *args: str) -> None:
        self.child = Child.python(CHILD, *args)
        self.backlog: list[dict[str, Any]] = []
        self.ready = self.expect("ready", 60)

    def expect(self, event: str, timeout: float = 60.0) -> dict[str, Any]:
        for i, data in enumerate(self.backlog):
            if data.get("event") == event:
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            data = json.loads(self.child.readline(max(0.1, deadline - time.monotonic())))
            if data.get("event") == "error":
                raise AssertionError(f"child error: {data}")
            if data.get("event") == event:
                return data
            self.backlog.append(data)

    def command(self, line: str) -> None:
        self.child.send_line(line)

    def stop(self) -> None:
        import subprocess

        try:
            self.child.send_line("quit")
            self.child.proc.wait(20)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.child.stop()


@contextmanager
def groups() -> Iterator[list[Group]]:
    started: list[Group] = []
    try:
        yield started
    finally:
        for g in started:
            g.stop()


def received_everywhere(all_groups: list[Group], sender: str, timeout: float = 60.0) -> dict[str, int]:
    """Poll every process until each node but ``sender`` received a broadcast (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        counts: dict[str, int] = {}
        for g in all_groups:
            g.command("received")
            counts.update(g.expect("received")["counts"])
        if all(v >= 1 for name, v in counts.items() if name != sender) or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def test_fifty_nodes_in_five_processes_form_hyparview_and_a_broadcast_reaches_all() -> None:
    processes, per = 5, 10
    total = processes * per
    with short_tmpdir("ffov") as base, groups() as started:
        first = Group("--prefix", "p0", "--count", str(per), "--overlay", "hyparview", "--dir", base,
                      "--min-members", str(total))
        started.append(first)
        seed = first.ready["seeds"][0]
        for p in range(1, processes):
            started.append(Group("--prefix", f"p{p}", "--count", str(per), "--overlay", "hyparview", "--dir", base,
                                 "--seed", seed, "--min-members", str(total)))
        for g in started:
            joined = g.expect("joined", 120)
            assert all(1 <= n <= 6 for n in joined["neighbours"])  # partial views: active view <= 6
        started[2].command("broadcast 3")
        started[2].expect("broadcast")
        sender = "p2n3"
        counts = received_everywhere(started, sender)
        missing = [name for name, n in counts.items() if name != sender and n < 1]
        assert len(counts) == total and not missing, f"broadcast missed {missing}"


def test_client_server_three_servers_twenty_clients() -> None:
    with short_tmpdir("ffcs") as base, groups() as started:
        servers = Group("--prefix", "s", "--count", "3", "--overlay", "client-server", "--dir", base,
                        "--roles", "server,server,server", "--min-members", "23")
        started.append(servers)
        seed = servers.ready["seeds"][0]
        clients = [
            Group("--prefix", f"c{k}", "--count", "10", "--overlay", "client-server", "--dir", base, "--seed", seed,
                  "--roles", ",".join(["client"] * 10), "--min-members", "23")
            for k in range(2)
        ]
        started.extend(clients)
        for g in started:
            g.expect("joined", 120)
        # "joined" means every member is known; a server's links to the last clients may still be coming
        # up (each client asks the servers it learns of), so poll the views with a bound
        deadline = time.monotonic() + 30
        while True:
            views = []
            for g in started:
                g.command("topology")
                views.append(g.expect("topology")["neighbours"])
            if views[0] == [22, 22, 22] or time.monotonic() > deadline:
                break
        assert views[0] == [22, 22, 22]  # every server links to everyone
        assert all(n == 3 for v in views[1:] for n in v)  # clients link to the 3 servers only
        # a client calls a server, and a client in another process (not a neighbour: a link on demand)
        clients[0].command(f"call 4 {servers.ready['ids'][1]}")
        assert clients[0].expect("called")["reply"] == "sn1"
        clients[0].command(f"call 4 {clients[1].ready['ids'][7]}")
        assert clients[0].expect("called")["reply"] == "c1n7"
        clients[1].command("broadcast 0")
        clients[1].expect("broadcast")
        counts = received_everywhere(started, "c1n0")
        assert len(counts) == 23 and all(n >= 1 for name, n in counts.items() if name != "c1n0")

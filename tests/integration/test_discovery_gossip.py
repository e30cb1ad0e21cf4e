"""UDP multicast gossip discovery across real OS processes on 127.0.0.1.

Multicast on loopback: on this kernel a socket that joins the group on 127.0.0.1 and sends with
IP_MULTICAST_IF=127.0.0.1 receives the group's datagrams even though ``lo`` has no MULTICAST flag, so no
route and no network namespace is needed (see docs/discovery.md, "Multicast on loopback").
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from fabric.discovery import Beacon, BeaconCodec
from tests.support import Child, children

CHILD = str(Path(__file__).with_name("discovery_child.py"))
GROUP = "233.252.1.32"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_view(child: Child, predicate: Callable[[list[dict[str, object]]], bool], timeout: float = 20.0) -> list[dict[str, object]]:
    """Read VIEW lines until one satisfies ``predicate`` (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("expected candidate view not reached")
        line = child.expect("VIEW ", remaining)
        view: list[dict[str, object]] = json.loads(line[len("VIEW ") :])
        if predicate(view):
            return view


def stats(child: Child) -> dict[str, int]:
    child.send_line("stats")
    line = child.expect("STATS ")
    result: dict[str, int] = json.loads(line[len("STATS ") :])
    return result


def wait_stats(child: Child, predicate: Callable[[dict[str, int]], bool], timeout: float = 15.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        current = stats(child)
        if predicate(current):
            return current
        if time.monotonic() > deadline:
            raise TimeoutError(f"counters never matched: {current}")
        time.sleep(0.1)  # polling another process's counters; no logic here waits on time


def start_child(
    started: list[Child], strategy: str, name: str, port_base: int, options: dict[str, object]
) -> tuple[Child, str]:
    child = Child.python(CHILD, "--strategy", strategy, "--name", name, "--port-base", str(port_base),
                         "--options", json.dumps(options))
    started.append(child)
    ready = json.loads(child.expect("READY ")[len("READY ") :])
    return child, str(ready["node_id"])


def ids(view: list[dict[str, object]]) -> set[str]:
    return {str(c["node_id"]) for c in view}


def multicast_sender() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    return sock


def test_three_processes_find_each_other_and_drop_foreign_beacons() -> None:
    port = free_udp_port()
    options = {"interface": "127.0.0.1", "port": port, "group": GROUP, "interval": 0.3,
               "candidate_ttl": 2.0, "secret": "cluster-secret"}
    with children() as started:
        nodes = [start_child(started, "gossip", f"g{i}", 21000 + 10 * i, options) for i in range(3)]
        all_ids = {node_id for _, node_id in nodes}
        for child, node_id in nodes:
            view = wait_view(child, lambda v, me=node_id: ids(v) == all_ids - {me})
            seeds = {c["seed"] for c in view}
            assert all(str(s).startswith("tcp://127.0.0.1:21") for s in seeds)
            assert all(c["source"] == "gossip" for c in view)

        # Foreign input: a well-formed beacon signed with the wrong secret, an unsigned one, and garbage.
        intruder = str(uuid.uuid4())
        beacon = Beacon(node_id=intruder, name="intruder", endpoints={"membership": "tcp://127.0.0.1:6666"})
        with multicast_sender() as sock:
            for _ in range(3):
                sock.sendto(BeaconCodec("wrong-secret").encode(beacon), (GROUP, port))
                sock.sendto(BeaconCodec(None).encode(beacon), (GROUP, port))
                sock.sendto(b"\x00garbage\xff" * 7, (GROUP, port))
                sock.sendto(b"FFB\x01\x01" + b"\x81" * 40, (GROUP, port))  # right magic, bad MAC/payload

        for child, node_id in nodes:
            counters = wait_stats(
                child, lambda s: s["beacons_rejected_hmac"] >= 6 and s["beacons_malformed"] >= 3
            )
            assert counters["beacons_accepted"] > 0
            child.send_line("view")
            view = wait_view(child, lambda v: True)
            assert intruder not in ids(view)
            assert ids(view) == all_ids - {node_id}

        # A node that stops beaconing ages out of the others' views after candidate_ttl.
        leaver, leaver_id = nodes[2]
        leaver.stop()
        for child, node_id in nodes[:2]:
            wait_view(child, lambda v, me=node_id: ids(v) == all_ids - {me, leaver_id})


def test_unsigned_cluster_ignores_signed_beacons_as_foreign() -> None:
    port = free_udp_port()
    options = {"interface": "127.0.0.1", "port": port, "interval": 0.3, "candidate_ttl": 2.0}
    with children() as started:
        (a, a_id), (b, b_id) = (start_child(started, "gossip", f"u{i}", 22000 + 10 * i, options) for i in range(2))
        wait_view(a, lambda v: ids(v) == {b_id})
        wait_view(b, lambda v: ids(v) == {a_id})
        other = Beacon(node_id=str(uuid.uuid4()), name="x", endpoints={"membership": "tcp://127.0.0.1:6667"})
        with multicast_sender() as sock:
            sock.sendto(BeaconCodec("some-other-cluster").encode(other), (GROUP, port))
        counters = wait_stats(a, lambda s: s["beacons_foreign"] >= 1)
        assert counters["beacons_accepted"] > 0

"""A flood of malformed and oversized messages at every endpoint kind of a real node (issue 16).

The target is a ``foundation-node start`` process (HTTP endpoint on). Foreign raw sockets send
``FLOOD_PER_ENDPOINT`` messages (CI: 10,000; ``FLOOD_FULL=1``: 100,000) of bad input to each endpoint kind:

* **control**: a DEALER to the membership ROUTER;
* **bulk**: a PUSH to the ``data`` PULL;
* **broadcast subscriber side**: a fake member (a DEALER that says HELLO, advertising an XPUB this test
  binds) makes the node subscribe to it; the XPUB then publishes garbage to the node's SUB;
* **admin**: a DEALER to the admin endpoint;
* **HTTP**: raw TCP connections with malformed request lines, oversized heads and non-GET methods.

The attacker runs in its own process (``python -m tests.stress.test_flood``), so its sending loops do
not share a GIL with the honest node. Meanwhile a second node (this process) keeps calling the target (``fabric.admin`` ``links``, a read-only
op served over the cluster channels): every call must succeed. Afterwards every error counter equals what
was sent, exactly: ZeroMQ delivers every message over these TCP connections (the XPUB has no send HWM, so
nothing is dropped before the node's SUB reads it) and each message is one count. One gap by design:
messages beyond an endpoint's ``ZMQ_MAXMSGSIZE`` are refused by libzmq, which drops the *connection*, so
they are not counted per message; the test sends a few such connections to the admin endpoint (1 MiB
limit) and checks that it still answers. RSS before and after is printed and must stay bounded.
"""

from __future__ import annotations

import json
import os
import random
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import zmq

from fabric import BlockingNode, NodeConfig, wire
from fabric.admin import ADMIN_SERVICE, AdminClient
from tests.integration.test_cli_harness import NodeProcess
from tests.support import Child

FULL = os.environ.get("FLOOD_FULL") == "1"
PER_ENDPOINT = int(os.environ.get("FLOOD_PER_ENDPOINT", "100000" if FULL else "10000"))
HTTP_REQUESTS = int(os.environ.get("FLOOD_HTTP", str(PER_ENDPOINT if FULL else 1000)))
RSS_BOUND_MIB = 96
SEED = int(os.environ.get("FLOOD_SEED", "1616"))
CATEGORIES = ("bad_signature", "truncated", "bad_version", "unknown_type", "bad_header", "oversized")


def garbage(rng: random.Random, n: int, *, topic: bool = False) -> tuple[list[list[bytes]], Counter[str]]:
    """``n`` bad messages (cycling through the categories) and how many of each."""
    head = wire.packb({"s": rng.randbytes(16), "c": "coordination"})
    out: list[list[bytes]] = []
    counts: Counter[str] = Counter()
    for i in range(n):
        cat = CATEGORIES[i % len(CATEGORIES)]
        if cat == "bad_signature":
            frames = [bytes([rng.randrange(0, 0xAA)]) + rng.randbytes(rng.randrange(4, 40))]
        elif cat == "truncated":
            frames = [b"\xaa\xfb\x01\x04"[: rng.randrange(0, 5)]]
        elif cat == "bad_version":
            frames = [b"\xaa\xfb" + bytes([rng.randrange(2, 256)]) + b"\x04" + head, b"p"]
        elif cat == "unknown_type":
            frames = [b"\xaa\xfb\x01" + bytes([rng.randrange(200, 256)]) + head, b"p"]
        elif cat == "bad_header":
            frames = [b"\xaa\xfb\x01\x04" + b"\xc1" + rng.randbytes(rng.randrange(1, 40))]
        elif i % 100 == len(CATEGORIES) - 1:  # now and then a header past MAX_HEADER_BYTES (64 KiB)
            frames = [b"\xaa\xfb\x01\x04" + wire.packb({"s": bytes(16), "c": "x", "pad": b"x" * 70_000})]
        else:  # more payload frames than a message may have
            frames = [b"\xaa\xfb\x01\x04" + head] + [b"p"] * 65
        counts[cat] += 1
        out.append([b"t", *frames] if topic else frames)
    return out, counts


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def blast(endpoint: str, kind: int, messages: list[list[bytes]], setup: Callable[[zmq.Socket[bytes]], None] | None = None) -> None:
    ctx = zmq.Context.instance()
    sock = ctx.socket(kind)
    sock.set(zmq.LINGER, -1)  # everything handed to the socket must reach the node
    sock.set(zmq.SNDHWM, 0)
    if setup is not None:
        setup(sock)
    try:
        sock.connect(endpoint)
        for frames in messages:
            sock.send_multipart(frames)
    finally:
        sock.close()


def http_flood(url: str, n: int, rng: random.Random) -> Counter[str]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    counts: Counter[str] = Counter()
    for i in range(n):
        kind = ("bad_line", "too_large", "method")[i % 3]
        if kind == "bad_line":
            request = rng.randbytes(rng.randrange(1, 40)).replace(b"\r", b"") + b"\r\n\r\n"
        elif kind == "too_large":
            request = b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n"
        else:
            request = rng.choice([b"POST", b"PUT", b"DELETE", b"PATCH"]) + b" /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(request)
            with_reply = s.recv(64)
        assert with_reply.startswith(b"HTTP/1.1 4"), with_reply
        counts["bad_requests" if kind != "method" else "refused_methods"] += 1
    return counts


class FakeMember:
    """A 'member' made of raw sockets: says HELLO to the node advertising an XPUB, keeps itself alive with
    PINGs, and publishes whatever it is told to."""

    def __init__(self, seed: str) -> None:
        self.id = wire.new_node_id()
        ctx = zmq.Context.instance()
        self.router = ctx.socket(zmq.ROUTER)  # its membership endpoint (what the node links back to)
        self.router.set(zmq.LINGER, 0)
        r_port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.xpub = ctx.socket(zmq.XPUB)
        self.xpub.set(zmq.LINGER, -1)
        self.xpub.set(zmq.SNDHWM, 0)  # never drop: the count must be exact
        x_port = self.xpub.bind_to_random_port("tcp://127.0.0.1")
        self.dealer = ctx.socket(zmq.DEALER)
        self.dealer.set(zmq.LINGER, 0)
        self.dealer.connect(seed)
        self.dealer.send_multipart(wire.hello(self.id, role=wire.Role.MEMBER, incarnation=1, name="fake", endpoints={
            "membership": ["control", f"tcp://127.0.0.1:{r_port}", 1],
            "events": ["broadcast", f"tcp://127.0.0.1:{x_port}", 1],
        }))
        self.stop = threading.Event()
        self.pinger = threading.Thread(target=self._ping, daemon=True)

    def wait_subscribed(self, timeout: float = 20.0) -> None:
        assert self.xpub.poll(int(timeout * 1000)), "the node never subscribed to the fake member's XPUB"
        assert self.xpub.recv()[:1] == b"\x01"

    def _ping(self) -> None:
        i = 0
        while not self.stop.wait(0.1):  # a sign of life every 100 ms keeps the fake member up
            i += 1
            self.dealer.send_multipart(wire.ping(self.id, msg_id=i, wall_ms=int(time.time() * 1000)))
            while self.router.poll(0):
                self.router.recv_multipart()

    def close(self) -> None:
        self.stop.set()
        if self.pinger.is_alive():
            self.pinger.join(5)
        for s in (self.dealer, self.router, self.xpub):
            s.close()


def attack(target: dict[str, Any], per_endpoint: int, http_requests: int, seed: int) -> None:
    """The attacker process: sets up the fake member, says ``subscribed``, waits for ``go`` on stdin, floods
    every endpoint kind, then prints ``sent {json}`` (what it sent, by endpoint and category)."""
    rng = random.Random(seed)
    fake = FakeMember(target["seed"])
    fake.pinger.start()
    fake.wait_subscribed()
    print("subscribed", flush=True)
    assert sys.stdin.readline().strip() == "go"
    control, c_counts = garbage(rng, per_endpoint)
    bulk, b_counts = garbage(rng, per_endpoint)
    broadcast, p_counts = garbage(rng, per_endpoint, topic=True)
    admin_msgs, a_counts = garbage(rng, per_endpoint)
    http_counts: Counter[str] = Counter()
    threads = [
        threading.Thread(target=blast, args=(target["membership"], zmq.DEALER, control)),
        threading.Thread(target=blast, args=(target["data"], zmq.PUSH, bulk)),
        threading.Thread(target=blast, args=(target["admin"], zmq.DEALER, admin_msgs)),
        threading.Thread(target=lambda: http_counts.update(http_flood(target["http"], http_requests, random.Random(seed + 1)))),
    ]
    for t in threads:
        t.start()
    for frames in broadcast:
        fake.xpub.send_multipart(frames)
    for t in threads:
        t.join(900)
    # Too big for the admin endpoint's ZMQ_MAXMSGSIZE (1 MiB): libzmq drops each connection.
    for _ in range(5):
        blast(target["admin"], zmq.DEALER, [[b"\xaa\xfb\x01\x05" + b"x" * (1 << 20) + b"y"]])
    print("sent " + json.dumps({"zmq": dict(c_counts + b_counts + p_counts), "admin": dict(a_counts),
                                "http": dict(http_counts)}), flush=True)
    assert sys.stdin.readline().strip() == "done"  # keep the fake member alive until the counts are read
    fake.close()


def test_a_flood_at_every_endpoint_kind_is_counted_while_the_node_keeps_serving() -> None:
    print(f"seed={SEED} per_endpoint={PER_ENDPOINT} http={HTTP_REQUESTS}")
    target = NodeProcess("--name", "target", "--preset", "lan", "--http-port", "0")
    admin = AdminClient(target.admin, timeout=10)
    attacker: Child | None = None
    try:
        endpoints = admin.op("status")["endpoints"]
        with BlockingNode(NodeConfig.lan(name="caller")) as caller:
            caller.join([target.seed], min_members=2, timeout=30)
            info = {"seed": target.seed, "membership": endpoints["membership"], "data": endpoints["data"],
                    "admin": target.admin, "http": target.http}
            attacker = Child.python("-m", "tests.stress.test_flood", json.dumps(info), str(PER_ENDPOINT),
                                    str(HTTP_REQUESTS), str(SEED))
            attacker.expect("subscribed", timeout=30)
            rss_before = rss_mib(target.pid)
            base = Counter(admin.op("stats")["errors"])
            calls = {"ok": 0, "failed": 0}
            why: Counter[str] = Counter()
            flooding = threading.Event()

            def keep_calling() -> None:
                while flooding.is_set():
                    try:
                        reply = caller.call(target.id, ADMIN_SERVICE, {"op": "links"}, timeout=10)
                        calls["ok" if reply["id"] == target.id else "failed"] += 1
                    except Exception as exc:
                        calls["failed"] += 1
                        why[type(exc).__name__] += 1

            flooding.set()
            caller_thread = threading.Thread(target=keep_calling, daemon=True)
            caller_thread.start()
            started = time.monotonic()
            attacker.send_line("go")
            sent = json.loads(attacker.expect("sent ", timeout=1200).split(" ", 1)[1])
            expected, a_counts = Counter(sent["zmq"]), Counter(sent["admin"])
            deadline = time.monotonic() + 300
            while True:  # the node reads what is queued: poll the counters (bounded)
                errors = Counter(admin.op("stats")["errors"]) - base
                adm = admin.op("status")
                if (errors == expected and Counter(adm["admin"]["stats"]["errors"]) == a_counts) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            flooding.clear()
            caller_thread.join(30)
            seconds = time.monotonic() - started
            rss_after = rss_mib(target.pid)
            attacker.send_line("done")
            print(f"flood: {sum(expected.values()) + sum(a_counts.values())} zmq messages + {HTTP_REQUESTS} HTTP requests "
                  f"in {seconds:.1f} s; calls ok={calls['ok']} failed={calls['failed']} ({dict(why)}); "
                  f"RSS {rss_before:.1f} -> {rss_after:.1f} MiB; node errors {dict(errors)}; "
                  f"admin errors {adm['admin']['stats']['errors']}; http {adm['http_stats']}")
            assert errors == expected, (errors, expected)
            assert Counter(adm["admin"]["stats"]["errors"]) == a_counts
            http = adm["http_stats"]
            assert http["refused_methods"] == sent["http"].get("refused_methods", 0)
            assert http["bad_requests"] == sent["http"].get("bad_requests", 0)
            assert calls["failed"] == 0 and calls["ok"] > 0, (calls, why)
            assert rss_after - rss_before < RSS_BOUND_MIB, (rss_before, rss_after)
            assert admin.op("hello")["endpoint"] == "admin"  # the admin endpoint survived the oversized ones
            assert caller.call(target.id, ADMIN_SERVICE, {"op": "links"}, timeout=10)["id"] == target.id
    finally:
        admin.close()
        if attacker is not None:
            attacker.stop()
        target.stop()


if __name__ == "__main__":
    attack(json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))

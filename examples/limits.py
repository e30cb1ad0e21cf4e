"""Limits against abuse (docs/security.md, "Limits and abuse"): tighten a few, misbehave, read the counters.

Two nodes form a cluster; a raw ZeroMQ socket (no fabric node behind it) then sends what the limits
refuse: forged BYEs claiming to be b, a HELLO advertising 255 lanes, a flood of client HELLOs and a burst
for a slow subscriber. The cluster keeps working and every refusal shows up in ``stats()``.

    python examples/limits.py
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable

import zmq

from fabric import LimitsConfig, Node, NodeConfig, wire
from fabric.wire import Role


async def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def main() -> None:
    limits = LimitsConfig(subscription_backlog=100, hello_rate_global=50.0, max_clients=20)
    async with Node(NodeConfig.local(name="a", limits=limits)) as a, Node(NodeConfig.local(name="b")) as b:
        b.add_service("echo", lambda x: x)
        await a.join([b.seed], min_members=2, timeout=20)
        gate = threading.Event()
        a.subscribe("coordination", lambda msg: gate.wait(10))  # a handler that does not keep up

        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        raw = ctx.socket(zmq.DEALER)
        raw.set(zmq.LINGER, 1000)
        raw.connect(a.seed)
        b_id = wire.node_id_bytes(b.id)
        for _ in range(10):
            raw.send_multipart(wire.bye(b_id))  # "I am b, and I leave": not from b's connection
        lanes = {"membership": ["control", "tcp://127.0.0.1:1", 255]}
        raw.send_multipart(wire.hello(os.urandom(16), role=Role.MEMBER, incarnation=1, endpoints=lanes))
        for _ in range(500):
            raw.send_multipart(wire.hello(os.urandom(16), role=Role.CLIENT, incarnation=1))
        data = ctx.socket(zmq.DEALER)
        data.set(zmq.LINGER, 1000)
        data.connect(a.endpoints["coordination"])
        for i in range(1000):
            data.send_multipart(wire.send(os.urandom(16), "coordination", b"x" * 100, seq=i + 1))

        await wait_until(lambda: a.errors["forged_source"] == 10 and a.counters["lanes_refused"] == 1
                         and a.counters["subscription_dropped"] + a.stats()["subscription_backlog"]["coordination"] == 1000
                         and a.counters["hello_rate_limited"] + a.counters["clients_evicted"] + len(a.clients()) >= 500)
        print("still linked to b:", [p.name for p in a.peers()], "| echo:", await a.call(b.id, "echo", "ok"))
        print("forged BYEs refused:", a.errors["forged_source"], "| 255-lane HELLO refused:", a.counters["lanes_refused"])
        print("client HELLOs rate-limited:", a.counters["hello_rate_limited"] > 0, "| clients kept:", len(a.clients()),
              "<=", limits.max_clients)
        print("slow subscriber: queued", a.stats()["subscription_backlog"]["coordination"], "dropped",
              a.counters["subscription_dropped"])
        gate.set()
        raw.close()
        data.close()
        ctx.term()


if __name__ == "__main__":
    asyncio.run(main())

"""Fault injection in the ZeroMQ transport on real sockets (two transports on 127.0.0.1, ephemeral ports):
outbound and inbound drops on every channel kind, a one-way partition, seeded random loss counted exactly,
and a Node's membership detecting a transport-injected partition and re-merging once it is cleared.

No timing is asserted: every wait polls a positive condition with a bound. "Nothing else arrived" is shown
by FIFO per lane: after the policy is cleared, a marker is sent on the same lane, and once it has arrived
anything sent before it on that lane would have arrived first.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from fabric import ConfigError, FaultPolicy, Node, NodeConfig, wire
from fabric.config import TransportConfig
from fabric.transport.base import ChannelKind, ChannelSpec, Link
from fabric.transport.zmq import ZmqTransport

A_ID = uuid.uuid4().bytes
B_ID = uuid.uuid4().bytes
SPECS = [ChannelSpec("ctl", ChannelKind.CONTROL), ChannelSpec("data", ChannelKind.BULK),
         ChannelSpec("ev", ChannelKind.BROADCAST)]


class Side:
    """A transport, its node id, and what its receiver got: (channel, source id from the head, payload)."""

    def __init__(self, node_id: bytes) -> None:
        self.id = node_id
        self.transport = ZmqTransport(TransportConfig(), bind_address="tcp://127.0.0.1")
        self.got: list[tuple[str, bytes, bytes]] = []

    def receive(self, channel: str, frames: list[Any], route: bytes | None, link: Link | None) -> None:
        if channel == "ev":
            frames = frames[1:]  # the topic frame
        env = wire.decode([bytes(f) for f in frames])
        self.got.append((channel, env.header["s"], bytes(env.frames[0]) if env.frames else b""))

    def frames(self, channel: str, body: bytes) -> list[bytes]:
        return wire.send(self.id, channel, body)

    def payloads(self, channel: str | None = None) -> list[bytes]:
        return [p for c, _s, p in self.got if channel is None or c == channel]


async def until(predicate: Callable[[], bool], limit: float = 10.0, nudge: Callable[[], None] | None = None) -> None:
    async with asyncio.timeout(limit):
        while not predicate():
            if nudge is not None:
                nudge()
            await asyncio.sleep(0.01)


@asynccontextmanager
async def pair() -> AsyncIterator[tuple[Side, Side]]:
    a, b = Side(A_ID), Side(B_ID)
    try:
        ea = a.transport.bind(SPECS, a.receive, wire.routing_prefix(A_ID))
        eb = b.transport.bind(SPECS, b.receive, wire.routing_prefix(B_ID))
        a.transport.connect(B_ID, eb)  # links keyed by the peer's node id, as the Node does
        b.transport.connect(A_ID, ea)
        # the SUBs are connected once a publication gets through (a PUB drops while nobody subscribes)
        await until(lambda: b"warm" in b.payloads("ev"), nudge=lambda: a.transport.publish("ev", [b"", *a.frames("ev", b"warm")]))
        await until(lambda: b"warm" in a.payloads("ev"), nudge=lambda: b.transport.publish("ev", [b"", *b.frames("ev", b"warm")]))
        a.got.clear()
        b.got.clear()
        yield a, b
    finally:
        await a.transport.close()
        await b.transport.close()


def send_all(src: Side, dst_id: bytes, body: bytes) -> None:
    """One message on each channel kind from ``src`` to the peer ``dst_id``."""
    assert src.transport.send(dst_id, "ctl", 0, src.frames("ctl", body))
    assert src.transport.send(dst_id, "data", 0, src.frames("data", body))
    assert src.transport.publish("ev", [b"", *src.frames("ev", body)])


async def markers_arrive(src: Side, dst: Side, dst_id: bytes) -> None:
    send_all(src, dst_id, b"marker")
    await until(lambda: all(b"marker" in dst.payloads(c) for c in ("ctl", "data", "ev")))


def test_drop_to_drops_outbound_and_costs_nothing_once_cleared() -> None:
    async def scenario() -> None:
        async with pair() as (a, b):
            assert a.transport.faults is None and a.transport.stats()["faults"] is None
            a.transport.set_faults(FaultPolicy(drop_to=[str(uuid.UUID(bytes=B_ID))]))  # UUID text is fine too
            assert a.transport.faults is not None and a.transport.faults.drop_to == {B_ID}
            for i in range(10):
                assert a.transport.send(B_ID, "ctl", 0, a.frames("ctl", b"lost%d" % i))  # "sent", then lost
                assert a.transport.send(B_ID, "data", 0, a.frames("data", b"lost%d" % i))
            assert a.transport.stats()["fault_dropped_out"] == 20
            a.transport.set_faults(None)
            assert a.transport.stats()["faults"] is None
            assert a.transport.send(B_ID, "ctl", 0, a.frames("ctl", b"marker"))
            assert a.transport.send(B_ID, "data", 0, a.frames("data", b"marker"))
            await until(lambda: b.payloads("ctl") == [b"marker"] and b.payloads("data") == [b"marker"])
            assert b.transport.stats()["fault_dropped_in"] == 0

    asyncio.run(scenario())


def test_drop_from_drops_inbound_on_every_channel_kind_before_the_receiver() -> None:
    async def scenario() -> None:
        async with pair() as (a, b):
            b.transport.set_faults(FaultPolicy(drop_from=[A_ID]))
            for i in range(5):
                send_all(a, B_ID, b"lost%d" % i)
            # ROUTER (named by the routing id), PULL (by the head's source), SUB (by the link)
            await until(lambda: b.transport.stats()["fault_dropped_in"] == 15)
            assert b.got == []
            assert a.transport.stats()["fault_dropped_out"] == 0
            b.transport.set_faults(FaultPolicy())  # an empty policy is no policy
            assert b.transport.faults is None
            await markers_arrive(a, b, B_ID)
            assert b.payloads() == [b"marker"] * 3

    asyncio.run(scenario())


def test_one_way_partition_drops_one_direction_replies_included() -> None:
    async def scenario() -> None:
        async with pair() as (a, b):
            # A -> B cut, B -> A open: B drops what comes from A (a reply through A's ROUTER included)
            b.transport.set_faults(FaultPolicy(drop_from=[A_ID]))
            routes: list[bytes] = []

            def a_receive(channel: str, frames: list[Any], route: bytes | None, link: Link | None) -> None:
                a.receive(channel, frames, route, link)
                if route is not None:
                    routes.append(route)

            a.transport._receiver = a_receive
            for i in range(5):
                send_all(b, A_ID, b"b%d" % i)
            await until(lambda: len(a.payloads()) == 15)
            assert all(s == B_ID for _c, s, _p in a.got)
            for route in routes:  # answer every request B made over control, as a node answers a call
                assert a.transport.respond("ctl", route, a.frames("ctl", b"reply"))
            send_all(a, B_ID, b"lost")
            await until(lambda: b.transport.stats()["fault_dropped_in"] == 5 + 3)
            assert b.got == []
            b.transport.set_faults(None)
            await markers_arrive(a, b, B_ID)
            assert b.payloads() == [b"marker"] * 3

    asyncio.run(scenario())


def _expected_drops(seed: int, p: float, n: int) -> int:
    rng = random.Random(seed)
    return sum(rng.random() < p for _ in range(n))


@pytest.mark.parametrize("direction", ["out", "in"])
def test_seeded_loss_drops_exactly_the_draws_of_its_seed(direction: str) -> None:
    n, p, seed = 400, 0.3, 1234
    expected = _expected_drops(seed, p, n)
    assert 0 < expected < n

    async def scenario() -> None:
        async with pair() as (a, b):
            if direction == "out":
                a.transport.set_faults(FaultPolicy(loss_to={B_ID: p}, seed=seed))
            else:
                b.transport.set_faults(FaultPolicy(loss_from={"*": p}, seed=seed))
            for i in range(n):
                assert a.transport.send(B_ID, "ctl", 0, a.frames("ctl", b"%d" % i))
            counter, side = ("fault_dropped_out", a) if direction == "out" else ("fault_dropped_in", b)
            await until(lambda: len(b.got) + side.transport.stats()[counter] == n)
            assert side.transport.stats()[counter] == expected
            a.transport.set_faults(None)
            b.transport.set_faults(None)
            assert a.transport.send(B_ID, "ctl", 0, a.frames("ctl", b"marker"))
            await until(lambda: b"marker" in b.payloads())
            assert len(b.got) == n - expected + 1
            # which ones were lost is the seed's business too: the survivors are in order
            survivors = [int(x) for x in b.payloads()[:-1]]
            assert survivors == sorted(survivors)

    asyncio.run(scenario())


def test_policy_validation_is_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="probability"):
        FaultPolicy(loss_to={A_ID: 1.5})
    with pytest.raises(ConfigError, match="node id"):
        FaultPolicy(drop_to=[b"short"])
    with pytest.raises(ConfigError, match="collection"):
        FaultPolicy(drop_from="tcp://127.0.0.1:1")  # type: ignore[arg-type]
    policy = FaultPolicy(drop_to=["tcp://127.0.0.1:5000"], loss_from={"*": 0.25}, seed=3)
    assert policy.describe() == {"drop_to": ["tcp://127.0.0.1:5000"], "drop_from": [], "loss_to": {},
                                 "loss_from": {"*": 0.25}, "seed": 3}
    assert FaultPolicy().empty and FaultPolicy(loss_to={A_ID: 0.0}).empty and not policy.empty


def test_membership_detects_a_transport_partition_and_remerges_after_clearing() -> None:
    async def scenario() -> None:
        nodes = [Node(NodeConfig.local(name=f"n{i}")) for i in range(3)]
        try:
            for n in nodes:
                await n.start()
            for n in nodes[1:]:
                await n.join([nodes[0].seed], min_members=1, timeout=20)

            def alive(n: Node) -> list[str]:
                return sorted(m.name for m in n.alive_members())

            await until(lambda: all(alive(n) == ["n0", "n1", "n2"] for n in nodes), 30)
            # {n0} | {n1, n2}: each side drops what comes from the other (indirect probes cannot help)
            nodes[0].set_transport_faults(FaultPolicy(drop_from=[nodes[1].id, nodes[2].id]))
            for n in nodes[1:]:
                n.set_transport_faults(FaultPolicy(drop_from=[nodes[0].id]))
            await until(lambda: alive(nodes[0]) == ["n0"] and all(alive(n) == ["n1", "n2"] for n in nodes[1:]), 60)
            assert nodes[1].stats()["transport"]["fault_dropped_in"] > 0
            for n in nodes:
                n.set_transport_faults(None)
            await until(lambda: all(alive(n) == ["n0", "n1", "n2"] for n in nodes), 60)
        finally:
            for n in nodes:
                await n.stop()

    asyncio.run(scenario())

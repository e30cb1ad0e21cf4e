"""MemoryTransport against the Transport contract (fabric/transport/base.py), plus its fault injection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fabric.clock import ManualClock
from fabric.errors import ConfigError
from fabric.transport.base import ChannelKind, ChannelSpec, Link, Transport
from fabric.transport.memory import AsyncioScheduler, Faults, MemoryNetwork, MemoryTransport

CHANNELS = [
    ChannelSpec("ctl", ChannelKind.CONTROL, parallelism=2, sndhwm=1000),
    ChannelSpec("bulk", ChannelKind.BULK, parallelism=1),
    ChannelSpec("events", ChannelKind.BROADCAST),
]


class Inbox:
    def __init__(self) -> None:
        self.items: list[tuple[str, list[bytes], bytes | None, Link | None]] = []

    def __call__(self, channel: str, frames: list[bytes], route: bytes | None, link: Link | None) -> None:
        self.items.append((channel, frames, route, link))

    def payloads(self, channel: str | None = None) -> list[bytes]:
        return [f[0] for c, f, _, _ in self.items if channel is None or c == channel]


def make(seed: int = 1, faults: Faults | None = None, names: tuple[str, ...] = ("a", "b"),
         channels: list[ChannelSpec] | None = None) -> tuple[ManualClock, MemoryNetwork, dict[str, Any]]:
    print(f"seed={seed}")
    clock = ManualClock()
    net = MemoryNetwork(clock, seed=seed, faults=faults)
    nodes: dict[str, Any] = {}
    for i, name in enumerate(names):
        t = net.transport(name)
        inbox = Inbox()
        eps = t.bind(channels or CHANNELS, inbox, bytes([1]) + bytes([i]) * 16)
        nodes[name] = (t, inbox, eps)
    return clock, net, nodes


def test_is_a_transport_and_binds_mem_endpoints() -> None:
    _, net, nodes = make()
    t, _, eps = nodes["a"]
    assert isinstance(t, Transport)
    assert eps == {"ctl": "mem://a/ctl", "bulk": "mem://a/bulk", "events": "mem://a/events"}
    with pytest.raises(ConfigError):
        net.transport("a")
    with pytest.raises(ConfigError):
        net.transport("has/slash")


def test_control_send_arrives_with_route_and_respond_comes_back_on_the_link() -> None:
    clock, _, nodes = make()
    (a, a_in, _), (b, b_in, b_eps) = nodes["a"], nodes["b"]
    a.connect("to-b", {"ctl": b_eps["ctl"]})
    assert a.links() == ["to-b"]
    assert a.send("to-b", "ctl", 1, [b"hello", b"world"])
    clock.advance(0)
    [(channel, frames, route, link)] = b_in.items
    assert (channel, frames, link) == ("ctl", [b"hello", b"world"], None)
    assert route == bytes([1]) + bytes([0]) * 16 + (1).to_bytes(4, "big") + bytes([1])  # prefix + generation + lane
    assert b.respond("ctl", route, [b"reply"])
    clock.advance(0)
    assert a_in.items == [("ctl", [b"reply"], None, "to-b")]
    assert not b.respond("ctl", b"\x01nobody-there!!!!\x00", [b"x"])


def test_bulk_arrives_without_route_and_publish_reaches_subscribers_only() -> None:
    clock, _, nodes = make(names=("a", "b", "c"))
    (a, a_in, a_eps), (b, b_in, b_eps), (c, c_in, _) = nodes["a"], nodes["b"], nodes["c"]
    a.connect("b", {"bulk": b_eps["bulk"]})
    assert a.send("b", "bulk", 0, [b"big"])
    b.connect("a", {"events": a_eps["events"]})
    c.connect("a", {"events": a_eps["events"]})
    assert a.publish("events", [b"topic", b"e1"])
    clock.advance(0)
    assert b_in.items == [("bulk", [b"big"], None, None), ("events", [b"topic", b"e1"], None, "a")]
    assert c_in.items == [("events", [b"topic", b"e1"], None, "a")]
    c.disconnect("a")
    a.publish("events", [b"topic", b"e2"])
    clock.advance(0)
    assert c_in.payloads() == [b"topic"] and b_in.payloads("events") == [b"topic", b"topic"]
    assert not a_in.items
    with pytest.raises(KeyError):
        b.send("a", "events", 0, [b"x"])  # a SUB cannot send
    with pytest.raises(KeyError):
        a.publish("ctl", [b"x"])


def test_send_errors() -> None:
    _, _, nodes = make()
    (a, _, _), (_, _, b_eps) = nodes["a"], nodes["b"]
    with pytest.raises(KeyError):
        a.send("nobody", "ctl", 0, [b"x"])
    a.connect("b", {"ctl": b_eps["ctl"]})
    with pytest.raises(KeyError):
        a.send("b", "bulk", 0, [b"x"])
    with pytest.raises(ValueError):
        a.send("b", "ctl", 2, [b"x"])  # parallelism 2: lanes 0 and 1


def test_fifo_per_lane_under_jitter_and_no_order_across_lanes() -> None:
    clock, _, nodes = make(faults=Faults(latency=0.001, jitter=0.05))
    (a, _, _), (_, b_in, b_eps) = nodes["a"], nodes["b"]
    a.connect("b", {"ctl": b_eps["ctl"]})
    for i in range(500):
        for lane in (0, 1):
            assert a.send("b", "ctl", lane, [f"{lane}:{i}".encode()])
        clock.advance(0.001)
    clock.advance(1.0)
    by_lane: dict[int, list[int]] = {0: [], 1: []}
    for _, frames, route, _ in b_in.items:
        assert route is not None
        by_lane[route[-1]].append(int(frames[0].split(b":")[1]))
    assert by_lane[0] == list(range(500)) and by_lane[1] == list(range(500))
    interleaving = [route[-1] for _, _, route, _ in b_in.items if route is not None]
    assert interleaving != [0, 1] * 500  # jitter does mix the lanes


def test_reordering_breaks_fifo_only_when_enabled() -> None:
    clock, net, nodes = make(faults=Faults(reorder=0.3, reorder_delay=0.05))
    (a, _, _), (_, b_in, b_eps) = nodes["a"], nodes["b"]
    a.connect("b", {"ctl": b_eps["ctl"]})
    for i in range(300):
        a.send("b", "ctl", 0, [str(i).encode()])
        clock.advance(0.001)
    clock.advance(1.0)
    got = [int(p) for p in b_in.payloads()]
    assert sorted(got) == list(range(300)) and got != list(range(300))
    assert net.stats()["reordered"] > 50


def test_hwm_returns_false_and_wait_writable() -> None:
    channels = [ChannelSpec("ctl", ChannelKind.CONTROL, sndhwm=5)]
    clock, net, nodes = make(faults=Faults(latency=0.1), channels=channels)
    (a, _, _), (_, b_in, b_eps) = nodes["a"], nodes["b"]
    a.connect("b", {"ctl": b_eps["ctl"]})
    assert [a.send("b", "ctl", 0, [b"x"]) for _ in range(7)] == [True] * 5 + [False] * 2
    assert a.stats()["hwm_full"] == 2 and net.stats()["hwm_full"] == 2

    async def waiter() -> tuple[bool, bool]:
        full = await a.wait_writable("b", "ctl", 0, timeout=0.01)  # nothing delivers meanwhile
        loop = asyncio.get_running_loop()
        loop.call_soon(clock.advance, 0.2)  # deliveries free the lane
        freed = await a.wait_writable("b", "ctl", 0, timeout=5.0)
        return full, freed

    assert asyncio.run(waiter()) == (False, True)
    assert len(b_in.items) == 5 and a.send("b", "ctl", 0, [b"x"])


def test_drop_and_duplicate_rates_follow_the_seeded_faults() -> None:
    clock, net, nodes = make(seed=5, faults=Faults(drop=0.1, duplicate=0.1))
    (a, _, _), (_, b_in, b_eps) = nodes["a"], nodes["b"]
    a.connect("b", {"ctl": b_eps["ctl"]})
    for i in range(5000):
        assert a.send("b", "ctl", 0, [str(i).encode()])
        clock.advance(0)
    stats = net.stats()
    assert 400 < stats["dropped"] < 600 and 400 < stats["duplicated"] < 600
    assert len(b_in.items) == 5000 - stats["dropped"] + stats["duplicated"]
    assert stats["delivered"] == len(b_in.items)


def test_partition_and_heal() -> None:
    clock, net, nodes = make(names=("a", "b", "c"), faults=Faults(latency=0.01))
    (a, _, _), (_, b_in, b_eps), (_, c_in, c_eps) = nodes["a"], nodes["b"], nodes["c"]
    a.connect("b", {"ctl": b_eps["ctl"]})
    a.connect("c", {"ctl": c_eps["ctl"]})
    a.send("b", "ctl", 0, [b"in-flight"])
    net.partition(["a"], ["b"])  # c is in the implicit third group
    clock.advance(0.1)
    a.send("b", "ctl", 0, [b"cut"])
    a.send("c", "ctl", 0, [b"cut"])
    clock.advance(0.1)
    assert not b_in.items and not c_in.items and net.stats()["partitioned"] == 3
    assert not net.can_talk("a", "c") and net.can_talk("b", "b")
    net.heal()
    a.send("b", "ctl", 0, [b"ok"])
    clock.advance(0.1)
    assert b_in.payloads() == [b"ok"]


def test_crash_stops_sending_and_receiving_and_disconnect_discards() -> None:
    clock, net, nodes = make(faults=Faults(latency=0.01))
    (a, a_in, a_eps), (b, b_in, b_eps) = nodes["a"], nodes["b"]
    a.connect("b", {"ctl": b_eps["ctl"]})
    b.connect("a", {"ctl": a_eps["ctl"]})
    net.crash("b")
    assert a.send("b", "ctl", 0, [b"to-dead"]) and b.send("a", "ctl", 0, [b"from-dead"])
    clock.advance(0.1)
    assert not a_in.items and not b_in.items and net.stats()["crashed"] == 2
    net.recover("b")
    a.send("b", "ctl", 0, [b"1"])
    a.disconnect("b")
    a.disconnect("b")  # idempotent
    clock.advance(0.1)
    assert not b_in.items and net.stats()["discarded"] == 1
    assert a.links() == []


def test_closed_transport_frees_its_name_and_endpoints() -> None:
    clock, net, nodes = make()
    (a, _, _), (b, _, b_eps) = nodes["a"], nodes["b"]
    a.connect("b", {"ctl": b_eps["ctl"]})
    asyncio.run(b.close())
    a.send("b", "ctl", 0, [b"x"])
    clock.advance(0)
    assert net.stats()["unroutable"] == 1
    b2 = net.transport("b")
    inbox = Inbox()
    assert b2.bind(CHANNELS, inbox, b"\x01" + b"B" * 16)["ctl"] == b_eps["ctl"]
    a.send("b", "ctl", 0, [b"again"])  # the link's endpoint is bound again (like a reconnect)
    clock.advance(0)
    assert inbox.payloads() == [b"again"]


def test_same_seed_same_delivery() -> None:
    def run(seed: int) -> list[bytes]:
        clock, _, nodes = make(seed=seed, faults=Faults(jitter=0.01, drop=0.05, duplicate=0.05, reorder=0.1))
        (a, _, _), (_, b_in, b_eps) = nodes["a"], nodes["b"]
        a.connect("b", {"ctl": b_eps["ctl"]})
        for i in range(300):
            a.send("b", "ctl", i % 2, [str(i).encode()])
            clock.advance(0.001)
        clock.advance(1)
        return b_in.payloads()

    assert run(3) == run(3) and run(3) != run(4)


def test_runs_under_a_real_event_loop() -> None:
    async def main() -> list[bytes]:
        net = MemoryNetwork(AsyncioScheduler(), seed=1, faults=Faults(latency=0.001, jitter=0.001))
        a, b = net.transport("a"), net.transport("b")
        got: asyncio.Queue[bytes] = asyncio.Queue()
        a.bind(CHANNELS, lambda c, f, r, lk: None, b"\x01" + b"a" * 16)
        eps = b.bind(CHANNELS, lambda c, f, r, lk: got.put_nowait(f[0]), b"\x01" + b"b" * 16)
        a.connect("b", {"ctl": eps["ctl"]})
        for i in range(20):
            assert a.send("b", "ctl", 0, [bytes([i])])
        out = [await asyncio.wait_for(got.get(), 5.0) for _ in range(20)]
        await a.close()
        await b.close()
        return out

    assert asyncio.run(main()) == [bytes([i]) for i in range(20)]


def test_faults_are_validated() -> None:
    with pytest.raises(ConfigError):
        Faults(drop=1.5)
    with pytest.raises(ConfigError):
        Faults(latency=-1)
    assert Faults(latency=0.01, jitter=0.02, reorder=0.1, reorder_delay=0.05).max_delay == pytest.approx(0.08)
    assert isinstance(MemoryTransport, type)


def test_every_link_presents_its_own_routing_ids() -> None:
    """A link reopened to the same endpoint (the peer restarted on the same port) never presents the
    routing ids of an earlier link, which may still be connected: its messages are not refused."""
    clock, net, nodes = make()
    (a, _, _), (_, b_in, b_eps) = nodes["a"], nodes["b"]
    a.connect("first", {"ctl": b_eps["ctl"]}, {"ctl": 1})
    a.connect("second", {"ctl": b_eps["ctl"]}, {"ctl": 1})
    a.connect("handshake", {"ctl": b_eps["ctl"]}, routing_lane=255)
    for link in ("first", "second", "handshake"):
        a.send(link, "ctl", 0, [link.encode()])
    clock.advance(0)
    assert b_in.payloads() == [b"first", b"second", b"handshake"] and net.stats().get("refused_routing_id", 0) == 0
    routes = [route for _, _, route, _ in b_in.items if route]
    assert len(set(routes)) == 3 and [r[-1] for r in routes] == [0, 0, 255]
    a.disconnect("first")
    a.connect("first", {"ctl": b_eps["ctl"]}, {"ctl": 1})  # reopened: a new generation
    a.send("first", "ctl", 0, [b"again"])
    clock.advance(0)
    assert b_in.items[-1][2] not in routes


def test_routing_ids_are_not_handed_over_by_default() -> None:
    """Two live connections presenting the same routing id (two processes claiming one identity): the
    second is refused until the first goes away, unless the network hands routing ids over."""
    clock, net, nodes = make()
    (_, b_in, b_eps) = nodes["b"]
    twins = []
    for _ in range(3):
        t = net.transport(f"twin{len(twins)}")
        t.bind(CHANNELS, Inbox(), bytes([1]) + bytes([9]) * 16)
        twins.append(t)
    first, second, third = twins
    first.connect("b", {"ctl": b_eps["ctl"]}, {"ctl": 1})
    second.connect("b", {"ctl": b_eps["ctl"]}, {"ctl": 1})  # same prefix, same generation, same lane
    for t, text in ((first, b"first"), (second, b"second")):
        t.send("b", "ctl", 0, [text])
    clock.advance(0)
    assert b_in.payloads() == [b"first"] and net.stats()["refused_routing_id"] == 1
    first.disconnect("b")  # the routing id is free again: the second connection gets through
    second.send("b", "ctl", 0, [b"second"])
    clock.advance(0)
    assert b_in.payloads()[-1] == b"second"
    net.router_handover = True
    third.connect("b", {"ctl": b_eps["ctl"]}, {"ctl": 1})
    third.send("b", "ctl", 0, [b"third"])
    clock.advance(0)
    assert b_in.payloads()[-1] == b"third"


def test_notify_writable_calls_back_once_when_room_frees_or_the_link_closes() -> None:
    channels = [ChannelSpec("ctl", ChannelKind.CONTROL, sndhwm=2)]
    clock, net, nodes = make(faults=Faults(latency=0.1), channels=channels)
    (a, _, _), (_, b_in, b_eps) = nodes["a"], nodes["b"]
    a.connect("b", {"ctl": b_eps["ctl"]})

    async def scenario() -> list[str]:
        calls: list[str] = []
        loop = asyncio.get_running_loop()
        a.notify_writable("b", "ctl", 0, lambda: calls.append("idle"))  # room already: called next turn
        await asyncio.sleep(0)
        assert [a.send("b", "ctl", 0, [b"x"]) for _ in range(3)] == [True, True, False]
        a.notify_writable("b", "ctl", 0, lambda: calls.append("freed"))
        for _ in range(3):
            await asyncio.sleep(0)
        assert calls == ["idle"]  # still full: nothing delivered yet
        clock.advance(0.2)  # deliveries free the lane
        for _ in range(3):
            await asyncio.sleep(0)
        assert calls == ["idle", "freed"] and len(b_in.items) == 2
        assert [a.send("b", "ctl", 0, [b"y"]) for _ in range(3)] == [True, True, False]
        a.notify_writable("b", "ctl", 0, lambda: calls.append("closed"))
        a.disconnect("b")
        await asyncio.sleep(0)
        with pytest.raises(KeyError):
            a.notify_writable("b", "ctl", 0, lambda: None)
        assert loop.is_running()
        return calls

    assert asyncio.run(scenario()) == ["idle", "freed", "closed"]


def test_per_node_fault_policy_drops_to_and_from_chosen_peers() -> None:
    from fabric.transport.faults import FaultPolicy

    clock, _, nodes = make()
    (a, _a_in, _), (b, b_in, b_eps) = nodes["a"], nodes["b"]
    a_id, b_id = bytes([0]) * 16, bytes([1]) * 16  # the node ids inside make()'s routing prefixes
    a.connect(b_id, {"ctl": b_eps["ctl"]})
    a.set_faults(FaultPolicy(drop_to=[b_id]))
    assert a.faults is not None and a.send(b_id, "ctl", 0, [b"lost"])  # "sent", then lost
    clock.advance(0)
    assert b_in.items == [] and a.stats()["fault_dropped_out"] == 1
    a.set_faults(None)
    b.set_faults(FaultPolicy(drop_from=[a_id]))  # inbound: the sender named by the routing id
    assert a.send(b_id, "ctl", 0, [b"lost too"])
    clock.advance(0)
    assert b_in.items == [] and b.stats()["fault_dropped_in"] == 1
    b.set_faults(None)
    assert b.faults is None and a.send(b_id, "ctl", 0, [b"arrives"])
    clock.advance(0)
    assert b_in.payloads() == [b"arrives"]

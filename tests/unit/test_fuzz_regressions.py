"""Regressions found by the fuzzers (python -m fabric.testing.fuzz): each input once crashed the node's
receive path with an exception other than a counted ProtocolError."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from fabric import wire
from fabric.config import OVERLAYS
from fabric.errors import MalformedHeader
from fabric.testing.fuzz import NodeTarget
from fabric.topology import TopologyCoordinator, TopologyError

PEER = bytes(range(100, 116))


@pytest.fixture
def target() -> Iterator[NodeTarget]:
    t = NodeTarget(seed=1)
    try:
        yield t
    finally:
        t.close()


def _hello(endpoints: dict[str, list[Any]], src: bytes = PEER) -> dict[str, Any]:
    _t, _v, header = wire.decode_head(wire.hello(src, role=wire.Role.MEMBER, incarnation=1, name="evil",
                                                 endpoints=endpoints)[0])
    return {"c": 0, "m": [{"t": int(wire.MsgType.HELLO), "v": 1, "h": header}], "r": 0}


def test_a_member_hello_with_a_malformed_endpoint_is_refused_and_counted(target: NodeTarget) -> None:
    target.feed(_hello({"membership": ["control", "not an endpoint", 1]}))
    assert target.node.errors["bad_endpoint"] == 1
    assert target.node.peers() == []


def test_a_gossiped_member_with_a_malformed_endpoint_is_counted_not_raised(target: NodeTarget) -> None:
    entry = {"id": bytes(range(50, 66)), "nm": "n0", "in": 1, "md": {},
             "ep": {"membership": ["control", "sim://n0000", 1]}}
    target.loop.run_until_complete(target.node.switch_topology("hyparview"))
    target.feed(_hello({"membership": ["control", "mem://fz-peer/membership", 1]}))
    tp = target.node._membership.driver.state.to_wire()  # type: ignore[union-attr]
    # Membership is attributed to the connection it arrives on: send it from the linked peer over its
    # link (r=2), claiming that peer's id (the harness may have given the HELLO a fresh source id).
    linked = next(iter(target.node._peers.linked))
    for op, body in (("forward_join", {"m": entry, "t": 0}), ("neighbor", {"m": entry, "p": 1})):
        target.feed({"c": 0, "m": [{"t": int(wire.MsgType.MEMBERSHIP), "v": 1, "h": {"s": linked, "op": op}},
                                   {"msgpack": {**body, "tp": tp}}], "r": 2})
    assert target.node.errors["bad_endpoint"] >= 1
    assert target.node.running


def test_a_hello_advertising_more_lanes_than_an_octet_holds_does_not_crash_the_memory_transport(target: NodeTarget) -> None:
    target.feed(_hello({"membership": ["control", "mem://fz-peer/membership", 1],
                        "data": ["bulk", "mem://fz-peer/data", 300]}))
    # refused before any socket is opened (limits.max_peer_lanes), never a crash of the transport
    assert target.node.peers() == [] and target.node.counters["lanes_refused"] == 1 and target.node.running


def test_a_member_without_a_membership_endpoint_gets_no_overlay_messages_and_no_exception(target: NodeTarget) -> None:
    target.feed(_hello({"coordination": ["control", "mem://fz-peer/coordination", 1]}))
    target.loop.run_until_complete(target.node.switch_topology("hyparview"))  # announces to every linked member
    assert target.node.running


def test_a_name_key_of_the_wrong_type_on_a_type_that_does_not_require_it_is_a_malformed_header() -> None:
    for key in ("op", "sv", "c", "nm"):
        head = wire.SIGNATURE + bytes((1, wire.MsgType.SEND)) + wire.packb({"s": PEER, "c": "coordination", key: -397})
        with pytest.raises(MalformedHeader):
            wire.decode([head, b"payload"])


def test_a_forged_last_epoch_cannot_be_followed_by_a_switch_outside_the_protocols_range() -> None:
    coord = TopologyCoordinator(PEER, "full-mesh", OVERLAYS, cooldown=0.0)
    # a jump straight to the last epoch is refused as forged (limits: at most 2**32 above ours) ...
    assert coord.merge({"e": 2**63 - 1, "p": bytes(16), "o": "static"}, 1.0) is None
    # ... and even a node that got there step by step cannot switch past the protocol's range
    coord.state = dataclasses.replace(coord.state, epoch=2**63 - 1)
    with pytest.raises(TopologyError, match="last"):
        coord.propose("full-mesh", 2.0)
    assert coord.state.epoch == 2**63 - 1
    assert coord.merge({"e": 2**63, "p": bytes(16), "o": "hyparview"}, 3.0) is None  # outside the range: refused


def test_signs_of_life_from_ever_new_source_ids_are_remembered_within_a_bound() -> None:
    from fabric.testing.fuzz import MembershipTarget

    driver = MembershipTarget(seed=2).hosts[0].driver
    assert driver is not None
    for i in range(10_000):
        driver.note_traffic(i.to_bytes(16, "big"), float(i))
    assert len(driver._traffic_noted) <= driver._max_traffic_sources

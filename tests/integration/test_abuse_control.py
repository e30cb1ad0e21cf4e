"""Forged control messages in development mode (issue 16, "Tried as an attacker"), on real sockets.

Raw pyzmq sockets on 127.0.0.1, with no credentials, send what a link's own peer could not have sent:
a BYE for another node, a topology announcement from a non-member, epochs outside the protocol's range,
a HELLO advertising more lanes than allowed, a member HELLO with a malformed endpoint, more members than
``limits.max_peers``. Each is refused, and the counter equals what was sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import pytest

from fabric import CallError, LimitsConfig, Node, NodeConfig, wire
from fabric.topology.coordinator import MAX_EPOCH, MAX_EPOCH_STEP
from fabric.topology.driver import TOPOLOGY_OP
from fabric.wire import MsgType, RejectCode
from tests.integration.abuse_support import (
    Attacker,
    decode_answer,
    member_hello,
    open_fds,
    report,
    routing_id_for,
    until,
)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 90))


def test_forged_byes_for_another_node_are_refused_and_calls_keep_flowing() -> None:
    """Issue: a forged BYE claiming to be B dropped A's link to B; 20 a second let 1 of 48 calls through."""

    async def scenario() -> None:
        async with Node(NodeConfig.local(name="a")) as a, Node(NodeConfig.local(name="b")) as b:
            b.add_service("echo", lambda x: x)
            await a.join([b.seed], min_members=2, timeout=20)
            b_id = wire.node_id_bytes(b.id)
            forged = 0
            ok = 0
            # one attacker with its own (fabric-shaped) routing id, one with a foreign routing id
            with Attacker(a.seed, routing_id=routing_id_for(os.urandom(16))) as shaped, \
                    Attacker(a.seed, routing_id=b"\x00mallory") as foreign:
                for i in range(48):
                    for att in (shaped, foreign):
                        att.send(wire.bye(b_id))
                        forged += 1
                    assert await a.call(b.id, "echo", i, timeout=5) == i
                    ok += 1
                await until(lambda: a.errors["forged_source"] == forged, what="every forged BYE counted")
            assert ok == 48
            assert [p.name for p in a.peers()] == ["b"]
            report("forged BYE", sent=forged, refused=a.errors["forged_source"], calls_ok=ok)
            # a real BYE (b's own connection) still works
            await a.disconnect(b.id)

    run(scenario())


def _topo(source: bytes, epoch: int, overlay: str = "static") -> list[bytes]:
    return wire.membership(source, TOPOLOGY_OP, {"tp": {"e": epoch, "p": source, "o": overlay}})


def test_topology_from_a_non_member_and_epochs_out_of_range_are_refused() -> None:
    """Issue: one forged ``topo`` from a non-member made a node adopt ``static`` at epoch 2^63-1, and the
    operator's switch back then produced 2^63."""

    async def scenario() -> None:
        async with Node(NodeConfig.local(name="a", topology_cooldown=0.0)) as a, \
                Node(NodeConfig.local(name="b", topology_cooldown=0.0)) as b:
            await a.join([b.seed], min_members=2, timeout=20)
            stranger = os.urandom(16)
            sent = 0
            with Attacker(a.seed, routing_id=routing_id_for(stranger)) as att:
                for epoch in (MAX_EPOCH, 2**63, 2**64 - 1, 1, 5):
                    att.send(_topo(stranger, epoch))  # a non-member: refused whatever the epoch
                    sent += 1
                # a heartbeat-like message from the stranger carrying a winning state: refused too
                att.send(wire.membership(stranger, "ping", {"tp": {"e": 7, "p": stranger, "o": "static"}}))
                sent += 1
                await until(lambda: a.errors["topology_refused"] == sent, what="non-member topology refused")
            assert a.current_topology()["overlay"] == "full-mesh" and a.current_topology()["epoch"] == 0
            report("topo from non-member", sent=sent, refused=a.errors["topology_refused"])

            # a topology announcement claiming to come from member b, over another connection: forged
            b_id = wire.node_id_bytes(b.id)
            with Attacker(a.seed, routing_id=routing_id_for(stranger)) as att:
                att.send(_topo(b_id, 9))
                att.send(wire.membership(b_id, "ping", {"tp": {"e": 9, "p": b_id, "o": "static"}}))
                await until(lambda: a.errors["forged_source"] == 2, what="topo claiming b refused")
            assert a.current_topology()["epoch"] == 0
            # b is a member of a's cluster: epochs outside the range, or jumping too far, are refused too
            refused_before = a.errors["topology_refused"]
            with Attacker(a.seed, routing_id=routing_id_for(b_id, lane=9)) as member:
                member.send(_topo(b_id, 2**63))  # outside the protocol's range
                member.send(_topo(b_id, MAX_EPOCH_STEP + 1))  # a jump no switch sequence makes
                await until(lambda: a.errors["topology_refused"] == refused_before + 2, what="bad epochs refused")
                assert a.current_topology()["epoch"] == 0
                member.send(_topo(b_id, 3, "hyparview"))  # in range: a member may switch the cluster
                await until(lambda: a.current_topology()["epoch"] == 3, what="a member's switch adopted")
            # the operator switches back: the next epoch, never beyond the range
            topo = await a.switch_topology("full-mesh")
            assert topo["epoch"] == 4 and topo["overlay"] == "full-mesh"

    run(scenario())


def test_a_hello_advertising_too_many_lanes_is_refused_without_opening_sockets() -> None:
    """Issue: a HELLO advertising 255 lanes opened 1,275 sockets; 16 of them exhausted 20,000 descriptors."""

    async def scenario() -> None:
        async with Node(NodeConfig.local(name="a")) as a:
            sockets_before = a.stats()["transport"]["sockets"]
            fds_before = open_fds()
            answers: list[list[bytes]] = []
            with Attacker(a.seed) as att:
                for _ in range(16):
                    eps = {name: [kind, f"tcp://127.0.0.1:{port}", 255]
                           for port, (name, kind) in enumerate(
                               [("membership", "control"), ("coordination", "control"), ("gossip", "control"),
                                ("data", "bulk"), ("events", "broadcast")], start=1)}
                    att.send(member_hello(os.urandom(16), eps))
                # a broadcast channel has one lane: two would subscribe twice to the same PUB
                att.send(member_hello(os.urandom(16), {"membership": ["control", "tcp://127.0.0.1:1", 1],
                                                       "events": ["broadcast", "tcp://127.0.0.1:2", 2]}))
                await until(lambda: a.counters["lanes_refused"] == 17, what="17 refusals")
                answers = await asyncio.to_thread(att.recv_all, 0.5)
            assert len(answers) == 17
            for frames in answers:
                env = decode_answer(frames)
                assert env.type == MsgType.REJECT and env.header["ec"] == RejectCode.LIMIT
            assert a.stats()["transport"]["sockets"] == sockets_before
            assert a.peers() == [] and a.stats()["transport"]["links"] == 0
            fds_after = open_fds()
            report("255-lane HELLOs", sent=17, refused=a.counters["lanes_refused"],
                   sockets_before=sockets_before, sockets_after=a.stats()["transport"]["sockets"],
                   fds_before=fds_before, fds_after=fds_after)
            assert fds_after - fds_before < 20  # the attacker's own context and connection, nothing per lane

    run(scenario())


def test_a_member_hello_with_a_malformed_endpoint_is_counted_and_leaves_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """Issue: it logged two ConfigError tracebacks per HELLO, counted nothing and left an empty link entry."""

    async def scenario() -> None:
        async with Node(NodeConfig.local(name="a")) as a:
            bad = ["tcp://no-port-here", "tcp://127.0.0.1:99999", "tcp://127.0.0.1:1 2", "", "x" * 300,
                   "garbage", "tcp://:5555", "ipc://" + "p" * 200]
            with Attacker(a.seed) as att:
                for endpoint in bad:
                    att.send(member_hello(os.urandom(16), {"membership": ["control", endpoint, 1],
                                                          "coordination": ["control", endpoint, 1]}))
                await until(lambda: a.errors["bad_endpoint"] == len(bad), what="every malformed endpoint counted")
                answers = await asyncio.to_thread(att.recv_all, 0.5)
            assert [decode_answer(f).header["ec"] for f in answers] == [RejectCode.IDENTITY] * len(bad)
            assert a.peers() == [] and a.stats()["transport"]["links"] == 0
            assert len(a.members()) == 1
            report("malformed endpoints", sent=len(bad), counted=a.errors["bad_endpoint"])

    with caplog.at_level(logging.WARNING, logger="fabric"):
        run(scenario())
    warnings = [r for r in caplog.records if "malformed endpoint" in r.getMessage()]
    assert 1 <= len(warnings) <= 2  # rate-limited: one line per interval, not one per HELLO
    assert not any(r.exc_info for r in caplog.records), "no traceback"


@pytest.mark.parametrize(("limits", "counter", "message"), [
    (LimitsConfig(max_peers=2), "peers_refused", "at most 2 peers"),
    (LimitsConfig(max_link_sockets=20), "sockets_refused", "at most 20 link sockets"),  # 8 sockets per peer
])
def test_member_hellos_beyond_max_peers_or_the_socket_budget_are_refused(limits: LimitsConfig, counter: str,
                                                                          message: str) -> None:
    async def scenario() -> None:
        cfg = NodeConfig.local(name="a", limits=limits)
        async with Node(cfg) as a:
            others = [Node(NodeConfig.local(name=f"n{i}")) for i in range(3)]
            for n in others:
                await n.start()
            try:
                await others[0].connect(a.seed)
                await others[1].connect(a.seed)
                with pytest.raises(CallError, match=message):
                    await others[2].connect(a.seed)
                assert a.counters[counter] >= 1
                assert len(a.peers()) == 2 and a.stats()["limits"]["link_sockets"] <= 20
            finally:
                for n in others:
                    await n.stop()

    run(scenario())

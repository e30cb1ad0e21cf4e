"""Secure mode against an attacker on the same host (issue 16): raw ZeroMQ sockets and a real node.

The node under attack runs in its own process (tests/integration/node_child.py with keys and a trust
file). The attacker knows the node's public key and endpoints (worst case). Without a trusted key it
cannot join, read broadcast traffic, call services or inject membership messages: the ZAP handler
refuses its CURVE handshake (counted per channel); with a trusted key it still cannot speak as another
node (``forged_source``) nor, holding only a client key, send membership traffic (``untrusted``).
Every wait polls a positive condition with a bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from fabric import JoinTimeout, Node, NodeConfig, SecurityConfig, wire
from fabric.security import KeyPair
from fabric.wire import MsgType, Role
from tests.integration.security_support import Pki, poll
from tests.integration.test_node_processes import NodeChild
from tests.support import short_tmpdir


@pytest.fixture
def pki() -> Iterator[Pki]:
    with short_tmpdir("ffa") as d:
        yield Pki(Path(d))


@pytest.fixture
def raw() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    """The attacker's own libzmq context (not the fabric's), terminated after the test."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        yield ctx
    finally:
        ctx.destroy(linger=0)


def curve_socket(ctx: zmq.Context[zmq.Socket[bytes]], stype: int, server_key: bytes, keys: KeyPair) -> zmq.Socket[bytes]:
    sock = ctx.socket(stype)
    sock.set(zmq.LINGER, 0)
    sock.set(zmq.CURVE_SERVERKEY, server_key)
    sock.set(zmq.CURVE_PUBLICKEY, keys.public)
    assert keys.secret is not None
    sock.set(zmq.CURVE_SECRETKEY, keys.secret)
    return sock


def stats(child: NodeChild) -> dict[str, Any]:
    child.command("stats")
    return child.expect("stats", timeout=30)


def refused(child: NodeChild, channel: str) -> int:
    return int(stats(child)["transport"]["connections"][channel]["handshake_failed"])


def alive(child: NodeChild) -> set[str]:
    child.command("members")
    return {m["name"] for m in child.expect("members", timeout=30)["members"] if m["status"] == "alive"}


def secure(pki: Pki, name: str) -> NodeConfig:
    return NodeConfig.local(name=name, security=SecurityConfig(keys=pki.dir(name), trust=str(pki.trust),
                                                               trust_reload_interval=0.2))


def test_an_untrusted_key_cannot_join_read_broadcasts_call_or_inject(pki: Pki, raw: zmq.Context[Any]) -> None:
    pki.make("a")
    pki.make("t")  # a trusted member in this process: the positive control
    pki.make("u", member=False)  # the attacker's key: in no allowlist
    pki.write()
    a = NodeChild(*pki.args("a"))
    try:
        a_key = pki.keys["a"].public
        ep = a.ready["endpoints"]
        u_keys = pki.keys["u"]
        u_id = u_keys.node_id

        async def scenario() -> None:
            got: list[bytes] = []
            t = Node(secure(pki, "t"))
            t.subscribe("events", lambda m: got.append(bytes(m.payload)), inline=True)
            async with t:
                await t.join([pki.seed(a.seed, "a")], min_members=2, timeout=60)
                # 1. an untrusted node cannot join (its own trust file trusts a: only a's side refuses)
                u = Node(secure(pki, "u"))
                async with u:
                    with pytest.raises(JoinTimeout):
                        await u.join([pki.seed(a.seed, "a")], min_members=2, timeout=3)
                    assert len(u.alive_members()) == 1
                assert await asyncio.to_thread(alive, a) == {"a", "t"}
                assert await asyncio.to_thread(refused, a, "membership") >= 1

                # 2. raw sockets with the untrusted key, knowing a's public key
                sub = curve_socket(raw, zmq.SUB, a_key, u_keys)
                sub.set(zmq.SUBSCRIBE, b"")
                sub.connect(ep["events"])
                caller = curve_socket(raw, zmq.DEALER, a_key, u_keys)
                caller.connect(ep["coordination"])
                caller.send_multipart(wire.call(u_id, "echo", b"x", msg_id=1, timeout_ms=5000))
                injector = curve_socket(raw, zmq.DEALER, a_key, u_keys)
                injector.connect(ep["membership"])
                injector.send_multipart(wire.membership(u_id, "topo", {"e": 2**63 - 1, "o": "static"}))
                injector.send_multipart(wire.hello(u_id, role=Role.MEMBER, incarnation=1, name="evil",
                                                   public_key=u_keys.public))
                plain = raw.socket(zmq.DEALER)  # no CURVE at all: the mechanisms do not even match
                plain.set(zmq.LINGER, 0)
                plain.connect(ep["membership"])
                plain.send_multipart(wire.hello(u_id, role=Role.MEMBER, incarnation=1, name="plain"))
                for channel in ("events", "coordination"):
                    await asyncio.to_thread(poll, lambda channel=channel: refused(a, channel) >= 1,
                                            what=f"a refused the untrusted {channel} handshake")
                await asyncio.to_thread(poll, lambda: refused(a, "membership") >= 3,
                                        what="a refused the untrusted membership handshakes")
                # a broadcasts; the trusted member receives it, the untrusted subscriber never does
                before = len(got)
                a.command("broadcast 64")
                await asyncio.to_thread(a.expect, "broadcast")
                deadline = time.monotonic() + 30
                while len(got) == before:
                    assert time.monotonic() < deadline, "the trusted member never got the broadcast"
                    await asyncio.sleep(0.05)
                assert sub.poll(0) == 0 and caller.poll(0) == 0 and injector.poll(0) == 0 and plain.poll(0) == 0
                # the trusted member's own call works while the attacker's got nothing
                assert await t.call(a.ready["id"], "echo", "ok") == "ok"
                assert caller.poll(0) == 0
                sec = (await asyncio.to_thread(stats, a))["security"]
                assert sec["zap"]["refused"] >= 4
                assert await asyncio.to_thread(alive, a) == {"a", "t"}
                assert t.current_topology()["epoch"] == 0  # no topology change reached the cluster
                for s in (sub, caller, injector, plain):
                    s.close(0)

        asyncio.run(asyncio.wait_for(scenario(), 180))
        assert stats(a)["security"]["forged_source"] == 0  # nothing it sent got as far as the identity check
    finally:
        a.stop()


def test_a_trusted_key_cannot_claim_another_nodes_id(pki: Pki, raw: zmq.Context[Any]) -> None:
    pki.make("a")
    pki.make("t")
    pki.make("m")  # a trusted member key in the attacker's hands
    pki.make("k", member=False, client=True)  # a key trusted as client only
    pki.write()
    a = NodeChild(*pki.args("a"))
    try:
        a_key = pki.keys["a"].public
        ep = a.ready["endpoints"]
        victim = pki.keys["t"].node_id

        async def scenario() -> None:
            t = Node(secure(pki, "t"))
            async with t:
                await t.join([pki.seed(a.seed, "a")], min_members=2, timeout=60)
                m = curve_socket(raw, zmq.DEALER, a_key, pki.keys["m"])
                m.connect(ep["membership"])
                forged = [
                    wire.hello(victim, role=Role.MEMBER, incarnation=2, name="t", public_key=pki.keys["m"].public),
                    wire.bye(victim),
                    wire.membership(victim, "topo", {"e": 2**63 - 1, "o": "static"}),
                    wire.send(victim, "membership", b"x"),
                ]
                for frames in forged:
                    m.send_multipart(frames)
                await asyncio.to_thread(poll, lambda: stats(a)["security"]["forged_source"] >= len(forged),
                                        what="a counted every forged message")
                s = await asyncio.to_thread(stats, a)
                assert s["security"]["forged_source"] == len(forged)  # exactly what was sent
                assert t.id in s["peers"]  # the forged BYE did not unlink the victim
                assert await t.call(a.ready["id"], "echo", 1) == 1
                # the same key speaking as itself is welcome (as a client: a member key may be one)
                m.send_multipart(wire.hello(pki.keys["m"].node_id, role=Role.CLIENT, incarnation=1, name="m"))
                assert m.poll(30000), "no answer to an honest HELLO"
                assert wire.decode(m.recv_multipart()).type == MsgType.WELCOME
                # a client-only key cannot send membership traffic, even as itself
                k = curve_socket(raw, zmq.DEALER, a_key, pki.keys["k"])
                k.connect(ep["membership"])
                k.send_multipart(wire.membership(pki.keys["k"].node_id, "topo", {"e": 7, "o": "static"}))
                await asyncio.to_thread(poll, lambda: stats(a)["security"]["untrusted"] >= 1,
                                        what="a refused a client's membership message")
                # and a member HELLO from a client-only key is refused with UNTRUSTED
                k.send_multipart(wire.hello(pki.keys["k"].node_id, role=Role.MEMBER, incarnation=1, name="k",
                                            public_key=pki.keys["k"].public))
                assert k.poll(30000), "no answer to the member HELLO"
                answer = wire.decode(k.recv_multipart())
                assert answer.type == MsgType.REJECT and answer.header["ec"] == wire.RejectCode.UNTRUSTED
                assert await asyncio.to_thread(alive, a) == {"a", "t"}
                assert t.current_topology()["epoch"] == 0
                m.close(0)
                k.close(0)

        asyncio.run(asyncio.wait_for(scenario(), 180))
        assert stats(a)["security"]["untrusted_hello"] == 1
    finally:
        a.stop()

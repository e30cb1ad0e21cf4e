"""Secure mode between real processes on loopback: a CURVE cluster, revocation and key rotation.

Every node runs tests/integration/node_child.py with ``--keys DIR --trust FILE`` (what ``foundation-node
start --keys --trust`` configures); the trust file is shared and rewritten atomically by the test. Every
wait is bounded (polling a positive condition); children are stopped by their own PID.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.security_support import Pki, poll
from tests.integration.test_node_processes import NodeChild
from tests.support import short_tmpdir


@pytest.fixture
def pki() -> Iterator[Pki]:
    with short_tmpdir("ffs") as d:
        yield Pki(Path(d))


class Cluster:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeChild] = {}

    def start(self, pki: Pki, name: str, *extra: str) -> NodeChild:
        child = NodeChild(*pki.args(name), *extra)
        self.nodes[name] = child
        assert child.ready["security"] == "curve"
        assert child.ready["id"] == pki.node_id(name)  # the node id is the one the key defines
        return child

    def stop(self, name: str) -> None:
        self.nodes.pop(name).stop()

    def close(self) -> None:
        for child in self.nodes.values():
            child.stop()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        c.close()


def stats(child: NodeChild) -> dict[str, Any]:
    child.command("stats")
    return child.expect("stats", timeout=30)


def alive(child: NodeChild) -> set[str]:
    child.command("members")
    return {m["name"] for m in child.expect("members", timeout=30)["members"] if m["status"] == "alive"}


def call_echo(child: NodeChild, peer_id: str) -> Any:
    child.command(f"call {peer_id} echo")
    return child.expect("called", timeout=30)["reply"]


def test_three_node_curve_cluster_then_revocation_disconnects_a_node(pki: Pki, cluster: Cluster) -> None:
    for name in ("a", "b", "c"):
        pki.make(name)
    pki.write()
    a = cluster.start(pki, "a")
    seed = pki.seed(a.seed, "a")
    b = cluster.start(pki, "b", "--join", seed, "--min-members", "3")
    c = cluster.start(pki, "c", "--join", seed, "--min-members", "3")
    for child in (b, c):
        assert child.expect("joined", timeout=60)["members"] == ["a", "b", "c"]
    poll(lambda: alive(a) == {"a", "b", "c"}, what="a sees three members")
    # calls and broadcast over CURVE, both directions
    assert call_echo(b, pki.node_id("a")) == "x"
    assert call_echo(a, pki.node_id("c")) == "x"
    a.command("broadcast 300")
    sha = a.expect("broadcast")["sha"]
    for child in (b, c):
        got = child.expect("got", timeout=30, channel="events")
        assert got["sha"] == sha and got["source"] == pki.node_id("a")
    sec = stats(a)["security"]
    assert sec["mode"] == "curve" and sec["zap"]["running"] and sec["zap"]["accepted"] >= 1
    assert sec["forged_source"] == 0 and sec["untrusted"] == 0

    # Revoke c: a and b drop it within the reload interval plus a detection round (polled, bounded).
    pki.revoked.add("c")
    pki.members.discard("c")
    pki.write()
    c_id = pki.node_id("c")
    for child in (a, b):
        poll(lambda child=child: c_id not in stats(child)["peers"], what="the revoked node unlinked")
        poll(lambda child=child: "c" not in alive(child), timeout=60, what="the revoked node no longer alive")
    assert stats(a)["security"]["revocations"] >= 1
    # The inbound reset made every honest peer reconnect: a and b still talk.
    assert call_echo(b, pki.node_id("a")) == "x"
    assert call_echo(a, pki.node_id("b")) == "x"
    # and c is refused: its calls to a never get through (it has no link left to a)
    c.command(f"call {pki.node_id('a')} echo")
    with pytest.raises(AssertionError, match="child error"):
        c.expect("called", timeout=30)
    assert poll(lambda: sum(v["handshake_failed"] for v in stats(a)["transport"]["connections"].values()) >= 1,
                what="a refused c's reconnection")


def test_key_rotation_keeps_the_cluster_up(pki: Pki, cluster: Cluster) -> None:
    for name in ("a", "b"):
        pki.make(name)
    pki.write()
    a = cluster.start(pki, "a")
    seed = pki.seed(a.seed, "a")
    b = cluster.start(pki, "b", "--join", seed, "--min-members", "2")
    b.expect("joined", timeout=60)
    # Rotate b's key: trust the new key, start b with it, revoke the old one, stop the old process.
    pki.make("b2")
    pki.write()
    poll(lambda: stats(a)["security"]["trusted_keys"] == 3, what="a reloaded the trust file")
    b2 = cluster.start(pki, "b2", "--join", seed, "--min-members", "3")
    assert set(b2.expect("joined", timeout=60)["members"]) == {"a", "b", "b2"}
    pki.revoked.add("b")
    pki.members.discard("b")
    pki.write()
    cluster.stop("b")
    poll(lambda: alive(a) == {"a", "b2"}, timeout=60, what="a sees the rotated cluster")
    poll(lambda: alive(b2) == {"a", "b2"}, timeout=60, what="b2 sees the rotated cluster")
    assert call_echo(b2, pki.node_id("a")) == "x"
    assert call_echo(a, pki.node_id("b2")) == "x"
    assert json.dumps(stats(a)["security"])  # counters serialisable for the CLI


def test_a_client_authenticates_with_its_own_key_and_is_dropped_when_revoked(pki: Pki) -> None:
    import asyncio

    from fabric import CallTimeout, Client, Node, NodeConfig, SecurityConfig, Unreachable

    pki.make("a")
    pki.make("cl", member=False, client=True)
    pki.make("stranger", member=False)
    pki.write()

    def config(name: str) -> NodeConfig:
        return NodeConfig.local(name=name, security=SecurityConfig(keys=pki.dir(name), trust=str(pki.trust),
                                                                   trust_reload_interval=0.1))

    async def scenario() -> None:
        node = Node(config("a"))

        @node.service("echo")
        def echo(x: Any) -> Any:
            return x

        async with node:
            seed = pki.seed(node.seed, "a")
            client = Client(config("cl"))
            async with client:
                assert client.id == pki.node_id("cl")
                info = await client.connect(seed)
                assert info.id == node.id and info.public_key == pki.keys["a"].public
                assert await client.call(node.id, "echo", {"n": 1}) == {"n": 1}
                assert [c.id for c in node.clients()] == [client.id]
                assert node.clients()[0].public_key == pki.keys["cl"].public
                # a seed without its key is a one-line ConfigError in secure mode
                with pytest.raises(ValueError, match="needs #KEY"):
                    await client.connect(node.seed)
                stranger = Client(config("stranger"))
                async with stranger:
                    with pytest.raises(Unreachable):
                        await stranger.connect(seed, timeout=2)
                # revoke the client: the node forgets it and its calls no longer get through
                pki.clients.discard("cl")
                pki.revoked.add("cl")
                pki.write()
                async with asyncio.timeout(30):
                    while node.clients():
                        await asyncio.sleep(0.05)
                with pytest.raises((CallTimeout, Unreachable)):  # nothing reaches the node any more
                    await client.call(node.id, "echo", 2, timeout=2)
                assert node.stats()["security"]["revocations"] == 1

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_curve_over_ipc_and_a_seed_without_key_is_refused(pki: Pki) -> None:
    import asyncio
    import os

    from fabric import ConfigError, Node, NodeConfig, SecurityConfig

    pki.make("a")
    pki.make("b")
    pki.write()

    def config(name: str) -> NodeConfig:
        os.makedirs(pki.root / f"s{name}", exist_ok=True)
        return NodeConfig.local(name=name, bind=f"ipc://{pki.root}/s{name}",
                                security=SecurityConfig(keys=pki.dir(name), trust=str(pki.trust)))

    async def scenario() -> None:
        async with Node(config("a")) as a, Node(config("b")) as b:
            assert a.seed.startswith("ipc://")
            with pytest.raises(ConfigError, match="needs #KEY in secure mode"):
                await b.join([a.seed], timeout=5)
            a.add_service("echo", lambda x: x)
            await b.join([pki.seed(a.seed, "a")], min_members=2, timeout=30)
            assert await b.call(a.id, "echo", "ipc") == "ipc"
            assert b.peers()[0].public_key == pki.keys["a"].public

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_hyparview_in_secure_mode_links_members_learned_through_gossip(pki: Pki) -> None:
    import asyncio

    from fabric import Node, NodeConfig, SecurityConfig

    names = ["h0", "h1", "h2", "h3"]
    for name in names:
        pki.make(name)
    pki.write()

    def config(name: str) -> NodeConfig:
        return NodeConfig.local(name=name, overlay="hyparview",
                                security=SecurityConfig(keys=pki.dir(name), trust=str(pki.trust)))

    async def scenario() -> None:
        nodes = [Node(config(n)) for n in names]
        got: dict[str, asyncio.Event] = {n.name: asyncio.Event() for n in nodes}
        for n in nodes:
            n.subscribe("events", lambda _m, name=n.name: got[name].set(), inline=True)
            n.add_service("who", lambda _x, name=n.name: name)
            await n.start()
        try:
            seed = pki.seed(nodes[0].seed, "h0")
            await nodes[0].join([], timeout=30)
            # everyone joins through h0 only: the others' keys come through the membership records
            await asyncio.gather(*(n.join([seed], min_members=4, timeout=60) for n in nodes[1:]))
            for n in nodes:
                for other in nodes:  # a call to any member opens an on-demand link when it is no neighbour
                    if other is not n:
                        assert await n.call(other.id, "who", b"") == other.name
            await nodes[3].broadcast(b"tree")
            async with asyncio.timeout(30):
                for name in names[:3]:
                    await got[name].wait()
            assert all(n.stats()["security"]["forged_source"] == 0 for n in nodes)
            assert all(n.stats()["security"]["untrusted_link"] == 0 for n in nodes)
        finally:
            for n in nodes:
                await n.stop()

    asyncio.run(asyncio.wait_for(scenario(), 120))

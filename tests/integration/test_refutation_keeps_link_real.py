"""A refutation does not relink (boot id, HELLO/WELCOME ``bi``): real ZeroMQ sockets in one process.

Node b hears that it is down (a forged claim, as a member with a broken link to it would spread) and
refutes with a new incarnation. Node a learns the new incarnation over membership and then from b's
HELLO; because both
incarnations carry b's boot id, a keeps its link (and what is queued on it) instead of treating the new
incarnation as a restart: no unlink, every message a sent before, during and after the refutation
arrives. (A real restart still relinks: tests/unit/test_boot_id.py, test_restart_same_port_real.py.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fabric import Node, NodeConfig
from fabric.membership.types import ST_DOWN

BURST = 300


async def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def down_claim(node: Node) -> dict[str, Any]:
    """A record saying ``node`` (its current incarnation) is down, as another member would send it."""
    raw = {"id": node._id_bytes, "nm": node.name, "in": node.incarnation, "st": ST_DOWN, "v": 1_000, "md": {}, "ep": {}}
    return raw


@pytest.mark.parametrize("overlay", ["full-mesh", "hyparview"])
def test_a_refuting_member_keeps_its_links_and_loses_nothing(overlay: str) -> None:
    async def scenario() -> None:
        async with Node(NodeConfig.local(name="a", overlay=overlay)) as a, \
                Node(NodeConfig.local(name="b", overlay=overlay)) as b:
            got: list[int] = []
            b.subscribe("data", lambda m: got.append(int(m.value())), inline=True)
            events: list[tuple[str, str]] = []
            a.on_peer(lambda kind, info: events.append((kind, info.name)))
            await b.join([a.seed], timeout=20)
            await wait_for(lambda: any(m.name == "b" for m in a.alive_members()))
            before = b.incarnation
            sent = 0

            async def burst() -> None:
                nonlocal sent
                for _ in range(BURST):
                    assert await a.send(b.id, sent, channel="data")
                    sent += 1

            await burst()
            assert b._membership is not None
            body = {"in": 1, "r": 0, "m": [down_claim(b)]} if overlay == "full-mesh" else {"m": [down_claim(b)]}
            b._membership.driver.receive(a._id_bytes, False, "sync", body, asyncio.get_running_loop().time())
            assert b.incarnation > before  # refuted
            await burst()  # while a still knows the old incarnation
            await wait_for(lambda: any(m.name == "b" and m.incarnation == b.incarnation for m in a.members()))
            await burst()
            # b says HELLO again under its new incarnation (a re-dial, a join retry, a neighbour request
            # do): a's handshake path sees the new incarnation too
            await b.connect(a.seed)
            await burst()
            await wait_for(lambda: len(got) == sent)
            assert sorted(got) == list(range(sent))
            counters = a.stats()["counters"]
            assert counters.get("restart_relinks", 0) == 0
            assert ("down", "b") not in events, events
            linked = a._peers.linked[b._id_bytes].info
            assert linked.boot == b._boot and linked.incarnation == b.incarnation
            assert counters["refutations_kept_link"] >= 1

    asyncio.run(asyncio.wait_for(scenario(), 90))

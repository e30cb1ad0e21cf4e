"""The node's outbox: an idle lane sends at once, later messages of the same loop turn still batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fabric import Message, Node, NodeConfig, wire
from fabric.transport.memory import AsyncioScheduler, MemoryNetwork
from fabric.wire import MsgType


def test_first_message_of_a_turn_goes_at_once_and_the_rest_of_the_turn_is_one_batch() -> None:
    async def scenario() -> None:
        net = MemoryNetwork(AsyncioScheduler(), seed=1)
        a, b = (Node(NodeConfig.local(name=n), transport=net.transport(n)) for n in "ab")
        await a.start()
        await b.start()
        got: list[Any] = []
        done = asyncio.Event()

        def on_message(msg: Message) -> None:
            got.append(msg.value())
            if len(got) == 6:
                done.set()

        b.subscribe("coordination", on_message, inline=True)
        await a.connect(b.seed)
        sent: list[tuple[str, int]] = []  # (channel, message type) handed to the transport
        real_send = a._transport.send

        def recording_send(link: Any, channel: str, lane: int, frames: Sequence[bytes]) -> bool:
            if channel == "coordination":
                sent.append((channel, wire.decode(list(frames)).type))
            return real_send(link, channel, lane, frames)

        a._transport.send = recording_send  # type: ignore[method-assign]
        await a.send(b.id, 0, channel="coordination")
        # No loop turn has passed: the lone message is already with the transport, unbatched.
        assert sent == [("coordination", MsgType.SEND)]
        for i in range(1, 6):
            await a.send(b.id, i, channel="coordination")
        assert len(sent) == 1  # the rest of this turn waits for the flush
        await asyncio.wait_for(done.wait(), 5)
        assert sent == [("coordination", MsgType.SEND), ("coordination", MsgType.BATCH)]
        assert got == [0, 1, 2, 3, 4, 5]  # order kept across the immediate send and the batch
        await a.stop()
        await b.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))

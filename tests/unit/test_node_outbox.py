"""The node's outbox: an idle lane sends at once, later messages of the same loop turn still batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fabric import ChannelConfig, ChannelKind, Message, Node, NodeConfig, wire
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


def test_a_bulk_lane_sizes_its_hwm_from_the_message_size() -> None:
    """ChannelConfig.sndhwm_bytes: the lane's HWM and queue follow the messages' size (lowered at once,
    raised only once the size allows twice the current limit), and every message still arrives in order."""
    async def scenario() -> None:
        net = MemoryNetwork(AsyncioScheduler(), seed=2)
        bulk = ChannelConfig("bulk", ChannelKind.BULK, sndhwm=64, sndhwm_bytes=64_000, rcvhwm=64)
        config = NodeConfig.local()
        config = config.replace(channels=(*config.channels, bulk))
        a, b = (Node(config.replace(name=n), transport=net.transport(n)) for n in "ab")
        await a.start()
        await b.start()
        got: list[int] = []
        b.subscribe("bulk", lambda m: got.append(len(m.payload)), inline=True)
        await a.connect(b.seed)
        hwms: list[int] = []
        real = a._transport.set_send_hwm

        def recording(link: Any, channel: str, lane: int, hwm: int) -> None:
            hwms.append(hwm)
            real(link, channel, lane, hwm)

        a._transport.set_send_hwm = recording  # type: ignore[method-assign]
        sizes = [500] * 3 + [4_000] * 3 + [3_000] * 3 + [1_500] * 3 + [100] * 3 + [64_000, 200_000, 100, 100, 100]
        for size in sizes:
            await a.send(b.id, b"x" * size, channel="bulk")
        # Powers of two. 500 B: 128 wanted, capped at sndhwm 64 (the start value): unchanged. 4000 B: 16.
        # 3000 B: 21 -> 16: unchanged. 1500 B: 42 -> 32, twice 16: raised. 100 B: 640 -> 64: one doubling.
        # 64000 B: 1, at once; 200000 B: still 1 (at least one message always fits).
        assert hwms == [16, 32, 64, 1, 2, 4, 8]  # then 100 B again: one doubling per message
        async with asyncio.timeout(10):
            while len(got) < len(sizes):
                await asyncio.sleep(0.01)
        assert got == sizes
        await a.stop()
        await b.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))

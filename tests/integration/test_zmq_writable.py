"""ZmqTransport.notify_writable on a real PUSH socket: the callback runs once the lane has room again
(libzmq signals ZMQ_FD when its I/O thread has taken half the queue), and when the link closes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import zmq

from fabric.config import TransportConfig
from fabric.transport.base import ChannelKind, ChannelSpec, Link
from fabric.transport.zmq import ZmqTransport


def _ignore(channel: str, frames: list[bytes], route: bytes | None, link: Link | None) -> None:
    pass


async def _wait_for(calls: list[str], value: str, limit: float = 10.0) -> None:
    async with asyncio.timeout(limit):
        while value not in calls:
            await asyncio.sleep(0.005)


async def _fill(transport: ZmqTransport, payload: bytes, channel: str = "data") -> None:
    """Fill the lane's pipe, the kernel's buffers and the receiver's queue: full once send has been
    refused four times in a row, 0.2 s apart (libzmq's I/O thread keeps moving messages into the
    kernel's buffers for a while after the first refusal, and the kernel may grow them)."""
    refused = 0
    async with asyncio.timeout(20.0):
        while refused < 4:
            if transport.send("peer", channel, 0, [b"head", payload]):
                refused = 0
            else:
                refused += 1
                await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def _stalled_lane(kind: ChannelKind, receiver_type: int) -> AsyncIterator[tuple[ZmqTransport, zmq.Socket[bytes], bytes]]:
    """A transport whose one lane to a raw socket that reads only when the test says so is full."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    receiver = ctx.socket(receiver_type)
    receiver.set(zmq.RCVHWM, 2)
    port = receiver.bind_to_random_port("tcp://127.0.0.1")
    transport = ZmqTransport(TransportConfig(), bind_address="tcp://127.0.0.1")
    channel = "data" if kind is ChannelKind.BULK else "ctl"
    try:
        transport.bind([ChannelSpec(channel, kind, parallelism=1, sndhwm=2, rcvhwm=2)], _ignore, b"\x00" * 16, listen=False)
        transport.connect("peer", {channel: f"tcp://127.0.0.1:{port}"})
        payload = b"p" * (256 * 1024)
        await _fill(transport, payload, channel)
        yield transport, receiver, payload
    finally:
        await transport.close()
        receiver.close(0)
        ctx.term()


def test_notify_writable_fires_when_the_receiver_drains_and_when_the_link_closes() -> None:
    async def scenario() -> None:
        async with _stalled_lane(ChannelKind.BULK, zmq.PULL) as (transport, pull, payload):
            calls: list[str] = []
            transport.notify_writable("peer", "data", 0, lambda: calls.append("room"))
            # Not at once on a full lane. (No sleep-then-assert: libzmq's I/O thread may still move a
            # message into grown kernel buffers, and then a wake-up without reads is right.)
            assert calls == []
            received = 0
            async with asyncio.timeout(10.0):
                while "room" not in calls:
                    try:
                        pull.recv_multipart(zmq.NOBLOCK)
                        received += 1
                    except zmq.Again:
                        await asyncio.sleep(0.005)
            assert calls == ["room"] and received >= 1
            assert transport.send("peer", "data", 0, [b"head", payload])
            await _fill(transport, payload)
            transport.notify_writable("peer", "data", 0, lambda: calls.append("closed"))
            assert calls == ["room"]  # full again: not at once
            transport.disconnect("peer")
            await _wait_for(calls, "closed")
            assert calls == ["room", "closed"]

    asyncio.run(scenario())


def test_a_send_that_consumes_the_edge_still_wakes_a_stalled_lane() -> None:
    """A reply sent on a stalled DEALER lane makes libzmq process the pending 'room again' command inside
    that send, so the ZMQ_FD edge never reaches the event loop: the transport must notice it itself."""

    async def scenario() -> None:
        async with _stalled_lane(ChannelKind.CONTROL, zmq.ROUTER) as (transport, router, _payload):
            calls: list[str] = []
            transport.notify_writable("peer", "ctl", 0, lambda: calls.append("room"))
            # Drain the receiver without giving the event loop a turn, let libzmq's I/O thread post its
            # "room again" command, then send: the send consumes that command and the FD's edge.
            drained, idle = 0, 0
            while idle < 20:  # until nothing has arrived for 0.2 s
                try:
                    router.recv_multipart(zmq.NOBLOCK)
                    drained, idle = drained + 1, 0
                except zmq.Again:
                    idle += 1
                    time.sleep(0.01)
            assert drained >= 2
            assert transport.send("peer", "ctl", 0, [b"head", b"small"])
            await _wait_for(calls, "room")

    asyncio.run(scenario())


def test_doubling_the_send_hwm_of_a_full_lane_keeps_it_alive() -> None:
    """libzmq applies a changed ZMQ_SNDHWM to the existing pipe. On a full lane the writer waits for its
    reader's next 'room again', which comes every HWM/2 reads counted with the new HWM: after a doubling
    that read is among the queued messages, so the lane wakes (the node raises one doubling at a time;
    a 100-fold jump here never woke in a 10 s trial)."""

    async def scenario() -> None:
        async with _stalled_lane(ChannelKind.BULK, zmq.PULL) as (transport, pull, payload):
            sock = transport._lane_sock("peer", "data", 0).sock
            calls: list[str] = []
            transport.notify_writable("peer", "data", 0, lambda: calls.append("room"))
            transport.set_send_hwm("peer", "data", 0, 4)
            assert sock.get(zmq.SNDHWM) == 4
            async with asyncio.timeout(10.0):
                while "room" not in calls:
                    try:
                        pull.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        await asyncio.sleep(0.005)
            assert transport.send("peer", "data", 0, [b"head", payload])
            transport.set_send_hwm("peer", "data", 0, 1)
            assert sock.get(zmq.SNDHWM) == 1

    asyncio.run(scenario())

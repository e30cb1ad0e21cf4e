"""Outboxes: every outgoing message of a node goes through one per (peer, channel, lane).

On batching channels the outbox collects what is queued during one event-loop turn and flushes it as one
BATCH at the end of the turn (no added delay). When the transport reports the lane full, the outbox
waits for the socket to become writable (``Transport.notify_writable``) and the channel's ``on_full``
policy applies to new sends: wait up to ``send_timeout``, drop and count, or raise :class:`Overloaded`.
Bulk lanes with a byte bound size their send HWM from the message sizes (:meth:`Outboxes._fit_hwm`).

Loop thread only. The hot path is :meth:`Outboxes.enqueue` (one per send).
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter, deque
from typing import Any

from .. import wire
from ..config import ChannelConfig, OnFull
from ..errors import FabricError, Overloaded
from ..transport.base import ChannelKind, Link, Transport
from .message import peer_text


class Outbox:
    """Queue of encoded messages for one (link, channel, lane)."""

    __slots__ = (
        "link", "channel", "lane", "queue", "scheduled", "stalled", "draining", "space_waiters", "limit", "batching", "sized",
    )

    def __init__(self, link: Link, channel: ChannelConfig, lane: int, batching: bool) -> None:
        self.link = link
        self.channel = channel
        self.lane = lane
        self.queue: deque[list[Any]] = deque()
        self.scheduled = False
        self.stalled: tuple[list[Any], int] | None = None  # a (batch) message the transport refused
        self.draining = False
        self.space_waiters: list[asyncio.Future[None]] = []
        self.limit = max(channel.sndhwm, 1)
        self.batching = batching
        # Bulk lanes with a byte bound size their HWM (and this queue) from the messages: see _fit_hwm.
        self.sized = channel.kind is ChannelKind.BULK and channel.sndhwm_bytes > 0

    def full(self) -> bool:
        return len(self.queue) >= self.limit

    def wake_space(self) -> None:
        if self.space_waiters and len(self.queue) < self.limit:
            waiters, self.space_waiters = self.space_waiters, []
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    def fail_waiters(self, exc: FabricError) -> None:
        for w in self.space_waiters:
            if not w.done():
                w.set_exception(exc)


class Outboxes:
    """The outboxes and per-link sequence numbers of one node (see the module docstring).

    Args:
        transport: sends and reports writability.
        node_id: this node's id (BATCH envelopes carry it).
        counters: the node's traffic counters (``sent``, ``dropped_full``).
        channel_counters: per channel ``[sent, received]``; ``sent`` is counted here.
        batching: the node-wide batching switch (``NodeConfig.batching``).
        batch_max_messages, batch_max_bytes: bounds of one BATCH.
    """

    def __init__(self, transport: Transport, node_id: bytes, counters: Counter[str],
                 channel_counters: dict[str, list[int]], *, batching: bool, batch_max_messages: int,
                 batch_max_bytes: int) -> None:
        self._transport = transport
        self._node_id = node_id
        self._counters = counters
        self._channel_counters = channel_counters
        self._batching = batching
        self._max_msgs = batch_max_messages
        self._max_bytes = batch_max_bytes
        self._boxes: dict[tuple[Link, str, int], Outbox] = {}
        self._seq: dict[tuple[Link, str, int], int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the node's loop (at ``Node.start``)."""
        self._loop = loop

    def next_seq(self, link: Link, channel: str, lane: int) -> int:
        """The next sequence number of (link, channel, lane); receivers count gaps."""
        k = (link, channel, lane)
        seq = self._seq.get(k, 0) + 1
        self._seq[k] = seq
        return seq

    def drop_link(self, link: Link, exc: FabricError) -> None:
        """The link closed: forget its outboxes (waiting senders get ``exc``) and sequence numbers."""
        for okey in [k for k in self._boxes if k[0] == link]:
            self._boxes.pop(okey).fail_waiters(exc)
        for skey in [k for k in self._seq if k[0] == link]:
            del self._seq[skey]

    def fail_all(self, exc: FabricError) -> None:
        """The node stops: every waiting sender gets ``exc``."""
        for ob in self._boxes.values():
            ob.fail_waiters(exc)

    def queued(self) -> dict[str, int]:
        """Non-empty queues: ``peer/channel/lane`` -> messages queued."""
        return {f"{peer_text(k[0])[:8]}/{k[1]}/{k[2]}": len(o.queue) for k, o in self._boxes.items() if o.queue}

    async def enqueue(self, link: Link, ch: ChannelConfig, lane: int, frames: list[Any]) -> bool:
        """Queue ``frames`` for (link, channel, lane) under the channel's ``on_full`` policy. Returns
        False when dropped (``on_full=drop``); raises :class:`Overloaded` (``raise``, or ``wait`` timed
        out), KeyError when a non-batching lane has no socket."""
        okey = (link, ch.name, lane)
        ob = self._boxes.get(okey)
        if ob is None:
            batching = self._batching and ch.batching and ch.kind is ChannelKind.CONTROL
            ob = self._boxes[okey] = Outbox(link, ch, lane, batching)
        if ob.sized:
            self._fit_hwm(ob, frames)
        if ob.full() or (not ob.batching and (ob.queue or ob.stalled)):
            if ob.full():
                if ch.on_full is OnFull.DROP:
                    self._counters["dropped_full"] += 1
                    return False
                if ch.on_full is OnFull.RAISE:
                    raise Overloaded(f"queue to peer full on channel {ch.name}", peer=peer_text(link))
                await self._wait_space(ob)
        self._counters["sent"] += 1
        self._channel_counters[ch.name][0] += 1
        if not ob.queue and ob.stalled is None and not (ob.batching and ob.scheduled):
            # An idle lane: send at once, so a lone call or reply costs no extra loop turn. On a
            # batching lane the flush scheduled here marks the rest of this loop turn: messages queued
            # after this one still coalesce into one BATCH at the end of the turn.
            try:
                sent = self._transport.send(link, ch.name, lane, frames)
            except KeyError:  # no socket (link closing): batched messages are queued and dropped by the flush
                if not ob.batching:
                    raise
                sent = None
            if sent is not None:
                if not sent:
                    ob.stalled = (frames, 1)
                    self._start_drain(ob)
                elif ob.batching:
                    ob.scheduled = True
                    assert self._loop is not None
                    self._loop.call_soon(self._flush, ob)
                return True
        ob.queue.append(frames)
        if not ob.scheduled and ob.stalled is None:
            ob.scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush, ob)
        return True

    def _fit_hwm(self, ob: Outbox, frames: list[Any]) -> None:
        """``ChannelConfig.sndhwm_bytes``: size the lane's HWM and queue limit from this message's size,
        in powers of two. Lowered at once (the byte bound holds for what is queued from now on); raised
        one doubling per message, and only when the size allows at least twice the current limit, so a
        stream of varying sizes does not reset the option on every message. One doubling at a time is
        what keeps a full lane alive: libzmq's reader sends its "room again" every HWM/2 reads, counted
        with the new HWM, so a larger jump could leave a full lane waiting for a read that never comes
        (see ``Transport.set_send_hwm``)."""
        size = 0
        for f in frames[1:]:
            size += len(f)
        ch = ob.channel
        want = max(1, min(ch.sndhwm, ch.sndhwm_bytes // max(size, 1)))
        want = 1 << (want.bit_length() - 1)
        if want >= ob.limit:
            if want < 2 * ob.limit:
                return
            want = 2 * ob.limit
        try:
            self._transport.set_send_hwm(ob.link, ch.name, ob.lane, want)
        except KeyError:  # link closing: its outboxes go with it
            return
        ob.limit = want
        ob.wake_space()

    async def _wait_space(self, ob: Outbox) -> None:
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        ob.space_waiters.append(fut)
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that lands in
            # the same loop turn as the result (bpo-42130), and then stop() could hang.
            async with asyncio.timeout(ob.channel.send_timeout):
                await fut
        except TimeoutError:
            raise Overloaded(
                f"queue to peer on channel {ob.channel.name} stayed full for {ob.channel.send_timeout:g}s",
                peer=peer_text(ob.link),
            ) from None

    def _flush(self, ob: Outbox) -> None:
        ob.scheduled = False
        if self._boxes.get((ob.link, ob.channel.name, ob.lane)) is not ob:
            return  # link closed meanwhile
        send = self._transport.send
        max_msgs = self._max_msgs
        max_bytes = self._max_bytes
        q = ob.queue
        while q:
            if ob.batching and len(q) > 1:
                batch: list[list[Any]] = []
                size = 0
                while q and len(batch) < max_msgs:
                    m = q[0]
                    msize = len(m[0]) + (len(m[1]) if len(m) > 1 else 0)
                    if batch and size + msize > max_bytes:
                        break
                    batch.append(q.popleft())
                    size += msize
                frames = batch[0] if len(batch) == 1 else wire.encode_batch(self._node_id, batch)
                count = len(batch)
            else:
                frames = q.popleft()
                count = 1
            try:
                ok = send(ob.link, ob.channel.name, ob.lane, frames)
            except KeyError:
                q.clear()
                return
            if not ok:
                ob.stalled = (frames, count)
                self._start_drain(ob)
                break
        ob.wake_space()

    def _start_drain(self, ob: Outbox) -> None:
        """Have the transport call :meth:`_resume` once the stalled lane can take a message again."""
        if not ob.draining:
            ob.draining = True
            try:
                self._transport.notify_writable(ob.link, ob.channel.name, ob.lane, functools.partial(self._resume, ob))
            except KeyError:  # no socket any more: the link is closing, and its outboxes go with it
                ob.draining = False

    def _resume(self, ob: Outbox) -> None:
        """Writable again (or closed): send the stalled message, then the queue behind it."""
        ob.draining = False
        if ob.stalled is None or self._boxes.get((ob.link, ob.channel.name, ob.lane)) is not ob:
            return
        frames, _count = ob.stalled
        try:
            ok = self._transport.send(ob.link, ob.channel.name, ob.lane, frames)
        except KeyError:
            return
        if not ok:  # someone else took the room, or a spurious wake-up: wait again
            self._start_drain(ob)
            return
        ob.stalled = None
        self._flush(ob)

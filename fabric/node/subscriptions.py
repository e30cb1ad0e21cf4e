"""Subscriptions: which handlers get the messages arriving on a channel, and where they run.

* ``async def`` handlers run on the node's loop, awaited one message at a time per (channel, lane), so
  order holds per lane; a worker that handled a long backlog yields to the loop every ``HANDLER_SLICE``.
* plain ``def`` handlers run on one worker thread per subscription (ordered);
* ``inline=True`` runs a plain handler directly on the loop (for handlers that are fast and never block).

A handler that raises is counted through the ``on_failure`` callback and the next message is delivered.

Backlog bound (issue 16): a subscription holds at most ``backlog`` messages and ``backlog_bytes`` payload
bytes waiting for its handler. At the bound a new message for it is dropped and reported through
``on_drop`` (the node counts ``subscription_dropped``): the sender sees no backpressure, because the
bound socket a message arrives on serves every peer and every call on that channel, and pausing it for one
slow handler would stall them all. Inline handlers never queue.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
from collections import deque
from collections.abc import Callable

from .message import Handler, Message

HANDLER_SLICE = 0.005
"""Seconds an async subscription worker may run handlers before it lets the loop run other work."""

FailureCallback = Callable[[str], None]
"""``on_failure(channel)``: a handler raised (the caller logs and counts it)."""
DropCallback = Callable[[str], None]
"""``on_drop(channel)``: a message was dropped at the subscription's backlog bound."""


def _drop_nothing(_channel: str) -> None:
    return None


class Subscription:
    """One subscription handler and how it runs (loop-ordered, worker thread, or inline)."""

    def __init__(self, channel: str, handler: Handler, topic: bytes | None, inline: bool,
                 on_failure: FailureCallback, *, backlog: int = 10000, backlog_bytes: int = 64 << 20,
                 on_drop: DropCallback = _drop_nothing) -> None:
        self.channel = channel
        self.backlog_limit = backlog
        self.backlog_bytes_limit = backlog_bytes
        self.on_drop = on_drop
        self.dropped = 0
        """Messages dropped at the backlog bound."""
        # Written by one thread each (queued: the loop; done: the handler's thread or the loop), so the
        # backlog is read without a lock: queued - done.
        self._queued = 0
        self._done = 0
        self._queued_bytes = 0
        self._done_bytes = 0
        self.handler = handler
        self.topic = topic
        self.on_failure = on_failure
        self.is_async = inspect.iscoroutinefunction(handler)
        self.inline = inline and not self.is_async
        self.lanes: dict[int, deque[Message]] = {}
        self.wakers: dict[int, asyncio.Future[None] | None] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.thread: threading.Thread | None = None
        self.tq: queue.SimpleQueue[Message | None] | None = None
        self.closed = False
        if not self.is_async and not self.inline:
            self.tq = queue.SimpleQueue()
            self.thread = threading.Thread(target=self._thread_main, name=f"fabric-sub-{channel}", daemon=True)
            self.thread.start()

    def deliver(self, msg: Message) -> None:
        """Hand ``msg`` to the handler (loop thread)."""
        if self.topic is not None and not msg.topic.startswith(self.topic):
            return
        if self.inline:
            try:
                self.handler(msg)
            except Exception:
                self.on_failure(self.channel)
            return
        size = len(msg.payload)
        if (self._queued - self._done >= self.backlog_limit
                or self._queued_bytes - self._done_bytes + size > self.backlog_bytes_limit):
            self.dropped += 1
            self.on_drop(self.channel)
            return
        self._queued += 1
        self._queued_bytes += size
        if self.is_async:
            dq = self.lanes.get(msg.lane)
            if dq is None:
                dq = self.lanes[msg.lane] = deque()
                self.wakers[msg.lane] = None
                self.tasks[msg.lane] = asyncio.get_running_loop().create_task(self._worker(msg.lane, dq))
            dq.append(msg)
            waker = self.wakers[msg.lane]
            if waker is not None and not waker.done():
                waker.set_result(None)
        else:
            assert self.tq is not None
            self.tq.put(msg)

    async def _worker(self, lane: int, dq: deque[Message]) -> None:
        loop = asyncio.get_running_loop()
        handler = self.handler
        while not self.closed:
            handled = 0
            started = loop.time()
            while dq:
                msg = dq.popleft()
                try:
                    await handler(msg)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.on_failure(self.channel)
                finally:
                    self._done += 1
                    self._done_bytes += len(msg.payload)
                handled += 1
                if handled % 64 == 0 and loop.time() - started > HANDLER_SLICE:
                    # A handler that never awaits would otherwise hold the loop for the whole backlog.
                    await asyncio.sleep(0)
                    started = loop.time()
            waker: asyncio.Future[None] = loop.create_future()
            self.wakers[lane] = waker
            await waker
            self.wakers[lane] = None

    def _thread_main(self) -> None:
        assert self.tq is not None
        while True:
            msg = self.tq.get()
            if msg is None:
                return
            try:
                self.handler(msg)
            except Exception:
                self.on_failure(self.channel)
            finally:
                self._done += 1
                self._done_bytes += len(msg.payload)

    def pending(self) -> int:
        """Messages not yet handled (waiting, or running in the handler now)."""
        return self._queued - self._done

    def close(self) -> None:
        """Stop the workers (the thread ends after the message it runs)."""
        self.closed = True
        for task in self.tasks.values():
            task.cancel()
        if self.tq is not None:
            self.tq.put(None)


class Subscriptions:
    """The subscriptions of one node by channel. :attr:`by_channel` is read on the receive hot path."""

    def __init__(self, on_failure: FailureCallback, *, backlog: int = 10000, backlog_bytes: int = 64 << 20,
                 on_drop: DropCallback = _drop_nothing) -> None:
        self.by_channel: dict[str, list[Subscription]] = {}
        """channel -> its subscriptions (absent or empty: nobody listens)."""
        self._on_failure = on_failure
        self._backlog = backlog
        self._backlog_bytes = backlog_bytes
        self._on_drop = on_drop

    def add(self, channel: str, handler: Handler, topic: bytes | None, inline: bool) -> Callable[[], None]:
        """Subscribe; returns the unsubscribe function."""
        sub = Subscription(channel, handler, topic, inline, self._on_failure, backlog=self._backlog,
                           backlog_bytes=self._backlog_bytes, on_drop=self._on_drop)
        self.by_channel.setdefault(channel, []).append(sub)

        def unsubscribe() -> None:
            subs = self.by_channel.get(channel, [])
            if sub in subs:
                subs.remove(sub)
            sub.close()

        return unsubscribe

    def deliver(self, channel: str, msg: Message) -> bool:
        """Deliver to every subscription of ``channel``; False when there is none."""
        subs = self.by_channel.get(channel)
        if not subs:
            return False
        for sub in subs:
            sub.deliver(msg)
        return True

    def backlog(self) -> dict[str, int]:
        """channel -> messages waiting for handlers."""
        return {c: sum(s.pending() for s in subs) for c, subs in self.by_channel.items()}

    def max_backlog(self) -> int:
        """The longest backlog of any one subscription (bounded by ``backlog``)."""
        return max((s.pending() for subs in self.by_channel.values() for s in subs), default=0)

    def close(self) -> None:
        """Close every subscription (node stop)."""
        for subs in self.by_channel.values():
            for sub in subs:
                sub.close()

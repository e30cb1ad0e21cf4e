"""Subscriptions: which handlers get the messages arriving on a channel, and where they run.

* ``async def`` handlers run on the node's loop, awaited one message at a time per (channel, lane), so
  order holds per lane; a worker that handled a long backlog yields to the loop every ``HANDLER_SLICE``.
* plain ``def`` handlers run on one worker thread per subscription (ordered);
* ``inline=True`` runs a plain handler directly on the loop (for handlers that are fast and never block).

A handler that raises is counted through the ``on_failure`` callback and the next message is delivered.
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


class Subscription:
    """One subscription handler and how it runs (loop-ordered, worker thread, or inline)."""

    def __init__(self, channel: str, handler: Handler, topic: bytes | None, inline: bool,
                 on_failure: FailureCallback) -> None:
        self.channel = channel
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
        elif self.is_async:
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

    def pending(self) -> int:
        """Messages waiting for the handler."""
        return sum(len(d) for d in self.lanes.values()) + (self.tq.qsize() if self.tq is not None else 0)

    def close(self) -> None:
        """Stop the workers (the thread ends after the message it runs)."""
        self.closed = True
        for task in self.tasks.values():
            task.cancel()
        if self.tq is not None:
            self.tq.put(None)


class Subscriptions:
    """The subscriptions of one node by channel. :attr:`by_channel` is read on the receive hot path."""

    def __init__(self, on_failure: FailureCallback) -> None:
        self.by_channel: dict[str, list[Subscription]] = {}
        """channel -> its subscriptions (absent or empty: nobody listens)."""
        self._on_failure = on_failure

    def add(self, channel: str, handler: Handler, topic: bytes | None, inline: bool) -> Callable[[], None]:
        """Subscribe; returns the unsubscribe function."""
        sub = Subscription(channel, handler, topic, inline, self._on_failure)
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

    def close(self) -> None:
        """Close every subscription (node stop)."""
        for subs in self.by_channel.values():
            for sub in subs:
                sub.close()

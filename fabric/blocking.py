"""Blocking facade: run a :class:`~fabric.Node` on an event loop in a background thread.

For synchronous programs (and the Foundation 1.x style API). Every method is safe to call from any
thread: it hands the coroutine to the node's loop with :func:`asyncio.run_coroutine_threadsafe` and waits
for the result with a bounded timeout. Handlers registered here are plain functions; they run on worker
threads (see :mod:`fabric.node`), never on the caller's thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from .client import Client
from .config import NodeConfig
from .errors import NodeStateError
from .node import Handler, Node, PeerInfo, Service

T = TypeVar("T")
N = TypeVar("N", bound=Node)

_MARGIN = 5.0  # seconds beyond an operation's own timeout before the facade gives up waiting


class _Blocking(Generic[N]):
    def __init__(self, node: N) -> None:
        self.node = node
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        loop = self._loop
        if loop is None or not loop.is_running():
            coro.close()
            raise NodeStateError("not started")
        if threading.current_thread() is self._thread:
            coro.close()
            raise NodeStateError("blocking call from the node's own loop thread would deadlock; use the async API")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def start(self, timeout: float = 30.0) -> None:
        """Start the loop thread and the node; returns once it is bound."""
        if self._thread is not None:
            raise NodeStateError("already started")
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=main, name=f"fabric-{self.node.name}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise NodeStateError("event loop thread did not start")
        try:
            self._run(self.node.start(), timeout)
        except BaseException:
            self._shutdown_loop(timeout)
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the node and its loop thread (bounded by ``timeout``). Idempotent."""
        if self._loop is None or self._thread is None:
            return
        try:
            self._run(self.node.stop(), timeout)
        finally:
            self._shutdown_loop(timeout)

    def _shutdown_loop(self, timeout: float) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout)
        self._loop = None
        self._thread = None

    def __enter__(self: Any) -> Any:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # identity
    @property
    def id(self) -> str:
        """Node id (UUID text)."""
        return self.node.id

    @property
    def name(self) -> str:
        """Human name."""
        return self.node.name

    @property
    def endpoints(self) -> dict[str, str]:
        """Channel -> advertised endpoint."""
        return self.node.endpoints

    @property
    def seed(self) -> str:
        """Membership endpoint (the address others join through)."""
        return self.node.seed

    # operations
    def connect(self, endpoint: str, *, timeout: float | None = None) -> PeerInfo:
        """See :meth:`fabric.Node.connect`."""
        t = self.node.config.connect_timeout if timeout is None else timeout
        return self._run(self.node.connect(endpoint, timeout=t), t + _MARGIN)

    def send(self, peer: str | PeerInfo, payload: Any, *, channel: str = "coordination", key: Any = None) -> bool:
        """See :meth:`fabric.Node.send`."""
        ch = self.node.config.channel(channel)
        return self._run(self.node.send(peer, payload, channel=channel, key=key), ch.send_timeout + _MARGIN)

    def call(
        self,
        peer: str | PeerInfo,
        service: str,
        request: Any = b"",
        *,
        timeout: float | None = None,
        channel: str = "coordination",
        key: Any = None,
    ) -> Any:
        """See :meth:`fabric.Node.call`."""
        t = self.node.config.call_timeout if timeout is None else timeout
        return self._run(self.node.call(peer, service, request, timeout=t, channel=channel, key=key), t + _MARGIN)

    def ping(self, peer: str | PeerInfo, *, timeout: float = 2.0) -> float:
        """See :meth:`fabric.Node.ping`."""
        return self._run(self.node.ping(peer, timeout=timeout), timeout + _MARGIN)

    def subscribe(self, channel: str, handler: Handler, *, topic: bytes | None = None) -> Callable[[], None]:
        """See :meth:`fabric.Node.subscribe`; ``handler`` runs on a worker thread, in order."""

        async def sub() -> Callable[[], None]:
            return self.node.subscribe(channel, handler, topic=topic)

        unsubscribe = self._run(sub(), _MARGIN)

        def blocking_unsubscribe() -> None:
            async def unsub() -> None:
                unsubscribe()

            self._run(unsub(), _MARGIN)

        return blocking_unsubscribe

    def peers(self) -> list[PeerInfo]:
        """See :meth:`fabric.Node.peers`."""

        async def get() -> list[PeerInfo]:
            return self.node.peers()

        return self._run(get(), _MARGIN)

    def stats(self) -> dict[str, Any]:
        """See :meth:`fabric.Node.stats`."""

        async def get() -> dict[str, Any]:
            return self.node.stats()

        return self._run(get(), _MARGIN)

    def health(self) -> dict[str, Any]:
        """See :meth:`fabric.Node.health`."""

        async def get() -> dict[str, Any]:
            return self.node.health()

        return self._run(get(), _MARGIN)


class BlockingNode(_Blocking[Node]):
    """A :class:`~fabric.Node` with a synchronous API, safe to call from any thread.

    >>> with BlockingNode(NodeConfig.local(name="a")) as node:   # doctest: +SKIP
    ...     peer = node.connect("tcp://127.0.0.1:7946")
    ...     node.call(peer.id, "echo", b"hi")
    """

    def __init__(self, config: NodeConfig | None = None, *, node: Node | None = None) -> None:
        super().__init__(node or Node(config))

    def broadcast(self, payload: Any, *, channel: str = "events", topic: bytes = b"") -> int:
        """See :meth:`fabric.Node.broadcast`."""
        return self._run(self.node.broadcast(payload, channel=channel, topic=topic), 30.0)

    def switch_topology(self, *args: str, expected_epoch: int | None = None) -> dict[str, Any]:
        """See :meth:`fabric.Node.switch_topology`."""
        return self._run(self.node.switch_topology(*args, expected_epoch=expected_epoch), 30.0)

    def current_topology(self) -> dict[str, Any]:
        """See :meth:`fabric.Node.current_topology`."""

        async def get() -> dict[str, Any]:
            return self.node.current_topology()

        return self._run(get(), _MARGIN)

    def service(self, name: str) -> Callable[[Service], Service]:
        """Decorator: register a plain function as service ``name`` (runs on the handler pool)."""
        return self.node.service(name)

    def add_service(self, name: str, fn: Service) -> None:
        """See :meth:`fabric.Node.add_service`."""
        self.node.add_service(name, fn)


class BlockingClient(_Blocking[Client]):
    """A :class:`~fabric.client.Client` with a synchronous API (what the CLI uses)."""

    def __init__(self, config: NodeConfig | None = None, *, client: Client | None = None) -> None:
        super().__init__(client or Client(config))

"""Blocking facade: run a :class:`~fabric.Node` on an event loop in a background thread.

For synchronous programs (and the Foundation 1.x style API). :class:`BlockingNode` has every public
method and property of :class:`~fabric.Node` with the same name and parameters (coroutines become plain
methods; tests/unit/test_blocking_surface.py compares the two with ``inspect``), and
:class:`BlockingClient` the same for :class:`~fabric.Client`. ``start`` and ``stop`` also take a
``timeout``: the facade owns the loop thread and bounds how long it waits for it.

Every method is safe to call from any thread: it hands the work to the node's loop
(:func:`asyncio.run_coroutine_threadsafe`) and waits for the result with a bounded timeout. Subscription
and service handlers registered here are plain functions; they run on worker threads (see
:mod:`fabric.node`), never on the caller's thread. Membership listeners (``on_member_event``, ``on_up``
...) and ``on_peer`` listeners run on the node's loop thread: keep them short and never call the blocking
API from them (that would deadlock; it raises NodeStateError instead).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

from .client import Client
from .config import NodeConfig
from .errors import NodeStateError
from .membership import Member
from .node import Handler, MemberListener, Node, Peer, PeerInfo, Service
from .node.endpoint import Endpoint
from .transport.faults import FaultPolicy

T = TypeVar("T")
N = TypeVar("N", bound=Endpoint)

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

    def _on_loop(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run the plain function ``fn`` on the node's loop (node state belongs to that thread)."""

        async def run() -> T:
            return fn(*args, **kwargs)

        return self._run(run(), _MARGIN)

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

    @property
    def join_address(self) -> str:
        """What another node joins through (see :attr:`fabric.Node.join_address`)."""
        return self.node.join_address

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The background event loop the wrapped node runs on (see :attr:`fabric.Node.loop`)."""
        return self.node.loop

    @property
    def incarnation(self) -> int:
        """See :attr:`fabric.Node.incarnation`."""
        return self.node.incarnation

    @property
    def running(self) -> bool:
        """See :attr:`fabric.Node.running`."""
        return self.node.running

    # operations
    def connect(self, endpoint: str, *, timeout: float | None = None) -> PeerInfo:
        """See :meth:`fabric.Node.connect`."""
        t = self.node.config.connect_timeout if timeout is None else timeout
        return self._run(self.node.connect(endpoint, timeout=t), t + _MARGIN)

    def disconnect(self, peer: Peer) -> None:
        """See :meth:`fabric.Node.disconnect`."""
        self._run(self.node.disconnect(peer), _MARGIN)

    def reload_trust(self) -> bool:
        """See :meth:`fabric.Node.reload_trust`."""
        return self._run(self.node.reload_trust(), _MARGIN)

    def send(self, peer: Peer, payload: Any, *, channel: str = "coordination", key: Any = None) -> bool:
        """See :meth:`fabric.Node.send`."""
        ch = self.node.config.channel(channel)
        return self._run(self.node.send(peer, payload, channel=channel, key=key), ch.send_timeout + _MARGIN)

    def call(
        self,
        peer: Peer,
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

    def ping(self, peer: Peer, *, timeout: float = 2.0) -> float:
        """See :meth:`fabric.Node.ping`."""
        return self._run(self.node.ping(peer, timeout=timeout), timeout + _MARGIN)

    def clock_offset(self, peer: Peer, *, timeout: float = 2.0) -> tuple[float, float]:
        """See :meth:`fabric.Node.clock_offset`."""
        return self._run(self.node.clock_offset(peer, timeout=timeout), timeout + _MARGIN)

    def subscribe(self, channel: str, handler: Handler, *, topic: bytes | None = None,
                  inline: bool = False) -> Callable[[], None]:
        """See :meth:`fabric.Node.subscribe`; ``handler`` runs on a worker thread, in order (with
        ``inline=True``: on the node's loop thread)."""
        unsubscribe = self._on_loop(self.node.subscribe, channel, handler, topic=topic, inline=inline)

        def blocking_unsubscribe() -> None:
            self._on_loop(unsubscribe)

        return blocking_unsubscribe

    def on_peer(self, listener: Callable[[str, PeerInfo], None]) -> None:
        """See :meth:`fabric.Node.on_peer` (``listener`` runs on the node's loop thread)."""
        self._on_loop(self.node.on_peer, listener)

    def peers(self) -> list[PeerInfo]:
        """See :meth:`fabric.Node.peers`."""
        return self._on_loop(self.node.peers)

    def stats(self) -> dict[str, Any]:
        """See :meth:`fabric.Node.stats`."""
        return self._on_loop(self.node.stats)

    def set_transport_faults(self, policy: FaultPolicy | None) -> None:
        """See :meth:`fabric.Node.set_transport_faults`."""
        self._on_loop(self.node.set_transport_faults, policy)

    def health(self) -> dict[str, Any]:
        """See :meth:`fabric.Node.health`."""
        return self._on_loop(self.node.health)


class BlockingNode(_Blocking[Node]):
    """A :class:`~fabric.Node` with a synchronous API, safe to call from any thread.

    >>> with BlockingNode(NodeConfig.local(name="a")) as node:   # doctest: +SKIP
    ...     node.join([seed], min_members=2)
    ...     node.call(node.alive_members()[0], "echo", b"hi")
    """

    def __init__(self, config: NodeConfig | None = None, *, node: Node | None = None) -> None:
        super().__init__(node or Node(config))

    @property
    def overlay(self) -> str:
        """See :attr:`fabric.Node.overlay`."""
        return self.node.overlay

    @property
    def joined(self) -> bool:
        """See :attr:`fabric.Node.joined`."""
        return self.node.joined

    def join(self, seeds: Sequence[str] = (), *, discovery: Any = None, min_members: int = 1,
             timeout: float | None = 30.0) -> list[Member]:
        """See :meth:`fabric.Node.join` (``timeout=None`` waits as long as it takes)."""
        coro = self.node.join(seeds, discovery=discovery, min_members=min_members, timeout=timeout)
        loop = self._loop
        if timeout is None and loop is not None and loop.is_running() and threading.current_thread() is not self._thread:
            return asyncio.run_coroutine_threadsafe(coro, loop).result()
        return self._run(coro, (timeout or 0.0) + _MARGIN)

    def members(self) -> list[Member]:
        """See :meth:`fabric.Node.members`."""
        return self._on_loop(self.node.members)

    def alive_members(self) -> list[Member]:
        """See :meth:`fabric.Node.alive_members`."""
        return self._on_loop(self.node.alive_members)

    def neighbours(self) -> list[PeerInfo]:
        """See :meth:`fabric.Node.neighbours`."""
        return self._on_loop(self.node.neighbours)

    def clients(self) -> list[PeerInfo]:
        """See :meth:`fabric.Node.clients`."""
        return self._on_loop(self.node.clients)

    def phi(self, member: Peer) -> float | None:
        """See :meth:`fabric.Node.phi`."""
        return self._on_loop(self.node.phi, member)

    def on_member_event(self, listener: MemberListener) -> Callable[[], None]:
        """See :meth:`fabric.Node.on_member_event` (``listener`` runs on the node's loop thread)."""
        return self._listener(self.node.on_member_event, listener)

    def on_up(self, listener: Callable[[Member], Any]) -> Callable[[], None]:
        """See :meth:`fabric.Node.on_up` (``listener`` runs on the node's loop thread)."""
        return self._listener(self.node.on_up, listener)

    def on_down(self, listener: Callable[[Member, str], Any]) -> Callable[[], None]:
        """See :meth:`fabric.Node.on_down` (``listener`` runs on the node's loop thread)."""
        return self._listener(self.node.on_down, listener)

    def on_change(self, listener: Callable[[Member, Member], Any]) -> Callable[[], None]:
        """See :meth:`fabric.Node.on_change` (``listener`` runs on the node's loop thread)."""
        return self._listener(self.node.on_change, listener)

    def _listener(self, register: Callable[[Any], Callable[[], None]], listener: Any) -> Callable[[], None]:
        # Before start the node has no loop yet and registering is plain list work; after, it is loop work.
        remove = register(listener) if self._loop is None else self._on_loop(register, listener)

        def blocking_remove() -> None:
            if self._loop is None:
                remove()
            else:
                self._on_loop(remove)

        return blocking_remove

    def broadcast(self, payload: Any, *, channel: str = "events", topic: bytes = b"") -> int:
        """See :meth:`fabric.Node.broadcast`."""
        return self._run(self.node.broadcast(payload, channel=channel, topic=topic), 30.0)

    def switch_topology(self, *args: str, expected_epoch: int | None = None) -> dict[str, Any]:
        """See :meth:`fabric.Node.switch_topology`."""
        return self._run(self.node.switch_topology(*args, expected_epoch=expected_epoch), 30.0)

    def current_topology(self) -> dict[str, Any]:
        """See :meth:`fabric.Node.current_topology`."""
        return self._on_loop(self.node.current_topology)

    def service(self, name: str) -> Callable[[Service], Service]:
        """Decorator: register a plain function as service ``name`` (runs on the handler pool)."""
        return self.node.service(name)

    def add_service(self, name: str, fn: Service) -> None:
        """See :meth:`fabric.Node.add_service`."""
        self.node.add_service(name, fn)

    def remove_service(self, name: str) -> None:
        """See :meth:`fabric.Node.remove_service`."""
        self.node.remove_service(name)

    def services(self) -> list[str]:
        """See :meth:`fabric.Node.services`."""
        return self.node.services()


class BlockingClient(_Blocking[Client]):
    """A :class:`~fabric.client.Client` with a synchronous API (what the CLI uses)."""

    def __init__(self, config: NodeConfig | None = None, *, client: Client | None = None) -> None:
        super().__init__(client or Client(config))

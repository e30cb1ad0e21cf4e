"""Services and calls: the request/reply half of the node.

A call is a CALL envelope with a message id on a control channel; the answer (REPLY or ERROR) carries the
id back and completes the caller's future, or :class:`CallTimeout` fires first. Incoming calls run their
service as a task (``async def`` on the loop, plain functions on a pool of ``handler_threads``), at most
``max_concurrent_requests`` at once (beyond it: an ``Overloaded`` error reply, counted
``shed_requests``), and are answered the way they came in (see ``answer`` below). PING/PONG (round trip
and clock offset) use the same pending table.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from .. import wire
from .._values import decode_value, encode_value, lane_for
from ..config import MEMBERSHIP_CHANNEL, ChannelConfig, NodeConfig
from ..errors import (
    CALL_ERRORS,
    BadRequest,
    CallError,
    CallTimeout,
    NoSuchService,
    Overloaded,
    ProtocolError,
    RemoteHandlerError,
    Unreachable,
)
from ..transport.base import Link, Transport
from ..wire import MsgType
from ..wire.types import K_CT
from .message import Service, id_text

Answer = Callable[[str, "bytes | None", "Link | None", list[bytes]], None]
"""``answer(channel, route, link, frames)``: send frames back the way a request came in."""
Enqueue = Callable[[Link, ChannelConfig, int, list[Any]], Awaitable[bool]]
"""The outboxes' ``enqueue``."""


class Calls:
    """Services offered here and calls in flight from here (see the module docstring)."""

    def __init__(self, config: NodeConfig, node_id: bytes, transport: Transport, enqueue: Enqueue, answer: Answer,
                 spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]], counters: Counter[str]) -> None:
        self._config = config
        self._node_id = node_id
        self._transport = transport
        self._enqueue = enqueue
        self._answer = answer
        self._spawn = spawn
        self._counters = counters
        self._services: dict[str, Service] = {}
        self._pending: dict[int, tuple[asyncio.Future[Any], str, str]] = {}
        self._ids = itertools.count(1)
        self.active_requests = 0
        """Incoming calls running now."""
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the node's loop and start the handler pool."""
        self._loop = loop
        self._pool = concurrent.futures.ThreadPoolExecutor(self._config.handler_threads, thread_name_prefix="fabric-svc")

    def stop(self, reason: str) -> None:
        """Fail every call in flight with :class:`Unreachable` (``reason``); stop the pool without
        waiting for running handlers."""
        for fut, peer, service in self._pending.values():
            if not fut.done():
                fut.set_exception(Unreachable(reason, peer=peer, service=service))
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def pending(self) -> int:
        """Calls and pings in flight from here."""
        return len(self._pending)

    # -- services --------------------------------------------------------------------------------------

    def add_service(self, name: str, fn: Service) -> None:
        """Register (or replace) service ``name``."""
        if not name or len(name.encode()) > wire.MAX_NAME_BYTES:
            raise ValueError(f"service name must be 1-{wire.MAX_NAME_BYTES} bytes")
        self._services[name] = fn

    def remove_service(self, name: str) -> None:
        """Unregister service ``name``."""
        self._services.pop(name, None)

    def services(self) -> list[str]:
        """Names of the registered services."""
        return sorted(self._services)

    # -- outgoing --------------------------------------------------------------------------------------

    async def call(self, link: Link, peer_text: str, ch: ChannelConfig, service: str, request: Any,
                   timeout: float | None, key: Any) -> Any:
        """Call ``service`` over ``link`` on control channel ``ch`` and wait for the answer."""
        if len(self._pending) >= self._config.max_inflight_calls:
            raise Overloaded(f"{len(self._pending)} calls already in flight", peer=peer_text, service=service)
        timeout = self._config.call_timeout if timeout is None else timeout
        body, ct = encode_value(request)
        msg_id = next(self._ids)
        lane = lane_for(key, ch.parallelism)
        frames = wire.call(
            self._node_id,
            service,
            body,
            msg_id=msg_id,
            channel=ch.name,
            lane=lane,
            timeout_ms=int(timeout * 1000),
            content_type=ct,
        )
        assert self._loop is not None
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._pending[msg_id] = (fut, peer_text, service)
        timer = self._loop.call_later(timeout, self._expire, msg_id, timeout)
        try:
            await self._enqueue(link, ch, lane, frames)
            return await fut
        finally:
            timer.cancel()
            self._pending.pop(msg_id, None)

    async def clock_offset(self, link: bytes, timeout: float) -> tuple[float, float]:
        """PING over ``link``: ``(round_trip_seconds, offset_seconds)`` (see ``Node.clock_offset``)."""
        msg_id = next(self._ids)
        assert self._loop is not None
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._pending[msg_id] = (fut, id_text(link), "ping")
        timer = self._loop.call_later(timeout, self._expire, msg_id, timeout)
        start = time.perf_counter()
        sent_wall = time.time()
        try:
            self._transport.send(link, MEMBERSHIP_CHANNEL, 0, wire.ping(self._node_id, msg_id=msg_id, wall_ms=int(sent_wall * 1000)))
            peer_wall_ms = await fut
            rtt = time.perf_counter() - start
            offset = (peer_wall_ms / 1000.0 - (sent_wall + rtt / 2)) if isinstance(peer_wall_ms, int) else 0.0
            return rtt, offset
        finally:
            timer.cancel()
            self._pending.pop(msg_id, None)

    def _expire(self, msg_id: int, timeout: float) -> None:
        entry = self._pending.pop(msg_id, None)
        if entry is not None and not entry[0].done():
            entry[0].set_exception(
                CallTimeout(f"no reply from {entry[1][:8]} to {entry[2]!r} within {timeout:g}s", peer=entry[1], service=entry[2])
            )

    # -- incoming --------------------------------------------------------------------------------------

    def on_call(self, env: wire.Envelope, channel: str, route: bytes | None, link: Link | None) -> None:
        """A CALL arrived: run its service (or answer with an error at once)."""
        h = env.header
        corr = h["i"]
        fn = self._services.get(h["sv"])
        if fn is None:
            self._answer(
                channel, route, link, wire.error(self._node_id, corr, code=NoSuchService.code, message=f"no service {h['sv']!r}")
            )
            return
        if self.active_requests >= self._config.max_concurrent_requests:
            self._counters["shed_requests"] += 1
            self._answer(
                channel,
                route,
                link,
                wire.error(self._node_id, corr, code=Overloaded.code, message=f"{self.active_requests} requests running"),
            )
            return
        self.active_requests += 1
        self._spawn(self._run_service(fn, env, corr, channel, route, link))

    async def _run_service(self, fn: Service, env: wire.Envelope, corr: int, channel: str, route: bytes | None, link: Link | None) -> None:
        try:
            try:
                request = decode_value(env.payload, env.header.get(K_CT, 0))
            except ProtocolError as exc:
                frames = wire.error(self._node_id, corr, code=BadRequest.code, etype="BadRequest", message=str(exc))
            else:
                try:
                    if inspect.iscoroutinefunction(fn):
                        result = await fn(request)
                    else:
                        assert self._loop is not None
                        result = await self._loop.run_in_executor(self._pool, fn, request)
                    body, ct = encode_value(result)
                    frames = wire.reply(self._node_id, corr, body, content_type=ct)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    frames = wire.error(
                        self._node_id, corr, code=RemoteHandlerError.code, etype=type(exc).__name__, message=str(exc)
                    )
            self._answer(channel, route, link, frames)
        finally:
            self.active_requests -= 1

    def on_answer(self, env: wire.Envelope) -> None:
        """A REPLY or ERROR arrived: complete the call it answers."""
        h = env.header
        entry = self._pending.pop(h["r"], None)
        if entry is None:
            self._counters["late_replies"] += 1  # timed out already, or a stray
            return
        fut, peer_text, service = entry
        if fut.done():
            return
        if env.type == MsgType.REPLY:
            try:
                fut.set_result(decode_value(env.payload, h.get(K_CT, 0)))
            except ProtocolError as exc:
                fut.set_exception(BadRequest(f"undecodable reply: {exc}", peer=peer_text, service=service))
            return
        code = h["ec"]
        cls = CALL_ERRORS.get(code, CallError)
        message = h.get("em", "")
        if cls is RemoteHandlerError:
            etype = h.get("et", "")
            fut.set_exception(
                RemoteHandlerError(
                    f"{service!r} on {peer_text[:8]} raised {etype}: {message}",
                    remote_type=etype,
                    remote_message=message,
                    peer=peer_text,
                    service=service,
                )
            )
        else:
            fut.set_exception(cls(message or cls.__name__, peer=peer_text, service=service))

    def on_pong(self, header: dict[str, Any]) -> None:
        """A PONG arrived: complete the ping it answers with the peer's wall clock (ms)."""
        entry = self._pending.pop(header.get("r", -1), None)
        if entry is not None and not entry[0].done():
            entry[0].set_result(header.get("ts"))

"""The admin endpoint: the node's own ROUTER socket for operators, separate from its cluster channels.

Theory of operation
-------------------
Operators (``foundation-node`` commands, :class:`~fabric.admin.AdminClient`) send fabric CALL envelopes
to :data:`~fabric.admin.ADMIN_SERVICE` on this socket and get REPLY or ERROR envelopes back (the wire
format of docs/protocol.md; no HELLO: operators are never members nor clients of the cluster). It is the
only place that serves the ops that change a node (:data:`~fabric.admin.service.MUTATING_OPS`).

* **Development mode** (no ``security.keys``): NULL security, today's behaviour: whoever reaches the
  socket may run every op. It binds loopback (``tcp://127.0.0.1:*``) unless configured otherwise, and a
  non-loopback admin bind needs ``insecure=True``, as the node's own binds do.
* **Secure mode** (``security.keys`` set): a CURVE server with the node's key pair and ZAP domain
  ``fabric/<node id>/admin`` (policy registered with :func:`fabric.security.zap.zap_for` before the bind).
  On a loopback bind any client key completes the handshake (read-only ops stay open to local tools with
  an ephemeral key); on any other bind only keys trusted as ``operator``. Every mutating op checks the
  authenticated key (the message's ``User-Id``) with ``TrustStore.allows(key, TrustRole.OPERATOR)``,
  re-reading the trust file first, so a revoked operator is refused at once.

Bad input (garbage, other message types, oversized frames refused by ``ZMQ_MAXMSGSIZE``) is counted in
:attr:`AdminEndpoint.errors` and dropped, like on every other endpoint. At most ``max_concurrent``
requests run at once; beyond that a request gets an ``Overloaded`` error at once (counted ``shed``).

Threads: the socket lives on the node's loop (its ZMQ_FD watched by the loop, as the transport's sockets
are), in the process's shared libzmq context, the one whose ZAP handler authenticates CURVE peers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from typing import Any
from urllib.parse import urlsplit

import zmq

from .. import wire
from .._values import decode_value, encode_value
from ..config import _is_loopback
from ..errors import (
    BadRequest,
    InsecureBindError,
    NoSuchService,
    Overloaded,
    ProtocolError,
    RemoteHandlerError,
)
from ..security.keys import KeyPair
from ..security.roles import TrustRole
from ..security.trust import TrustStore
from ..security.zap import stop_zap_for, zap_for
from ..transport.process import _acquire_context, _release_context
from ..wire import MsgType
from ..wire.types import K_CT
from .errors import AdminError, AdminForbidden
from .service import ADMIN_SERVICE, AdminService

log = logging.getLogger(__name__)

DEFAULT_ADMIN_BIND = "tcp://127.0.0.1:*"
"""Where the admin endpoint binds unless configured: loopback, any free port."""
MAX_ADMIN_MESSAGE = 1 << 20
"""Largest admin request accepted (bytes, ``ZMQ_MAXMSGSIZE``): a connection sending more is dropped by
libzmq before it is buffered whole."""


def admin_domain(node_id: str) -> str:
    """The ZAP domain of a node's admin endpoint (docs/security.md, "Admission rules")."""
    return f"fabric/{node_id}/admin"


def is_loopback_bind(endpoint: str) -> bool:
    """True for ``tcp://`` loopback hosts and for ``ipc://``/``inproc://`` (same host by construction)."""
    scheme = endpoint.partition("://")[0]
    if scheme in ("ipc", "inproc"):
        return True
    host = urlsplit(endpoint.replace("*", "0")).hostname or ""
    return _is_loopback(host)


class AdminEndpoint:
    """Serves an :class:`AdminService` on its own socket (see the module docstring). Start and close on
    the node's loop.

    Args:
        service: the admin service to serve (its node must be started).
        bind: ``tcp://HOST:PORT`` (``*`` for any port), ``ipc://PATH`` or ``inproc://NAME``.
        keys: the node's CURVE key pair (secure mode); None: development mode.
        trust: the trust store that names operators (required with ``keys``).
        insecure: allow a non-loopback bind without keys.
        max_concurrent: requests running at once before new ones are shed.
    """

    def __init__(self, service: AdminService, *, bind: str = DEFAULT_ADMIN_BIND, keys: KeyPair | None = None,
                 trust: TrustStore | None = None, insecure: bool = False, max_concurrent: int = 64) -> None:
        if keys is not None and trust is None:
            raise InsecureBindError("the admin endpoint in secure mode needs a trust store (security.trust)")
        self.loopback = is_loopback_bind(bind)
        if keys is None and not self.loopback and not insecure:
            raise InsecureBindError(f"admin endpoint {bind}: a non-loopback admin bind without security.keys lets anyone "
                                    "on the network operate the node; pass insecure=True (--insecure) to allow it")
        self.service = service
        self.bind_to = bind
        self.keys = keys
        self.trust = trust
        self.max_concurrent = max_concurrent
        self.errors: collections.Counter[str] = collections.Counter()
        """Bad input by category (``bad_header``, ``bad_signature``, ``not_a_call`` ...)."""
        self.counters: collections.Counter[str] = collections.Counter()
        """``received``, ``answered``, ``shed``, ``refused``."""
        self.endpoint: str | None = None
        """The bound address (``#KEY`` appended in secure mode) after :meth:`start`."""
        self._node_id = wire.node_id_bytes(service.node.id)
        self._domain = admin_domain(service.node.id)
        self._ctx: zmq.Context[Any] | None = None
        self._sock: zmq.Socket[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd: int | None = None
        self._running: set[asyncio.Task[None]] = set()

    @property
    def security(self) -> str:
        """``"curve"`` (secure mode) or ``"development"``."""
        return "curve" if self.keys is not None else "development"

    async def start(self) -> str:
        """Bind and start serving; returns the advertised endpoint. Raises zmq.ZMQError (address in use)."""
        ctx = self._ctx = _acquire_context(self.service.node.config.transport)
        try:
            if self.keys is not None:
                trust = self.trust
                assert trust is not None
                policy = (lambda _key: True) if self.loopback else (lambda key: trust.allows(key, TrustRole.OPERATOR))
                zap_for(ctx).register(self._domain, policy)  # before the bind: libzmq's ZAP trap
            sock = ctx.socket(zmq.ROUTER)
            sock.setsockopt(zmq.LINGER, 500)  # the reply to "leave" must get out before the node closes
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_ADMIN_MESSAGE)
            if self.keys is not None:
                assert self.keys.secret is not None
                sock.curve_server = True
                sock.curve_secretkey = self.keys.secret
                sock.curve_publickey = self.keys.public
                sock.zap_domain = self._domain.encode()
            try:
                sock.bind(self.bind_to)
            except zmq.ZMQError:
                sock.close(0)
                raise
        except BaseException:
            self._release()
            raise
        self._sock = sock
        address = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.endpoint = address + (f"#{self.keys.public.decode()}" if self.keys is not None else "")
        self.service.admin_endpoint = self.endpoint
        self.service.admin_security = self.security
        self.service.endpoint_stats = self.stats
        if self.keys is not None:
            self.service.authorise = self._authorise
        loop = self._loop = asyncio.get_running_loop()
        fd = self._fd = int(sock.get(zmq.FD))
        loop.add_reader(fd, self._readable)
        loop.call_soon(self._readable)  # ZMQ_FD is edge-triggered: look once now
        log.info("admin endpoint of %s on %s (%s)", self.service.node.name, address, self.security)
        return self.endpoint

    async def close(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._loop is not None and self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._fd = None
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self.service.authorise = None
        self.service.endpoint_stats = None
        waiter = self._release()
        if waiter is not None:  # wait (bounded) for queued messages to leave, as the transport does
            await asyncio.get_running_loop().run_in_executor(None, waiter.join, 3.0)

    def _release(self) -> threading.Thread | None:
        """Drop this endpoint's use of the process's context; when it was the last user, stop the ZAP
        handler and terminate the context in a thread (returned, so the caller can wait for it)."""
        ctx, self._ctx = self._ctx, None
        if ctx is None:
            return None
        if self.keys is not None:
            with contextlib.suppress(Exception):
                zap_for(ctx).unregister(self._domain)
        last = _release_context()
        if last is None:
            return None
        stop_zap_for(last)
        waiter = threading.Thread(target=last.term, name="fabric-admin-ctx-term", daemon=True)
        waiter.start()
        return waiter

    def _authorise(self, op: str, key: str | None) -> None:
        """Secure mode: a mutating op needs a key trusted as operator (the trust file is re-read first)."""
        assert self.trust is not None
        with contextlib.suppress(Exception):  # a bad file keeps the last good snapshot (and is logged there)
            self.trust.reload()
        if key is None or not self.trust.allows(key.encode(), TrustRole.OPERATOR):
            raise AdminForbidden(f"{op!r} changes the node and needs an operator key: pass --key DIR with a key "
                                 "trusted as [[operator]] in this node's trust file")

    # -- serving ---------------------------------------------------------------------------------------

    def _readable(self) -> None:
        """Drain the socket (ZMQ_FD is edge-triggered), at most a budget per loop turn."""
        sock = self._sock
        if sock is None:
            return
        for _ in range(256):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            except zmq.ZMQError as exc:  # the socket closed under us
                log.debug("admin endpoint stops reading: %s", exc)
                return
            self._request(frames)
        assert self._loop is not None
        self._loop.call_later(0, self._readable)  # a backlog: go on after the other ready work

    def _request(self, frames: list[zmq.Frame]) -> None:
        self.counters["received"] += 1
        route = frames[0].bytes
        try:
            env = wire.decode([f.bytes for f in frames[1:]])
        except ProtocolError as exc:
            self.errors[exc.category] += 1
            return
        if env.type != MsgType.CALL:
            self.errors["not_a_call"] += 1
            return
        key = str(frames[-1].get("User-Id")) if self.keys is not None else None  # who ZAP authenticated
        corr = env.header["i"]
        if env.header["sv"] != ADMIN_SERVICE:
            self._send(route, wire.error(self._node_id, corr, code=NoSuchService.code,
                                         message=f"the admin endpoint serves only {ADMIN_SERVICE!r}"))
            return
        if len(self._running) >= self.max_concurrent:
            self.counters["shed"] += 1
            self._send(route, wire.error(self._node_id, corr, code=Overloaded.code,
                                         message=f"{len(self._running)} admin requests running"))
            return
        assert self._loop is not None
        task = self._loop.create_task(self._run(route, env, corr, key))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, route: bytes, env: wire.Envelope, corr: int, key: str | None) -> None:
        try:
            request = decode_value(env.payload, env.header.get(K_CT, 0))
        except ProtocolError as exc:
            self.errors[exc.category] += 1
            self._send(route, wire.error(self._node_id, corr, code=BadRequest.code, etype="BadRequest",
                                         message=str(exc)))
            return
        try:
            result = await self.service.handle_as(request, key=key, via_endpoint=True)
            body, ct = encode_value(result)
            frames = wire.reply(self._node_id, corr, body, content_type=ct)
        except asyncio.CancelledError:
            raise
        except AdminError as exc:
            if isinstance(exc, AdminForbidden):
                self.counters["refused"] += 1
            frames = wire.error(self._node_id, corr, code=RemoteHandlerError.code, etype=type(exc).__name__,
                                message=str(exc))
        except Exception as exc:  # an op's bug: answered, never a dead endpoint
            log.exception("admin op failed")
            frames = wire.error(self._node_id, corr, code=RemoteHandlerError.code, etype=type(exc).__name__,
                                message=str(exc))
        self._send(route, frames)

    def _send(self, route: bytes, frames: list[bytes]) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sock.send_multipart([route, *frames], zmq.NOBLOCK)  # a ROUTER drops at its HWM, never blocks
            self.counters["answered"] += 1
        except zmq.ZMQError:
            self.counters["unanswered"] += 1
        try:  # a send can consume the ZMQ_FD edge that announced new input: look again
            if int(sock.get(zmq.EVENTS)) & zmq.POLLIN and self._loop is not None:
                self._loop.call_soon(self._readable)
        except zmq.ZMQError:
            pass

    def stats(self) -> dict[str, Any]:
        """Counters and bad input (what ``stats`` and the flood test read)."""
        return {"endpoint": self.endpoint, "security": self.security, "errors": dict(self.errors),
                "counters": dict(self.counters), "running": len(self._running)}


__all__ = ["DEFAULT_ADMIN_BIND", "MAX_ADMIN_MESSAGE", "AdminEndpoint", "admin_domain", "is_loopback_bind"]

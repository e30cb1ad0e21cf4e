"""The ZAP handler (ZeroMQ RFC 27): who may complete a CURVE handshake with this process's sockets.

libzmq asks the handler bound at ``inproc://zeromq.zap.01`` *in the same context* about every CURVE
handshake, and — the trap — accepts every client that knows the server's public key when no handler is
bound (see ../shared/reference and libzmq#2594). So :func:`zap_for` starts the handler before a node
binds its first CURVE socket, and it lives as long as the context.

All nodes of one process share one libzmq context (fabric.transport.process), hence one handler. Each
node registers a *domain* (``ZMQ_ZAP_DOMAIN`` on its bound sockets, one per node) with a policy
``policy(public_key_z85) -> bool``; a request for an unregistered domain is refused. The authenticated
``User-Id`` is the client's Z85 public key, which the receive path reads per message to prove who sent it.

The handler is pyzmq's :class:`zmq.auth.thread.ThreadAuthenticator` (well kept, protocol-complete), with
one credentials provider for every domain that dispatches to the registered policies. Process-wide
state: visible in :func:`zap_stats` and a node's ``stats()["security"]``; a second ZAP handler bound in
this context by someone else is a :class:`~fabric.errors.ProcessSettingsConflict`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

from ..errors import ProcessSettingsConflict

log = logging.getLogger(__name__)

Policy = Callable[[bytes], bool]
"""``policy(client_public_key_z85) -> allowed``; runs on the ZAP thread, so it must be thread-safe and
quick (read an immutable snapshot)."""

ZAP_ENDPOINT = "inproc://zeromq.zap.01"


class _Dispatch:
    """The one credentials provider: finds the domain's policy, counts the outcome."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.policies: dict[str, Policy] = {}
        self.counters: Counter[str] = Counter()

    def callback(self, domain: str, key: bytes) -> bool:
        with self.lock:
            policy = self.policies.get(domain)
        if policy is None:
            self.counters["refused_unknown_domain"] += 1
            return False
        try:
            allowed = bool(policy(key))
        except Exception:  # a policy bug must refuse, never crash the handler thread
            log.exception("ZAP policy for %s failed; refusing", domain)
            allowed = False
        self.counters["accepted" if allowed else "refused"] += 1
        return allowed


class ZapHandler:
    """The process's ZAP handler for one libzmq context (see the module docstring)."""

    def __init__(self, ctx: zmq.Context[Any]) -> None:
        self.ctx = ctx
        self._dispatch = _Dispatch()
        self._auth = ThreadAuthenticator(ctx, log=logging.getLogger("fabric.security.zap.pyzmq"))
        try:
            self._auth.start()
        except zmq.ZMQError as exc:
            raise ProcessSettingsConflict(
                f"cannot start the ZAP handler ({exc}): another ZAP handler is bound in this process's "
                "libzmq context; the fabric needs its own to authenticate CURVE peers") from None
        self._auth.configure_curve_callback("*", self._dispatch)
        # An empty domain falls back to "*" in pyzmq: give it no policy so it is refused (every fabric
        # CURVE socket sets its domain).

    def register(self, domain: str, policy: Policy) -> None:
        """Put ``policy`` in force for ``domain`` (a node's sockets' ``ZMQ_ZAP_DOMAIN``)."""
        if not domain or domain == "*":
            raise ValueError("a ZAP domain must be a non-empty name other than '*'")
        with self._dispatch.lock:
            if domain in self._dispatch.policies:
                raise ProcessSettingsConflict(f"ZAP domain {domain!r} is already registered in this process")
            self._dispatch.policies[domain] = policy
            self._auth.configure_curve_callback(domain, self._dispatch)

    def unregister(self, domain: str) -> None:
        """Forget ``domain``: its later handshakes are refused."""
        with self._dispatch.lock:
            self._dispatch.policies.pop(domain, None)
            self._auth.credentials_providers.pop(domain, None)

    @property
    def domains(self) -> list[str]:
        with self._dispatch.lock:
            return sorted(self._dispatch.policies)

    def stats(self) -> dict[str, Any]:
        """Handshakes accepted and refused (all domains), and the registered domains."""
        return {"domains": len(self.domains), **dict(self._dispatch.counters)}

    def stop(self) -> None:
        """Stop the handler thread (call before terminating the context)."""
        self._auth.stop()


_lock = threading.Lock()
_handlers: dict[int, ZapHandler] = {}


def zap_for(ctx: zmq.Context[Any]) -> ZapHandler:
    """The ZAP handler of ``ctx``, started on first use (before any CURVE socket of ``ctx`` binds)."""
    with _lock:
        h = _handlers.get(id(ctx))
        if h is None or h.ctx is not ctx:
            h = _handlers[id(ctx)] = ZapHandler(ctx)
        return h


def stop_zap_for(ctx: zmq.Context[Any]) -> None:
    """Stop ``ctx``'s handler, if any (the context is about to be terminated)."""
    with _lock:
        h = _handlers.pop(id(ctx), None)
    if h is not None:
        h.stop()


def zap_stats() -> dict[str, Any]:
    """Process-wide ZAP state: whether a handler runs, and its counters."""
    with _lock:
        hs = list(_handlers.values())
    if not hs:
        return {"running": False}
    return {"running": True, **hs[0].stats()}

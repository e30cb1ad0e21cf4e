"""The operator's blocking client of a node's admin service (what every ``foundation-node`` command uses).

The client speaks to the node's *admin endpoint* (:class:`~fabric.admin.endpoint.AdminEndpoint`): fabric
CALL envelopes to :data:`~fabric.admin.ADMIN_SERVICE` over a DEALER socket, answered by REPLY or ERROR.
Given the node's seed (membership) address instead, it asks the node there (the read-only ``fabric.admin``
service on the cluster channels) where its admin endpoint is, and goes there. Operators never join the
cluster; only :meth:`AdminClient.send` and :meth:`AdminClient.call` without a target open a client-role
link (HELLO) to the node, since they send as the client itself.

Secure mode: the address carries the node's public key, ``tcp://HOST:PORT#KEY`` (Z85, or 64 hex digits), and
the client authenticates with CURVE: with ``key_dir`` (``--key DIR``) the operator key pair in that
directory, else an ephemeral key pair, which a node accepts on a loopback admin endpoint for read-only
ops only. Every failure becomes one of the admin errors with a one-line message. Blocking; runs on the
caller's thread.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import zmq

from .. import wire
from .._values import decode_value, encode_value
from ..blocking import BlockingClient
from ..config import NodeConfig
from ..errors import (
    CALL_ERRORS,
    CallError,
    CallTimeout,
    FabricError,
    NoSuchService,
    ProtocolError,
    RemoteHandlerError,
    Unreachable,
    VersionMismatch,
)
from ..node import PeerInfo
from ..security.keys import KeyPair, load_keypair
from ..settings import check_endpoint
from .errors import AdminForbidden, AdminRemoteError, AdminUnreachable, AdminUnsupported
from .service import ADMIN_SERVICE


def split_key(endpoint: str) -> tuple[str, bytes | None]:
    """``tcp://HOST:PORT#KEY`` -> (address, Z85 key or None). KEY is 40 Z85 characters or 64 hex digits.
    Raises AdminUnreachable for a malformed key."""
    address, sep, key = endpoint.partition("#")
    if not sep:
        return endpoint, None
    if len(key) == 64:
        try:
            return address, zmq.utils.z85.encode(bytes.fromhex(key))
        except ValueError:
            pass
    elif len(key) == 40:
        try:
            zmq.utils.z85.decode(key.encode())
            return address, key.encode()
        except Exception:
            pass
    raise AdminUnreachable(f"{endpoint}: the part after '#' must be the node's public key (40 Z85 characters or 64 hex)")


class _Dealer:
    """One DEALER to an admin endpoint (or a node's seed): request/reply with a timeout."""

    def __init__(self, address: str, server_key: bytes | None, keys: KeyPair) -> None:
        self.address = address
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if server_key is not None:
            self.sock.curve_serverkey = server_key
            self.sock.curve_publickey = keys.public
            assert keys.secret is not None
            self.sock.curve_secretkey = keys.secret
        self.sock.connect(address)
        self.source = wire.new_node_id()
        self.ids = itertools.count(1)

    def call(self, request: Any, timeout: float) -> Any:
        """Run one admin request; raises CallTimeout, a CallError subclass (RemoteHandlerError...)."""
        body, ct = encode_value(request)
        msg_id = next(self.ids)
        self.sock.send_multipart(wire.call(self.source, ADMIN_SERVICE, body, msg_id=msg_id,
                                           timeout_ms=int(timeout * 1000), content_type=ct))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000) + 1):
                raise CallTimeout(f"no answer within {timeout:g}s")
            try:
                env = wire.decode(self.sock.recv_multipart())
            except ProtocolError:
                continue
            if env.type not in (wire.MsgType.REPLY, wire.MsgType.ERROR) or env.header["r"] != msg_id:
                continue  # a late answer to an earlier request
            if env.type == wire.MsgType.REPLY:
                return decode_value(env.payload, env.header.get("ct", 0))
            code, message = env.header["ec"], env.header.get("em", "")
            if code == RemoteHandlerError.code:
                raise RemoteHandlerError(message, remote_type=env.header.get("et", ""), remote_message=message)
            raise CALL_ERRORS.get(code, CallError)(message or "error")

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


class AdminClient:
    """Blocking client of a node's admin service (the CLI's only way in). Not thread-safe.

    ``endpoint`` is the node's admin endpoint or its seed address (``#KEY`` appended in secure mode);
    ``key_dir`` a directory holding the operator's key pair (``node.key``; ``foundation-node keys
    generate``). ``progress(text)`` receives lines about slow steps (connecting). Every method raises
    :class:`AdminUnreachable`, :class:`AdminUnsupported` or :class:`AdminRemoteError` (:class:`AdminForbidden`
    when the node refuses a mutating op) with a one-line message; nothing else escapes except
    KeyboardInterrupt (and KeyFileError, a ConfigError, for an unusable ``key_dir``).
    """

    def __init__(self, endpoint: str, *, timeout: float = 3.0, progress: Callable[[str], None] | None = None,
                 key_dir: str | None = None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.progress = progress or (lambda _t: None)
        self.key_dir = key_dir
        self.client: BlockingClient | None = None
        self._config = NodeConfig.local(name="cli")
        self.peer: PeerInfo | None = None
        """The node: from the admin ``hello`` (or the client link's HELLO once :meth:`send`/:meth:`call` ran)."""
        self.admin_endpoint: str | None = None
        """The admin endpoint the ops go to (after :meth:`open`)."""
        self.seed: str | None = None
        self._dealer: _Dealer | None = None
        self._linked: PeerInfo | None = None

    def __enter__(self) -> AdminClient:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> PeerInfo:
        """Reach the node's admin service (following a seed address to the admin endpoint); returns the
        node's identity."""
        address, server_key = split_key(self.endpoint)
        try:
            check_endpoint(address)
        except ValueError as exc:
            raise AdminUnreachable(str(exc)) from None
        keys = load_keypair(self.key_dir) if self.key_dir else KeyPair.generate()
        self.progress(f"connecting to {self.endpoint} ...")
        self._dealer = _Dealer(address, server_key, keys)
        hello = self._hello()
        admin = hello.get("admin")
        if hello.get("endpoint") == "node" and isinstance(admin, str) and admin:
            # A seed address: the node names its admin endpoint (where the ops that change it are served).
            self.seed = address
            self._dealer.close()
            admin_address, admin_key = split_key(admin)
            self._dealer = _Dealer(admin_address, admin_key or server_key, keys)
            hello = self._hello()
        self.admin_endpoint = hello.get("admin") if isinstance(hello.get("admin"), str) else None
        node_id = hello.get("id")
        incarnation = hello.get("incarnation")
        self.peer = PeerInfo(id=node_id if isinstance(node_id, str) else "", name=str(hello.get("name", "")),
                             incarnation=incarnation if isinstance(incarnation, int) else 0,
                             endpoints={}, version=wire.PROTOCOL_VERSION)
        return self.peer

    def _hello(self) -> dict[str, Any]:
        assert self._dealer is not None
        address = self._dealer.address
        try:
            reply = self._dealer.call({"op": "hello"}, self.timeout)
        except NoSuchService:
            self.close()
            raise AdminUnsupported(
                f"the node at {self.endpoint} has no admin service (was it started with foundation-node start?)"
            ) from None
        except CallTimeout:
            self.close()
            raise AdminUnreachable(
                f"no fabric node answers at {address} within {self.timeout:g}s; is it running, and is that its "
                "seed (membership) address or admin address (with #KEY in secure mode)?"
            ) from None
        except (CallError, FabricError) as exc:
            self.close()
            raise AdminUnreachable(f"hello to {self.endpoint} failed: {exc}") from None
        if not isinstance(reply, dict):
            self.close()
            raise AdminUnreachable(f"{self.endpoint} answered hello with {type(reply).__name__}, not a map")
        return reply

    def close(self) -> None:
        """Close the admin connection and the client link, if any (says BYE). Idempotent."""
        if self._dealer is not None:
            dealer, self._dealer = self._dealer, None
            dealer.close()
        if self.client is not None:
            client, self.client = self.client, None
            with contextlib.suppress(Exception):
                client.stop(timeout=5.0)

    def _require(self) -> _Dealer:
        if self._dealer is None:
            self.open()
        assert self._dealer is not None
        return self._dealer

    def handshake(self) -> PeerInfo:
        """Say HELLO to ``endpoint`` as a client-role peer (a seed address): what ``doctor`` checks first
        (protocol versions). Returns the node's identity; raises AdminUnreachable ("version mismatch ...")."""
        address, _key = split_key(self.endpoint)
        try:
            check_endpoint(address)
        except ValueError as exc:
            raise AdminUnreachable(str(exc)) from None
        self.seed = address
        return self._link()[1]

    def _link(self) -> tuple[BlockingClient, PeerInfo]:
        """A client-role link (HELLO) to the node's seed, for sending as this client."""
        if self.client is not None and self._linked is not None:
            return self.client, self._linked
        seed = self.seed or self.op("status").get("seed")
        if not isinstance(seed, str) or not seed:
            raise AdminRemoteError("the node reports no seed address to send to")
        self.progress(f"saying HELLO to {seed} ...")
        cfg = NodeConfig.local(name=f"cli-{os.getpid()}", connect_timeout=self.timeout, call_timeout=self.timeout)
        self._config = cfg
        self.client = BlockingClient(cfg)
        self.client.start()
        try:
            self._linked = self.client.connect(seed, timeout=self.timeout)
        except VersionMismatch as exc:
            self.close()
            raise AdminUnreachable(f"version mismatch with {seed}: {exc}") from None
        except (Unreachable, CallError, TimeoutError) as exc:
            self.close()
            raise AdminUnreachable(
                f"no fabric node answers at {seed} within {self.timeout:g}s ({exc}); "
                "is it running, and is that its seed (membership) address?"
            ) from None
        self.peer = self._linked
        return self.client, self._linked

    def op(self, op: str, *, wait: float | None = None, **args: Any) -> Any:
        """Run admin ``op`` with ``args`` on the node, waiting up to ``wait`` seconds (default the
        client's timeout); returns the decoded reply."""
        dealer = self._require()
        timeout = wait or self.timeout
        try:
            return dealer.call({"op": op, **args}, timeout)
        except (ValueError, TypeError, OverflowError) as exc:  # an argument msgpack cannot carry
            raise AdminRemoteError(f"{op}: {exc}") from None
        except NoSuchService:
            raise AdminUnsupported(
                f"the node at {self.endpoint} has no admin service (was it started with foundation-node start?)"
            ) from None
        except RemoteHandlerError as exc:
            if exc.remote_type == "AdminUnsupported":
                raise AdminUnsupported(exc.remote_message) from None
            if exc.remote_type == "AdminForbidden":
                raise AdminForbidden(exc.remote_message) from None
            raise AdminRemoteError(exc.remote_message) from None
        except CallTimeout:
            raise AdminUnreachable(f"the node at {self.endpoint} did not answer {op!r} within {timeout:g}s") from None
        except (CallError, FabricError, TimeoutError) as exc:
            raise AdminUnreachable(f"{op} on {self.endpoint} failed: {exc}") from None

    def send(self, payload: Any, *, channel: str = "coordination", key: Any = None) -> bool:
        """Send ``payload`` from this client straight to the node on ``channel``."""
        client, peer = self._link()
        self._check_channel(channel)
        try:
            return client.send(peer.id, payload, channel=channel, key=key)
        except (ValueError, TypeError, OverflowError) as exc:
            raise AdminRemoteError(f"send: {exc}") from None
        except (FabricError, TimeoutError) as exc:
            raise AdminUnreachable(f"send to {self.endpoint} failed: {exc}") from None

    def call(self, service: str, request: Any, *, timeout: float | None = None, channel: str = "coordination") -> Any:
        """Call ``service`` on the node itself (not through the admin service)."""
        client, peer = self._link()
        self._check_channel(channel)
        try:
            return client.call(peer.id, service, request, timeout=timeout or self.timeout, channel=channel)
        except NoSuchService:
            raise AdminRemoteError(f"the node has no service {service!r}") from None
        except RemoteHandlerError as exc:
            raise AdminRemoteError(f"{service!r} raised {exc.remote_type}: {exc.remote_message}") from None
        except CallTimeout:
            raise AdminRemoteError(f"{service!r} did not answer within {timeout or self.timeout:g}s") from None
        except (ValueError, TypeError, OverflowError) as exc:
            raise AdminRemoteError(f"call {service!r}: {exc}") from None
        except (CallError, FabricError, TimeoutError) as exc:
            raise AdminUnreachable(f"call {service!r} on {self.endpoint} failed: {exc}") from None

    def _check_channel(self, channel: str) -> None:
        """The node and this client must both have ``channel`` (the client has the default channels)."""
        assert self._linked is not None
        mine = [c.name for c in self._config.channels]
        theirs = list(self._linked.channels) or mine
        if channel not in mine or channel not in theirs:
            usable = [c for c in mine if c in theirs and c != "membership"]
            raise AdminRemoteError(f"unknown channel {channel!r}; usable channels: {', '.join(usable)}")

    def watch_members(self, *, interval: float, count: int | None) -> Iterator[list[dict[str, Any]]]:
        """Yield the member list every ``interval`` seconds, ``count`` times (None: until interrupted)."""
        n = 0
        while count is None or n < count:
            if n:
                time.sleep(interval)  # a display refresh period, not a wait for logic
            yield self.op("members")
            n += 1

    def wait_members(self, alive: int, *, timeout: float, progress: Callable[[int, int], None]) -> list[dict[str, Any]]:
        """Poll until at least ``alive`` members are alive; ``progress(now, wanted)`` on each change.

        Raises AdminRemoteError when ``timeout`` passes first.
        """
        deadline = time.monotonic() + timeout
        last = -1
        while True:
            members = self.op("members")
            up = sum(m["state"] == "alive" for m in members)
            if up != last:
                progress(up, alive)
                last = up
            if up >= alive:
                return list(members)
            if time.monotonic() > deadline:
                raise AdminRemoteError(f"only {up} of {alive} members alive after {timeout:g}s")
            time.sleep(0.2)

    def watch_config(self, *, count: int | None, poll: float = 2.0) -> Iterator[dict[str, Any]]:
        """Yield Foundation config changes as they happen (``count`` of them, None: until interrupted)."""
        cursor = self.op("config.poll", cursor=-1)["cursor"]
        n = 0
        while count is None or n < count:
            reply = self.op("config.poll", wait=poll + self.timeout, cursor=cursor, timeout=poll)
            cursor = reply["cursor"]
            for change in reply["changes"]:
                yield change
                n += 1
                if count is not None and n >= count:
                    return


__all__ = ["AdminClient", "split_key"]

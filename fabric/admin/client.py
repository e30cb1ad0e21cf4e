"""The operator's blocking client of a node's admin service (what every ``foundation-node`` command uses).

The client is a *client-role* peer (:class:`~fabric.BlockingClient`): it says HELLO to the node's seed
address, is never a member, and runs admin ops as calls to :data:`~fabric.admin.ADMIN_SERVICE`. Every
failure becomes one of the admin errors with a one-line message. Blocking; runs on the caller's thread.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..blocking import BlockingClient
from ..config import NodeConfig
from ..errors import (
    CallError,
    CallTimeout,
    FabricError,
    NoSuchService,
    RemoteHandlerError,
    Unreachable,
    VersionMismatch,
)
from ..node import PeerInfo
from ..settings import check_endpoint
from .errors import AdminRemoteError, AdminUnreachable, AdminUnsupported
from .service import ADMIN_SERVICE


class AdminClient:
    """Blocking client of a node's admin service (the CLI's only way in). Not thread-safe.

    ``progress(text)`` receives lines about slow steps (connecting). Every method raises
    :class:`AdminUnreachable`, :class:`AdminUnsupported` or :class:`AdminRemoteError` with a one-line
    message; nothing else escapes except KeyboardInterrupt.
    """

    def __init__(self, endpoint: str, *, timeout: float = 3.0, progress: Callable[[str], None] | None = None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.progress = progress or (lambda _t: None)
        self.client: BlockingClient | None = None
        self._config = NodeConfig.local(name="cli")
        self.peer: PeerInfo | None = None

    def __enter__(self) -> AdminClient:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> PeerInfo:
        """Say HELLO to the node as a client-role peer; returns its identity."""
        try:
            check_endpoint(self.endpoint)
        except ValueError as exc:
            raise AdminUnreachable(str(exc)) from None
        cfg = NodeConfig.local(name=f"cli-{os.getpid()}", connect_timeout=self.timeout, call_timeout=self.timeout)
        self._config = cfg
        self.client = BlockingClient(cfg)
        self.client.start()
        self.progress(f"connecting to {self.endpoint} ...")
        try:
            self.peer = self.client.connect(self.endpoint, timeout=self.timeout)
        except VersionMismatch as exc:
            self.close()
            raise AdminUnreachable(f"version mismatch with {self.endpoint}: {exc}") from None
        except (Unreachable, CallError, TimeoutError) as exc:
            self.close()
            raise AdminUnreachable(
                f"no fabric node answers at {self.endpoint} within {self.timeout:g}s ({exc}); "
                "is it running, and is that its seed (membership) address?"
            ) from None
        return self.peer

    def close(self) -> None:
        """Close the client (says BYE to the node). Idempotent."""
        if self.client is not None:
            client, self.client = self.client, None
            with contextlib.suppress(Exception):
                client.stop(timeout=5.0)

    def _require(self) -> tuple[BlockingClient, PeerInfo]:
        if self.client is None or self.peer is None:
            self.open()
        assert self.client is not None and self.peer is not None
        return self.client, self.peer

    def op(self, op: str, *, wait: float | None = None, **args: Any) -> Any:
        """Run admin ``op`` with ``args`` on the node, waiting up to ``wait`` seconds (default the
        client's timeout); returns the decoded reply."""
        client, peer = self._require()
        timeout = wait or self.timeout
        try:
            return client.call(peer.id, ADMIN_SERVICE, {"op": op, **args}, timeout=timeout)
        except (ValueError, TypeError, OverflowError) as exc:  # an argument msgpack cannot carry
            raise AdminRemoteError(f"{op}: {exc}") from None
        except NoSuchService:
            raise AdminUnsupported(
                f"the node at {self.endpoint} has no admin service (was it started with foundation-node start?)"
            ) from None
        except RemoteHandlerError as exc:
            if exc.remote_type == "AdminUnsupported":
                raise AdminUnsupported(exc.remote_message) from None
            raise AdminRemoteError(exc.remote_message) from None
        except CallTimeout:
            raise AdminUnreachable(f"the node at {self.endpoint} did not answer {op!r} within {timeout:g}s") from None
        except (CallError, FabricError, TimeoutError) as exc:
            raise AdminUnreachable(f"{op} on {self.endpoint} failed: {exc}") from None

    def send(self, payload: Any, *, channel: str = "coordination", key: Any = None) -> bool:
        """Send ``payload`` from this client straight to the node on ``channel``."""
        client, peer = self._require()
        self._check_channel(channel)
        try:
            return client.send(peer.id, payload, channel=channel, key=key)
        except (ValueError, TypeError, OverflowError) as exc:
            raise AdminRemoteError(f"send: {exc}") from None
        except (FabricError, TimeoutError) as exc:
            raise AdminUnreachable(f"send to {self.endpoint} failed: {exc}") from None

    def call(self, service: str, request: Any, *, timeout: float | None = None, channel: str = "coordination") -> Any:
        """Call ``service`` on the node itself (not through the admin service)."""
        client, peer = self._require()
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
        assert self.client is not None and self.peer is not None
        mine = [c.name for c in self._config.channels]
        theirs = list(self.peer.channels) or mine
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


__all__ = ["AdminClient"]

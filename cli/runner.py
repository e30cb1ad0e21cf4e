"""The node runner behind ``foundation-node start``: compose a node, its admin service and HTTP endpoint.

Theory of operation
-------------------
:func:`run_node` starts the HTTP endpoint first (so its URL can travel in the node's metadata), then the
:class:`fabric.Node`, installs the :class:`fabric.admin.AdminService`, and joins the cluster with
:meth:`fabric.Node.join` through the configured seeds and discovery strategy (any registered one:
``static``, ``dns``, ``mdns``, ``gossip``, ``consul``, ``kubernetes``, ``multi``, plugins). Joining is
the node's own business on every overlay: seeds that do not answer yet are retried in the background
with the membership's join backoff, the node adopts the cluster's overlay, and failure detection is the
overlay's. The runner only reports: one progress line when the join starts, when the node has joined,
and when a member comes up, goes down or leaves.

It runs until a stop is asked for (SIGTERM/SIGINT, the ``leave`` op, or the ``stop`` event); the node
then says BYE to its peers and closes. Everything runs on the caller's asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fabric import Node, wire
from fabric.admin import AdminEndpoint, AdminService, NodeStartError
from fabric.errors import ConfigError, FabricError, JoinTimeout
from fabric.http import HttpEndpoint
from fabric.security.keys import KeyPair, load_keypair
from fabric.security.trust import TrustStore
from fabric.settings import StartSettings

log = logging.getLogger(__name__)

WallClock = Callable[[], float]
"""Seconds since the Unix epoch (``time.time``); injected so tests can skew a node's clock."""

_MEMBER_EVENTS = {"MemberUp": "up", "MemberDown": "down", "MemberLeft": "left"}


@dataclass
class RunningNode:
    """What :func:`run_node` reports once the node is up (for the ready line and tests)."""

    node: Node
    admin: AdminService
    http_url: str | None
    seeds: SeedWatch
    admin_endpoint: AdminEndpoint | None = None
    """The operators' socket (see :mod:`fabric.admin.endpoint`); its address is ``admin_endpoint.endpoint``."""


class SeedWatch:
    """The configured seeds as the membership sees them: a seed is *linked* when a member that is up
    advertises it as its membership endpoint (on a partial-view overlay it need not be a neighbour)."""

    def __init__(self, node: Node, seeds: tuple[str, ...]) -> None:
        self.node = node
        self.seeds = tuple(dict.fromkeys(seeds))

    def status(self) -> list[dict[str, Any]]:
        """Per seed: ``seed``, ``linked``, ``peer`` (name), ``peer_id``, ``last_error``."""
        at: dict[str, tuple[str, str, str]] = {}
        for m in self.node.members():
            endpoint = dict(m.endpoints).get("membership")
            if endpoint:
                node_id = wire.node_id_str(m.node_id) if isinstance(m.node_id, bytes) else str(m.node_id)
                at[endpoint[1]] = (m.name, node_id, str(getattr(m.status, "value", m.status)))
        out = []
        for seed in self.seeds:
            name, node_id, status = at.get(seed, ("", "", ""))
            linked = status in ("alive", "suspect")
            error = "" if linked else (f"the member there is {status}" if status else "no member from this seed yet")
            out.append({"seed": seed, "linked": linked, "peer": name, "peer_id": node_id or None, "last_error": error})
        return out


def foundation_config() -> Any:
    """The Foundation 1.x ``Config`` service, started, or None when Foundation is not importable."""
    try:
        import foundation
    except ImportError:
        return None
    cfg = getattr(foundation, "Config", None)
    if cfg is None:
        return None
    try:
        cfg.initialize()
    except Exception as exc:  # a broken Foundation config must not keep the node from starting
        log.warning("Foundation Config not available: %s", exc)
        return None
    return cfg


def _admin_security(settings: StartSettings) -> tuple[KeyPair | None, TrustStore | None]:
    """The node's key pair and trust store (secure mode), or (None, None). Raises NodeStartError."""
    sec = settings.node.security
    if sec.keys is None:
        return None, None
    if sec.trust is None:
        raise NodeStartError("security.keys is set but security.trust is not: secure mode needs a trust file")
    try:
        return load_keypair(sec.keys), TrustStore(sec.trust)
    except ConfigError as exc:
        raise NodeStartError(f"security: {exc}") from None


def _make_discovery(settings: StartSettings) -> Any:
    if settings.discovery is None:
        return None
    from fabric.discovery import DiscoveryError, registry

    try:
        return registry.create(settings.discovery, settings.discovery_config)
    except DiscoveryError as exc:
        raise NodeStartError(f"discovery {settings.discovery}: {exc}") from None


async def run_node(
    settings: StartSettings,
    *,
    ready: Callable[[RunningNode], None] | None = None,
    progress: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    install_signals: bool = True,
    clock: WallClock = time.time,
) -> str:
    """Run a node until a stop is asked for; returns why it stopped (``"signal SIGTERM"``, ``"leave"``).

    Order: HTTP endpoint, node start, admin service and its endpoint, join (seeds and discovery; the node keeps trying
    in the background), ``ready(...)``. On SIGTERM/SIGINT (when ``install_signals``), the ``leave`` op,
    or ``stop`` being set: the node says BYE to its peers and closes. Raises :class:`NodeStartError`
    when it cannot bind or the discovery strategy cannot start.
    """
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    reason = ["stop requested"]
    say = progress or (lambda text: log.info("%s", text))

    def request_stop(why: str) -> None:
        reason[0] = why
        stop.set()

    http: HttpEndpoint | None = None
    config = settings.node
    keys, trust = _admin_security(settings)
    plugin = _make_discovery(settings)
    if settings.http_port is not None:
        http = HttpEndpoint(settings.http_host, settings.http_port)
        try:
            await http.start()
        except OSError as exc:
            raise NodeStartError(f"http_port: cannot listen on {settings.http_host}:{settings.http_port}: {exc.strerror or exc}") from None
        config = config.replace(metadata={**config.metadata, "http": http.url})
    node = Node(config)
    seeds = SeedWatch(node, settings.seeds)
    admin = AdminService(node, clock=clock, on_leave=lambda: request_stop("leave"),
                         seeds=seeds.status if seeds.seeds else None, http_url=http.url if http else None,
                         config_service=foundation_config(), member_expiry=settings.member_expiry)
    admin.install()

    def membership_progress(event: Any) -> None:
        kind = type(event).__name__
        if kind == "Joined":
            say(f"joined the cluster ({node.overlay}): {len(node.alive_members())} members alive")
            return
        member = getattr(event, "member", None)
        if member is None or kind not in _MEMBER_EVENTS:
            return
        say(f"member {member.name} {_MEMBER_EVENTS[kind]}: {len(node.alive_members())} members alive")

    node.on_member_event(membership_progress)
    try:
        await node.start()
    except Exception as exc:  # ZMQError (address in use), ConfigError, OSError: one message for all
        if http is not None:
            await http.close()
        with contextlib.suppress(Exception):
            await node.stop()
        raise NodeStartError(f"cannot start node {config.name} on {config.bind} port {config.port}: {exc}") from None
    host = settings.admin_host
    try:
        admin_endpoint = AdminEndpoint(admin, bind=f"tcp://{f'[{host}]' if ':' in host else host}:{settings.admin_port or '*'}",
                                       keys=keys, trust=trust, insecure=config.insecure)
        await admin_endpoint.start()
    except Exception as exc:  # ZMQError (address in use), InsecureBindError
        with contextlib.suppress(Exception):
            await node.stop()
        if http is not None:
            await http.close()
        raise NodeStartError(f"cannot bind the admin endpoint on {host} port {settings.admin_port}: {exc}") from None
    try:
        if seeds.seeds or plugin is not None:
            via = [f"{len(seeds.seeds)} seed(s)"] if seeds.seeds else []
            via += [f"discovery {settings.discovery}"] if plugin is not None else []
            say(f"joining the cluster through {' and '.join(via)}: {', '.join(seeds.seeds)}".rstrip(": "))
        # timeout=0: start joining (and discovery) now and return; the node keeps trying in the background
        with contextlib.suppress(JoinTimeout):
            await node.join(settings.seeds, discovery=plugin, timeout=0)
    except (FabricError, OSError, ValueError) as exc:  # discovery would not start (port in use, bad backend)
        with contextlib.suppress(Exception):
            await node.stop()
        await admin_endpoint.close()
        if http is not None:
            await http.close()
        raise NodeStartError(f"cannot join: {exc}") from None
    if http is not None:
        http.attach(admin)
        admin.http_stats = http.stats
    installed = []
    if install_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, request_stop, f"signal {sig.name}")
                installed.append(sig)
            except (NotImplementedError, RuntimeError):
                pass
    try:
        if ready is not None:
            ready(RunningNode(node, admin, http.url if http else None, seeds, admin_endpoint))
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await admin_endpoint.close()  # first: the node's transport, closing last, flushes the BYEs
        await node.stop()  # says BYE to every peer, stops discovery
        if http is not None:
            await http.close()
        if admin.config_service is not None:
            with contextlib.suppress(Exception):
                admin.config_service.unsubscribe(admin)
    return reason[0]


__all__ = ["RunningNode", "SeedWatch", "foundation_config", "run_node"]

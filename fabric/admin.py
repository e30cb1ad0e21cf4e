"""Operating a node: the admin service, the operator's client, the node runner and ``doctor``.

Theory of operation
-------------------
Every node started by ``foundation-node start`` registers :data:`ADMIN_SERVICE` (``"fabric.admin"``), an
ordinary fabric service: a CALL with a msgpack map ``{"op": NAME, ...arguments}`` on the ``coordination``
control channel, answered by a msgpack value. Operators reach it as *client-role* peers
(:class:`AdminClient`, built on :class:`~fabric.BlockingClient`): a client says HELLO to the node's seed
address, is never a member, and its calls are answered over the connection they came in on.

The service keeps a :class:`MemberTracker` fed by :meth:`fabric.Node.on_peer`: linked peers are
``alive``; a peer whose link closed (BYE, or unlinked) stays listed as ``down`` for a while, so operators
and the live topology page see who left. :class:`SeedKeeper` is the static overlay: it links to the
configured seed endpoints and re-links whenever a link drops, with capped exponential backoff.

:func:`run_node` composes node, admin service, seed keeper and HTTP endpoint for the ``start`` command
and runs until a stop is asked for (signal or the ``leave`` op); the node then says BYE.

:func:`diagnose` is ``foundation-node doctor``: it walks from the outside in (config file, endpoint
syntax, name resolution, a raw ZMTP probe of the port, HELLO, the node's own view) and turns each problem
into a :class:`Finding` with what is wrong and how to fix it. Raw probing (:func:`probe_zmtp`) tells apart
"nothing listens", "listens but is not ZeroMQ" (wrong port), "ZeroMQ but the wrong socket" (another
channel's port) and "accepts but never answers" (a hung or stopped process).

Threads: :class:`AdminService` and :class:`SeedKeeper` run on the node's loop; :class:`AdminClient` and
:func:`diagnose` are blocking and run on the caller's thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import wire
from .blocking import BlockingClient
from .config import NodeConfig
from .errors import (
    CallError,
    CallTimeout,
    ConfigError,
    FabricError,
    NoSuchService,
    RemoteHandlerError,
    Unreachable,
    VersionMismatch,
)
from .node import Node, PeerInfo
from .settings import SettingsError, StartSettings, check_endpoint

log = logging.getLogger(__name__)

ADMIN_SERVICE = "fabric.admin"
"""Name of the admin service every ``foundation-node start`` node registers."""
ADMIN_VERSION = 1
"""Version of the admin op set (returned by the ``hello`` op); grows when ops are added."""
OVERLAY = "static"
"""The overlay the runner uses until membership lands: links to configured seeds (full mesh when every
node lists every other)."""

WallClock = Callable[[], float]
"""Seconds since the Unix epoch (``time.time``); injected so tests can skew a node's clock."""


class AdminError(FabricError):
    """Root of the operator-facing errors."""


class AdminUnreachable(AdminError):
    """The node's admin endpoint cannot be reached (bad endpoint, unresolvable, nothing answers)."""


class AdminRemoteError(AdminError):
    """The node ran the op and it failed (unknown member, bad argument, the forwarded call failed)."""


class AdminUnsupported(AdminError):
    """The node has no admin service, or not that op (e.g. ``config`` without Foundation services)."""


class NodeStartError(AdminError):
    """The node could not start (address in use, a bind refused)."""


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("foundation-fabric")
    except Exception:  # not installed (running from a checkout)
        return "0+unknown"


# -- membership view ---------------------------------------------------------------------------------


@dataclass
class _Departed:
    info: PeerInfo
    since: float
    reason: str


class MemberTracker:
    """The node itself, its linked peers (``alive``) and recently departed ones (``down``).

    Fed by :meth:`fabric.Node.on_peer` on the node's loop. A departed peer is kept for ``forget_after``
    seconds and at most ``keep`` of them (oldest forgotten first), so the view stays bounded.
    """

    def __init__(self, node: Node, *, clock: WallClock = time.time, forget_after: float = 3600.0, keep: int = 256) -> None:
        self.node = node
        self.clock = clock
        self.forget_after = forget_after
        self.keep = keep
        self._departed: collections.OrderedDict[str, _Departed] = collections.OrderedDict()
        self._since: dict[str, float] = {}
        self._seen_status: dict[str, tuple[str, float]] = {}
        self._started = clock()
        self.changes = 0
        """Grows on every up/down event (a cheap "did anything change" for pollers)."""

    def on_peer(self, event: str, info: PeerInfo) -> None:
        """:meth:`fabric.Node.on_peer` listener (loop thread)."""
        now = self.clock()
        self.changes += 1
        if event == "up":
            self._departed.pop(info.id, None)
            self._since[info.id] = now
        else:
            self._since.pop(info.id, None)
            self._departed[info.id] = _Departed(info, now, "link closed")
            self._departed.move_to_end(info.id)
            while len(self._departed) > self.keep:
                self._departed.popitem(last=False)

    def members(self) -> list[dict[str, Any]]:
        """Self first, then alive peers, then down ones; each a msgpack-ready dict."""
        now = self.clock()
        for pid in [p for p, d in self._departed.items() if now - d.since > self.forget_after]:
            del self._departed[pid]
        node = self.node
        me = {
            "id": node.id,
            "name": node.name,
            "incarnation": node.incarnation,
            "state": "alive" if node.running else "down",
            "self": True,
            "seed": node.seed,
            "endpoints": node.endpoints,
            "channels": {c.name: [c.kind.value, c.parallelism] for c in node.config.channels},
            "meta": dict(node.config.metadata),
            "since_ms": int(self._started * 1000),
        }
        out = [me]
        listed = {node.id}
        for m in self._membership_view():
            if m["id"] != node.id:
                out.append(m)
                listed.add(m["id"])
        peers = sorted(node.peers(), key=lambda p: (p.name, p.id))
        for p in peers:
            if p.id not in listed:
                out.append(_member(p, "alive", self._since.get(p.id, now)))
                listed.add(p.id)
        for d in sorted(self._departed.values(), key=lambda d: (d.info.name, d.info.id)):
            if d.info.id not in listed:
                out.append({**_member(d.info, "down", d.since), "reason": d.reason})
        order = {"alive": 0, "suspect": 1, "down": 2}
        out[1:] = sorted(out[1:], key=lambda m: (order.get(str(m["state"]), 3), str(m["name"]), str(m["id"])))
        return out

    def _membership_view(self) -> list[dict[str, Any]]:
        """Members from the node's membership service (``Node.members()``), when the node has one.

        States map to alive / suspect / down; ``left`` becomes ``down`` with reason ``left``. A state
        change is stamped with this tracker's clock the first time it is seen (``since_ms``).
        """
        members_fn = getattr(self.node, "members", None)
        if not callable(members_fn):
            return []
        try:
            view = list(members_fn())
        except Exception:  # a membership service that is not started yet
            return []
        now = self.clock()
        out = []
        for m in view:
            mid = wire.node_id_str(m.node_id) if isinstance(m.node_id, bytes) else str(m.node_id)
            status = str(getattr(m.status, "value", m.status))
            state, reason = ("down", status) if status in ("down", "left") else (status, None)
            if self._seen_status.get(mid, (None, 0.0))[0] != status:
                self._seen_status[mid] = (status, now)
            since = self._seen_status[mid][1]
            endpoints = {ch: spec[1] for ch, spec in dict(m.endpoints).items()}
            entry: dict[str, Any] = {
                "id": mid,
                "name": m.name,
                "incarnation": m.incarnation,
                "state": state,
                "self": mid == self.node.id,
                "seed": endpoints.get("membership", ""),
                "endpoints": endpoints,
                "channels": {ch: [spec[0], spec[2]] for ch, spec in dict(m.endpoints).items()},
                "meta": dict(m.metadata),
                "since_ms": int(since * 1000),
            }
            if reason:
                entry["reason"] = "left" if reason == "left" else "failed (declared down)"
            out.append(entry)
        return out

    @property
    def overlay(self) -> str:
        """``full-mesh`` when the node runs the membership service, else ``static`` (configured links)."""
        return "full-mesh" if self._membership_view() else OVERLAY


def _member(p: PeerInfo, state: str, since: float) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "incarnation": p.incarnation,
        "state": state,
        "self": False,
        "seed": p.seed,
        "endpoints": dict(p.endpoints),
        "channels": {k: list(v) for k, v in p.channels.items()},
        "meta": dict(p.meta),
        "since_ms": int(since * 1000),
    }


# -- static overlay: seeds ---------------------------------------------------------------------------


@dataclass
class SeedState:
    """What the keeper knows about one seed endpoint."""

    endpoint: str
    peer_id: str | None = None
    peer_name: str = ""
    attempts: int = 0
    last_error: str = ""
    linked: bool = False


class SeedKeeper:
    """Links to each seed endpoint and re-links whenever that link drops (the static overlay).

    Runs as one task on the node's loop. ``progress(text)`` receives human-readable progress lines
    (connecting, linked, retrying). Retries back off from 0.2 s doubling up to ``retry_max`` seconds.
    """

    def __init__(
        self,
        node: Node,
        seeds: Sequence[str],
        *,
        retry_max: float = 5.0,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.node = node
        self.seeds = [SeedState(s) for s in dict.fromkeys(seeds)]
        self.retry_max = retry_max
        self.progress = progress or (lambda text: log.info("%s", text))
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.all_linked = asyncio.Event()
        self._stopping = False
        node.on_peer(self._on_peer)

    def _on_peer(self, event: str, info: PeerInfo) -> None:
        if event == "down":
            for s in self.seeds:
                if s.peer_id == info.id:
                    s.linked = False
                    self.all_linked.clear()
                    self.progress(f"seed {s.endpoint} ({info.name}) went away; will re-link")
            self._wake.set()

    def start(self) -> None:
        """Start the keeper task (on the running loop)."""
        if not self.seeds:
            self.all_linked.set()
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, timeout: float = 2.0) -> None:
        """Stop the keeper task (bounded: it also ends by itself once the node stops running)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            # Bounded: Python 3.11's wait_for can swallow a cancellation that races with its inner
            # future completing; the _stopping flag then ends the loop at its next turn.
            await asyncio.wait({self._task}, timeout=timeout)

    def status(self) -> list[dict[str, Any]]:
        """Per seed: endpoint, linked, peer name/id, attempts, last error."""
        return [
            {"seed": s.endpoint, "linked": s.linked, "peer": s.peer_name, "peer_id": s.peer_id,
             "attempts": s.attempts, "last_error": s.last_error}
            for s in self.seeds
        ]

    async def _link(self, s: SeedState, total: int) -> None:
        s.attempts += 1
        self.progress(f"connecting to seed {s.endpoint} (attempt {s.attempts})")
        try:
            info = await self.node.connect(s.endpoint)
        except (Unreachable, CallError, OSError, ValueError) as exc:
            s.last_error = str(exc)
            return
        s.peer_id, s.peer_name, s.linked, s.last_error = info.id, info.name, True, ""
        linked = sum(x.linked for x in self.seeds)
        self.progress(f"linked to seed {s.endpoint} ({info.name}): {linked}/{total} seeds linked")

    async def _run(self) -> None:
        delay = 0.2
        total = len(self.seeds)
        while self.node.running and not self._stopping:
            live = {p.id for p in self.node.peers()}
            for s in self.seeds:
                s.linked = s.peer_id in live
            pending = [s for s in self.seeds if not s.linked]
            if pending and not self._stopping:
                await asyncio.gather(*(self._link(s, total) for s in pending))
            if all(s.linked for s in self.seeds):
                self.all_linked.set()
                delay = 0.2
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 2.0)  # re-check now and then: restarts
                continue
            for s in self.seeds:
                if not s.linked:
                    self.progress(f"seed {s.endpoint} not reached ({s.last_error}); retrying in {delay:.1f}s")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            delay = min(delay * 2, self.retry_max)


# -- the admin service -------------------------------------------------------------------------------

_CLOCK_PROBE_TIMEOUT = 1.0


class AdminService:
    """The ``fabric.admin`` service of one node. Every op runs on the node's loop.

    Args:
        node: the node to operate (started or not; ops need it running).
        clock: wall clock (seconds since the epoch); tests inject a skewed one.
        on_leave: called (on the loop) after the ``leave`` op has answered; the runner stops the node.
        seeds: the runner's seed keeper, reported by ``status``/``health``.
        http_url: the node's HTTP endpoint, if any (reported, and advertised in metadata by the runner).
        config_service: a Foundation ``ConfigServer`` to expose as ``config.*`` ops (None: not offered).
    """

    def __init__(
        self,
        node: Node,
        *,
        clock: WallClock = time.time,
        on_leave: Callable[[], None] | None = None,
        seeds: SeedKeeper | None = None,
        http_url: str | None = None,
        config_service: Any = None,
    ) -> None:
        self.node = node
        self.clock = clock
        self.on_leave = on_leave
        self.seeds = seeds
        self.http_url = http_url
        self.tracker = MemberTracker(node, clock=clock)
        self.config_service = config_service
        self._started = time.monotonic()
        self._config_log: collections.deque[tuple[int, Any, Any]] = collections.deque(maxlen=1000)
        self._config_seq = 0
        self._config_waiters: list[asyncio.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._topology_cache: tuple[int, float, dict[str, Any]] | None = None
        self.topology_ttl = 0.5
        """Seconds a gathered topology is reused while membership is unchanged."""
        self._ops: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "hello": self._hello,
            "status": self._status,
            "members": self._members,
            "health": self._health,
            "stats": self._stats,
            "metrics": self._metrics,
            "topology": self._topology,
            "links": self._links,
            "send": self._send,
            "call": self._call,
            "ping": self._ping,
            "clock": self._clock,
            "leave": self._leave,
            "switch": self._switch,
        }
        if config_service is not None:
            self._ops.update({"config.get": self._config_get, "config.set": self._config_set, "config.poll": self._config_poll})

    def install(self) -> None:
        """Register the service and the peer listener on the node (before or after ``start``)."""
        self.node.on_peer(self.tracker.on_peer)
        on_member_event = getattr(self.node, "on_member_event", None)
        if callable(on_member_event):  # membership changes invalidate cached views too
            on_member_event(self._on_member_event)
        self.node.add_service(ADMIN_SERVICE, self.handle)
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None  # set by the first request instead
        if self.config_service is not None:
            self.config_service.subscribe(self)  # we are the mailbox: put_nowait below

    def _on_member_event(self, event: Any) -> None:
        self.tracker.changes += 1

    @property
    def ops(self) -> list[str]:
        """Names of the ops this service answers."""
        return sorted(self._ops)

    async def handle(self, request: Any) -> Any:
        """The service handler: dispatch ``{"op": ...}``. Raises AdminRemoteError on a bad request."""
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            raise AdminRemoteError("admin requests are maps with an 'op' string")
        self._loop = asyncio.get_running_loop()
        fn = self._ops.get(request["op"])
        if fn is None:
            raise AdminUnsupported(f"unknown admin op {request['op']!r}; this node offers: {', '.join(self.ops)}")
        return await fn(request)

    # identity and state

    async def _hello(self, _req: dict[str, Any]) -> dict[str, Any]:
        return {"admin_version": ADMIN_VERSION, "ops": self.ops, "wall_ms": int(self.clock() * 1000)}

    async def _clock(self, _req: dict[str, Any]) -> dict[str, Any]:
        return {"wall_ms": int(self.clock() * 1000)}

    async def _status(self, _req: dict[str, Any]) -> dict[str, Any]:
        node = self.node
        cfg = node.config
        return {
            "id": node.id,
            "name": node.name,
            "incarnation": node.incarnation,
            "state": "running" if node.running else "stopped",
            "version": _package_version(),
            "protocol": [wire.MIN_VERSION, wire.MAX_VERSION],
            "uptime_s": round(time.monotonic() - self._started, 3),
            "wall_ms": int(self.clock() * 1000),
            "seed": node.seed,
            "endpoints": node.endpoints,
            "channels": [{"name": c.name, "kind": c.kind.value, "parallelism": c.parallelism} for c in cfg.channels],
            "peers": len(node.peers()),
            "clients": len(node.clients()),
            "services": node.services(),
            "overlay": self.tracker.overlay,
            "seeds": self.seeds.status() if self.seeds else [],
            "http": self.http_url,
            "config": {"bind": cfg.bind, "port": cfg.port, "advertise": cfg.advertise, "insecure": cfg.insecure,
                       "accept_clients": cfg.accept_clients, "metadata": dict(cfg.metadata)},
            "admin_ops": self.ops,
        }

    async def _members(self, _req: dict[str, Any]) -> list[dict[str, Any]]:
        return self.tracker.members()

    async def ping_peers(self, timeout: float = _CLOCK_PROBE_TIMEOUT) -> dict[str, dict[str, Any]]:
        """Ping every linked peer concurrently: id -> {"name", "rtt_ms"} or {"name", "error"}."""

        async def one(p: PeerInfo) -> tuple[str, dict[str, Any]]:
            try:
                rtt = await self.node.ping(p.id, timeout=timeout)
                return p.id, {"name": p.name, "rtt_ms": round(rtt * 1000, 3)}
            except (CallError, FabricError) as exc:
                return p.id, {"name": p.name, "error": str(exc) or type(exc).__name__}

        return dict(await asyncio.gather(*(one(p) for p in self.node.peers())))

    async def _ping(self, req: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return await self.ping_peers(float(req.get("timeout", _CLOCK_PROBE_TIMEOUT)))

    async def _health(self, _req: dict[str, Any]) -> dict[str, Any]:
        node = self.node
        checks: list[dict[str, Any]] = [{"check": "running", "ok": node.running, "detail": "running" if node.running else "not running"}]
        if self.seeds is not None and self.seeds.seeds:
            missing = [s for s in self.seeds.status() if not s["linked"]]
            checks.append({
                "check": "seeds",
                "ok": not missing,
                "detail": "all seeds linked" if not missing else "; ".join(f"{s['seed']}: {s['last_error'] or 'not linked'}" for s in missing),
            })
        pings = await self.ping_peers()
        silent = {pid: p for pid, p in pings.items() if "error" in p}
        checks.append({
            "check": "peers",
            "ok": not silent,
            "detail": f"{len(pings) - len(silent)}/{len(pings)} peers answer PING"
            + ("" if not silent else ": silent " + ", ".join(f"{p['name']} ({p['error']})" for p in silent.values())),
        })
        if hasattr(node, "joined") and hasattr(node, "alive_members"):
            members = self.tracker.members()
            suspects = [m["name"] for m in members if m["state"] == "suspect"]
            joined = bool(node.joined) or not (self.seeds and self.seeds.seeds)
            checks.append({
                "check": "membership",
                "ok": joined,
                "detail": f"{'joined' if node.joined else 'not joined'}, {len(node.alive_members())} members up"
                + (f", suspect: {', '.join(suspects)}" if suspects else ""),
            })
        if hasattr(node, "current_topology"):
            topo = node.current_topology()
            last = topo["history"][-1] if topo["history"] else None
            checks.append({
                "check": "topology", "ok": True,
                "detail": f"{topo['overlay']} (epoch {topo['epoch']}{', automatic' if topo['auto'] else ''}), "
                + f"{len(topo['neighbours'])} neighbours, {topo['links']} links"
                + (f"; last switch {last['from']} -> {last['to']}: {last['reason']}" if last else ""),
            })
        bad = sum(node.errors.values())
        checks.append({"check": "bad_input", "ok": True, "detail": f"{bad} bad inputs dropped" + (f" {dict(node.errors)}" if bad else "")})
        stats = node.stats()
        queued = sum(stats["queued"].values())
        checks.append({"check": "queues", "ok": True, "detail": f"{queued} messages queued to peers, {stats['pending_calls']} calls pending"})
        return {"ok": all(c["ok"] for c in checks), "name": node.name, "id": node.id, "checks": checks, **node.health()}

    async def _stats(self, _req: dict[str, Any]) -> dict[str, Any]:
        return self.node.stats()

    def phi(self) -> dict[str, float]:
        """Failure-detector phi per up member (name/id8 -> phi); empty without membership.

        Call on the node's loop (the detector's clock is that loop's ``time()``)."""
        out: dict[str, float] = {}
        for m in self.node.members():
            member_id = wire.node_id_str(m.node_id)
            if member_id != self.node.id:
                value = self.node.phi(member_id)
                if value is not None:
                    out[f"{m.name}/{member_id[:8]}"] = float(value)
        return out

    def metrics_snapshot(self) -> dict[str, Any]:
        """Everything ``/metrics`` renders (loop thread)."""
        return {
            "phi": self.phi(),
            "node": {"id": self.node.id, "name": self.node.name, "incarnation": self.node.incarnation,
                     "running": self.node.running, "channels": {c.name: c.kind.value for c in self.node.config.channels}},
            "stats": self.node.stats(),
            "members": self.tracker.members(),
            "clients": len(self.node.clients()),
            "uptime_s": time.monotonic() - self._started,
        }

    async def _metrics(self, _req: dict[str, Any]) -> str:
        from .http import render_metrics

        return render_metrics(self.metrics_snapshot()).decode()

    # topology

    def local_links(self) -> list[dict[str, Any]]:
        """This node's links: one per (peer, shared channel), with the channel's kind."""
        kinds = {c.name: c.kind.value for c in self.node.config.channels}
        out = []
        for p in self.node.peers():
            for ch in sorted(set(kinds) & set(p.channels)):
                out.append({"source": self.node.id, "target": p.id, "channel": ch, "kind": kinds[ch]})
        return out

    async def _links(self, _req: dict[str, Any]) -> dict[str, Any]:
        return {"id": self.node.id, "name": self.node.name, "links": self.local_links(),
                "peers": [{"id": p.id, "name": p.name} for p in self.node.peers()]}

    async def topology(self, timeout: float = 1.0) -> dict[str, Any]:
        """The cluster graph as this node sees it, plus each alive peer's own links (asked concurrently).

        Returns ``{"overlay", "source", "generated_ms", "nodes": [...members], "links": [...]}``; links are
        undirected and deduplicated by (pair, channel). A result is reused for :attr:`topology_ttl`
        seconds unless membership changed, so many pollers cost the peers one ``links`` call each.
        """
        now = time.monotonic()
        cached = self._topology_cache
        if cached is not None and cached[0] == self.tracker.changes and now - cached[1] < self.topology_ttl:
            return cached[2]
        topo = await self._gather_topology(timeout)
        self._topology_cache = (self.tracker.changes, time.monotonic(), topo)
        return topo

    async def _gather_topology(self, timeout: float) -> dict[str, Any]:
        members = self.tracker.members()
        nodes = {m["id"]: {k: m[k] for k in ("id", "name", "state", "self", "seed", "incarnation")} | {"http": m["meta"].get("http")} for m in members}
        links = self.local_links()

        async def ask(p: PeerInfo) -> dict[str, Any] | None:
            try:
                reply = await self.node.call(p.id, ADMIN_SERVICE, {"op": "links"}, timeout=timeout)
                return reply if isinstance(reply, dict) else None
            except (CallError, FabricError):
                return None

        for reply in await asyncio.gather(*(ask(p) for p in self.node.peers())):
            if reply is None:
                continue
            for peer in reply.get("peers", []):
                nodes.setdefault(peer["id"], {"id": peer["id"], "name": peer["name"], "state": "alive", "self": False,
                                              "seed": "", "incarnation": 0, "http": None})
            links.extend(x for x in reply.get("links", []) if isinstance(x, dict))
        seen: set[tuple[str, str, str]] = set()
        unique = []
        for link in links:
            a, b = sorted((str(link["source"]), str(link["target"])))
            key = (a, b, str(link["channel"]))
            if key in seen or a not in nodes or b not in nodes:
                continue
            if nodes[a]["state"] not in ("alive", "suspect") or nodes[b]["state"] not in ("alive", "suspect"):
                continue
            seen.add(key)
            unique.append({"source": a, "target": b, "channel": link["channel"], "kind": link.get("kind", "")})
        return {
            "overlay": self.tracker.overlay,
            "source": self.node.id,
            "generated_ms": int(self.clock() * 1000),
            "nodes": sorted(nodes.values(), key=lambda n: (n["name"], n["id"])),
            "links": unique,
        }

    async def _topology(self, req: dict[str, Any]) -> dict[str, Any]:
        return await self.topology(float(req.get("timeout", 1.0)))

    async def _switch(self, req: dict[str, Any]) -> dict[str, Any]:
        """Switch the cluster's overlay (``new``, optional compare-and-set ``expected``/``epoch``)."""
        new, expected, epoch = req.get("new"), req.get("expected"), req.get("epoch")
        if not isinstance(new, str) or (expected is not None and not isinstance(expected, str)):
            raise AdminRemoteError("switch needs new (and optionally expected) overlay names")
        args = (new,) if expected is None else (expected, new)
        try:
            return await self.node.switch_topology(*args, expected_epoch=epoch if isinstance(epoch, int) else None)
        except (ValueError, FabricError) as exc:
            raise AdminRemoteError(f"switch refused: {exc}") from None

    # acting through the node

    def resolve(self, who: Any) -> PeerInfo:
        """A linked peer by id, unique id prefix (>= 4 characters) or name. Raises AdminRemoteError."""
        if not isinstance(who, str) or not who:
            raise AdminRemoteError("name a member: its name, id or an id prefix")
        peers = self.node.peers()
        exact = [p for p in peers if who in (p.id, p.name)]
        if len(exact) == 1:
            return exact[0]
        prefixed = [p for p in peers if len(who) >= 4 and p.id.startswith(who)]
        if len(prefixed) == 1 and not exact:
            return prefixed[0]
        names = ", ".join(sorted(p.name for p in peers)) or "none"
        if len(exact) > 1 or len(prefixed) > 1:
            raise AdminRemoteError(f"{who!r} matches several members; use the id (members: {names})")
        if who in (self.node.id, self.node.name):
            raise AdminRemoteError(f"{who!r} is the node itself; leave out --to to address it")
        raise AdminRemoteError(f"unknown member {who!r}: no linked member has that name or id (members: {names})")

    async def _send(self, req: dict[str, Any]) -> dict[str, Any]:
        peer = self.resolve(req.get("to"))
        channel = req.get("channel", "coordination")
        try:
            ok = await self.node.send(peer.id, req.get("payload", b""), channel=channel, key=req.get("key"))
        except (ValueError, TypeError) as exc:
            raise AdminRemoteError(str(exc)) from None
        except FabricError as exc:
            raise AdminRemoteError(f"send to {peer.name} failed: {exc}") from None
        return {"to": peer.name, "id": peer.id, "channel": channel, "queued": ok}

    async def _call(self, req: dict[str, Any]) -> dict[str, Any]:
        peer = self.resolve(req.get("to"))
        service = req.get("service")
        if not isinstance(service, str) or not service:
            raise AdminRemoteError("call needs a service name")
        timeout = req.get("timeout")
        started = time.perf_counter()
        try:
            reply = await self.node.call(peer.id, service, req.get("request", b""),
                                         timeout=float(timeout) if timeout else None, channel=req.get("channel", "coordination"))
        except ValueError as exc:
            raise AdminRemoteError(str(exc)) from None
        except RemoteHandlerError as exc:
            raise AdminRemoteError(f"{service!r} on {peer.name} raised {exc.remote_type}: {exc.remote_message}") from None
        except FabricError as exc:
            raise AdminRemoteError(f"call {service!r} on {peer.name} failed ({type(exc).__name__}): {exc}") from None
        return {"from": peer.name, "id": peer.id, "reply": reply, "ms": round((time.perf_counter() - started) * 1000, 3)}

    async def _leave(self, _req: dict[str, Any]) -> dict[str, Any]:
        if self.on_leave is None:
            raise AdminUnsupported("this node was not started by foundation-node start; it cannot leave on request")
        # Answer first, then stop: the reply must leave before the sockets close.
        asyncio.get_running_loop().call_later(0.1, self.on_leave)
        return {"leaving": True, "name": self.node.name, "id": self.node.id}

    # Foundation config (offered when a ConfigServer was given)

    def put_nowait(self, item: Any) -> None:
        """Mailbox for the Foundation config service (any thread): record the change, wake pollers."""
        if not (isinstance(item, tuple) and len(item) == 2):
            return
        _tag, message = item
        kind = message[0] if isinstance(message, tuple) and message else "change"
        if kind == "config_updated":
            entry = {"event": "updated", "path": list(message[1]), "value": message[2]}
        else:
            entry = {"event": "reset"}
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._config_changed, entry)

    def _config_changed(self, entry: dict[str, Any]) -> None:
        self._config_seq += 1
        self._config_log.append((self._config_seq, entry, int(self.clock() * 1000)))
        waiters, self._config_waiters = self._config_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def _config_get(self, req: dict[str, Any]) -> Any:
        path = req.get("path") or []
        try:
            value = await asyncio.get_running_loop().run_in_executor(None, self.config_service.get, list(path))
        except Exception as exc:  # FoundationError: path not found, security ...
            raise AdminRemoteError(f"config get {'.'.join(map(str, path)) or '(all)'}: {exc}") from None
        return value.to_dict() if hasattr(value, "to_dict") else value

    async def _config_set(self, req: dict[str, Any]) -> dict[str, Any]:
        path = list(req.get("path") or [])
        if not path:
            raise AdminRemoteError("config set needs a path")
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.config_service.update, path, req.get("value"))
        except Exception as exc:
            raise AdminRemoteError(f"config set {'.'.join(map(str, path))}: {exc}") from None
        return {"path": path, "value": req.get("value")}

    async def _config_poll(self, req: dict[str, Any]) -> dict[str, Any]:
        """Long poll: changes after ``cursor`` (wait up to ``timeout`` seconds for the first one)."""
        cursor = int(req.get("cursor", -1))
        if cursor < 0:  # "from now on"
            return {"cursor": self._config_seq, "changes": []}
        if self._config_seq <= cursor:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._config_waiters.append(fut)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, min(float(req.get("timeout", 2.0)), 30.0))
        changes = [{"seq": s, "at_ms": t, **e} for s, e, t in self._config_log if s > cursor]
        return {"cursor": self._config_seq, "changes": changes}


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


# -- the operator's client ---------------------------------------------------------------------------


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
        try:
            return client.send(peer.id, payload, channel=channel, key=key)
        except (ValueError, TypeError) as exc:
            raise AdminRemoteError(str(exc)) from None
        except (FabricError, TimeoutError) as exc:
            raise AdminUnreachable(f"send to {self.endpoint} failed: {exc}") from None

    def call(self, service: str, request: Any, *, timeout: float | None = None, channel: str = "coordination") -> Any:
        """Call ``service`` on the node itself (not through the admin service)."""
        client, peer = self._require()
        try:
            return client.call(peer.id, service, request, timeout=timeout or self.timeout, channel=channel)
        except NoSuchService:
            raise AdminRemoteError(f"the node has no service {service!r}") from None
        except RemoteHandlerError as exc:
            raise AdminRemoteError(f"{service!r} raised {exc.remote_type}: {exc.remote_message}") from None
        except CallTimeout:
            raise AdminRemoteError(f"{service!r} did not answer within {timeout or self.timeout:g}s") from None
        except ValueError as exc:
            raise AdminRemoteError(str(exc)) from None
        except (CallError, FabricError, TimeoutError) as exc:
            raise AdminUnreachable(f"call {service!r} on {self.endpoint} failed: {exc}") from None

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


# -- doctor ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One doctor result: ``level`` ok / warn / fail, the ``check`` it belongs to, what and how to fix."""

    level: str
    check: str
    message: str
    fix: str = ""


def _diagnose_discovery(
    report: DoctorReport, strategy: str, options: Mapping[str, Any], timeout: float, say: Callable[[str], None]
) -> None:
    """Run discovery once (reusing ``discover``) and turn what it sees into findings."""
    from .discovery import DiscoveryError
    from .discovery.report import discover

    say(f"running discovery strategy {strategy}")
    settle = 3.0 if strategy in ("mdns", "gossip") else 0.0
    try:
        result = asyncio.run(discover(strategy, dict(options), settle=settle, probe=True, probe_timeout=timeout))
    except DiscoveryError as exc:
        report.add("fail", "discovery", f"{strategy}: {exc}", "fix the strategy name or its options (docs/discovery.md)")
        return
    if not result.backend_answered:
        report.add("fail", "discovery", f"{strategy}: the backend did not answer ({dict(result.counters)})",
                   "check that the discovery service (DNS server, Consul agent, API server) is up and reachable")
    if not result.candidates:
        report.add("fail", "discovery", f"{strategy} found no candidate",
                   "check the query/selector/seeds, and that other nodes announce or are registered")
        return
    for entry in result.candidates:
        seed = entry.candidate.seed
        bad = [p for p in entry.probes if not p.ok and p.status != "skipped"]
        if entry.reachable and not bad:
            report.add("ok", "discovery", f"{seed} (via {entry.candidate.source}) answers on every channel")
        else:
            why = "; ".join(f"{p.channel} {p.endpoint}: {p.status}" for p in bad) or "membership endpoint not reachable"
            report.add("fail", "discovery", f"candidate {seed} cannot be linked: {why}",
                       "the node there is down or advertises the wrong port/address (check bind, port, advertise)")


@dataclass
class DoctorReport:
    """Everything doctor found; ``ok`` is False when any finding failed."""

    target: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No failed finding."""
        return all(f.level != "fail" for f in self.findings)

    def add(self, level: str, check: str, message: str, fix: str = "") -> None:
        """Record a finding."""
        self.findings.append(Finding(level, check, message, fix))


_ZMTP_SIGNATURE_HEAD = b"\xff"
_ZMTP_SIGNATURE_TAIL = b"\x7f"
EXPECTED_SOCKET = {"control": "ROUTER", "bulk": "PULL", "broadcast": "PUB"}
"""The socket type a node binds for each channel kind."""
_PROBE_AS = {"ROUTER": "DEALER", "PULL": "PUSH", "PUB": "SUB"}


@dataclass(frozen=True)
class ProbeResult:
    """What a raw ZMTP probe of a TCP endpoint saw."""

    outcome: str
    """``zmtp`` (a ZeroMQ peer answered), ``refused``, ``timeout`` (TCP accepted, nothing answered),
    ``not_zmtp`` (something else answered), ``unreachable`` (no route, connect timed out)."""
    detail: str = ""
    socket_type: str = ""
    mechanism: str = ""


def zmtp_greeting() -> bytes:
    """A ZMTP 3.0 greeting for the NULL mechanism, as a client (64 octets)."""
    return b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


def zmtp_ready(socket_type: str) -> bytes:
    """A ZMTP READY command frame announcing ``socket_type``."""
    name = b"Socket-Type"
    body = b"\x05READY" + bytes([len(name)]) + name + struct.pack(">I", len(socket_type)) + socket_type.encode()
    return b"\x04" + bytes([len(body)]) + body


def parse_zmtp(data: bytes) -> tuple[str, str] | None:
    """Parse a peer's greeting + READY: ``(mechanism, socket_type)``, None if more bytes are needed.

    Raises ValueError when the bytes are not ZMTP 3 (no signature).
    """
    if len(data) >= 1 and data[:1] != _ZMTP_SIGNATURE_HEAD:
        raise ValueError(f"not a ZeroMQ greeting: {data[:24]!r}")
    if len(data) >= 10 and data[9:10] != _ZMTP_SIGNATURE_TAIL:
        raise ValueError(f"not a ZeroMQ greeting: {data[:24]!r}")
    if len(data) < 64:
        return None
    mechanism = data[12:32].rstrip(b"\x00").decode("ascii", "replace")
    rest = data[64:]
    if mechanism != "NULL":
        return mechanism, ""
    if len(rest) < 2:
        return None
    flags = rest[0]
    if flags & 0x02:
        if len(rest) < 9:
            return None
        size, off = struct.unpack(">Q", rest[1:9])[0], 9
    else:
        size, off = rest[1], 2
    if len(rest) < off + size:
        return None
    body = rest[off : off + size]
    nlen = body[0]
    command = body[1 : 1 + nlen]
    if command != b"READY":
        return mechanism, ""
    i = 1 + nlen
    props: dict[str, str] = {}
    while i < len(body):
        klen = body[i]
        key = body[i + 1 : i + 1 + klen].decode("ascii", "replace")
        i += 1 + klen
        (vlen,) = struct.unpack(">I", body[i : i + 4])
        props[key.lower()] = body[i + 4 : i + 4 + vlen].decode("ascii", "replace")
        i += 4 + vlen
    return mechanism, props.get("socket-type", "")


def probe_zmtp(host: str, port: int, *, expect: str = "ROUTER", timeout: float = 2.0) -> ProbeResult:
    """Open a TCP connection, exchange ZMTP greetings, read the peer's socket type. Blocking, bounded.

    ``expect`` is the socket type we hope to find; a compatible READY is sent once the peer's READY is
    read, so the peer sees a complete handshake before we close.
    """
    import socket as _socket

    try:
        sock = _socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        return ProbeResult("refused", "connection refused")
    except TimeoutError:
        return ProbeResult("unreachable", f"TCP connect timed out after {timeout:g}s")
    except OSError as exc:
        return ProbeResult("unreachable", exc.strerror or str(exc))
    data = b""
    try:
        sock.settimeout(timeout)
        # Greeting only: the peer sends its READY (with its socket type) after the greetings, before it
        # sees ours, so an incompatible type cannot make it hang up before we learn what it is.
        sock.sendall(zmtp_greeting())
        deadline = time.monotonic() + timeout
        nudge_at = time.monotonic() + timeout / 2
        while True:
            try:
                parsed = parse_zmtp(data)
            except ValueError as exc:
                return ProbeResult("not_zmtp", str(exc))
            if parsed is not None:
                with contextlib.suppress(OSError):
                    sock.sendall(zmtp_ready(_PROBE_AS.get(expect, "DEALER")))
                return ProbeResult("zmtp", socket_type=parsed[1], mechanism=parsed[0])
            now = time.monotonic()
            if not data and nudge_at and now >= nudge_at:
                # A live ZeroMQ peer greets at once. Silence so far: a hung process, or a line-based
                # server (HTTP ...) waiting for a line end; the blank lines make the latter answer.
                nudge_at = 0.0
                with contextlib.suppress(OSError):
                    sock.sendall(b"\r\n\r\n")
            remaining = (nudge_at if nudge_at and not data else deadline) - now
            if remaining <= 0 and now >= deadline:
                raise TimeoutError
            sock.settimeout(max(remaining, 0.001))
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise
                continue
            if not chunk:
                if data:
                    return ProbeResult("not_zmtp", f"closed after {data[:24]!r}")
                return ProbeResult("not_zmtp", "closed the connection without a ZeroMQ greeting")
            data += chunk
    except TimeoutError:
        if data:
            return ProbeResult("not_zmtp", f"incomplete greeting {data[:24]!r}")
        return ProbeResult("timeout", f"accepted the TCP connection but sent nothing within {timeout:g}s")
    except OSError as exc:
        return ProbeResult("not_zmtp", exc.strerror or str(exc))
    finally:
        sock.close()


def _explain_probe(report: DoctorReport, check: str, what: str, endpoint: str, result: ProbeResult, expect: str) -> bool:
    """Turn a probe result into findings; returns True when the endpoint is the expected socket."""
    if result.outcome == "refused":
        report.add("fail", check, f"nothing listens at {endpoint} (connection refused): the node is not running (dead node) "
                   "or this is the wrong port",
                   "start the node, or use the address it prints at start (`seed=`)")
    elif result.outcome == "unreachable":
        report.add("fail", check, f"{endpoint} is unreachable: {result.detail}",
                   "check routing and firewalls between here and the node, and its `advertise` address")
    elif result.outcome == "timeout":
        report.add("fail", check, f"dead node: {endpoint} {result.detail}: the process is hung, stopped or overloaded",
                   "look at the node's process (is it stopped or stuck?) and restart it")
    elif result.outcome == "not_zmtp":
        report.add("fail", check, f"wrong port: {endpoint} is not a ZeroMQ endpoint ({result.detail})",
                   "point at the node's seed (membership) address, printed at start as `seed=`")
    elif result.mechanism and result.mechanism != "NULL":
        report.add("fail", check, f"{endpoint} wants the {result.mechanism} security mechanism; this tool speaks NULL",
                   "configure matching security on both sides")
    elif result.socket_type and result.socket_type != expect:
        report.add("fail", check, f"wrong port: {endpoint} is a {result.socket_type} socket, not the {what} ({expect})",
                   "the seed is the node's base port (channel 0, membership); other ports are its other channels")
    else:
        report.add("ok", check, f"{endpoint} answers as a ZeroMQ {result.socket_type or expect} socket")
        return True
    return False


def diagnose(
    endpoint: str | None,
    *,
    config_file: str | None = None,
    timeout: float = 2.0,
    max_skew: float = 1.0,
    progress: Callable[[str], None] | None = None,
    wall_clock: WallClock = time.time,
    strategy: str | None = None,
    strategy_options: Mapping[str, Any] | None = None,
) -> DoctorReport:
    """Check a node from the outside in and return every finding (blocking, every step bounded).

    Steps: the TOML ``config_file`` (if given); the discovery ``strategy`` (if given: what it finds and
    whether each candidate is reachable, as ``foundation-node discover`` reports it); ``endpoint``
    syntax and name resolution; a raw ZMTP probe (wrong port, dead node); HELLO (version mismatch); the
    node's clock (skew above ``max_skew`` seconds); each advertised channel endpoint; seeds and peers as
    the node sees them (silent members).
    """
    say = progress or (lambda _t: None)
    report = DoctorReport(target=endpoint or config_file or strategy or "")
    if strategy:
        _diagnose_discovery(report, strategy, strategy_options or {}, timeout, say)
    if config_file:
        say(f"checking config file {config_file}")
        from .settings import load as load_settings

        try:
            settings = load_settings(config_file, environ={})
            report.add("ok", "config", f"{config_file} is valid (node {settings.node.name}, bind {settings.node.bind})")
            for seed in settings.seeds:
                try:
                    check_endpoint(seed)
                except ValueError as exc:
                    report.add("fail", "config", f"seed {exc}", "fix the seed address in the config file")
        except (SettingsError, ConfigError) as exc:
            report.add("fail", "config", f"invalid config: {exc}", "fix the field named above (docs/cli.md, docs/configuration.md)")
    if endpoint is None:
        return report
    say(f"checking {endpoint}")
    try:
        scheme, host, port = check_endpoint(endpoint, resolve=False)
    except ValueError as exc:
        report.add("fail", "endpoint", str(exc), "give the node's seed address, e.g. tcp://127.0.0.1:7946")
        return report
    if scheme == "tcp":
        assert port is not None
        try:
            check_endpoint(endpoint)
        except ValueError as exc:
            report.add("fail", "resolve", f"unresolvable name: {exc}",
                       "check the host name for typos, DNS or /etc/hosts, or use an IP address")
            return report
        report.add("ok", "resolve", f"{host} resolves")
        say(f"probing {endpoint}")
        if not _explain_probe(report, "reachable", "membership endpoint", endpoint, probe_zmtp(host, port, timeout=timeout), "ROUTER"):
            return report
    say(f"saying HELLO to {endpoint}")
    client = AdminClient(endpoint, timeout=timeout)
    try:
        try:
            peer = client.open()
        except AdminUnreachable as exc:
            if "version mismatch" in str(exc):
                report.add("fail", "version", f"{exc}", "run the same fabric protocol version on every node and tool "
                           "(upgrade the older side)")
            else:
                report.add("fail", "hello", str(exc), "check that the node is a foundation-node and not overloaded")
            return report
        report.add("ok", "version", f"HELLO accepted by {peer.name} ({peer.id[:8]}), protocol version {peer.version}")
        try:
            t0 = wall_clock()
            hello = client.op("hello")
            t1 = wall_clock()
        except AdminUnsupported as exc:
            report.add("warn", "admin", str(exc), "start nodes with foundation-node start to get the admin service")
            return report
        except AdminError as exc:
            report.add("fail", "admin", str(exc))
            return report
        skew = hello["wall_ms"] / 1000 - (t0 + t1) / 2
        if abs(skew) > max_skew + (t1 - t0) / 2:
            report.add("fail", "clock", f"clock skew: {peer.name}'s clock is {abs(skew):.1f}s "
                       f"{'ahead of' if skew > 0 else 'behind'} this machine's",
                       "synchronise clocks with NTP (chrony or systemd-timesyncd) on every host")
        else:
            report.add("ok", "clock", f"clock within {max_skew:g}s of this machine ({skew * 1000:+.0f} ms)")
        status = client.op("status")
        _check_channels(report, status, timeout)
        _check_node_view(report, client, status, timeout, max_skew)
    finally:
        client.close()
    return report


def _check_channels(report: DoctorReport, status: Mapping[str, Any], timeout: float) -> None:
    for ch in status["channels"]:
        ep = status["endpoints"].get(ch["name"])
        if not ep:
            report.add("fail", "channels", f"channel {ch['name']} has no endpoint", "check the node's bind address")
            continue
        try:
            scheme, host, port = check_endpoint(ep)
        except ValueError as exc:
            report.add("fail", "channels", f"channel {ch['name']} advertises {ep}: {exc}",
                       "set `advertise` to an address other hosts can resolve and reach")
            continue
        if scheme != "tcp" or port is None:
            continue
        expect = EXPECTED_SOCKET.get(ch["kind"], "")
        result = probe_zmtp(host, port, expect=expect, timeout=timeout)
        if result.outcome != "zmtp" or (result.socket_type and result.socket_type != expect):
            _explain_probe(report, "channels", f"{ch['name']} channel", f"{ep} ({ch['name']})", result, expect)
        else:
            report.add("ok", "channels", f"channel {ch['name']} ({ch['kind']}) reachable at {ep}")
    cfg = status.get("config", {})
    if cfg.get("insecure"):
        report.add("warn", "security", "the node accepts unauthenticated peers on a non-loopback address (insecure)",
                   "bind to loopback or configure CURVE security when it is available")


def _check_member_channels(report: DoctorReport, member: Mapping[str, Any], timeout: float) -> None:
    """Probe each channel endpoint a live member advertises. Unreachable ones are warnings: this host
    may sit outside the cluster's network while the members still reach each other."""
    bad = []
    for name, ep in sorted(member.get("endpoints", {}).items()):
        kind = (member.get("channels", {}).get(name) or ["", 0])[0]
        expect = EXPECTED_SOCKET.get(kind, "")
        try:
            _scheme, host, port = check_endpoint(ep)
        except ValueError as exc:
            bad.append(f"{name}: {exc}")
            continue
        if port is None or not expect:
            continue
        result = probe_zmtp(host, port, expect=expect, timeout=timeout)
        if result.outcome != "zmtp" or (result.socket_type and result.socket_type != expect):
            bad.append(f"{name} at {ep}: {result.detail or result.outcome}")
    if bad:
        report.add("warn", "members", f"member {member['name']}: channel endpoints not reachable from here: " + "; ".join(bad),
                   "if this host should reach the cluster, check firewalls and the member's `advertise` address")
    else:
        report.add("ok", "members", f"member {member['name']}: every channel endpoint reachable from here")


def _check_node_view(report: DoctorReport, client: AdminClient, status: Mapping[str, Any], timeout: float, max_skew: float) -> None:
    for seed in status.get("seeds", []):
        if seed["linked"]:
            report.add("ok", "seeds", f"seed {seed['seed']} linked ({seed['peer']})")
        else:
            err = seed["last_error"] or "not linked yet"
            check = "version" if "version" in err.lower() else "seeds"
            report.add("fail", check, f"seed {seed['seed']} not linked after {seed['attempts']} attempts: {err}",
                       "run doctor against that seed address to see why")
    pings = client.op("ping", wait=timeout + 2.0, timeout=timeout)
    members = {m["id"]: m for m in client.op("members")}
    for pid, result in pings.items():
        m = members.get(pid, {"name": pid[:8], "seed": ""})
        if "error" in result:
            detail = ""
            seed = m.get("seed") or ""
            if seed.startswith("tcp://"):
                try:
                    _s, host, port = check_endpoint(seed)
                    if port is not None:
                        probe = probe_zmtp(host, port, timeout=timeout)
                        detail = f"; its seed {seed}: {probe.detail or probe.outcome}"
                except ValueError:
                    pass
            report.add("fail", "members", f"dead node: member {m['name']} ({pid[:8]}) does not answer PING within "
                       f"{timeout:g}s ({result['error']}){detail}",
                       "restart that node or stop it cleanly (foundation-node leave); a hung process needs a restart")
        else:
            report.add("ok", "members", f"member {m['name']} answers PING in {result['rtt_ms']:.2f} ms")
            _check_member_channels(report, m, timeout)
    for m in members.values():
        if m["state"] == "down" and m.get("reason") == "left":
            report.add("ok", "members", f"member {m['name']} ({m['id'][:8]}) left the cluster")
        elif m["state"] == "down" and m["id"] not in pings:
            report.add("fail", "members", f"dead node: member {m['name']} ({m['id'][:8]}) is down ({m.get('reason', 'link closed')})",
                       "restart it if it should be running; it rejoins with a new incarnation")
        elif m["state"] == "suspect":
            report.add("warn", "members", f"member {m['name']} ({m['id'][:8]}) is suspect: its heartbeats are late",
                       "check that node's load and the network to it; it is declared down if this persists")


# -- the runner ----------------------------------------------------------------------------------------


@dataclass
class RunningNode:
    """What :func:`run_node` reports once the node is up (for the ready line and tests)."""

    node: Node
    admin: AdminService
    seeds: SeedKeeper
    http_url: str | None


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

    Order: HTTP endpoint (so its URL can travel in the node's metadata), node start, admin service,
    ``ready(...)``, seeds (in the background, with ``progress`` lines). On SIGTERM/SIGINT (when
    ``install_signals``), the ``leave`` op, or ``stop`` being set: the node says BYE to its peers and
    closes. Raises :class:`NodeStartError` when it cannot bind.
    """
    from .http import HttpEndpoint

    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    reason = ["stop requested"]

    def request_stop(why: str) -> None:
        reason[0] = why
        stop.set()

    http: HttpEndpoint | None = None
    config = settings.node
    if settings.http_port is not None:
        http = HttpEndpoint(settings.http_host, settings.http_port)
        try:
            await http.start()
        except OSError as exc:
            raise NodeStartError(f"http_port: cannot listen on {settings.http_host}:{settings.http_port}: {exc.strerror or exc}") from None
        config = config.replace(metadata={**config.metadata, "http": http.url})
    node = Node(config)
    keeper = SeedKeeper(node, settings.seeds, retry_max=settings.seed_retry_max, progress=progress)
    admin = AdminService(node, clock=clock, on_leave=lambda: request_stop("leave"), seeds=keeper,
                         http_url=http.url if http else None, config_service=foundation_config())
    admin.install()
    say = progress or (lambda text: log.info("%s", text))
    on_member_event = getattr(node, "on_member_event", None)
    if callable(on_member_event):

        def membership_progress(event: Any) -> None:
            kind = type(event).__name__
            member = getattr(event, "member", None)
            if member is None or kind not in ("MemberUp", "MemberDown", "MemberLeft"):
                return
            alive = len(node.alive_members()) if hasattr(node, "alive_members") else len(node.peers()) + 1
            what = {"MemberUp": "up", "MemberDown": "down", "MemberLeft": "left"}[kind]
            say(f"member {member.name} {what}: {alive} members alive")

        on_member_event(membership_progress)
    try:
        await node.start()
    except Exception as exc:  # ZMQError (address in use), ConfigError, OSError: one message for all
        if http is not None:
            await http.close()
        with contextlib.suppress(Exception):
            await node.stop()
        raise NodeStartError(f"cannot start node {config.name} on {config.bind} port {config.port}: {exc}") from None
    if http is not None:
        http.attach(admin)
    signals = (signal.SIGTERM, signal.SIGINT)
    installed = []
    if install_signals and threading.current_thread() is threading.main_thread():
        for sig in signals:
            try:
                loop.add_signal_handler(sig, request_stop, f"signal {sig.name}")
                installed.append(sig)
            except (NotImplementedError, RuntimeError):
                pass
    try:
        if ready is not None:
            ready(RunningNode(node, admin, keeper, http.url if http else None))
        keeper.start()
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await keeper.stop()
        await node.stop()  # says BYE to every peer
        await keeper.stop(timeout=1.0)  # its last handshake failed with the node: let the task finish
        if http is not None:
            await http.close()
        if admin.config_service is not None:
            with contextlib.suppress(Exception):
                admin.config_service.unsubscribe(admin)
    return reason[0]


__all__ = [
    "ADMIN_SERVICE",
    "ADMIN_VERSION",
    "AdminClient",
    "AdminError",
    "AdminRemoteError",
    "AdminService",
    "AdminUnreachable",
    "AdminUnsupported",
    "DoctorReport",
    "EXPECTED_SOCKET",
    "Finding",
    "MemberTracker",
    "NodeStartError",
    "ProbeResult",
    "RunningNode",
    "SeedKeeper",
    "diagnose",
    "foundation_config",
    "parse_zmtp",
    "probe_zmtp",
    "run_node",
    "zmtp_greeting",
    "zmtp_ready",
]

"""The admin service: what ``foundation-node`` operators (and any client) ask a running node.

Theory of operation
-------------------
A node run by ``foundation-node start`` registers :data:`ADMIN_SERVICE` (``"fabric.admin"``), an ordinary
fabric service: a CALL with a msgpack map ``{"op": NAME, ...arguments}`` on the ``coordination`` control
channel, answered by a msgpack value. Operators reach it as *client-role* peers (:class:`~fabric.admin.
AdminClient`): a client says HELLO to the node's seed address, is never a member, and its calls are
answered over the connection they came in on.

The member list comes from a :class:`~fabric.admin.tracker.MemberTracker` over the node's membership
view; the overlay shown everywhere (``status``, ``topology``, ``/topology.json``) is the one the node
runs now (:attr:`fabric.Node.overlay` and :meth:`fabric.Node.current_topology`), so a live switch shows
at once. The service uses the node's public API only.

Authorisation (docs/security.md, "Admin authorisation"): the ops in :data:`MUTATING_OPS` change the node
or act as it. They are served only on the node's own admin endpoint (:class:`~fabric.admin.endpoint.
AdminEndpoint`, loopback by default), never over the cluster channels, where any member or client could
otherwise reach them; in secure mode they also need a key trusted as ``operator``. Every other op is
read-only.

Threads: every op runs on the node's loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import enum
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import wire
from ..errors import CallError, FabricError, RemoteHandlerError
from ..node import Node, PeerInfo
from .errors import AdminForbidden, AdminRemoteError, AdminUnsupported
from .metrics import render_metrics
from .tracker import DEFAULT_MEMBER_EXPIRY, MemberTracker, WallClock

log = logging.getLogger(__name__)

ADMIN_SERVICE = "fabric.admin"
"""Name of the admin service every ``foundation-node start`` node registers."""
ADMIN_VERSION = 2
"""Version of the admin op set (returned by the ``hello`` op); grows when ops or their replies change
(2: ``status`` reports the running overlay and topology epoch, members may be ``left``, seeds are
reported from the membership view)."""

MUTATING_OPS = frozenset({"leave", "switch", "send", "call", "config.set"})
"""Ops that change a node or act as it (audited: every other op only reads state, or pings peers):
``leave`` stops the node, ``switch`` changes the cluster's overlay, ``send``/``call`` send as the node,
``config.set`` changes the Foundation config. Served only on the admin endpoint; operator key needed in
secure mode."""

Authoriser = Callable[[str, "str | None"], None]
"""``authorise(op, client_key_z85)``: raises :class:`AdminForbidden` when the key may not run ``op``."""

SeedStatus = Callable[[], list[dict[str, Any]]]
"""Returns one entry per configured seed: ``{"seed", "linked", "peer", "peer_id", "last_error"}``."""


@dataclass(frozen=True)
class Target:
    """A member an op addresses: its node id text and name."""

    id: str
    name: str


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("foundation-fabric")
    except Exception:  # not installed (running from a checkout)
        return "0+unknown"


_CLOCK_PROBE_TIMEOUT = 1.0


class AdminService:
    """The ``fabric.admin`` service of one node. Every op runs on the node's loop.

    Args:
        node: the node to operate (started or not; ops need it running).
        clock: wall clock (seconds since the epoch); tests inject a skewed one.
        on_leave: called (on the loop) after the ``leave`` op has answered; the runner stops the node.
        seeds: returns the configured seeds' state (see :data:`SeedStatus`), reported by
            ``status``/``health``; None when the node was given no seeds.
        http_url: the node's HTTP endpoint, if any (reported, and advertised in metadata by the runner).
        config_service: a Foundation ``ConfigServer``-like object (``get``, ``update``, ``subscribe``)
            to expose as ``config.*`` ops (None: not offered).
        member_expiry: seconds a down or left member stays listed (see :class:`MemberTracker`).
    """

    def __init__(
        self,
        node: Node,
        *,
        clock: WallClock = time.time,
        on_leave: Callable[[], None] | None = None,
        seeds: SeedStatus | None = None,
        http_url: str | None = None,
        config_service: Any = None,
        member_expiry: float = DEFAULT_MEMBER_EXPIRY,
    ) -> None:
        self.node = node
        self.clock = clock
        self.on_leave = on_leave
        self.seeds = seeds
        self.http_url = http_url
        self.tracker = MemberTracker(node, clock=clock, expire_after=member_expiry)
        self.config_service = config_service
        self._started = time.monotonic()
        self._config_log: collections.deque[tuple[int, Any, Any]] = collections.deque(maxlen=1000)
        self._config_seq = 0
        self._config_waiters: list[asyncio.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._topology_cache: tuple[int, float, dict[str, Any]] | None = None
        self.admin_endpoint: str | None = None
        """The admin endpoint's address (``tcp://HOST:PORT``, ``#KEY`` appended in secure mode) once an
        :class:`~fabric.admin.endpoint.AdminEndpoint` serves this service; None before."""
        self.admin_security = "none"
        """``"curve"`` or ``"development"`` once the admin endpoint runs."""
        self.authorise: Authoriser | None = None
        """Set by the admin endpoint in secure mode: checks the operator key of a mutating op."""
        self.http_stats: Callable[[], dict[str, Any]] | None = None
        """The HTTP endpoint's counters (set by the runner when it serves one), reported by ``status``."""
        self.endpoint_stats: Callable[[], dict[str, Any]] | None = None
        """The admin endpoint's counters (set while one serves this service)."""
        self.refused: collections.Counter[str] = collections.Counter()
        """Mutating ops refused, by reason (``not_admin_endpoint``, ``not_operator``)."""
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
            on_member_event(self.tracker.on_member_event)
        self.node.add_service(ADMIN_SERVICE, self.handle)
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None  # set by the first request instead
        if self.config_service is not None:
            self.config_service.subscribe(self)  # we are the mailbox: put_nowait below

    @property
    def running(self) -> bool:
        """True while the node runs (``/healthz``)."""
        return bool(self.node.running)

    def seed_status(self) -> list[dict[str, Any]]:
        """The configured seeds' state (empty without seeds)."""
        return self.seeds() if self.seeds is not None else []

    @property
    def ops(self) -> list[str]:
        """Names of the ops this service answers."""
        return sorted(self._ops)

    async def handle(self, request: Any) -> Any:
        """The node-level service handler (``fabric.admin`` over the cluster channels, where members and
        clients reach it): read-only ops only (:data:`MUTATING_OPS` are refused with
        :class:`AdminForbidden` naming the admin endpoint). Raises AdminRemoteError on a bad request."""
        return await self.handle_as(request, key=None, via_endpoint=False)

    async def handle_as(self, request: Any, *, key: str | None, via_endpoint: bool) -> Any:
        """Dispatch ``{"op": ...}`` for a caller: ``key`` is its authenticated CURVE key (Z85, secure mode)
        and ``via_endpoint`` says whether it came through the admin endpoint. Raises AdminRemoteError on a
        bad request, AdminUnsupported for an unknown op, AdminForbidden when the caller may not run it."""
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            raise AdminRemoteError("admin requests are maps with an 'op' string")
        self._loop = asyncio.get_running_loop()
        op = request["op"]
        fn = self._ops.get(op)
        if fn is None:
            raise AdminUnsupported(f"unknown admin op {op!r}; this node offers: {', '.join(self.ops)}")
        if op in MUTATING_OPS:
            if not via_endpoint:
                self.refused["not_admin_endpoint"] += 1
                where = self.admin_endpoint or "its admin endpoint (foundation-node start serves one)"
                raise AdminForbidden(f"{op!r} changes the node: it is served only on the node's admin endpoint, {where}")
            if self.authorise is not None:
                try:
                    self.authorise(op, key)
                except AdminForbidden:
                    self.refused["not_operator"] += 1
                    raise
        result = await fn(request)
        if op == "hello":
            result["endpoint"] = "admin" if via_endpoint else "node"
        return result

    # identity and state

    async def _hello(self, _req: dict[str, Any]) -> dict[str, Any]:
        return {"admin_version": ADMIN_VERSION, "ops": self.ops, "wall_ms": int(self.clock() * 1000),
                "admin": self.admin_endpoint, "id": self.node.id, "name": self.node.name,
                "incarnation": self.node.incarnation, "mutating_ops": sorted(MUTATING_OPS)}

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
            "topology": self._topology_state(),
            "members": dict(collections.Counter(m["state"] for m in self.tracker.members())),
            "expired_members": self.tracker.expired_members,
            "member_expiry_s": self.tracker.expire_after,
            "seeds": self.seed_status(),
            "http": self.http_url,
            "http_stats": self.http_stats() if self.http_stats is not None else None,
            "config": {"bind": cfg.bind, "port": cfg.port, "advertise": cfg.advertise, "insecure": cfg.insecure,
                       "security": cfg.security_mode, "accept_clients": cfg.accept_clients, "metadata": dict(cfg.metadata)},
            "settings": _plain(dataclasses.asdict(cfg)),
            "admin_ops": self.ops,
            "admin": {"endpoint": self.admin_endpoint, "security": self.admin_security,
                      "refused": dict(self.refused),
                      **({"stats": self.endpoint_stats()} if self.endpoint_stats is not None else {})},
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
        return await self.ping_peers(_seconds(req.get("timeout"), _CLOCK_PROBE_TIMEOUT))

    async def _health(self, _req: dict[str, Any]) -> dict[str, Any]:
        node = self.node
        checks: list[dict[str, Any]] = [{"check": "running", "ok": node.running, "detail": "running" if node.running else "not running"}]
        seeds = self.seed_status()
        if seeds:
            missing = [s for s in seeds if not s["linked"]]
            checks.append({
                "check": "seeds",
                "ok": not missing,
                "detail": "every seed is a live member" if not missing
                else "; ".join(f"{s['seed']}: {s['last_error'] or 'not a member yet'}" for s in missing),
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
            joined = bool(node.joined) or not seeds
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
        members = self.tracker.members()
        return {
            "phi": self.phi(),
            "node": {"id": self.node.id, "name": self.node.name, "incarnation": self.node.incarnation,
                     "running": self.node.running, "channels": {c.name: c.kind.value for c in self.node.config.channels}},
            "stats": self.node.stats(),
            "members": members,
            "expired_members": self.tracker.expired_members,
            "clients": len(self.node.clients()),
            "uptime_s": time.monotonic() - self._started,
        }

    def metrics_text(self) -> bytes:
        """The Prometheus text exposition of :meth:`metrics_snapshot` (``/metrics``; loop thread)."""
        return render_metrics(self.metrics_snapshot())

    async def _metrics(self, _req: dict[str, Any]) -> str:
        return self.metrics_text().decode()

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

    def _topology_state(self) -> dict[str, Any]:
        """Overlay, epoch, proposer and neighbours as the node reports them (``current_topology``)."""
        current = getattr(self.node, "current_topology", None)
        if not callable(current) or not self.node.running:
            return {"overlay": self.tracker.overlay, "epoch": 0, "proposer": None, "neighbours": []}
        topo = current()
        return {"overlay": topo["overlay"], "epoch": topo["epoch"], "proposer": topo["proposer"],
                "neighbours": list(topo["neighbours"])}

    async def topology(self, timeout: float = 1.0) -> dict[str, Any]:
        """The cluster graph as this node sees it, plus each alive peer's own links (asked concurrently).

        Returns ``{"overlay", "epoch", "source", "generated_ms", "expired_members", "nodes": [...members],
        "links": [...]}`` with the overlay the node runs now; links are
        undirected and deduplicated by (pair, channel). A result is reused for :attr:`topology_ttl`
        seconds unless membership changed, so many pollers cost the peers one ``links`` call each.
        """
        now = time.monotonic()
        cached = self._topology_cache
        self.tracker.members()  # notices state changes and expiries (they bump ``changes``)
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
        state = self._topology_state()
        return {
            "overlay": state["overlay"],
            "epoch": state["epoch"],
            "source": self.node.id,
            "expired_members": self.tracker.expired_members,
            "generated_ms": int(self.clock() * 1000),
            "nodes": sorted(nodes.values(), key=lambda n: (n["name"], n["id"])),
            "links": unique,
        }

    async def _topology(self, req: dict[str, Any]) -> dict[str, Any]:
        return await self.topology(_seconds(req.get("timeout"), 1.0))

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

    def resolve(self, who: Any) -> Target:
        """An up member (or linked peer) by id, unique id prefix (>= 4 characters) or name.

        Raises AdminRemoteError (empty, unknown, ambiguous, or the node itself)."""
        if not isinstance(who, str) or not who:
            raise AdminRemoteError("name a member: its name, id or an id prefix (an empty name is not one)")
        known = {p.id: Target(p.id, p.name) for p in self.node.peers()}
        for m in self.tracker.members():
            if not m["self"] and m["state"] in ("alive", "suspect"):
                known[m["id"]] = Target(m["id"], m["name"])
        candidates = list(known.values())
        exact = [t for t in candidates if who in (t.id, t.name)]
        if len(exact) == 1:
            return exact[0]
        prefixed = [t for t in candidates if len(who) >= 4 and t.id.startswith(who)]
        if len(prefixed) == 1 and not exact:
            return prefixed[0]
        names = ", ".join(sorted(t.name for t in candidates)) or "none"
        if len(exact) > 1 or len(prefixed) > 1:
            raise AdminRemoteError(f"{who!r} matches several members; use the id (members: {names})")
        if who in (self.node.id, self.node.name):
            raise AdminRemoteError(f"{who!r} is the node itself; leave out --to to address it")
        raise AdminRemoteError(f"unknown member {who!r}: no up member has that name or id (members: {names})")

    def _channel(self, name: Any) -> str:
        """``name`` if the node has such a channel; else AdminRemoteError naming the channels it has."""
        names = [c.name for c in self.node.config.channels]
        if not isinstance(name, str) or name not in names:
            raise AdminRemoteError(f"unknown channel {name!r}; this node has: {', '.join(names)}")
        return name

    async def _send(self, req: dict[str, Any]) -> dict[str, Any]:
        peer = self.resolve(req.get("to"))
        channel = self._channel(req.get("channel", "coordination"))
        try:
            ok = await self.node.send(peer.id, req.get("payload", b""), channel=channel, key=req.get("key"))
        except (ValueError, TypeError, OverflowError) as exc:
            raise AdminRemoteError(f"send: {exc}") from None
        except FabricError as exc:
            raise AdminRemoteError(f"send to {peer.name} failed: {exc}") from None
        return {"to": peer.name, "id": peer.id, "channel": channel, "queued": ok}

    async def _call(self, req: dict[str, Any]) -> dict[str, Any]:
        peer = self.resolve(req.get("to"))
        service = req.get("service")
        if not isinstance(service, str) or not service:
            raise AdminRemoteError("call needs a service name")
        timeout = _seconds(req.get("timeout"), None)
        channel = self._channel(req.get("channel", "coordination"))
        started = time.perf_counter()
        try:
            reply = await self.node.call(peer.id, service, req.get("request", b""), timeout=timeout, channel=channel)
        except (ValueError, TypeError, OverflowError) as exc:
            raise AdminRemoteError(f"call {service!r}: {exc}") from None
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
        cursor = req.get("cursor", -1)
        if not isinstance(cursor, int) or isinstance(cursor, bool):
            raise AdminRemoteError("config.poll: cursor must be an integer")
        if cursor < 0:  # "from now on"
            return {"cursor": self._config_seq, "changes": []}
        if self._config_seq <= cursor:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._config_waiters.append(fut)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, min(_seconds(req.get("timeout"), 2.0), 30.0))
        changes = [{"seq": s, "at_ms": t, **e} for s, e, t in self._config_log if s > cursor]
        return {"cursor": self._config_seq, "changes": changes}


def _plain(value: Any) -> Any:
    """A config as msgpack-ready data: enums by value, tuples as lists, mappings as dicts."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _seconds(value: Any, default: float | None) -> Any:
    """A request's duration argument: a finite number > 0, or ``default`` when absent."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise AdminRemoteError(f"timeout: expected a finite number of seconds > 0, got {value!r}")
    return float(value)


__all__ = ["ADMIN_SERVICE", "ADMIN_VERSION", "MUTATING_OPS", "AdminService", "Authoriser", "SeedStatus", "Target"]

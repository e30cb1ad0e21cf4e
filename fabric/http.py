"""The per-node HTTP endpoint: Prometheus ``/metrics``, read-only ``/topology.json`` and a live page.

Theory of operation
-------------------
A deliberately small HTTP/1.1 server on :func:`asyncio.start_server`, running on the node's loop (so it
reads the node's state without locks). It answers ``GET`` and ``HEAD`` only, one request per
connection (``Connection: close``); anything else gets 405, unknown paths 404, requests whose head is
larger than :data:`MAX_HEAD` or slower than :data:`READ_TIMEOUT` are cut off (400/408). It binds
127.0.0.1 by default: it has no authentication, and everything it serves is read-only.

Routes (once :meth:`HttpEndpoint.attach` gave it an admin service):

* ``/metrics`` — Prometheus text format (:func:`render_metrics`, via ``prometheus_client``);
* ``/topology.json`` — the cluster graph as this node sees it (CORS ``*``, so a page opened from a
  file or another member can poll it);
* ``/`` and ``/topology.html`` — the live topology page polling ``/topology.json``;
* ``/healthz`` — 200 with ``ok`` while the node runs, 503 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .admin import AdminService

log = logging.getLogger(__name__)

MAX_HEAD = 8192
"""Most bytes of request line + headers accepted."""
READ_TIMEOUT = 5.0
"""Seconds a client has to send its request head."""
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _SnapshotCollector(Collector):
    """A prometheus_client collector over one admin metrics snapshot (see AdminService.metrics_snapshot)."""

    def __init__(self, snapshot: Mapping[str, Any]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Any:
        snap = self.snapshot
        node = snap["node"]
        stats = snap["stats"]
        info = InfoMetricFamily("fabric_node", "Identity of this node", labels=["id", "name", "incarnation"])
        info.add_metric([node["id"], node["name"], str(node["incarnation"])], {})
        yield info
        yield GaugeMetricFamily("fabric_up", "1 while the node runs", value=1.0 if node["running"] else 0.0)
        yield GaugeMetricFamily("fabric_uptime_seconds", "Seconds since the admin service started", value=float(snap["uptime_s"]))
        members = GaugeMetricFamily("fabric_members", "Members known to this node (itself included) by state", labels=["state"])
        states: dict[str, int] = {"alive": 0, "suspect": 0, "down": 0}
        for m in snap["members"]:
            states[m["state"]] = states.get(m["state"], 0) + 1
        for state, n in sorted(states.items()):
            members.add_metric([state], float(n))
        yield members
        peers = sum(1 for m in snap["members"] if m["state"] == "alive" and not m["self"])
        yield GaugeMetricFamily("fabric_peers", "Linked peers (members)", value=float(peers))
        yield GaugeMetricFamily("fabric_clients", "Client-role peers that said HELLO", value=float(snap["clients"]))
        traffic = CounterMetricFamily("fabric_node_events", "Node traffic counters (sent, received, dropped_full, seq_gaps ...)", labels=["counter"])
        for name, value in sorted(stats["counters"].items()):
            traffic.add_metric([name], float(value))
        yield traffic
        channel_msgs = CounterMetricFamily(
            "fabric_channel_messages", "Messages sent and received per channel (batches count their inner messages)",
            labels=["channel", "direction"],
        )
        for channel, counts in sorted(stats.get("channels", {}).items()):
            channel_msgs.add_metric([channel, "sent"], float(counts["sent"]))
            channel_msgs.add_metric([channel, "received"], float(counts["received"]))
        yield channel_msgs
        drops = CounterMetricFamily("fabric_dropped_messages", "Messages dropped because a peer queue was full", labels=["reason"])
        drops.add_metric(["queue_full"], float(stats["counters"].get("dropped_full", 0)))
        drops.add_metric(["requests_shed"], float(stats["counters"].get("shed_requests", 0)))
        yield drops
        bad = CounterMetricFamily("fabric_bad_input", "Malformed input dropped, by category", labels=["category"])
        for cat in ("bad_signature", "truncated", "bad_version", "unknown_type", "bad_header", "oversized", "malformed", "version_mismatch"):
            bad.add_metric([cat], float(stats["errors"].get(cat, 0)))
        for cat, value in sorted(stats["errors"].items()):
            if cat not in {"bad_signature", "truncated", "bad_version", "unknown_type", "bad_header", "oversized", "malformed", "version_mismatch"}:
                bad.add_metric([cat], float(value))
        yield bad
        transport = stats.get("transport", {})
        tcount = CounterMetricFamily("fabric_transport_messages", "ZeroMQ transport counters", labels=["counter"])
        for name, value in sorted(transport.items()):
            if isinstance(value, int | float) and name not in ("links", "sockets"):
                tcount.add_metric([name], float(value))
        yield tcount
        yield GaugeMetricFamily("fabric_transport_sockets", "Open ZeroMQ sockets", value=float(transport.get("sockets", 0)))
        conns = CounterMetricFamily("fabric_channel_connections", "Connection events on each bound channel", labels=["channel", "kind", "event"])
        for channel, events in sorted(transport.get("connections", {}).items()):
            for event, value in sorted(events.items()):
                conns.add_metric([channel, node["channels"].get(channel, ""), event], float(value))
        yield conns
        links = CounterMetricFamily("fabric_topology_link_actions",
                                    "Topology manager: on-demand links opened, neighbour links repaired, links closed (gone, idle, stray)",
                                    labels=["action"])
        for name, value in sorted(stats.get("links", {}).items()):
            links.add_metric([name], float(value))
        yield links
        depth = GaugeMetricFamily("fabric_channel_queue_depth", "Messages queued to peers, by channel", labels=["channel", "kind"])
        per_channel: dict[str, int] = {name: 0 for name in node["channels"]}
        for key, n in stats["queued"].items():
            channel = key.split("/")[1] if key.count("/") >= 2 else key
            per_channel[channel] = per_channel.get(channel, 0) + n
        for channel, n in sorted(per_channel.items()):
            depth.add_metric([channel, node["channels"].get(channel, "")], float(n))
        yield depth
        backlog = GaugeMetricFamily("fabric_subscription_backlog", "Messages waiting for subscription handlers, by channel", labels=["channel"])
        for channel, n in sorted(stats["subscription_backlog"].items()):
            backlog.add_metric([channel], float(n))
        yield backlog
        phi = GaugeMetricFamily("fabric_member_phi", "Failure-detector phi of each up member (suspect above the threshold)", labels=["member"])
        for member, value in sorted(snap.get("phi", {}).items()):
            phi.add_metric([member], value)
        yield phi
        membership = CounterMetricFamily("fabric_membership_events", "Membership protocol counters", labels=["counter"])
        for name, value in sorted(stats.get("membership", {}).items()):
            if isinstance(value, int | float):
                membership.add_metric([name], float(value))
        yield membership
        yield GaugeMetricFamily("fabric_pending_calls", "Calls waiting for a reply", value=float(stats["pending_calls"]))
        yield GaugeMetricFamily("fabric_active_requests", "Service requests running", value=float(stats["active_requests"]))


def render_metrics(snapshot: Mapping[str, Any]) -> bytes:
    """The Prometheus text exposition of an admin metrics snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)


class HttpEndpoint:
    """The node's HTTP server (see the module docstring). Start, attach, close on the node's loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._admin: AdminService | None = None
        self.requests = 0
        self.bad_requests = 0

    @property
    def url(self) -> str:
        """``http://host:port`` once started."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Listen; raises OSError (address in use, permission)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    def attach(self, admin: AdminService) -> None:
        """Serve this admin service's node (until then every route answers 503)."""
        self._admin = admin

    async def close(self) -> None:
        """Stop listening and close open connections."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            except asyncio.LimitOverrunError:
                self.bad_requests += 1
                await self._respond(writer, 400, b"request head too large\n")
                return
            except (TimeoutError, asyncio.IncompleteReadError):
                self.bad_requests += 1
                return
            if len(head) > MAX_HEAD:
                self.bad_requests += 1
                await self._respond(writer, 400, b"request head too large\n")
                return
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self.bad_requests += 1
                await self._respond(writer, 400, b"bad request line\n")
                return
            method, target, _version = parts
            self.requests += 1
            if method not in ("GET", "HEAD"):
                await self._respond(writer, 405, b"read-only: GET and HEAD only\n", extra={"Allow": "GET, HEAD"})
                return
            status, ctype, body, extra = await self._route(target.split("?", 1)[0])
            await self._respond(writer, status, body, ctype=ctype, extra=extra, head_only=method == "HEAD")
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _route(self, path: str) -> tuple[int, str, bytes, dict[str, str]]:
        admin = self._admin
        if admin is None:
            return 503, "text/plain", b"starting\n", {}
        if path == "/metrics":
            return 200, METRICS_CONTENT_TYPE, render_metrics(admin.metrics_snapshot()), {}
        if path == "/topology.json":
            body = json.dumps(await admin.topology(), sort_keys=True).encode()
            return 200, "application/json", body, {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"}
        if path in ("/", "/topology.html"):
            from .topology_view import render_html

            return 200, "text/html; charset=utf-8", render_html("/topology.json").encode(), {"Cache-Control": "no-store"}
        if path == "/healthz":
            running = admin.node.running
            return (200 if running else 503), "text/plain", b"ok\n" if running else b"stopping\n", {}
        return 404, "text/plain", b"not found: try /metrics, /topology.json, /topology.html, /healthz\n", {}

    async def _respond(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        *,
        ctype: str = "text/plain; charset=utf-8",
        extra: Mapping[str, str] | None = None,
        head_only: bool = False,
    ) -> None:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}.get(status, "")
        headers = {"Content-Type": ctype, "Content-Length": str(len(body)), "Connection": "close", **(extra or {})}
        head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode("latin-1") + (b"" if head_only else body))
        await writer.drain()


__all__ = ["HttpEndpoint", "METRICS_CONTENT_TYPE", "render_metrics"]

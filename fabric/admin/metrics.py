"""Prometheus rendering of an admin metrics snapshot (what ``/metrics`` and the ``metrics`` op serve).

:func:`render_metrics` turns the plain-data snapshot of :meth:`fabric.admin.AdminService.metrics_snapshot`
into the Prometheus text exposition through ``prometheus_client`` (no global registry: one collector per
rendering, so many nodes in one process never share metrics).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The HTTP content type of :func:`render_metrics`' output."""


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
        states: dict[str, int] = {"alive": 0, "suspect": 0, "down": 0, "left": 0}
        for m in snap["members"]:
            states[m["state"]] = states.get(m["state"], 0) + 1
        for state, n in sorted(states.items()):
            members.add_metric([state], float(n))
        yield members
        yield CounterMetricFamily("fabric_members_expired", "Down or left members no longer listed (member_expiry passed)",
                                  value=float(snap.get("expired_members", 0)))
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
        usage = GaugeMetricFamily("fabric_limit_usage",
                                  "Entries held by each bounded structure remote peers can fill (docs/security.md)",
                                  labels=["structure"])
        for name, value in sorted(stats.get("limits", {}).items()):
            if isinstance(value, int | float):
                usage.add_metric([name], float(value))
        yield usage
        yield GaugeMetricFamily("fabric_pending_calls", "Calls waiting for a reply", value=float(stats["pending_calls"]))
        yield GaugeMetricFamily("fabric_active_requests", "Service requests running", value=float(stats["active_requests"]))


def render_metrics(snapshot: Mapping[str, Any]) -> bytes:
    """The Prometheus text exposition of an admin metrics snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)



__all__ = ["METRICS_CONTENT_TYPE", "render_metrics"]

"""Pure pieces behind the CLI: topology graph and renderings, ZMTP greeting parsing, Prometheus rendering,
the member tracker with an injected clock."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fabric import NodeConfig, wire
from fabric.admin import MemberTracker, render_metrics
from fabric.node import PeerInfo
from fabric.topology_view import Graph, channel_colour, render_html, to_dot, to_svg, to_text
from foundation_cli.doctor import parse_zmtp, zmtp_greeting, zmtp_ready

IDS = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(1, 5)]


def topo(states: dict[str, str] | None = None) -> dict[str, Any]:
    states = states or {}
    names = ["delta", "alpha", "charlie", "bravo"]
    nodes = [{"id": i, "name": n, "state": states.get(n, "alive"), "self": n == "alpha"} for i, n in zip(IDS, names, strict=True)]
    links = []
    for a in range(4):
        for b in range(a + 1, 4):
            for ch in ("membership", "data"):
                links.append({"source": IDS[b], "target": IDS[a], "channel": ch, "kind": "control"})
    links.append({"source": IDS[0], "target": IDS[1], "channel": "data", "kind": "bulk"})  # duplicate, reversed
    links.append({"source": IDS[0], "target": "unknown", "channel": "data"})  # to nobody
    return {"overlay": "static", "nodes": nodes, "links": links}


def test_graph_is_sorted_and_deduplicated() -> None:
    g = Graph.from_topology(topo())
    assert [n.name for n in g.nodes] == ["alpha", "bravo", "charlie", "delta"]
    assert len(g.links) == 6 * 2 and all(link.a < link.b for link in g.links)
    assert g.channels() == ["data", "membership"]


def test_layout_is_deterministic_and_inside_the_canvas() -> None:
    g = Graph.from_topology(topo())
    pos = g.layout(600)
    assert pos == Graph.from_topology(topo()).layout(600)
    assert all(0 < x < 600 and 0 < y < 600 for x, y in pos.values())
    assert len(set(pos.values())) == 4


def test_dot_colours_by_state_and_channel() -> None:
    dot = to_dot(Graph.from_topology(topo({"bravo": "down"})))
    assert dot.startswith("graph fabric {") and dot.rstrip().endswith("}")
    assert dot.count(" -- ") == 12
    assert re.search(r'label="bravo\ndown", fillcolor="#c62828"', dot)
    assert f'color="{channel_colour("data")}"' in dot


def test_svg_is_well_formed_and_marks_states() -> None:
    svg = to_svg(Graph.from_topology(topo({"charlie": "down"})))
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    members = {g.get("data-name"): g.get("data-state") for g in root.iter(f"{ns}g") if g.get("class") == "member"}
    assert members == {"alpha": "alive", "bravo": "alive", "charlie": "down", "delta": "alive"}
    assert sum(1 for line in root.iter(f"{ns}line") if line.get("class") == "link") == 12
    assert to_svg(Graph.from_topology(topo())) == to_svg(Graph.from_topology(topo()))


def test_text_lists_members_and_links() -> None:
    text = to_text(Graph.from_topology(topo()))
    assert "alpha -- bravo: data, membership" in text and "(this node)" in text


def test_svg_escapes_names() -> None:
    t = {"nodes": [{"id": IDS[0], "name": "<b>&", "state": "alive"}], "links": []}
    ET.fromstring(to_svg(Graph.from_topology(t)))


def test_html_page_is_self_contained_and_embeds_its_source() -> None:
    page = render_html("http://127.0.0.1:9/topology.json</script>", poll_ms=250)
    assert page.startswith("<!DOCTYPE html>") and page.count("<script>") == 1 and page.count("</script>") == 1
    config = json.loads(page.split("const CONFIG = ", 1)[1].split(";\n", 1)[0].replace("<\\/", "</"))
    assert config["source"].endswith("</script>") and config["poll_ms"] == 250
    assert "http" not in page.replace("http://127.0.0.1:9", "").replace("http://www.w3.org", "").split("<script>")[0]


def test_channel_colours_are_stable() -> None:
    assert channel_colour("custom") == channel_colour("custom")
    assert channel_colour("data") != channel_colour("events")


# -- ZMTP -------------------------------------------------------------------------------------------


def test_parse_zmtp_reads_the_socket_type() -> None:
    data = zmtp_greeting() + zmtp_ready("ROUTER")
    for cut in range(len(data)):
        assert parse_zmtp(data[:cut]) is None
    assert parse_zmtp(data) == ("NULL", "ROUTER")


def test_parse_zmtp_rejects_other_protocols() -> None:
    with pytest.raises(ValueError, match="not a ZeroMQ greeting"):
        parse_zmtp(b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(ValueError):
        parse_zmtp(b"\xff" + b"\x00" * 8 + b"\x01")


def test_parse_zmtp_reports_other_mechanisms() -> None:
    greeting = bytearray(zmtp_greeting())
    greeting[12:32] = b"CURVE".ljust(20, b"\x00")
    assert parse_zmtp(bytes(greeting)) == ("CURVE", "")


# -- metrics ---------------------------------------------------------------------------------------


def test_render_metrics_exposes_the_snapshot() -> None:
    snapshot = {
        "node": {"id": IDS[0], "name": "alpha", "incarnation": 7, "running": True,
                 "channels": {"membership": "control", "data": "bulk"}},
        "stats": {
            "counters": {"sent": 5, "received": 9, "dropped_full": 2},
            "channels": {"data": {"sent": 4, "received": 6}},
            "errors": {"truncated": 3, "custom": 1},
            "transport": {"sent": 5, "recv": 9, "links": 1, "sockets": 6,
                          "connections": {"membership": {"accepted": 2, "disconnected": 1}}},
            "pending_calls": 1,
            "active_requests": 0,
            "queued": {"0000aaaa/data/2": 4},
            "subscription_backlog": {"data": 3},
        },
        "members": [{"state": "alive", "self": True}, {"state": "alive", "self": False}, {"state": "down", "self": False}],
        "clients": 1,
        "uptime_s": 12.5,
    }
    text = render_metrics(snapshot).decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("fabric_members", (("state", "alive"),))] == 2
    assert samples[("fabric_members", (("state", "down"),))] == 1
    assert samples[("fabric_peers", ())] == 1
    assert samples[("fabric_bad_input_total", (("category", "truncated"),))] == 3
    assert samples[("fabric_bad_input_total", (("category", "custom"),))] == 1
    assert samples[("fabric_dropped_messages_total", (("reason", "queue_full"),))] == 2
    assert samples[("fabric_channel_queue_depth", (("channel", "data"), ("kind", "bulk")))] == 4
    assert samples[("fabric_channel_queue_depth", (("channel", "membership"), ("kind", "control")))] == 0
    assert samples[("fabric_channel_connections_total", (("channel", "membership"), ("event", "accepted"), ("kind", "control")))] == 2
    assert samples[("fabric_subscription_backlog", (("channel", "data"),))] == 3
    assert samples[("fabric_channel_messages_total", (("channel", "data"), ("direction", "received")))] == 6
    assert samples[("fabric_node_info", (("id", IDS[0]), ("incarnation", "7"), ("name", "alpha")))] == 1


# -- member tracker --------------------------------------------------------------------------------


class FakeNode:
    """Just what MemberTracker reads."""

    def __init__(self) -> None:
        self.id, self.name, self.incarnation, self.running = IDS[0], "me", 1, True
        self.seed = "tcp://127.0.0.1:1"
        self.endpoints = {"membership": self.seed}
        self.config = NodeConfig.local(name="me")
        self.linked: list[PeerInfo] = []

    def peers(self) -> list[PeerInfo]:
        return list(self.linked)


def peer(i: int, name: str) -> PeerInfo:
    return PeerInfo(id=IDS[i], name=name, incarnation=i, endpoints={"membership": f"tcp://127.0.0.1:{i}"},
                    channels={"membership": ("control", 1)})


def test_tracker_link_fallback_marks_departed_peers_down_then_expires_them() -> None:
    now = [1000.0]
    node = FakeNode()
    tracker = MemberTracker(node, clock=lambda: now[0], expire_after=60, keep=2)  # type: ignore[arg-type]
    b, c = peer(1, "b"), peer(2, "c")
    node.linked = [b, c]
    tracker.on_peer("up", b)
    tracker.on_peer("up", c)
    assert [(m["name"], m["state"]) for m in tracker.members()] == [("me", "alive"), ("b", "alive"), ("c", "alive")]
    node.linked = [b]
    tracker.on_peer("down", c)
    view = tracker.members()
    assert [(m["name"], m["state"]) for m in view] == [("me", "alive"), ("b", "alive"), ("c", "down")]
    assert view[2]["since_ms"] == 1_000_000
    now[0] += 61
    assert [m["name"] for m in tracker.members()] == ["me", "b"]
    assert tracker.expired_members == 1
    node.linked = [c]
    tracker.on_peer("up", c)  # came back: no longer listed down
    tracker.on_peer("down", b)
    assert [(m["name"], m["state"]) for m in tracker.members()] == [("me", "alive"), ("c", "alive"), ("b", "down")]


def test_tracker_bounds_departed_entries() -> None:
    node = FakeNode()
    tracker = MemberTracker(node, clock=lambda: 0.0, keep=2)  # type: ignore[arg-type]
    for i, name in enumerate(["x", "y", "z"], 1):
        tracker.on_peer("down", peer(i, name))
    assert [m["name"] for m in tracker.members()] == ["me", "y", "z"]


@dataclass
class FakeMember:
    node_id: bytes
    name: str
    incarnation: int
    status: str
    metadata: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, tuple[str, str, int]] = field(default_factory=dict)


class MemberNode(FakeNode):
    """A node with a membership view (``members()``) and an overlay."""

    def __init__(self) -> None:
        super().__init__()
        self.view: list[FakeMember] = []
        self.overlay = "hyparview"

    def members(self) -> list[FakeMember]:
        me = FakeMember(wire.node_id_bytes(IDS[0]), "me", 1, "alive")
        return [me, *self.view]


def member(i: int, name: str, status: str, incarnation: int = 1) -> FakeMember:
    return FakeMember(wire.node_id_bytes(IDS[i]), name, incarnation, status,
                      endpoints={"membership": ("control", f"tcp://127.0.0.1:{i}", 1)})


def test_tracker_shows_membership_states_left_as_left_and_expires_down_and_left() -> None:
    now = [5000.0]
    node = MemberNode()
    node.linked = [peer(3, "linked-only")]  # linked but not a member: a link is not membership
    tracker = MemberTracker(node, clock=lambda: now[0], expire_after=300)  # type: ignore[arg-type]
    node.view = [member(1, "b", "alive"), member(2, "c", "left")]
    view = tracker.members()
    assert [(m["name"], m["state"], m.get("reason")) for m in view] == [
        ("me", "alive", None), ("b", "alive", None), ("c", "left", "left")]
    assert tracker.overlay == "hyparview"
    now[0] += 200
    node.view = [member(1, "b", "down"), member(2, "c", "left")]
    assert [(m["name"], m["state"]) for m in tracker.members()] == [("me", "alive"), ("b", "down"), ("c", "left")]
    now[0] += 101  # c has been left for 301 s, b down for 101 s
    assert [(m["name"], m["state"]) for m in tracker.members()] == [("me", "alive"), ("b", "down")]
    assert tracker.expired_members == 1
    now[0] += 200
    assert [m["name"] for m in tracker.members()] == ["me"]
    assert tracker.expired_members == 2
    tracker.members()
    assert tracker.expired_members == 2  # counted once each
    node.view = [member(1, "b", "alive", incarnation=2), member(2, "c", "left")]  # b restarted
    assert [(m["name"], m["state"]) for m in tracker.members()] == [("me", "alive"), ("b", "alive")]


def test_tracker_rejects_a_bad_expiry() -> None:
    with pytest.raises(ValueError, match="expire_after"):
        MemberTracker(MemberNode(), expire_after=float("nan"))  # type: ignore[arg-type]


def test_imports_point_down_only() -> None:
    """fabric.http serves what it is given (no admin import); fabric.admin imports neither the HTTP
    endpoint nor the CLI nor Foundation (the runner, above them all, composes them)."""
    import subprocess
    import sys

    checks = [
        "import sys, fabric.http; assert 'fabric.admin' not in sys.modules",
        "import sys, fabric.admin; assert not {'fabric.http', 'foundation_cli', 'foundation'} & set(sys.modules)",
    ]
    for code in checks:
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_payload_parsing_bounds_depth_and_integers_but_not_brackets_in_strings() -> None:
    from foundation_cli.main import Failure, _parse_value

    assert _parse_value('"' + "[" * 100 + '"', False) == "[" * 100  # brackets inside a JSON string
    assert _parse_value('["a\\"[[", 1]', False) == ['a"[[', 1]
    assert _parse_value("not json", False) == "not json"
    assert _parse_value(str(2**64 - 1), False) == 2**64 - 1
    for bad in ("[" * 65 + "]" * 65, str(2**64), f"[{-(2**63) - 1}]", '{"k": ' + "9" * 30 + "}"):
        with pytest.raises(Failure):
            _parse_value(bad, False)

"""Pictures of the cluster: the topology graph model and its dot, SVG and live HTML renderings.

The input is what the admin ``topology`` op and ``/topology.json`` return: ``nodes`` (id, name, state,
self) and undirected ``links`` (source, target, channel, kind). Rendering is deterministic: nodes sit on
a circle in name order, each channel of a link is drawn as its own slightly offset line in the channel's
colour, members are filled by state. No graphviz is needed; the dot text is for those who have it.

The HTML page is self-contained (inline CSS and JS, no external requests besides polling): it fetches
the topology JSON every ``poll_ms``, redraws the SVG and a member list, and when its source stops
answering it tries the HTTP endpoints other members advertised (``http`` in their metadata).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STATE_COLOURS = {"alive": "#2e7d32", "suspect": "#f9a825", "down": "#c62828", "left": "#616161"}
"""Fill colour of a member by state (unknown states are grey)."""
CHANNEL_COLOURS = {
    "membership": "#757575",
    "coordination": "#1565c0",
    "gossip": "#6a1b9a",
    "data": "#ef6c00",
    "events": "#00838f",
}
"""Stroke colour of a link by channel; other channels take one from :data:`EXTRA_COLOURS`."""
EXTRA_COLOURS = ("#ad1457", "#4e342e", "#558b2f", "#283593", "#00695c")


def channel_colour(channel: str) -> str:
    """The colour a channel is drawn in (stable across runs)."""
    if channel in CHANNEL_COLOURS:
        return CHANNEL_COLOURS[channel]
    return EXTRA_COLOURS[sum(channel.encode()) % len(EXTRA_COLOURS)]


@dataclass(frozen=True)
class GraphNode:
    """A member in the picture."""

    id: str
    name: str
    state: str
    is_self: bool = False


@dataclass(frozen=True)
class GraphLink:
    """One channel between two members (undirected: ``a < b``)."""

    a: str
    b: str
    channel: str
    kind: str = ""


@dataclass(frozen=True)
class Graph:
    """The cluster as a graph."""

    nodes: tuple[GraphNode, ...]
    links: tuple[GraphLink, ...]
    overlay: str = ""

    @classmethod
    def from_topology(cls, topo: Mapping[str, Any]) -> Graph:
        """Build from a topology dict; nodes sorted by (name, id), links deduplicated and sorted."""
        nodes = tuple(
            sorted(
                (GraphNode(str(n["id"]), str(n.get("name") or n["id"][:8]), str(n.get("state", "alive")), bool(n.get("self")))
                 for n in topo.get("nodes", [])),
                key=lambda n: (n.name, n.id),
            )
        )
        ids = {n.id for n in nodes}
        links: dict[tuple[str, str, str], GraphLink] = {}
        for link in topo.get("links", []):
            a, b = sorted((str(link["source"]), str(link["target"])))
            key = (a, b, str(link["channel"]))
            if a in ids and b in ids and a != b and key not in links:
                links[key] = GraphLink(a, b, key[2], str(link.get("kind", "")))
        return cls(nodes, tuple(links[k] for k in sorted(links)), str(topo.get("overlay", "")))

    def channels(self) -> list[str]:
        """Channel names present, sorted."""
        return sorted({link.channel for link in self.links})

    def layout(self, size: float = 600.0) -> dict[str, tuple[float, float]]:
        """Node id -> (x, y): a circle in name order (one node: the centre)."""
        centre = size / 2
        n = len(self.nodes)
        if n == 1:
            return {self.nodes[0].id: (centre, centre)}
        radius = size / 2 - 90
        return {
            node.id: (
                round(centre + radius * math.cos(2 * math.pi * i / n - math.pi / 2), 2),
                round(centre + radius * math.sin(2 * math.pi * i / n - math.pi / 2), 2),
            )
            for i, node in enumerate(self.nodes)
        }


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: Graph) -> str:
    """Graphviz dot text: members filled by state, one edge per channel coloured by channel."""
    lines = ["graph fabric {", f"  label={_dot_id('overlay: ' + graph.overlay)};", '  node [shape=circle, style=filled, fontcolor=white];']
    for n in graph.nodes:
        colour = STATE_COLOURS.get(n.state, "#9e9e9e")
        extra = ", penwidth=3" if n.is_self else ""
        lines.append(f"  {_dot_id(n.id)} [label={_dot_id(n.name + chr(10) + n.state)}, fillcolor={_dot_id(colour)}{extra}];")
    for link in graph.links:
        lines.append(f"  {_dot_id(link.a)} -- {_dot_id(link.b)} [color={_dot_id(channel_colour(link.channel))}, tooltip={_dot_id(link.channel)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(graph: Graph, size: int = 600) -> str:
    """A standalone SVG picture with a deterministic circular layout and a legend."""
    pos = graph.layout(size)
    channels = graph.channels()
    legend_h = 20 * (len(channels) + len(STATE_COLOURS)) + 20
    height = size + legend_h
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{height}" viewBox="0 0 {size} {height}" '
        'font-family="sans-serif" font-size="13">',
        f'<rect width="{size}" height="{height}" fill="#ffffff"/>',
        f'<text x="10" y="20" font-size="15">fabric topology ({html.escape(graph.overlay or "unknown")} overlay): '
        f'{len(graph.nodes)} members, {len(graph.links)} channel links</text>',
    ]
    for link in graph.links:
        (x1, y1), (x2, y2) = pos[link.a], pos[link.b]
        k = channels.index(link.channel) - (len(channels) - 1) / 2
        length = math.hypot(x2 - x1, y2 - y1) or 1.0
        ox, oy = -(y2 - y1) / length * 3 * k, (x2 - x1) / length * 3 * k
        out.append(
            f'<line class="link" data-channel="{html.escape(link.channel)}" x1="{x1 + ox:.1f}" y1="{y1 + oy:.1f}" '
            f'x2="{x2 + ox:.1f}" y2="{y2 + oy:.1f}" stroke="{channel_colour(link.channel)}" stroke-width="2"/>'
        )
    for n in graph.nodes:
        x, y = pos[n.id]
        colour = STATE_COLOURS.get(n.state, "#9e9e9e")
        stroke = ' stroke="#000" stroke-width="3"' if n.is_self else ""
        out.append(
            f'<g class="member" data-id="{html.escape(n.id)}" data-name="{html.escape(n.name)}" data-state="{html.escape(n.state)}">'
            f'<circle cx="{x}" cy="{y}" r="28" fill="{colour}"{stroke}/>'
            f'<text x="{x}" y="{y + 46}" text-anchor="middle">{html.escape(n.name)}</text>'
            f'<text x="{x}" y="{y + 4}" text-anchor="middle" fill="#fff" font-size="11">{html.escape(n.state)}</text></g>'
        )
    y = size + 10
    for state, colour in STATE_COLOURS.items():
        out.append(f'<circle cx="20" cy="{y}" r="6" fill="{colour}"/><text x="32" y="{y + 4}">{state}</text>')
        y += 20
    for ch in channels:
        out.append(f'<line x1="12" y1="{y}" x2="28" y2="{y}" stroke="{channel_colour(ch)}" stroke-width="3"/>'
                   f'<text x="32" y="{y + 4}">{html.escape(ch)}</text>')
        y += 20
    out.append("</svg>")
    return "\n".join(out) + "\n"


def to_text(graph: Graph) -> str:
    """A plain listing: members with state, then links grouped by pair."""
    names = {n.id: n.name for n in graph.nodes}
    lines = [f"overlay: {graph.overlay or 'unknown'}", "members:"]
    for n in graph.nodes:
        lines.append(f"  {n.name:<20} {n.state:<8} {n.id}{'  (this node)' if n.is_self else ''}")
    pairs: dict[tuple[str, str], list[str]] = {}
    for link in graph.links:
        pairs.setdefault((link.a, link.b), []).append(link.channel)
    lines.append("links:")
    rows = sorted((*sorted((names[a], names[b])), chans) for (a, b), chans in pairs.items())
    for first, second, chans in rows:
        lines.append(f"  {first} -- {second}: {', '.join(chans)}")
    if not pairs:
        lines.append("  (none)")
    return "\n".join(lines) + "\n"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fabric topology</title>
<style>
body { font-family: sans-serif; margin: 1em; color: #222; }
#wrap { display: flex; gap: 2em; align-items: flex-start; }
#members { list-style: none; padding: 0; min-width: 16em; }
#members li { padding: .2em .5em; margin: .2em 0; border-left: .6em solid #9e9e9e; }
#status { color: #555; font-size: 90%; }
.legend span { display: inline-block; margin-right: 1em; }
.swatch { display: inline-block; width: 1.2em; height: .4em; vertical-align: middle; margin-right: .3em; }
</style></head>
<body>
<h1>fabric topology</h1>
<p id="status">loading&hellip;</p>
<div id="wrap"><svg id="graph" width="600" height="600" viewBox="0 0 600 600"></svg>
<div><ul id="members"></ul><div class="legend" id="legend"></div></div></div>
<script>
const CONFIG = __CONFIG__;
const STATE = CONFIG.states, CHANNEL = CONFIG.channels, EXTRA = CONFIG.extra;
let sources = [CONFIG.source], current = 0, failures = 0;
const params = new URLSearchParams(location.search);
if (params.get("src")) sources = [params.get("src")];
function colourOf(ch) {
  if (CHANNEL[ch]) return CHANNEL[ch];
  let s = 0; for (const b of new TextEncoder().encode(ch)) s += b; return EXTRA[s % EXTRA.length];
}
function el(name, attrs, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function draw(topo) {
  const nodes = topo.nodes.slice().sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : (a.id < b.id ? -1 : 1));
  const svg = document.getElementById("graph");
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const pos = {}, n = nodes.length, c = 300, r = 210;
  nodes.forEach((m, i) => {
    pos[m.id] = n === 1 ? [c, c] : [c + r * Math.cos(2 * Math.PI * i / n - Math.PI / 2), c + r * Math.sin(2 * Math.PI * i / n - Math.PI / 2)];
  });
  const chans = [...new Set(topo.links.map(l => l.channel))].sort();
  for (const l of topo.links) {
    if (!pos[l.source] || !pos[l.target]) continue;
    const [x1, y1] = pos[l.source], [x2, y2] = pos[l.target];
    const k = chans.indexOf(l.channel) - (chans.length - 1) / 2, len = Math.hypot(x2 - x1, y2 - y1) || 1;
    const ox = -(y2 - y1) / len * 3 * k, oy = (x2 - x1) / len * 3 * k;
    svg.appendChild(el("line", {class: "link", "data-channel": l.channel, x1: x1 + ox, y1: y1 + oy, x2: x2 + ox, y2: y2 + oy,
                                stroke: colourOf(l.channel), "stroke-width": 2}));
  }
  const list = document.getElementById("members");
  list.textContent = "";
  for (const m of nodes) {
    const [x, y] = pos[m.id];
    const g = el("g", {class: "member", "data-id": m.id, "data-name": m.name, "data-state": m.state});
    g.appendChild(el("circle", Object.assign({cx: x, cy: y, r: 28, fill: STATE[m.state] || "#9e9e9e"},
                                             m.self ? {stroke: "#000", "stroke-width": 3} : {})));
    g.appendChild(el("text", {x: x, y: y + 46, "text-anchor": "middle"}, m.name));
    g.appendChild(el("text", {x: x, y: y + 4, "text-anchor": "middle", fill: "#fff", "font-size": 11}, m.state));
    svg.appendChild(g);
    const li = document.createElement("li");
    li.className = "member-row"; li.dataset.name = m.name; li.dataset.state = m.state; li.dataset.id = m.id;
    li.style.borderLeftColor = STATE[m.state] || "#9e9e9e";
    li.textContent = m.name + " \\u2014 " + m.state + (m.self ? " (source)" : "");
    list.appendChild(li);
    if (m.http && m.state === "alive") {
      const url = m.http + "/topology.json";
      if (!sources.includes(url)) sources.push(url);
    }
  }
  const legend = document.getElementById("legend");
  legend.textContent = "";
  for (const ch of chans) {
    const s = document.createElement("span");
    const sw = document.createElement("i"); sw.className = "swatch"; sw.style.background = colourOf(ch);
    s.appendChild(sw); s.appendChild(document.createTextNode(ch)); legend.appendChild(s);
  }
}
async function poll() {
  const src = sources[current % sources.length];
  try {
    const resp = await fetch(src, {cache: "no-store"});
    if (!resp.ok) throw new Error("HTTP " + resp.status);
    const topo = await resp.json();
    draw(topo);
    failures = 0;
    const alive = topo.nodes.filter(m => m.state === "alive").length;
    document.getElementById("status").textContent =
      "overlay " + topo.overlay + ": " + alive + "/" + topo.nodes.length + " members alive, " + topo.links.length +
      " channel links; from " + src + " at " + new Date().toLocaleTimeString();
    document.body.dataset.updated = String(Date.now());
  } catch (e) {
    failures += 1; current += 1;
    document.getElementById("status").textContent = "source " + src + " unreachable (" + e.message + "); trying the next";
  }
  setTimeout(poll, CONFIG.poll_ms);
}
poll();
</script>
</body></html>
"""


def render_html(source: str, *, poll_ms: int = 1000) -> str:
    """The live page: polls ``source`` (a ``/topology.json`` URL, absolute or relative) every ``poll_ms``."""
    config = {"source": source, "poll_ms": int(poll_ms), "states": STATE_COLOURS, "channels": CHANNEL_COLOURS, "extra": list(EXTRA_COLOURS)}
    # "</" cannot end the script early once escaped; the JSON stays valid.
    return _PAGE.replace("__CONFIG__", json.dumps(config, sort_keys=True).replace("</", "<\\/"))


__all__ = [
    "CHANNEL_COLOURS",
    "STATE_COLOURS",
    "Graph",
    "GraphLink",
    "GraphNode",
    "channel_colour",
    "render_html",
    "to_dot",
    "to_svg",
    "to_text",
]

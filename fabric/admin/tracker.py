"""The member list operators see: the node's membership view, with states and ages, bounded in time.

Theory of operation
-------------------
The source of truth is :meth:`fabric.Node.members` (the full membership on every overlay, itself
included). Each member is shown with the state the node gives it (``alive``, ``suspect``, ``down``,
``left``) and ``since_ms``: when this tracker first saw it in that state. A member that is ``down`` or
``left`` is shown for :attr:`MemberTracker.expire_after` seconds (default
:data:`DEFAULT_MEMBER_EXPIRY`), then no longer listed and counted once in
:attr:`MemberTracker.expired_members`, so a long-running cluster's page does not fill up with the dead.

Linked peers that the membership does not list are *not* shown as alive: a link is not membership (a
peer that died before it was ever in the view would otherwise stay "alive" for as long as its
half-open link lasts). Only when the node has no membership view at all (stopped, or a test double) do
the link events from :meth:`fabric.Node.on_peer` stand in for it; departed peers are then ``down``
(``left`` when they said BYE is not known at the link level) and expire the same way.

Everything here runs on the node's loop; the clock is injected (seconds since the epoch).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import wire
from ..node import Node, PeerInfo
from ..settings import DEFAULT_MEMBER_EXPIRY

WallClock = Callable[[], float]
"""Seconds since the Unix epoch (``time.time``); injected so tests can move time."""

STATE_ORDER = {"alive": 0, "suspect": 1, "down": 2, "left": 3}
"""How members are sorted after the node itself."""


@dataclass
class _Departed:
    info: PeerInfo
    since: float


class MemberTracker:
    """The node itself, then its members by state; down and left members expire after ``expire_after``.

    Args:
        node: the node whose view is shown (only its public API is used).
        clock: wall clock; tests inject a manual one.
        expire_after: seconds a down or left member stays listed (> 0).
        keep: most departed link-level peers remembered (the fallback view), oldest forgotten first.
    """

    def __init__(self, node: Node, *, clock: WallClock = time.time, expire_after: float = DEFAULT_MEMBER_EXPIRY,
                 keep: int = 256) -> None:
        if not expire_after > 0:
            raise ValueError(f"expire_after: must be > 0 seconds, got {expire_after!r}")
        self.node = node
        self.clock = clock
        self.expire_after = expire_after
        self.keep = keep
        self.expired_members = 0
        """Down or left members no longer listed because they were for longer than ``expire_after``."""
        self.changes = 0
        """Grows on every change seen (a cheap "did anything change" for pollers and caches)."""
        self._departed: collections.OrderedDict[str, _Departed] = collections.OrderedDict()
        self._since: dict[str, float] = {}
        self._seen: dict[str, tuple[int, str, float]] = {}  # id -> (incarnation, status, first seen)
        self._expired: set[tuple[str, int]] = set()
        self._started = clock()

    def on_peer(self, event: str, info: PeerInfo) -> None:
        """:meth:`fabric.Node.on_peer` listener (loop thread): the link-level fallback view."""
        now = self.clock()
        self.changes += 1
        if event == "up":
            self._departed.pop(info.id, None)
            self._since[info.id] = now
        else:
            self._since.pop(info.id, None)
            self._departed[info.id] = _Departed(info, now)
            self._departed.move_to_end(info.id)
            while len(self._departed) > self.keep:
                self._departed.popitem(last=False)

    def on_member_event(self, _event: Any) -> None:
        """:meth:`fabric.Node.on_member_event` listener: membership changed."""
        self.changes += 1

    @property
    def overlay(self) -> str:
        """The overlay the node runs now (``Node.overlay``)."""
        return str(getattr(self.node, "overlay", "") or "unknown")

    def members(self) -> list[dict[str, Any]]:
        """Self first, then alive, suspect, down and left members by name; each a msgpack-ready dict."""
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
        view = self._membership_view()
        others = [m for m in view if m["id"] != node.id] if view else self._link_view()
        others.sort(key=lambda m: (STATE_ORDER.get(str(m["state"]), 9), str(m["name"]), str(m["id"])))
        return [me, *others]

    def _expired_now(self, key: tuple[str, int], since: float, now: float) -> bool:
        if now - since <= self.expire_after:
            return False
        if key not in self._expired:
            self._expired.add(key)
            self.expired_members += 1
            self.changes += 1
        return True

    def _membership_view(self) -> list[dict[str, Any]]:
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
            seen = self._seen.get(mid)
            if seen is None or seen[0] != m.incarnation or seen[1] != status:
                seen = (m.incarnation, status, now)
                self._seen[mid] = seen
                self.changes += 1
            if status in ("down", "left") and self._expired_now((mid, m.incarnation), seen[2], now):
                continue
            endpoints = {ch: spec[1] for ch, spec in dict(m.endpoints).items()}
            entry: dict[str, Any] = {
                "id": mid,
                "name": m.name,
                "incarnation": m.incarnation,
                "state": status,
                "self": mid == self.node.id,
                "seed": endpoints.get("membership", ""),
                "endpoints": endpoints,
                "channels": {ch: [spec[0], spec[2]] for ch, spec in dict(m.endpoints).items()},
                "meta": dict(m.metadata),
                "since_ms": int(seen[2] * 1000),
            }
            if status == "left":
                entry["reason"] = "left"
            elif status == "down":
                entry["reason"] = "failed (declared down)"
            out.append(entry)
        for gone in set(self._seen) - {e["id"] for e in out} - {wire.node_id_str(m.node_id) if isinstance(m.node_id, bytes) else str(m.node_id) for m in view}:
            del self._seen[gone]  # the node forgot it (tombstone expired): so do we
        return out

    def _link_view(self) -> list[dict[str, Any]]:
        now = self.clock()
        out = []
        listed = set()
        for p in self.node.peers():
            out.append(_member(p, "alive", self._since.get(p.id, now)))
            listed.add(p.id)
        for pid, d in list(self._departed.items()):
            if pid in listed:
                continue
            if self._expired_now((pid, d.info.incarnation), d.since, now):
                del self._departed[pid]
                continue
            out.append({**_member(d.info, "down", d.since), "reason": "link closed"})
        return out


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


__all__ = ["DEFAULT_MEMBER_EXPIRY", "STATE_ORDER", "MemberTracker", "WallClock"]

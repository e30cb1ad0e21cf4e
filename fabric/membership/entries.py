"""The full-mesh core's member entries: one CRDT register per node id, and their wire form.

An entry is a node's identity plus a gossip status ``st`` (0 alive, 2 down, 3 left) and a metadata
version ``mv``; two entries for one node id merge by the larger key ``(incarnation, st, mv)``. The entry
also holds this node's local view of the member (up, suspect, its failure detector).
"""

from __future__ import annotations

from typing import Any

from .detector import PhiAccrualDetector
from .types import (
    _WIRE_STATUSES,
    ST_DOWN,
    ST_LEFT,
    Identity,
    Member,
    MemberStatus,
    _bad,
    _check_endpoints,
    _check_meta,
    _int,
    _str,
)


class _Entry:
    """One node's gossip entry plus this node's local view of it."""

    __slots__ = ("node_id", "name", "inc", "st", "mv", "meta", "endpoints", "changed_at", "up", "suspect",
                 "suspect_since", "probes_sent", "detector")

    def __init__(self, node_id: bytes, name: str, inc: int, st: int, mv: int, meta: dict[str, str],
                 endpoints: dict[str, tuple[str, str, int]], now: float) -> None:
        self.node_id = node_id
        self.name = name
        self.inc = inc
        self.st = st
        self.mv = mv
        self.meta = meta
        self.endpoints = endpoints
        self.changed_at = now
        self.up = False  # MemberUp fired for this incarnation
        self.suspect = False
        self.suspect_since = 0.0
        self.probes_sent = 0
        self.detector: PhiAccrualDetector | None = None

    def key(self) -> tuple[int, int, int]:
        return (self.inc, self.st, self.mv)

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.node_id,
            "nm": self.name,
            "in": self.inc,
            "st": self.st,
            "mv": self.mv,
            "md": dict(self.meta),
            "ep": {ch: list(spec) for ch, spec in self.endpoints.items()},
        }

    def identity(self) -> Identity:
        return Identity(self.node_id, self.name, self.inc, dict(self.meta), dict(self.endpoints))

    def member(self) -> Member:
        if self.st == ST_LEFT:
            status = MemberStatus.LEFT
        elif self.st == ST_DOWN:
            status = MemberStatus.DOWN
        else:
            status = MemberStatus.SUSPECT if self.suspect else MemberStatus.ALIVE
        return Member(self.node_id, self.name, self.inc, status, dict(self.meta), dict(self.endpoints))


def _entry_from_wire(raw: Any, now: float) -> _Entry:
    if not isinstance(raw, dict):
        raise _bad("member entry must be a map")
    node_id = raw.get("id")
    if not isinstance(node_id, bytes) or len(node_id) != 16:
        raise _bad("entry id must be 16 octets")
    st = _int(raw.get("st"), "entry st")
    if st not in _WIRE_STATUSES:
        raise _bad(f"entry st {st} unknown")
    return _Entry(
        node_id,
        _str(raw.get("nm", ""), "entry nm"),
        _int(raw.get("in"), "entry in"),
        st,
        _int(raw.get("mv", 0), "entry mv"),
        _check_meta(raw.get("md", {})),
        _check_endpoints(raw.get("ep", {})),
        now,
    )


def _digest_from_wire(raw: Any, limit: int) -> dict[bytes, tuple[int, int, int]] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) > limit:
        raise _bad("sync d must be a list of at most max_members + 1 items")
    out: dict[bytes, tuple[int, int, int]] = {}
    for item in raw:
        if not isinstance(item, list) or len(item) != 4 or not isinstance(item[0], bytes) or len(item[0]) != 16:
            raise _bad("sync d items must be [id (16 octets), in, st, mv]")
        out[item[0]] = (_int(item[1], "d in"), _int(item[2], "d st"), _int(item[3], "d mv"))
    return out

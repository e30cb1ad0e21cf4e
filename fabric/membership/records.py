"""The member records of the record-based overlays: one CRDT register per node id.

A record is an identity, a version ``v`` and a status ``st`` (0 alive, 2 down, 3 left), merged on the key
``(incarnation, v, st)``: only the owner raises ``v`` (metadata change, refutation) or its incarnation
(restart); anyone may mark a record down at the key it holds. Also the wire parsing of records and the
per-record hash that the anti-entropy summaries add up.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from .detector import PhiAccrualDetector
from .interface import _bad, _node_id, _uint, identity_from_wire, identity_to_wire
from .types import ST_ALIVE, ST_DOWN, ST_LEFT, Identity, Member, MemberStatus


class _Record:
    """One node's membership record plus this node's local view of it."""

    __slots__ = ("identity", "v", "st", "seen", "changed_at", "wire", "reason")

    def __init__(self, identity: Identity, v: int, st: int, now: float) -> None:
        self.identity = identity
        self.v = v
        self.st = st
        self.seen = now
        self.changed_at = now
        self.wire: dict[str, Any] | None = None
        self.reason = ""

    @property
    def node_id(self) -> bytes:
        return self.identity.node_id

    def key(self) -> tuple[int, int, int]:
        return (self.identity.incarnation, self.v, self.st)

    def to_wire(self) -> dict[str, Any]:
        # cached: the same map goes to many peers (and, in simulations, is shared by reference)
        if self.wire is None:
            self.wire = identity_to_wire(self.identity)
            self.wire["v"] = self.v
            self.wire["st"] = self.st
        return self.wire

    def member(self, suspect: bool = False) -> Member:
        ident = self.identity
        if self.st == ST_LEFT:
            status = MemberStatus.LEFT
        elif self.st == ST_DOWN:
            status = MemberStatus.DOWN
        else:
            status = MemberStatus.SUSPECT if suspect else MemberStatus.ALIVE
        # the identity's maps are never mutated (Identity's contract): shared, not copied
        return Member(ident.node_id, ident.name, ident.incarnation, status, ident.metadata, ident.endpoints)


def _record_from_wire(raw: Any, now: float) -> _Record:
    identity = identity_from_wire(raw)
    st = _uint(raw.get("st"), "record st")
    if st not in (ST_ALIVE, ST_DOWN, ST_LEFT):
        raise _bad(f"record st {st} unknown")
    return _Record(identity, _uint(raw.get("v", 0), "record v"), st, now)


def _wire_key(raw: Any) -> tuple[bytes, tuple[int, int, int]]:
    """The node id and merge key of a wire RECORD, validating only those fields (cheap: most records a
    node receives are ones it already holds)."""
    if not isinstance(raw, dict):
        raise _bad("record must be a map")
    st = raw.get("st")
    if st not in (ST_ALIVE, ST_DOWN, ST_LEFT) or isinstance(st, bool):
        raise _bad(f"record st {st!r} unknown")
    return _node_id(raw.get("id"), "record id"), (_uint(raw.get("in"), "record in"), _uint(raw.get("v", 0), "record v"), st)


def _key_hash(node_id: bytes, key: tuple[int, int, int]) -> int:
    digest = hashlib.blake2b(node_id + struct.pack(">QQB", *key), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class _Neighbour:
    """A monitored link."""

    __slots__ = ("identity", "detector", "suspect_since")

    def __init__(self, identity: Identity, detector: PhiAccrualDetector) -> None:
        self.identity = identity
        self.detector = detector
        self.suspect_since: float | None = None

"""The member record: the one CRDT register per node id that every membership core merges.

One record per node id: the identity (name, incarnation ``in``, metadata, endpoints), a status ``st``
(0 alive, 2 down, 3 left) and a metadata version ``v``. Every core - full-mesh, HyParView, client-server,
static - merges records on the same key and refutes by the same rule:

* **Key** ``(incarnation, st, v)``: the larger key wins. So for one incarnation down beats alive and left
  beats down (both are *terminal for an incarnation*), and within a status the newer metadata wins.
* **Who raises what**: only the owner raises its incarnation (restart or refutation) or its ``v``
  (metadata change); anyone may mark a record down at the incarnation it holds.
* **Refutation** (:func:`refute_key`): a live node that receives a record about itself with a larger key
  (a down claim, or a higher incarnation left by an earlier process with the same node id) takes the
  incarnation ``max(mine, theirs) + 1`` at ``v = 0``, which is above every claim made so far.

Why this key and not ``(incarnation, v, st)`` with a ``v + 1`` refutation, which the record overlays used
before: with the status above the version, a down claim can never be undone within its incarnation, so a
:class:`~fabric.membership.types.MemberUp` fires at most once per (node id, incarnation) on every core, an
observer never confuses the refuted process with the one it declared down, and a stale ``alive`` claim of
a refuted incarnation can never revive it (SWIM's and memberlist's rule). Merging is commutative,
associative and idempotent (``tests/property/test_membership_crdt.py``), and both core kinds reach the same
state from the same claims.

Wire form of a record (the ``RECORD`` / ``ENTRY`` map)::

    {id: bin16, nm: str, in: int, st: int, v: int, md: {str: str}, ep: {channel: [kind, endpoint, par]}}

Full-mesh peers of earlier versions sent the version as ``mv``: the parser reads ``v``, else ``mv``, and
the full-mesh core sends both (see :func:`mesh_wire`). Also here: the per-record hash that the
anti-entropy summaries add up, and a monitored link (:class:`_Neighbour`).
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from .detector import PhiAccrualDetector
from .interface import _bad, _node_id, _uint, identity_from_wire, identity_to_wire
from .types import ST_ALIVE, ST_DOWN, ST_LEFT, Identity, Member, MemberStatus

Key = tuple[int, int, int]
"""A record's merge key ``(incarnation, st, v)``."""

NO_KEY: Key = (-1, -1, -1)
"""Below every key (a record that is not held)."""


def refute_key(mine: Key, theirs: Key) -> Key | None:
    """The owner's refutation rule: the key this node takes after hearing ``theirs`` about itself, or
    None when ``theirs`` does not beat ``mine`` (nothing to refute)."""
    if theirs <= mine:
        return None
    return (max(mine[0], theirs[0]) + 1, ST_ALIVE, 0)


class _Record:
    """One node's membership record (the CRDT register) plus this node's local view of it.

    The local view: ``seen`` (last time the record or its owner was heard of), ``changed_at`` (last
    status change), ``reason`` (why it went down) and ``up`` (``MemberUp`` fired for this incarnation).
    Whether the member is monitored, and its failure detector, is the engine's (:class:`_Neighbour`).
    """

    __slots__ = ("identity", "v", "st", "seen", "changed_at", "wire", "_wire_tag", "reason", "up")

    def __init__(self, identity: Identity, v: int, st: int, now: float) -> None:
        self.identity = identity
        self.v = v
        self.st = st
        self.seen = now
        self.changed_at = now
        self.wire: dict[str, Any] | None = None
        self._wire_tag: tuple[Identity, int, int] | None = None
        self.reason = ""
        self.up = False

    @property
    def node_id(self) -> bytes:
        return self.identity.node_id

    @property
    def incarnation(self) -> int:
        return self.identity.incarnation

    @property
    def name(self) -> str:
        return self.identity.name

    def key(self) -> Key:
        return (self.identity.incarnation, self.st, self.v)

    def to_wire(self) -> dict[str, Any]:
        """The wire RECORD map. Cached (the same map goes to many peers and, in simulations, is shared by
        reference): the cache is rebuilt whenever the identity, ``v`` or ``st`` changed."""
        tag = self._wire_tag
        if self.wire is None or tag is None or tag[0] is not self.identity or tag[1] != self.v or tag[2] != self.st:
            self.wire = identity_to_wire(self.identity)
            self.wire["st"] = self.st
            self.wire["v"] = self.v
            self._wire_tag = (self.identity, self.v, self.st)
        return self.wire

    def member(self, suspect: bool = False) -> Member:
        """This record as a :class:`Member` (``suspect``: an alive member is locally suspect)."""
        ident = self.identity
        if self.st == ST_LEFT:
            status = MemberStatus.LEFT
        elif self.st == ST_DOWN:
            status = MemberStatus.DOWN
        else:
            status = MemberStatus.SUSPECT if suspect else MemberStatus.ALIVE
        # the identity's maps are never mutated (Identity's contract): shared, not copied
        return Member(ident.node_id, ident.name, ident.incarnation, status, ident.metadata, ident.endpoints, ident.boot)


def mesh_wire(rec: _Record) -> dict[str, Any]:
    """The record as the full-mesh core sends it: the RECORD map plus the version again as ``mv``, the
    name full-mesh peers of earlier versions read it under."""
    out = dict(rec.to_wire())
    out["mv"] = rec.v
    return out


def _version(raw: dict[str, Any]) -> int:
    v = raw.get("v")
    if v is None:
        v = raw.get("mv", 0)
    return _uint(v, "record v")


def _record_from_wire(raw: Any, now: float) -> _Record:
    """Parse a wire RECORD. Raises BadMembershipMessage when it is malformed."""
    identity = identity_from_wire(raw)
    st = _uint(raw.get("st"), "record st")
    if st not in (ST_ALIVE, ST_DOWN, ST_LEFT):
        raise _bad(f"record st {st} unknown")
    return _Record(identity, _version(raw), st, now)


def _wire_key(raw: Any) -> tuple[bytes, Key]:
    """The node id and merge key of a wire RECORD, validating only those fields (cheap: most records a
    node receives are ones it already holds)."""
    if not isinstance(raw, dict):
        raise _bad("record must be a map")
    st = raw.get("st")
    if st not in (ST_ALIVE, ST_DOWN, ST_LEFT) or isinstance(st, bool):
        raise _bad(f"record st {st!r} unknown")
    return _node_id(raw.get("id"), "record id"), (_uint(raw.get("in"), "record in"), st, _version(raw))


def _key_hash(node_id: bytes, key: Key) -> int:
    digest = hashlib.blake2b(node_id + struct.pack(">QBQ", *key), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class _Neighbour:
    """A monitored member (a neighbour of the engine's one failure-detection loop): its identity when it
    became monitored, its phi detector, since when it is locally suspect (None: it is not) and the direct
    probes sent during the current suspicion."""

    __slots__ = ("identity", "detector", "suspect_since", "probes_sent")

    def __init__(self, identity: Identity, detector: PhiAccrualDetector) -> None:
        self.identity = identity
        self.detector = detector
        self.suspect_since: float | None = None
        self.probes_sent = 0


def _digest_from_wire(raw: Any, limit: int) -> dict[bytes, Key] | None:
    """A full-mesh ``sync`` digest (``[[id, in, st, v], ...]``, the key order) as node id -> key."""
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) > limit:
        raise _bad("sync d must be a list of at most max_members + 1 items")
    out: dict[bytes, Key] = {}
    for item in raw:
        if not isinstance(item, list) or len(item) != 4 or not isinstance(item[0], bytes) or len(item[0]) != 16:
            raise _bad("sync d items must be [id (16 octets), in, st, v]")
        out[item[0]] = (_uint(item[1], "d in"), _uint(item[2], "d st"), _uint(item[3], "d v"))
    return out

"""UDP gossip beacons without I/O: the codec (msgpack + optional HMAC-SHA256) and the table of heard nodes.

Theory of operation
-------------------
Every node multicasts a small *beacon* every few seconds saying "I am node X, my channels are at ...".
Receivers decode it, drop it if it is not authentic, and keep the sender as a candidate until no beacon
has been heard from it for ``candidate_ttl`` seconds. Nothing here touches a socket or reads the clock:
:class:`BeaconCodec` turns :class:`Beacon` values into bytes and back, :class:`BeaconTable` takes
``(beacon, sender address, now)`` and answers with the current candidates. The socket driver lives in
:mod:`fabric.discovery.gossip`.

Datagram layout (all integers big-endian; append-only, versioned)::

    magic  b"FFB"     3 bytes
    version           1 byte   (1)
    flags             1 byte   bit 0: signed
    payload           msgpack map {"id": str, "n": str, "ep": {channel: endpoint}, "m": {str: str},
                                   "pk": str (optional)}; unknown keys are ignored
    mac               32 bytes HMAC-SHA256(secret, magic..payload), only when signed

A receiver with a secret accepts only signed beacons whose MAC verifies (``hmac`` rejects); a receiver
without a secret accepts only unsigned beacons (signed ones come from a cluster it is not part of:
``foreign`` rejects). Anything that does not parse is ``malformed``. HMAC authenticates, it does not
encrypt and does not stop replays of a genuine beacon; a replayed beacon only re-offers a real node, and
discovery is never liveness.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import msgpack

from .base import (
    MEMBERSHIP_CHANNEL,
    Candidate,
    ConfigurationError,
    DiscoveryError,
    MalformedInput,
    concretize_endpoint,
)

__all__ = ["BEACON_MAGIC", "BEACON_VERSION", "MAX_BEACON_BYTES", "Beacon", "BeaconCodec", "BeaconTable", "beacon_to_candidate"]

BEACON_MAGIC = b"FFB"
BEACON_VERSION = 1
FLAG_SIGNED = 0x01
MAC_BYTES = 32
_HEADER_BYTES = len(BEACON_MAGIC) + 2
#: Largest datagram a receiver even tries to decode (a beacon is a few hundred bytes).
MAX_BEACON_BYTES = 8192


@dataclasses.dataclass(frozen=True)
class Beacon:
    """What a node says about itself in a beacon.

    Attributes:
        node_id: the sender's node id (UUID string).
        name: the sender's human name.
        endpoints: channel -> endpoint; always has ``membership``. Wildcard hosts are concretized by the
            receiver with the datagram's source address.
        meta: small string metadata.
        public_key: the sender's CURVE public key (Z85) or None.
    """

    node_id: str
    name: str
    endpoints: Mapping[str, str]
    meta: Mapping[str, str] = dataclasses.field(default_factory=dict)
    public_key: str | None = None


def _str_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise MalformedInput(f"beacon {what} is not a map of strings")
    return dict(value)


class BeaconCodec:
    """Encode and decode beacons; signs and verifies them when a ``secret`` is set. Pure, thread-safe."""

    def __init__(self, secret: bytes | str | None = None) -> None:
        """``secret``: shared cluster secret (str is UTF-8 encoded); None sends and accepts unsigned beacons."""
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        if secret is not None and len(secret) == 0:
            raise ConfigurationError("beacon secret must not be empty (use None for unsigned beacons)")
        self._secret = secret

    @property
    def signed(self) -> bool:
        """True when this codec signs and requires signatures."""
        return self._secret is not None

    def encode(self, beacon: Beacon) -> bytes:
        """Return the datagram for ``beacon``, signed when the codec has a secret."""
        payload: dict[str, Any] = {
            "id": beacon.node_id,
            "n": beacon.name,
            "ep": dict(beacon.endpoints),
            "m": dict(beacon.meta),
        }
        if beacon.public_key is not None:
            payload["pk"] = beacon.public_key
        flags = FLAG_SIGNED if self._secret is not None else 0
        packed: bytes = msgpack.packb(payload, use_bin_type=True)
        body = BEACON_MAGIC + bytes([BEACON_VERSION, flags]) + packed
        if self._secret is not None:
            body += hmac.new(self._secret, body, hashlib.sha256).digest()
        return body

    def decode(self, datagram: bytes) -> Beacon:
        """Parse and authenticate ``datagram``.

        Raises :class:`MalformedInput` with ``category`` ``"malformed"`` (not a beacon, bad payload),
        ``"hmac"`` (we have a secret and the beacon is unsigned or its MAC does not verify) or
        ``"foreign"`` (the beacon is signed and we have no secret).
        """
        if len(datagram) > MAX_BEACON_BYTES:
            raise MalformedInput("beacon too large")
        if len(datagram) < _HEADER_BYTES or not datagram.startswith(BEACON_MAGIC):
            raise MalformedInput("not a beacon (bad magic)")
        version, flags = datagram[3], datagram[4]
        if version != BEACON_VERSION:
            raise MalformedInput(f"unsupported beacon version {version}")
        signed = bool(flags & FLAG_SIGNED)
        if signed and self._secret is None:
            raise MalformedInput("signed beacon but no secret configured", category="foreign")
        if not signed and self._secret is not None:
            raise MalformedInput("unsigned beacon but a secret is configured", category="hmac")
        body = datagram
        if signed:
            assert self._secret is not None
            if len(datagram) < _HEADER_BYTES + MAC_BYTES:
                raise MalformedInput("signed beacon shorter than its MAC", category="hmac")
            body, mac = datagram[:-MAC_BYTES], datagram[-MAC_BYTES:]
            expected = hmac.new(self._secret, body, hashlib.sha256).digest()
            if not hmac.compare_digest(mac, expected):
                raise MalformedInput("beacon MAC does not verify (wrong secret?)", category="hmac")
        try:
            payload = msgpack.unpackb(
                body[_HEADER_BYTES:],
                raw=False,
                strict_map_key=True,
                max_str_len=4096,
                max_bin_len=0,
                max_array_len=64,
                max_map_len=64,
            )
        except Exception as exc:  # msgpack raises several unrelated types on garbage
            raise MalformedInput(f"beacon payload is not msgpack: {exc!r}") from exc
        if not isinstance(payload, dict):
            raise MalformedInput("beacon payload is not a map")
        node_id, name, public_key = payload.get("id"), payload.get("n", ""), payload.get("pk")
        if not isinstance(node_id, str) or not isinstance(name, str):
            raise MalformedInput("beacon id/name missing or not strings")
        if public_key is not None and not isinstance(public_key, str):
            raise MalformedInput("beacon public key is not a string")
        endpoints = _str_map(payload.get("ep"), "endpoints")
        if MEMBERSHIP_CHANNEL not in endpoints:
            raise MalformedInput("beacon has no membership endpoint")
        meta = _str_map(payload.get("m", {}), "metadata")
        return Beacon(node_id=node_id, name=name, endpoints=endpoints, meta=meta, public_key=public_key)


def beacon_to_candidate(beacon: Beacon, sender: str, source: str = "gossip") -> Candidate:
    """The candidate a beacon from address ``sender`` describes (wildcard hosts replaced by ``sender``).

    Raises :class:`MalformedInput` when the beacon's id or endpoints are not valid.
    """
    endpoints = {ch: concretize_endpoint(ep, sender) for ch, ep in beacon.endpoints.items()}
    meta = dict(beacon.meta)
    if beacon.public_key is not None:
        meta["public_key"] = beacon.public_key
    try:
        return Candidate(
            seed=endpoints[MEMBERSHIP_CHANNEL],
            node_id=beacon.node_id,
            name=beacon.name or None,
            endpoints=endpoints,
            meta=meta,
            source=source,
        )
    except DiscoveryError as exc:
        raise MalformedInput(f"beacon describes an invalid candidate: {exc}") from exc


class BeaconTable:
    """Nodes heard from recently. Pure: every call takes ``now`` (seconds); not thread-safe."""

    def __init__(self, candidate_ttl: float, source: str = "gossip") -> None:
        """``candidate_ttl``: seconds after the last beacon at which a node stops being a candidate."""
        self._ttl = candidate_ttl
        self._source = source
        self._entries: dict[str, tuple[Candidate, float]] = {}

    def observe(self, beacon: Beacon, sender: str, now: float) -> bool:
        """Record a beacon from ``sender``; True if the candidate set changed (new node or new data).

        Raises :class:`MalformedInput` if the beacon does not describe a valid candidate.
        """
        candidate = beacon_to_candidate(beacon, sender, self._source)
        previous = self._entries.get(candidate.key)
        self._entries[candidate.key] = (candidate, now + self._ttl)
        return previous is None or previous[0] != candidate

    def expire(self, now: float) -> list[Candidate]:
        """Drop nodes whose last beacon is older than the TTL; return the dropped candidates."""
        dropped = [cand for cand, deadline in self._entries.values() if deadline <= now]
        for cand in dropped:
            del self._entries[cand.key]
        return dropped

    def candidates(self) -> list[Candidate]:
        """The current candidates, in the order they were first heard."""
        return [cand for cand, _ in self._entries.values()]

    def __len__(self) -> int:
        return len(self._entries)

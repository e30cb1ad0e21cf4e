"""Envelope codec (sans-IO): ZeroMQ frames <-> :class:`Envelope`.

Theory of operation
-------------------
A fabric message is one ZeroMQ multipart message::

    frame 0 (head)   : SIGNATURE (2 octets AA FB) | version (1 octet) | type (1 octet) | msgpack header map
    frame 1..n       : payload frames, opaque to the envelope

On broadcast channels a topic frame precedes the head (SUB sockets filter on the first frame's prefix).
A BATCH carries several complete messages to the same peer: its header lists the frame count of each
inner message (``f``) and the inner messages' frames follow in order.

Decoding never trusts the peer: every failure raises a :class:`~fabric.errors.ProtocolError` subclass
whose ``category`` the node uses as an error counter; nothing here can crash a node. Encoding is
deterministic (headers are built in a documented key order), which is what the golden vectors in
docs/protocol/vectors.json pin down.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import msgpack

from ..errors import (
    BadSignature,
    MalformedHeader,
    OversizedMessage,
    TruncatedMessage,
    UnknownMessageType,
    UnsupportedVersion,
)
from .types import (
    K_BOOT,
    K_CERT,
    K_CHANNEL,
    K_CODE,
    K_CORR,
    K_CT,
    K_EMSG,
    K_ENDPOINTS,
    K_ETYPE,
    K_FRAMES,
    K_ID,
    K_INC,
    K_LANE,
    K_META,
    K_NAME,
    K_OP,
    K_PUBKEY,
    K_ROLE,
    K_SEQ,
    K_SERVICE,
    K_SRC,
    K_TIME,
    K_TIMEOUT,
    K_TOPOLOGY,
    K_TRACE,
    K_VERSION,
    K_VMAX,
    K_VMIN,
    MAX_BATCH_MESSAGES,
    MAX_HEADER_BYTES,
    MAX_LANES,
    MAX_NAME_BYTES,
    MAX_PAYLOAD_FRAMES,
    MAX_VERSION,
    MIN_VERSION,
    NODE_ID_BYTES,
    PROTOCOL_VERSION,
    SIGNATURE,
    ContentType,
    MsgType,
    Role,
)

_KNOWN_TYPES = frozenset(int(t) for t in MsgType)
_PREAMBLES: dict[int, bytes] = {int(t): SIGNATURE + bytes((PROTOCOL_VERSION, int(t))) for t in MsgType}


def _reject_ext(code: int, data: bytes) -> Any:
    raise MalformedHeader(f"msgpack ext type {code} is not allowed on the wire")


def packb(value: Any) -> bytes:
    """Encode ``value`` as msgpack the way the protocol requires (bin for bytes, str for text)."""
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def unpackb(data: bytes | memoryview, *, max_bytes: int | None = None) -> Any:
    """Decode one msgpack value from untrusted ``data``; ext types are refused.

    Raises MalformedHeader on any decoding error (truncated, trailing bytes, ext type, invalid UTF-8).
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise OversizedMessage(f"msgpack value of {len(data)} bytes exceeds {max_bytes}")
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_reject_ext)
    except MalformedHeader:
        raise
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        raise MalformedHeader(f"invalid msgpack: {exc}") from exc


class Envelope:
    """A decoded message: type, version, header map and payload frames.

    ``header`` holds only validated types for the keys the protocol defines (see :func:`decode`);
    unknown keys are kept as received, for forward compatibility, and ignored by the node.
    """

    __slots__ = ("type", "version", "header", "frames")

    def __init__(self, type: int, version: int, header: dict[str, Any], frames: list[bytes]) -> None:
        self.type = type
        self.version = version
        self.header = header
        self.frames = frames

    @property
    def source(self) -> bytes:
        """Source node id (16 octets)."""
        return self.header[K_SRC]  # type: ignore[no-any-return]

    @property
    def channel(self) -> str | None:
        """Channel name, when the type carries one."""
        return self.header.get(K_CHANNEL)

    @property
    def lane(self) -> int:
        """Lane index (0 when absent)."""
        return self.header.get(K_LANE, 0)  # type: ignore[no-any-return]

    @property
    def payload(self) -> bytes:
        """The first payload frame, or ``b""``."""
        return self.frames[0] if self.frames else b""

    def __repr__(self) -> str:
        name = MsgType(self.type).name if self.type in _KNOWN_TYPES else str(self.type)
        return f"Envelope({name}, v{self.version}, {self.header!r}, {len(self.frames)} frames)"


# Per-type schema: key -> accepted Python types after msgpack decoding. Required keys first.
_BYTES = (bytes,)
_INT = (int,)
_STR = (str,)
_COMMON_OPTIONAL: dict[str, tuple[type, ...]] = {
    K_CHANNEL: _STR,
    K_LANE: _INT,
    K_ID: _INT,
    K_CORR: _INT,
    K_SEQ: _INT,
    K_TRACE: _STR,
    K_CT: _INT,
    "d": _BYTES,
}
_REQUIRED: dict[int, dict[str, tuple[type, ...]]] = {
    MsgType.HELLO: {K_VMIN: _INT, K_VMAX: _INT, K_ROLE: _INT, K_INC: _INT},
    MsgType.WELCOME: {K_VERSION: _INT, K_INC: _INT},
    MsgType.REJECT: {K_CODE: _INT},
    MsgType.SEND: {K_CHANNEL: _STR},
    MsgType.CALL: {K_SERVICE: _STR, K_ID: _INT},
    MsgType.REPLY: {K_CORR: _INT},
    MsgType.ERROR: {K_CORR: _INT, K_CODE: _INT},
    MsgType.PING: {},
    MsgType.PONG: {},
    MsgType.BYE: {},
    MsgType.BATCH: {K_FRAMES: (list,)},
    MsgType.PUBLISH: {K_CHANNEL: _STR},
    MsgType.MEMBERSHIP: {K_OP: _STR},
    MsgType.TREE: {K_OP: _STR},
}
_OPTIONAL: dict[str, tuple[type, ...]] = {
    **_COMMON_OPTIONAL,
    K_NAME: _STR,
    K_META: (dict,),
    K_ENDPOINTS: (dict,),
    K_TIMEOUT: _INT,
    K_ETYPE: _STR,
    K_EMSG: _STR,
    K_VMIN: _INT,
    K_VMAX: _INT,
    K_TIME: _INT,
    K_TOPOLOGY: (dict,),
    K_PUBKEY: _BYTES,
    K_CERT: _BYTES,
    K_BOOT: (bytes,),
}


def _check_header(mtype: int, header: Any) -> dict[str, Any]:
    if not isinstance(header, dict):
        raise MalformedHeader(f"header is {type(header).__name__}, not a map")
    src = header.get(K_SRC)
    if not isinstance(src, bytes) or len(src) != NODE_ID_BYTES:
        raise MalformedHeader("header 's' (source node id) must be 16 octets")
    for key, types in _REQUIRED[mtype].items():
        value = header.get(key)
        if not isinstance(value, types) or isinstance(value, bool):
            raise MalformedHeader(f"{MsgType(mtype).name} header {key!r} missing or of the wrong type")
    for key, value in header.items():
        expected = _OPTIONAL.get(key)
        if expected is not None and (not isinstance(value, expected) or isinstance(value, bool)):
            raise MalformedHeader(f"header {key!r} has the wrong type ({type(value).__name__})")
    lane = header.get(K_LANE, 0)
    if not 0 <= lane < MAX_LANES:
        raise MalformedHeader(f"lane {lane} out of range 0..{MAX_LANES - 1}")
    for key in (K_CHANNEL, K_SERVICE, K_NAME, K_OP):
        value = header.get(key)
        if value is None:
            continue
        if not isinstance(value, str):  # optional on this type, so the required-key check did not see it
            raise MalformedHeader(f"header {key!r} must be a string, not {type(value).__name__}")
        if len(value) > MAX_NAME_BYTES:
            raise OversizedMessage(f"header {key!r} longer than {MAX_NAME_BYTES}")
    return header


def decode_head(head: bytes) -> tuple[int, int, dict[str, Any]]:
    """Decode a head frame into ``(type, version, header)``.

    Raises TruncatedMessage, BadSignature, UnsupportedVersion, UnknownMessageType, OversizedMessage or
    MalformedHeader (all :class:`~fabric.errors.ProtocolError`).
    """
    if len(head) < 5:
        raise TruncatedMessage(f"head frame of {len(head)} octets (at least 5 needed)")
    if head[:2] != SIGNATURE:
        raise BadSignature(f"signature {bytes(head[:2]).hex()} is not {SIGNATURE.hex()}")
    version = head[2]
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise UnsupportedVersion(f"protocol version {version} not in {MIN_VERSION}..{MAX_VERSION}")
    mtype = head[3]
    if mtype not in _KNOWN_TYPES:
        raise UnknownMessageType(f"unknown message type {mtype}")
    if len(head) - 4 > MAX_HEADER_BYTES:
        raise OversizedMessage(f"header of {len(head) - 4} bytes exceeds {MAX_HEADER_BYTES}")
    header = unpackb(memoryview(head)[4:])
    return mtype, version, _check_header(mtype, header)


def decode(frames: Sequence[bytes]) -> Envelope:
    """Decode one message (head frame + payload frames) from untrusted frames.

    Raises a :class:`~fabric.errors.ProtocolError` subclass on any violation.
    """
    if not frames:
        raise TruncatedMessage("empty message")
    if len(frames) - 1 > MAX_PAYLOAD_FRAMES and len(frames) - 1 > MAX_BATCH_MESSAGES * (MAX_PAYLOAD_FRAMES + 1):
        raise OversizedMessage(f"{len(frames)} frames")
    mtype, version, header = decode_head(frames[0])
    payload = list(frames[1:])
    if mtype != MsgType.BATCH and len(payload) > MAX_PAYLOAD_FRAMES:
        raise OversizedMessage(f"{len(payload)} payload frames exceed {MAX_PAYLOAD_FRAMES}")
    return Envelope(mtype, version, header, payload)


def split_batch(batch: Envelope) -> list[list[bytes]]:
    """Split a BATCH envelope into the frame lists of its inner messages (not yet decoded).

    Raises MalformedHeader when the frame counts do not add up or an inner message is itself a batch
    (batches do not nest), OversizedMessage beyond MAX_BATCH_MESSAGES.
    """
    counts = batch.header[K_FRAMES]
    if len(counts) > MAX_BATCH_MESSAGES:
        raise OversizedMessage(f"batch of {len(counts)} messages exceeds {MAX_BATCH_MESSAGES}")
    out: list[list[bytes]] = []
    frames = batch.frames
    pos = 0
    for count in counts:
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_PAYLOAD_FRAMES + 1:
            raise MalformedHeader(f"batch frame count {count!r} invalid")
        inner = frames[pos : pos + count]
        if len(inner) != count:
            raise TruncatedMessage("batch frame counts exceed the frames present")
        if len(inner[0]) >= 4 and inner[0][3] == MsgType.BATCH:
            raise MalformedHeader("batches do not nest")
        out.append(inner)
        pos += count
    if pos != len(frames):
        raise MalformedHeader(f"batch has {len(frames) - pos} frames not covered by its counts")
    return out


# -- encoding ------------------------------------------------------------------------------------------


def encode(mtype: int, header: Mapping[str, Any], payload: Sequence[bytes] = ()) -> list[bytes]:
    """Encode a message: the head frame (preamble + msgpack ``header``) followed by ``payload`` frames.

    The caller supplies the header in protocol key order; the typed constructors below do that.
    """
    return [_PREAMBLES[mtype] + packb(header), *payload]


def encode_batch(source: bytes, messages: Sequence[Sequence[bytes]]) -> list[bytes]:
    """Encode already-encoded messages (each a frame list) to one peer as a single BATCH."""
    frames: list[bytes] = [_PREAMBLES[MsgType.BATCH] + packb({K_SRC: source, K_FRAMES: [len(m) for m in messages]})]
    for message in messages:
        frames.extend(message)
    return frames


def _base(source: bytes, channel: str | None = None, lane: int = 0) -> dict[str, Any]:
    header: dict[str, Any] = {K_SRC: source}
    if channel is not None:
        header[K_CHANNEL] = channel
    if lane:
        header[K_LANE] = lane
    return header


def hello(
    source: bytes,
    *,
    role: Role,
    incarnation: int,
    name: str = "",
    endpoints: Mapping[str, Sequence[Any]] | None = None,
    meta: Mapping[str, str] | None = None,
    min_version: int = MIN_VERSION,
    max_version: int = MAX_VERSION,
    topology: Mapping[str, Any] | None = None,
    public_key: bytes | None = None,
    cert: bytes | None = None,
    boot: bytes = b"",
) -> list[bytes]:
    """HELLO: key order s, vn, vx, ro, in, nm, ep, md, tp, pk, cr, bi (the last seven only when given)."""
    header: dict[str, Any] = {K_SRC: source, K_VMIN: min_version, K_VMAX: max_version, K_ROLE: int(role), K_INC: incarnation}
    return encode(MsgType.HELLO, _with_boot(_with_keys(_with_topology(_with_identity(header, name, endpoints, meta), topology),
                                                       public_key, cert), boot))


def _with_keys(header: dict[str, Any], public_key: bytes | None, cert: bytes | None) -> dict[str, Any]:
    """Append ``pk`` and ``cr`` (secure mode: the sender's CURVE public key and its certificate)."""
    if public_key:
        header[K_PUBKEY] = public_key
    if cert:
        header[K_CERT] = cert
    return header


def _with_boot(header: dict[str, Any], boot: bytes) -> dict[str, Any]:
    """Append ``bi`` (a member's boot id: a new incarnation under the same boot id is a refutation by
    the same process, so the receiver keeps its sockets; a new boot id is a restart)."""
    if boot:
        header[K_BOOT] = bytes(boot)
    return header


def _with_topology(header: dict[str, Any], topology: Mapping[str, Any] | None) -> dict[str, Any]:
    """Append ``tp`` (a member's topology state, so a joining node adopts the cluster's overlay and epoch
    during the handshake instead of speaking an overlay the cluster left)."""
    if topology:
        header[K_TOPOLOGY] = dict(topology)
    return header


def _with_identity(
    header: dict[str, Any], name: str, endpoints: Mapping[str, Sequence[Any]] | None, meta: Mapping[str, str] | None
) -> dict[str, Any]:
    """Append the optional identity keys nm, ep, md (in that order) shared by HELLO and WELCOME."""
    if name:
        header[K_NAME] = name
    if endpoints:
        header[K_ENDPOINTS] = {k: list(v) for k, v in endpoints.items()}
    if meta:
        header[K_META] = dict(meta)
    return header


def welcome(
    source: bytes,
    *,
    version: int,
    incarnation: int,
    name: str = "",
    endpoints: Mapping[str, Sequence[Any]] | None = None,
    meta: Mapping[str, str] | None = None,
    topology: Mapping[str, Any] | None = None,
    public_key: bytes | None = None,
    cert: bytes | None = None,
    boot: bytes = b"",
) -> list[bytes]:
    """WELCOME: key order s, v, in, nm, ep, md, tp, pk, cr, bi (the last seven only when given)."""
    header: dict[str, Any] = {K_SRC: source, K_VERSION: version, K_INC: incarnation}
    return encode(MsgType.WELCOME, _with_boot(_with_keys(_with_topology(_with_identity(header, name, endpoints, meta), topology),
                                                         public_key, cert), boot))


def reject(source: bytes, *, code: int, message: str, min_version: int = MIN_VERSION, max_version: int = MAX_VERSION) -> list[bytes]:
    """REJECT: key order s, ec, em, vn, vx."""
    return encode(
        MsgType.REJECT,
        {K_SRC: source, K_CODE: code, K_EMSG: message, K_VMIN: min_version, K_VMAX: max_version},
    )


def send(
    source: bytes,
    channel: str,
    payload: bytes,
    *,
    lane: int = 0,
    seq: int | None = None,
    content_type: ContentType = ContentType.RAW,
    trace: str | None = None,
) -> list[bytes]:
    """SEND: key order s, c, l (if non-zero), q, ct (if not RAW), x."""
    header = _with_stream_keys(_base(source, channel, lane), seq, content_type, trace)
    return encode(MsgType.SEND, header, (payload,))


def _with_stream_keys(header: dict[str, Any], seq: int | None, content_type: int, trace: str | None) -> dict[str, Any]:
    """Append the optional keys q, ct, x (in that order) shared by SEND and PUBLISH."""
    if seq is not None:
        header[K_SEQ] = seq
    if content_type:
        header[K_CT] = int(content_type)
    if trace:
        header[K_TRACE] = trace
    return header


def publish(
    source: bytes,
    channel: str,
    payload: bytes,
    *,
    topic: bytes = b"",
    seq: int | None = None,
    content_type: ContentType = ContentType.RAW,
    trace: str | None = None,
) -> list[bytes]:
    """PUBLISH with its leading topic frame: [topic, head, payload]. Key order s, c, q, ct, x."""
    header = _with_stream_keys(_base(source, channel), seq, content_type, trace)
    return [topic, *encode(MsgType.PUBLISH, header, (payload,))]


def call(
    source: bytes,
    service: str,
    payload: bytes,
    *,
    msg_id: int,
    channel: str | None = None,
    lane: int = 0,
    timeout_ms: int | None = None,
    content_type: ContentType = ContentType.RAW,
    trace: str | None = None,
) -> list[bytes]:
    """CALL: key order s, c, l, sv, i, to, ct, x."""
    header = _base(source, channel, lane)
    header[K_SERVICE] = service
    header[K_ID] = msg_id
    if timeout_ms is not None:
        header[K_TIMEOUT] = timeout_ms
    if content_type:
        header[K_CT] = int(content_type)
    if trace:
        header[K_TRACE] = trace
    return encode(MsgType.CALL, header, (payload,))


def reply(source: bytes, corr: int, payload: bytes, *, content_type: ContentType = ContentType.RAW) -> list[bytes]:
    """REPLY: key order s, r, ct."""
    header: dict[str, Any] = {K_SRC: source, K_CORR: corr}
    if content_type:
        header[K_CT] = int(content_type)
    return encode(MsgType.REPLY, header, (payload,))


def error(source: bytes, corr: int, *, code: int, etype: str = "", message: str = "") -> list[bytes]:
    """ERROR: key order s, r, ec, et, em."""
    return encode(MsgType.ERROR, {K_SRC: source, K_CORR: corr, K_CODE: code, K_ETYPE: etype, K_EMSG: message})


def ping(source: bytes, *, msg_id: int, wall_ms: int) -> list[bytes]:
    """PING: key order s, i, ts."""
    return encode(MsgType.PING, {K_SRC: source, K_ID: msg_id, K_TIME: wall_ms})


def pong(source: bytes, *, corr: int, wall_ms: int) -> list[bytes]:
    """PONG: key order s, r, ts."""
    return encode(MsgType.PONG, {K_SRC: source, K_CORR: corr, K_TIME: wall_ms})


def bye(source: bytes) -> list[bytes]:
    """BYE: key order s."""
    return encode(MsgType.BYE, {K_SRC: source})


def membership(source: bytes, op: str, body: Mapping[str, Any], *, mtype: MsgType = MsgType.MEMBERSHIP) -> list[bytes]:
    """MEMBERSHIP (or TREE) message: header s, op; payload = msgpack(body)."""
    return encode(mtype, {K_SRC: source, K_OP: op}, (packb(dict(body)),))


# -- identities ----------------------------------------------------------------------------------------

ROUTING_MEMBER = 0x01
"""First octet of a member's routing id (never 0: ZeroMQ reserves ids starting with a zero octet)."""
ROUTING_CLIENT = 0x02
"""First octet of a client-role peer's routing id."""


def routing_prefix(node_id: bytes, *, role: Role = Role.MEMBER, incarnation: int = 0) -> bytes:
    """The part of a connecting socket's routing id that names the node: role octet | node id (16) |
    incarnation (4, low 32 bits, big-endian). The transport appends the link's generation and the lane
    (:func:`routing_id`)."""
    if len(node_id) != NODE_ID_BYTES:
        raise ValueError("a routing id needs a 16-octet node id")
    role_octet = ROUTING_CLIENT if role == Role.CLIENT else ROUTING_MEMBER
    return bytes((role_octet,)) + node_id + (incarnation & 0xFFFFFFFF).to_bytes(4, "big")


def routing_id(node_id: bytes, lane: int = 0, *, role: Role = Role.MEMBER, incarnation: int = 0,
               generation: int = 0) -> bytes:
    """The ZeroMQ routing id of a connecting socket (26 octets): :func:`routing_prefix` | generation (4,
    big-endian) | lane octet.

    The lane keeps the parallel lanes of one peer from evicting each other at a ROUTER. The incarnation
    keeps a restarted process that kept its node id from colliding with the connections its previous
    process left behind, and the generation (new for every link the sender opens) keeps a link reopened
    to a peer that restarted on the same port from colliding with the sender's own earlier link: ROUTERs
    refuse an in-use routing id (no handover), and libzmq never retries a refused pipe that already holds
    messages, so the new link would otherwise stay mute there.
    """
    if not 0 <= lane < MAX_LANES:
        raise ValueError("routing_id needs a lane in 0..255")
    prefix = routing_prefix(node_id, role=role, incarnation=incarnation)
    return prefix + (generation & 0xFFFFFFFF).to_bytes(4, "big") + bytes((lane,))


def parse_routing_id(rid: bytes) -> tuple[Role, bytes, int, int, int] | None:
    """Inverse of :func:`routing_id`: ``(role, node_id, incarnation_low32, generation, lane)``; None for
    ids not shaped like ours (e.g. a foreign DEALER)."""
    if len(rid) != NODE_ID_BYTES + 10 or rid[0] not in (ROUTING_MEMBER, ROUTING_CLIENT):
        return None
    role = Role.CLIENT if rid[0] == ROUTING_CLIENT else Role.MEMBER
    return role, rid[1:17], int.from_bytes(rid[17:21], "big"), int.from_bytes(rid[21:25], "big"), rid[-1]


def new_node_id() -> bytes:
    """A fresh random node id (UUID4, 16 octets)."""
    return uuid.uuid4().bytes


def node_id_str(node_id: bytes) -> str:
    """Canonical text form of a node id (the UUID string)."""
    return str(uuid.UUID(bytes=node_id))


@functools.lru_cache(maxsize=4096)
def node_id_bytes(text: str) -> bytes:
    """Parse the text form of a node id. Raises ValueError for anything that is not a UUID.

    Cached: every ``send``/``call`` names its peer by this text, and parsing a UUID costs more than
    the rest of building a message header.
    """
    return uuid.UUID(text).bytes

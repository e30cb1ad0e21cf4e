"""Wire protocol v1: constants, message types, header keys and limits.

ONLY APPEND TO THE MESSAGE TYPE LIST. The numeric values are part of the protocol: peers in other
languages dispatch on them. A receiver ignores (and counts) types it does not know, and ignores header
keys it does not know, so new types and keys can be added without a version bump. See docs/protocol.md.
"""

from __future__ import annotations

from enum import IntEnum

SIGNATURE = b"\xaa\xfb"
"""First two octets of every envelope (distinct from ZRE ``AA A1`` and FILEMQ ``AA A3``)."""

PROTOCOL_VERSION = 1
"""The protocol version this implementation encodes with."""

MIN_VERSION = 1
"""Oldest protocol version this implementation decodes."""

MAX_VERSION = 1
"""Newest protocol version this implementation decodes."""


class MsgType(IntEnum):
    """Envelope message types (octet 3 of the head frame). Append only."""

    HELLO = 1
    """First message on every new link: identity, role, protocol version range, endpoints, metadata."""
    WELCOME = 2
    """Accepts a HELLO: chosen version and the acceptor's identity."""
    REJECT = 3
    """Refuses a HELLO (no common version, bad role ...): error code and reason."""
    SEND = 4
    """One-way message on a channel (control or bulk)."""
    CALL = 5
    """Request to a named service; answered by REPLY or ERROR with the same correlation id."""
    REPLY = 6
    """Successful answer to a CALL."""
    ERROR = 7
    """Failed answer to a CALL: error code, exception type name, message."""
    PING = 8
    """Liveness probe; answered by PONG. Any traffic also counts as a sign of life."""
    PONG = 9
    """Answer to PING."""
    BYE = 10
    """Graceful close of a link (the sender is leaving or the client is done)."""
    BATCH = 11
    """Several messages to the same peer in one ZeroMQ message (see docs/protocol.md, Batching)."""
    PUBLISH = 12
    """A message on a broadcast channel (PUB/SUB), preceded by a topic frame."""
    MEMBERSHIP = 16
    """Membership / overlay protocol message; header ``op`` names the operation, payload is a msgpack map."""
    TREE = 17
    """Broadcast-tree (Plumtree) message; header ``op`` names the operation."""


class Role(IntEnum):
    """What a peer is to us (HELLO ``ro``)."""

    MEMBER = 0
    """A cluster member: appears in membership, binds endpoints."""
    CLIENT = 1
    """A client: calls services and subscribes, never a member, binds nothing."""


class ContentType(IntEnum):
    """How the payload frame is encoded (header ``ct``; absent means RAW)."""

    RAW = 0
    """Opaque bytes, handed to the application unchanged."""
    MSGPACK = 1
    """A msgpack value (no ext types)."""


class RejectCode(IntEnum):
    """Why a HELLO was refused (REJECT ``ec``)."""

    VERSION = 7
    """No protocol version in common; REJECT carries our ``vn``/``vx`` range."""
    ROLE = 8
    """The role is not accepted here (e.g. clients are disabled)."""
    IDENTITY = 9
    """The identity is invalid or refused."""
    UNTRUSTED = 10
    """Secure mode: the CURVE key that sent the HELLO is not trusted for the role it asks for (not in the
    trust file's allowlist for that role, no valid certificate, or revoked)."""
    LIMIT = 11
    """A limit of the receiving node refused it: too many peers, or more lanes than it allows
    (issue 16; 10 is reserved for UNTRUSTED)."""


# Header keys: short, stable, lower-case strings. Unknown keys are ignored by receivers.
K_SRC = "s"  # source node id, bin 16 (all types)
K_DST = "d"  # destination node id, bin 16 (optional; absent: the receiving node)
K_CHANNEL = "c"  # channel name, str
K_LANE = "l"  # lane index, uint (absent: 0)
K_ID = "i"  # message id, uint64, unique per source incarnation
K_CORR = "r"  # correlation id: the message id this answers
K_SEQ = "q"  # sequence number per (source, destination, channel, lane), uint64
K_TRACE = "x"  # trace context: W3C traceparent string
K_CT = "ct"  # payload content type (ContentType); absent = RAW
K_FRAMES = "f"  # BATCH: list of frame counts, one per inner message
K_SERVICE = "sv"  # CALL: service name
K_TIMEOUT = "to"  # CALL: caller's timeout budget in milliseconds
K_CODE = "ec"  # ERROR/REJECT: error code
K_ETYPE = "et"  # ERROR: remote exception type name
K_EMSG = "em"  # ERROR/REJECT: human-readable message
K_VMIN = "vn"  # HELLO/REJECT: lowest protocol version spoken
K_VMAX = "vx"  # HELLO/REJECT: highest protocol version spoken
K_VERSION = "v"  # WELCOME: chosen protocol version
K_NAME = "nm"  # HELLO/WELCOME: human node name
K_INC = "in"  # HELLO/WELCOME: incarnation number (grows on restart)
K_ROLE = "ro"  # HELLO: Role
K_ENDPOINTS = "ep"  # HELLO/WELCOME: {channel: [kind, endpoint, parallelism]}
K_META = "md"  # HELLO/WELCOME: metadata map str -> str
K_OP = "op"  # MEMBERSHIP/TREE: operation name
K_TIME = "ts"  # PING/PONG: sender's wall-clock time in ms (clock-skew estimate)
K_TOPOLOGY = "tp"  # HELLO/WELCOME (members): the sender's topology state {e: epoch, p: proposer, o: overlay}
K_PUBKEY = "pk"  # HELLO/WELCOME (secure mode): the sender's CURVE public key, Z85 (40 octets, bin)
K_CERT = "cr"  # HELLO/WELCOME (secure mode): the sender's certificate, when it has one (bin)
K_BOOT = "bi"  # HELLO/WELCOME (members, optional): boot id, 8 random octets chosen once per Node start
BOOT_ID_BYTES = 8  # length of a boot id (K_BOOT)

# Limits. A message beyond any limit is rejected with OversizedMessage and counted.
MAX_HEADER_BYTES = 64 * 1024
"""Largest msgpack header accepted (bytes)."""
MAX_PAYLOAD_FRAMES = 64
"""Most payload frames in one (non-batch) message."""
MAX_BATCH_MESSAGES = 4096
"""Most inner messages in one BATCH."""
MAX_NAME_BYTES = 255
"""Longest channel, service, node or topic name (UTF-8 bytes)."""
MAX_LANES = 256
"""Lanes per channel: the lane travels as one octet in the routing id."""
NODE_ID_BYTES = 16
"""Node ids are UUIDs: 16 octets on the wire."""

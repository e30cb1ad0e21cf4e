"""Foundation fabric: a distributed messaging fabric over ZeroMQ.

Start here: :class:`Node` (async) or :class:`BlockingNode` (synchronous), configured by
:class:`NodeConfig`. docs/guide.md walks from a cluster in ten lines to channels, calls and broadcast.
"""

from .blocking import BlockingClient, BlockingNode
from .client import Client
from .config import (
    DEFAULT_CHANNELS,
    MEMBERSHIP_CHANNEL,
    ChannelConfig,
    LimitsConfig,
    NodeConfig,
    OnFull,
    SecurityConfig,
    TransportConfig,
)
from .errors import (
    BadRequest,
    BadSignature,
    CallError,
    CallTimeout,
    ConfigError,
    FabricError,
    InsecureBindError,
    JoinTimeout,
    KeyFileError,
    MalformedHeader,
    NodeStateError,
    NoSuchService,
    Overloaded,
    OversizedMessage,
    ProcessSettingsConflict,
    ProtocolError,
    RemoteHandlerError,
    SecurityError,
    TruncatedMessage,
    UnknownMessageType,
    Unreachable,
    UnsupportedVersion,
    UntrustedCertificate,
    VersionMismatch,
)
from .node import Message, Node, Peer, PeerInfo
from .topology import TopologyConflict, TopologyCooldown, TopologyError
from .transport.base import ChannelKind
from .transport.faults import FaultPolicy

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CHANNELS",
    "MEMBERSHIP_CHANNEL",
    "BadRequest",
    "BadSignature",
    "BlockingClient",
    "BlockingNode",
    "CallError",
    "CallTimeout",
    "ChannelConfig",
    "ChannelKind",
    "Client",
    "ConfigError",
    "FabricError",
    "FaultPolicy",
    "InsecureBindError",
    "JoinTimeout",
    "KeyFileError",
    "MalformedHeader",
    "Message",
    "Node",
    "NodeConfig",
    "NodeStateError",
    "NoSuchService",
    "OnFull",
    "OversizedMessage",
    "Overloaded",
    "Peer",
    "PeerInfo",
    "ProcessSettingsConflict",
    "SecurityError",
    "ProtocolError",
    "RemoteHandlerError",
    "TopologyConflict",
    "TopologyCooldown",
    "TopologyError",
    "SecurityConfig",
    "TransportConfig",
    "LimitsConfig",
    "TruncatedMessage",
    "UnknownMessageType",
    "Unreachable",
    "UnsupportedVersion",
    "UntrustedCertificate",
    "VersionMismatch",
    "__version__",
]

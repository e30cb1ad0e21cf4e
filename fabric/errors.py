"""The fabric's exception tree: one root, subclasses split by blame.

* :class:`ConfigError` — our caller passed a bad configuration (raised at construction time); the one
  configuration error class: every other one (``SettingsError``, discovery's ``ConfigurationError``,
  :class:`ProcessSettingsConflict`, :class:`InsecureBindError`) subclasses it. It is also a ValueError.
* :class:`ProtocolError` — a peer sent bytes we cannot accept; the node counts and drops them, it never
  crashes on them. Subclasses name the category (the node keeps one counter per category).
* :class:`CallError` — an RPC failed; each subclass has a stable numeric ``code`` that travels on the wire
  (see docs/protocol.md, "Error codes").
* :class:`NodeStateError` — the node is not in a state for that operation (not started, closed).
"""

from __future__ import annotations


class FabricError(Exception):
    """Root of every exception raised by :mod:`fabric`."""


class ConfigError(FabricError, ValueError):
    """A configuration value is invalid; the message names the field."""


class ProcessSettingsConflict(ConfigError):
    """A node asked for process-wide transport settings (``TransportConfig.io_threads``, ``max_sockets``,
    ``malloc_trim_threshold``, ``io_thread_nice``) that differ from the ones already in force in this
    process: they are applied once per process, while the shared libzmq context lives (see
    docs/guide.md, "Process-wide settings")."""


class InsecureBindError(ConfigError):
    """A non-loopback bind was asked for without ``insecure=True`` (security is not configured)."""


class NodeStateError(FabricError, RuntimeError):
    """The node is not started, or is closed."""


class JoinTimeout(FabricError, TimeoutError):
    """:meth:`fabric.Node.join` did not reach the requested membership in time (the node keeps trying)."""


# -- bad peer input ------------------------------------------------------------------------------------


class ProtocolError(FabricError):
    """A peer sent input that violates the wire protocol. ``category`` names the error counter."""

    category = "malformed"


class TruncatedMessage(ProtocolError):
    """Fewer frames or bytes than the protocol requires."""

    category = "truncated"


class BadSignature(ProtocolError):
    """The first two octets are not the fabric signature (a foreign or misconfigured peer)."""

    category = "bad_signature"


class UnsupportedVersion(ProtocolError):
    """The message was encoded with a protocol version outside our supported range."""

    category = "bad_version"


class MalformedHeader(ProtocolError):
    """The header is not a valid msgpack map of the documented shape."""

    category = "bad_header"


class OversizedMessage(ProtocolError):
    """A frame, the header or the whole message exceeds a protocol limit."""

    category = "oversized"


class UnknownMessageType(ProtocolError):
    """A message type this version does not know (ignored, per the append-only rule, and counted)."""

    category = "unknown_type"


# -- RPC errors ----------------------------------------------------------------------------------------


class CallError(FabricError):
    """Base of every error :meth:`fabric.Node.call` raises. ``code`` is the wire error code."""

    code = 0

    def __init__(self, message: str, *, peer: str | None = None, service: str | None = None) -> None:
        super().__init__(message)
        self.peer = peer
        self.service = service


class NoSuchService(CallError):
    """The peer has no handler registered under that service name."""

    code = 1


class RemoteHandlerError(CallError):
    """The remote handler raised. ``remote_type`` and ``remote_message`` describe the exception."""

    code = 2

    def __init__(
        self,
        message: str,
        *,
        remote_type: str = "",
        remote_message: str = "",
        peer: str | None = None,
        service: str | None = None,
    ) -> None:
        super().__init__(message, peer=peer, service=service)
        self.remote_type = remote_type
        self.remote_message = remote_message


class CallTimeout(CallError, TimeoutError):
    """No reply arrived within the timeout (the request may or may not have run)."""

    code = 3


class Unreachable(CallError):
    """The peer is unknown, not linked, or the message could not be handed to the transport."""

    code = 4


class Overloaded(CallError):
    """The peer's queue is full (local HWM reached) or the peer refused the request for load."""

    code = 5


class BadRequest(CallError):
    """The peer could not decode the request (or we could not decode the reply)."""

    code = 6


class VersionMismatch(CallError):
    """The peer speaks no protocol version in common with us (HELLO was rejected)."""

    code = 7


CALL_ERRORS: dict[int, type[CallError]] = {
    cls.code: cls
    for cls in (NoSuchService, RemoteHandlerError, CallTimeout, Unreachable, Overloaded, BadRequest, VersionMismatch)
}
"""Wire error code -> exception class (codes are part of the protocol; append only)."""


class SecurityError(FabricError):
    """Root of the security errors (keys, certificates, trust): see docs/security.md."""


class KeyFileError(SecurityError, ConfigError):
    """A key file is missing, malformed, or (for a secret key) readable by group or others."""


class UntrustedCertificate(SecurityError):
    """A node certificate was refused: malformed, signed by an unknown CA, tampered with, for another key,
    revoked, expired or not yet valid. ``reason`` names which (a short token, also used as a counter name)."""

    def __init__(self, message: str, *, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason

"""The admin package's exception tree: one root (:class:`AdminError`), subclasses by blame."""

from __future__ import annotations

from ..errors import FabricError


class AdminError(FabricError):
    """Root of the operator-facing errors."""


class AdminUnreachable(AdminError):
    """The node's admin endpoint cannot be reached (bad endpoint, unresolvable, nothing answers)."""


class AdminRemoteError(AdminError):
    """The node ran the op and it failed (unknown member, bad argument, the forwarded call failed)."""


class AdminForbidden(AdminRemoteError):
    """The op changes the node and the caller is not authorised: it needs an operator key (secure mode),
    or the node's admin endpoint rather than its cluster channels (see docs/security.md, "Admin
    authorisation")."""


class AdminUnsupported(AdminError):
    """The node has no admin service, or not that op (e.g. ``config`` without Foundation services)."""


class NodeStartError(AdminError):
    """The node could not start (address in use, a bind refused, discovery would not start)."""


__all__ = ["AdminError", "AdminForbidden", "AdminRemoteError", "AdminUnreachable", "AdminUnsupported", "NodeStartError"]

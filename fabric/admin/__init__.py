"""Operating a node: the admin service a running node offers, and the operator's client of it.

* :class:`AdminService` (:mod:`.service`): the ``fabric.admin`` service (status, members, health,
  topology, switch, send/call through the node, leave, Foundation config ops);
* :class:`MemberTracker` (:mod:`.tracker`): the member list operators see, with down/left members
  expiring after ``member_expiry`` seconds;
* :class:`AdminEndpoint` (:mod:`.endpoint`): the node's own admin socket, the only place that serves the
  ops that change a node (CURVE and operator keys in secure mode);
* :class:`AdminClient` (:mod:`.client`): the blocking client every ``foundation-node`` command uses;
* :func:`render_metrics` (:mod:`.metrics`): the Prometheus rendering of a node's state;
* the exception tree (:mod:`.errors`), rooted at :class:`AdminError`.

What composes a running node (the runner behind ``foundation-node start``) and ``doctor`` live in the
CLI package (``foundation_cli.runner``, ``foundation_cli.doctor``); this package never imports them,
nor the HTTP endpoint (:mod:`fabric.http`), which serves whatever it is given.
"""

from __future__ import annotations

from .client import AdminClient
from .endpoint import DEFAULT_ADMIN_BIND, AdminEndpoint
from .errors import (
    AdminError,
    AdminForbidden,
    AdminRemoteError,
    AdminUnreachable,
    AdminUnsupported,
    NodeStartError,
)
from .metrics import METRICS_CONTENT_TYPE, render_metrics
from .service import ADMIN_SERVICE, ADMIN_VERSION, MUTATING_OPS, AdminService, SeedStatus, Target
from .tracker import DEFAULT_MEMBER_EXPIRY, MemberTracker

__all__ = [
    "ADMIN_SERVICE",
    "ADMIN_VERSION",
    "DEFAULT_ADMIN_BIND",
    "MUTATING_OPS",
    "DEFAULT_MEMBER_EXPIRY",
    "METRICS_CONTENT_TYPE",
    "AdminClient",
    "AdminEndpoint",
    "AdminError",
    "AdminForbidden",
    "AdminRemoteError",
    "AdminService",
    "AdminUnreachable",
    "AdminUnsupported",
    "MemberTracker",
    "NodeStartError",
    "SeedStatus",
    "Target",
    "render_metrics",
]

"""One place that builds an overlay core by name, so the Node and the simulators pick policies alike.

Every overlay is the same machinery with a different neighbour policy: ``full-mesh`` (every alive member
is a neighbour), ``hyparview`` (partial active/passive views), ``client-server`` (clients link to the
servers) and ``static`` (the configured members). All share the vocabulary of
:mod:`fabric.membership.types`, the indirect probes and local health of :mod:`fabric.membership.health`,
and the :class:`~fabric.membership.overlay.Overlay` interface.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .clientserver import ClientServer
from .config import MembershipConfig
from .errors import MembershipError
from .fullmesh import FullMeshMembership
from .hyparview import HyParView
from .overlay import FullMeshOverlay, Overlay
from .static import StaticOverlay
from .types import Identity

OVERLAY_NAMES = ("full-mesh", "hyparview", "client-server", "static")
"""The overlays :func:`make_overlay` builds."""


def make_overlay(name: str, identity: Identity, *, membership: MembershipConfig | None = None, role: str = "server",
                 static_members: Sequence[Identity | str] = (), rng: random.Random | None = None,
                 now: float = 0.0) -> Overlay:
    """The overlay core called ``name`` for this node.

    Args:
        name: one of :data:`OVERLAY_NAMES`.
        identity: this node.
        membership: the membership configuration of every overlay (default :meth:`MembershipConfig.lan`).
        role: ``client-server`` only: ``"server"`` or ``"client"``.
        static_members: ``static`` only: the configured members (identities or membership endpoints).
        rng: the random source (seed it in simulations).
        now: current time.

    Raises:
        MembershipError: an unknown overlay name (or a bad node id).
    """
    rng = rng if rng is not None else random.Random()
    if name == "full-mesh":
        return FullMeshOverlay(FullMeshMembership(identity, membership, rng=rng, now=now))
    if name == "hyparview":
        return HyParView(identity, membership, rng=rng, now=now)
    if name == "client-server":
        return ClientServer(identity, role, membership, rng=rng, now=now)
    if name == "static":
        return StaticOverlay(identity, list(static_members), membership, rng=rng, now=now)
    raise MembershipError(f"unknown overlay {name!r}: expected one of {', '.join(OVERLAY_NAMES)}")

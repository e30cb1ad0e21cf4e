"""Membership and overlays (sans-IO): the full-mesh core, HyParView + Plumtree, client-server, static,
the phi-accrual failure detector, SWIM's indirect probes and Lifeguard's local health
(:mod:`~fabric.membership.health`), one vocabulary (:mod:`~fabric.membership.types`) and one factory
(:func:`make_overlay`).

See docs/membership.md (full mesh, failure detection and its bound) and docs/overlays.md (the overlays).
"""

from .clientserver import ClientServer
from .config import HyParViewConfig, MembershipConfig, PlumtreeConfig, detection_bound
from .detector import PhiAccrualDetector, logistic_phi, threshold_quantile
from .engine import MemberEngine
from .errors import BadMembershipMessage, MembershipError
from .factory import OVERLAY_NAMES, make_overlay
from .fullmesh import OPS, FullMeshMembership
from .health import IndirectProbes, LocalHealth, suspicion_timeout
from .hyparview import HyParView
from .overlay import Deliver, FullMeshOverlay, Overlay, OverlayEffect, RecordOverlay
from .overlay_config import OverlayConfig  # deprecated alias (one release)
from .plumtree import Plumtree, TreeSend
from .static import StaticOverlay
from .types import (
    Connect,
    Contact,
    Dial,
    Disconnect,
    Effect,
    Endpoints,
    Identity,
    InputEvent,
    Joined,
    JoinRequest,
    LeaveRequest,
    LinkDown,
    LinkUp,
    Member,
    MemberChanged,
    MemberDown,
    MemberLeft,
    MembershipEvent,
    MemberStatus,
    MemberUp,
    Received,
    Send,
    Tick,
    Traffic,
)

__all__ = [
    "OPS",
    "OVERLAY_NAMES",
    "IndirectProbes",
    "LocalHealth",
    "make_overlay",
    "suspicion_timeout",
    "ClientServer",
    "Deliver",
    "FullMeshOverlay",
    "HyParView",
    "HyParViewConfig",
    "Overlay",
    "OverlayConfig",
    "OverlayEffect",
    "Plumtree",
    "PlumtreeConfig",
    "RecordOverlay",
    "StaticOverlay",
    "TreeSend",
    "BadMembershipMessage",
    "Connect",
    "Contact",
    "Dial",
    "Disconnect",
    "Effect",
    "Endpoints",
    "FullMeshMembership",
    "Identity",
    "InputEvent",
    "JoinRequest",
    "Joined",
    "LeaveRequest",
    "LinkDown",
    "LinkUp",
    "Member",
    "MemberChanged",
    "MemberDown",
    "MemberEngine",
    "MemberLeft",
    "MemberStatus",
    "MemberUp",
    "MembershipConfig",
    "MembershipError",
    "MembershipEvent",
    "PhiAccrualDetector",
    "Received",
    "Send",
    "Tick",
    "Traffic",
    "detection_bound",
    "logistic_phi",
    "threshold_quantile",
]

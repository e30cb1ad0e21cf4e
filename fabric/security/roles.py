"""The roles a trusted key may hold (shared by the trust store and CA certificates)."""

from __future__ import annotations

from enum import StrEnum


class TrustRole(StrEnum):
    """What a trusted key may do."""

    MEMBER = "member"
    """Join the cluster as a node."""
    CLIENT = "client"
    """Connect in the client role (send and call, never a member)."""
    OPERATOR = "operator"
    """Change a node through the admin service."""

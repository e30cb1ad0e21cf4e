"""Exceptions of :mod:`fabric.membership` (all under :class:`fabric.errors.FabricError`)."""

from __future__ import annotations

from ..errors import FabricError, ProtocolError


class MembershipError(FabricError):
    """Root of the errors raised by the membership package for local misuse."""


class BadMembershipMessage(ProtocolError):
    """A peer sent a MEMBERSHIP message whose body does not match the op's schema (counted, dropped)."""

    category = "bad_membership"

"""Deprecated: the record overlays' configuration is part of :class:`~fabric.membership.MembershipConfig`.

Until release 0.x+1 (one release) this module keeps the old spellings working, each with a
:class:`DeprecationWarning`:

* ``OverlayConfig(...)``, ``OverlayConfig.local()/.lan()/.wan()`` build a :class:`MembershipConfig`; the
  two fields whose names the merge changed are renamed on the way (``tombstone_ttl`` ->
  ``record_tombstone_ttl``, ``max_members`` -> ``max_records``, see :data:`OVERLAY_RENAMES`);
* ``HyParViewConfig`` and ``PlumtreeConfig`` are re-exported from :mod:`fabric.membership.config`;
* :func:`merge_overlay_config` maps ``NodeConfig(overlay_config=...)`` onto ``NodeConfig.membership``.
"""

from __future__ import annotations

import warnings
from dataclasses import fields, replace
from typing import Any

from ..errors import ConfigError
from .config import HyParViewConfig, MembershipConfig, PlumtreeConfig

__all__ = ["OVERLAY_RENAMES", "HyParViewConfig", "OverlayConfig", "PlumtreeConfig", "merge_overlay_config"]

OVERLAY_RENAMES: dict[str, str] = {"tombstone_ttl": "record_tombstone_ttl", "max_members": "max_records"}
"""Old ``OverlayConfig`` field name -> its name in :class:`MembershipConfig` (the full-mesh fields of the
same names kept theirs, with their own defaults)."""

_WHY = ("OverlayConfig is deprecated: its fields are part of MembershipConfig (tombstone_ttl is "
        "record_tombstone_ttl, max_members is max_records); use MembershipConfig and NodeConfig.membership")


def _renamed(changes: dict[str, Any]) -> dict[str, Any]:
    return {OVERLAY_RENAMES.get(k, k): v for k, v in changes.items()}


class _OverlayConfigMeta(type):
    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, MembershipConfig)


class OverlayConfig(metaclass=_OverlayConfigMeta):
    """Deprecated alias: calling it (or a preset) returns a :class:`MembershipConfig` and warns."""

    def __new__(cls, **changes: Any) -> MembershipConfig:  # type: ignore[misc]
        warnings.warn(_WHY, DeprecationWarning, stacklevel=2)
        return MembershipConfig(**_renamed(changes))

    @staticmethod
    def lan(**overrides: Any) -> MembershipConfig:
        """Deprecated: :meth:`MembershipConfig.lan`."""
        warnings.warn(_WHY, DeprecationWarning, stacklevel=2)
        return MembershipConfig.lan(**_renamed(overrides))

    @staticmethod
    def local(**overrides: Any) -> MembershipConfig:
        """Deprecated: :meth:`MembershipConfig.local`."""
        warnings.warn(_WHY, DeprecationWarning, stacklevel=2)
        return MembershipConfig.local(**_renamed(overrides))

    @staticmethod
    def wan(**overrides: Any) -> MembershipConfig:
        """Deprecated: :meth:`MembershipConfig.wan`."""
        warnings.warn(_WHY, DeprecationWarning, stacklevel=2)
        return MembershipConfig.wan(**_renamed(overrides))


def merge_overlay_config(membership: MembershipConfig, overlay: Any) -> MembershipConfig:
    """``membership`` with the fields ``overlay`` (the deprecated ``NodeConfig.overlay_config``) sets.

    A field the two agree on, or that one of them leaves at its default, takes the other's value; a
    field both set to different non-default values raises :class:`~fabric.errors.ConfigError` (one
    detector configures every overlay now, so there is no way to honour both).
    """
    if not isinstance(overlay, MembershipConfig):
        raise ConfigError(f"overlay_config: expected a MembershipConfig, got {type(overlay).__name__}")
    merged: MembershipConfig = _merge(membership, overlay, MembershipConfig(), "")
    return merged


def _merge(mine_obj: Any, theirs_obj: Any, default_obj: Any, prefix: str) -> Any:
    changes: dict[str, Any] = {}
    for f in fields(mine_obj):
        mine, theirs, base = getattr(mine_obj, f.name), getattr(theirs_obj, f.name), getattr(default_obj, f.name)
        if theirs == mine or theirs == base:
            continue
        if isinstance(mine, HyParViewConfig | PlumtreeConfig):  # nested: field by field
            changes[f.name] = _merge(mine, theirs, base, f"{prefix}{f.name}.")
        elif mine != base:
            raise ConfigError(f"overlay_config.{prefix}{f.name}: {theirs!r} conflicts with membership.{prefix}{f.name} "
                              f"= {mine!r}; set it in membership only (overlay_config is deprecated)")
        else:
            changes[f.name] = theirs
    return replace(mine_obj, **changes) if changes else mine_obj

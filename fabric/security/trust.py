"""The cluster trust store: which public keys may be a member, a client or an operator.

A trust file (TOML) is the operator's statement of trust::

    [[member]]                     # node keys allowed to join as members
    key = "<40-character Z85 CURVE public key>"
    name = "db-1"                  # optional, for humans
    [[client]]                     # keys allowed to connect in the client role
    key = "..."
    [[operator]]                   # keys allowed to change a node through the admin service
    key = "..."
    [revoked]
    keys = ["..."]                 # never admitted, whatever else says so

:class:`TrustStore` holds an immutable :class:`TrustSnapshot`; :meth:`TrustStore.reload` swaps in a new
one atomically, so the ZAP thread reads it without locks and a revocation takes effect for every later
handshake at once; closing the live connections of a revoked key is the node's job (it registers
:meth:`TrustStore.on_revoke`).
"""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .keys import _check_z85


class TrustRole(StrEnum):
    """What a trusted key may do."""

    MEMBER = "member"
    CLIENT = "client"
    OPERATOR = "operator"


@dataclass(frozen=True)
class TrustSnapshot:
    """One consistent view of the trust file."""

    keys: Mapping[bytes, frozenset[TrustRole]] = field(default_factory=dict)
    """Allowlisted key -> roles."""
    names: Mapping[bytes, str] = field(default_factory=dict)
    revoked: frozenset[bytes] = frozenset()

    def allows(self, key: bytes, role: TrustRole) -> bool:
        """Is ``key`` (Z85) allowlisted for ``role`` and not revoked?"""
        return key not in self.revoked and role in self.keys.get(key, ())


def _entries(doc: Mapping[str, Any], role: TrustRole, where: str) -> Iterable[tuple[bytes, str]]:
    items = doc.get(role.value, [])
    if not isinstance(items, list):
        raise ConfigError(f"{where}: [[{role.value}]] must be an array of tables")
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise ConfigError(f"{where}: {role.value}[{i}] needs key = \"<Z85 public key>\"")
        key = _check_z85(item["key"].encode(), f"{where}: {role.value}[{i}].key")
        name = item.get("name", "")
        if not isinstance(name, str):
            raise ConfigError(f"{where}: {role.value}[{i}].name must be a string")
        yield key, name


def parse_trust(doc: Mapping[str, Any], where: str = "trust") -> TrustSnapshot:
    """Validate a parsed trust document; raises :class:`ConfigError` naming the bad entry."""
    known = {r.value for r in TrustRole} | {"revoked", "ca"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(unknown)} (expected {', '.join(sorted(known))})")
    keys: dict[bytes, set[TrustRole]] = {}
    names: dict[bytes, str] = {}
    for role in TrustRole:
        for key, name in _entries(doc, role, where):
            keys.setdefault(key, set()).add(role)
            if name:
                names[key] = name
    rev = doc.get("revoked", {})
    if not isinstance(rev, dict) or not isinstance(rev.get("keys", []), list):
        raise ConfigError(f"{where}: [revoked] keys must be a list of Z85 keys")
    revoked = frozenset(_check_z85(str(k).encode(), f"{where}: revoked key") for k in rev.get("keys", []))
    return TrustSnapshot({k: frozenset(v) for k, v in keys.items()}, names, revoked)


class TrustStore:
    """The trust file of a node, reloadable (see the module docstring).

    Args:
        path: the TOML trust file; None for a store built in code (:meth:`from_snapshot`).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, snapshot: TrustSnapshot | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._generation = 0
        self.snapshot = snapshot if snapshot is not None else TrustSnapshot()
        self._listeners: list[Callable[[frozenset[bytes]], None]] = []
        if self.path is not None:
            self.reload(force=True)

    @classmethod
    def from_snapshot(cls, snapshot: TrustSnapshot) -> TrustStore:
        return cls(None, snapshot)

    def _read(self) -> TrustSnapshot:
        assert self.path is not None
        try:
            with open(self.path, "rb") as f:
                doc = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{self.path}: no such trust file (create one with: foundation-node keys trust)") from None
        except (OSError, tomllib.TOMLDecodeError, RecursionError) as exc:
            raise ConfigError(f"{self.path}: cannot read trust file: {exc}") from None
        return parse_trust(doc, str(self.path))

    def reload(self, *, force: bool = False) -> bool:
        """Re-read the trust file when it changed (``force``: always). Returns True when a new snapshot
        is in force. A file that became invalid raises :class:`ConfigError` and leaves the last good
        snapshot in force."""
        if self.path is None:
            return False
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            mtime = None
        if not force and mtime is not None and mtime == self._mtime:
            return False
        new = self._read()
        self._install(new)
        self._mtime = mtime
        return True

    def _install(self, new: TrustSnapshot) -> None:
        with self._lock:
            old = self.snapshot
            lost = frozenset(k for k, roles in old.keys.items()
                             if any(old.allows(k, r) for r in roles) and not any(new.allows(k, r) for r in roles))
            newly_revoked = (new.revoked - old.revoked) | lost
            self.snapshot = new
            self._generation += 1
            listeners = list(self._listeners)
        if newly_revoked:
            for cb in listeners:
                cb(frozenset(newly_revoked))

    def replace(self, snapshot: TrustSnapshot) -> None:
        """Put ``snapshot`` in force (a store built in code)."""
        self._install(snapshot)

    def on_revoke(self, callback: Callable[[frozenset[bytes]], None]) -> None:
        """Call ``callback(keys)`` whenever keys lose their trust (revoked, or removed from the file)."""
        with self._lock:
            self._listeners.append(callback)

    def allows(self, key: bytes, role: TrustRole) -> bool:
        """Is ``key`` trusted for ``role`` right now? (Thread-safe: reads one snapshot.)"""
        return self.snapshot.allows(key, role)

    def name_of(self, key: bytes) -> str:
        return self.snapshot.names.get(key, "")

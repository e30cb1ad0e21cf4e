"""The cluster trust store: which public keys may be a member, a client or an operator.

A trust file (TOML) is the operator's statement of trust::

    [[member]]                     # node keys allowed to join as members
    key = "<40-character Z85 CURVE public key>"
    name = "db-1"                  # optional, for humans
    [[client]]                     # keys allowed to connect in the client role
    key = "..."
    [[operator]]                   # keys allowed to change a node through the admin service
    key = "..."
    [ca]
    keys = ["<64 hex digits>"]     # cluster CA keys: a certificate signed by one admits its key
    [revoked]
    keys = ["..."]                 # never admitted, whatever else says so
    serials = [7, 12]              # certificates with these serials are refused

Two ways to trust a key (docs/security.md says when to use which): the *allowlist* (the role tables) and
*CA certificates* (:mod:`fabric.security.certs`), presented by a peer in its HELLO and checked by
:meth:`TrustStore.admit_certificate`. :meth:`TrustStore.admitted` answers "may this key act in this role
now?" for both.

:class:`TrustStore` holds an immutable :class:`TrustSnapshot`; :meth:`TrustStore.reload` swaps in a new
one atomically, so the ZAP thread reads it without locks and a revocation takes effect for every later
handshake at once; closing the live connections of a revoked key is the node's job (it registers
:meth:`TrustStore.on_revoke`). Admitted certificates live in a bounded cache guarded by a lock (the ZAP
thread and the node's loop both read it); its size and evictions are in :meth:`TrustStore.stats`.
"""

from __future__ import annotations

import os
import threading
import tomllib
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UntrustedCertificate
from .certs import MAX_SERIAL, Certificate, ca_key_from_hex, verify_certificate
from .keys import _check_z85
from .roles import TrustRole

DEFAULT_MAX_CERTIFICATES = 4096
"""Admitted certificates remembered (one per key). Keep it above max peers + clients: an evicted key is
no longer :meth:`TrustStore.admitted` until it presents its certificate again (its next HELLO)."""


@dataclass(frozen=True)
class TrustSnapshot:
    """One consistent view of the trust file."""

    keys: Mapping[bytes, frozenset[TrustRole]] = field(default_factory=dict)
    """Allowlisted key -> roles."""
    names: Mapping[bytes, str] = field(default_factory=dict)
    revoked: frozenset[bytes] = frozenset()
    ca_keys: frozenset[bytes] = frozenset()
    """Raw Ed25519 public keys of the cluster CAs (``[ca] keys``)."""
    revoked_serials: frozenset[int] = frozenset()
    """Certificate serials never admitted (``[revoked] serials``), whichever CA signed them."""

    def allows(self, key: bytes, role: TrustRole) -> bool:
        """Is ``key`` (Z85) allowlisted for ``role`` and not revoked?"""
        return key not in self.revoked and role in self.keys.get(key, ())

    def certificate_trusted(self, cert: Certificate, now: float | None = None) -> bool:
        """Does this snapshot still accept an already verified certificate (its CA listed, its serial
        and key not revoked, and, when ``now`` is given, inside its validity window)?"""
        return (cert.ca in self.ca_keys and cert.serial not in self.revoked_serials and cert.key not in self.revoked
                and (now is None or cert.valid_at(now)))


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


def _table(doc: Mapping[str, Any], name: str, allowed: set[str], where: str) -> Mapping[str, Any]:
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: [{name}] has unknown key(s) {', '.join(unknown)} (expected {', '.join(sorted(allowed))})")
    return table


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
    rev = _table(doc, "revoked", {"keys", "serials"}, where)
    if not isinstance(rev.get("keys", []), list):
        raise ConfigError(f"{where}: [revoked] keys must be a list of Z85 keys")
    revoked = frozenset(_check_z85(str(k).encode(), f"{where}: revoked key") for k in rev.get("keys", []))
    serials = rev.get("serials", [])
    if not isinstance(serials, list) or not all(type(s) is int and 0 <= s <= MAX_SERIAL for s in serials):
        raise ConfigError(f"{where}: [revoked] serials must be a list of certificate serials (integers >= 0)")
    ca = _table(doc, "ca", {"keys"}, where)
    ca_list = ca.get("keys", [])
    if not isinstance(ca_list, list) or not all(isinstance(k, str) for k in ca_list):
        raise ConfigError(f"{where}: [ca] keys must be a list of CA public keys (64 hex digits each)")
    ca_keys = frozenset(ca_key_from_hex(k, f"{where}: [ca] key {i}") for i, k in enumerate(ca_list))
    return TrustSnapshot({k: frozenset(v) for k, v in keys.items()}, names, revoked, ca_keys, frozenset(serials))


class TrustStore:
    """The trust file of a node, reloadable, and the certificates admitted under it (see the module
    docstring). Every method is thread-safe.

    Args:
        path: the TOML trust file; None for a store built in code (:meth:`from_snapshot`).
        max_certificates: bound of the admitted-certificate cache (:data:`DEFAULT_MAX_CERTIFICATES`).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, snapshot: TrustSnapshot | None = None,
                 *, max_certificates: int = DEFAULT_MAX_CERTIFICATES) -> None:
        if max_certificates < 1:
            raise ConfigError("max_certificates must be at least 1")
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._generation = 0
        self.snapshot = snapshot if snapshot is not None else TrustSnapshot()
        self._listeners: list[Callable[[frozenset[bytes]], None]] = []
        self.max_certificates = max_certificates
        self._certs: OrderedDict[bytes, Certificate] = OrderedDict()  # key -> its admitted certificate, LRU order
        self._counters: Counter[str] = Counter()
        if self.path is not None:
            self.reload(force=True)

    @classmethod
    def from_snapshot(cls, snapshot: TrustSnapshot, *, max_certificates: int = DEFAULT_MAX_CERTIFICATES) -> TrustStore:
        return cls(None, snapshot, max_certificates=max_certificates)

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
            # certificates the new snapshot no longer accepts (serial or key revoked, CA removed) leave the cache
            dropped = {k: c for k, c in self._certs.items() if not new.certificate_trusted(c)}
            for k in dropped:
                del self._certs[k]
            still_certified = {k: c.role for k, c in self._certs.items()}

            def trusted(snap: TrustSnapshot, k: bytes, r: TrustRole) -> bool:
                return snap.allows(k, r) or still_certified.get(k) == r

            lost = {k for k, roles in old.keys.items()
                    if any(old.allows(k, r) for r in roles) and not any(trusted(new, k, r) for r in roles)}
            lost |= {k for k, c in dropped.items() if not new.allows(k, c.role)}
            newly_revoked = (new.revoked - old.revoked) | lost
            self.snapshot = new
            self._generation += 1
            listeners = list(self._listeners)
        self._notify(frozenset(newly_revoked), listeners)

    @staticmethod
    def _notify(keys: frozenset[bytes], listeners: list[Callable[[frozenset[bytes]], None]]) -> None:
        # outside the lock: a listener may call back into the store
        if keys:
            for cb in listeners:
                cb(keys)

    def replace(self, snapshot: TrustSnapshot) -> None:
        """Put ``snapshot`` in force (a store built in code)."""
        self._install(snapshot)

    def on_revoke(self, callback: Callable[[frozenset[bytes]], None]) -> None:
        """Call ``callback(keys)`` whenever keys lose their trust: revoked (key, or a certificate's
        serial), removed from the file, their CA removed, or (:meth:`expire_certificates`) expired. Called
        on the thread that caused it (the one calling :meth:`reload`)."""
        with self._lock:
            self._listeners.append(callback)

    def allows(self, key: bytes, role: TrustRole) -> bool:
        """Is ``key`` allowlisted for ``role`` right now? (Thread-safe: reads one snapshot.) Certificates
        are not considered: use :meth:`admitted` for "allowlisted or certified"."""
        return self.snapshot.allows(key, role)

    def name_of(self, key: bytes) -> str:
        """The key's name from the trust file, else from its admitted certificate, else ""."""
        name = self.snapshot.names.get(key, "")
        if not name:
            with self._lock:
                cert = self._certs.get(key)
            name = cert.name if cert is not None else ""
        return name

    # -- CA certificates -------------------------------------------------------------------------------

    @property
    def has_ca(self) -> bool:
        """Does the trust file list a CA (so an unknown key may still present a certificate)?"""
        return bool(self.snapshot.ca_keys)

    def may_present_certificate(self, key: bytes) -> bool:
        """For a ZAP policy: may ``key`` complete a handshake to present a certificate (a CA is configured
        and the key is not revoked)? It is not admitted until :meth:`admit_certificate` succeeds."""
        snap = self.snapshot
        return bool(snap.ca_keys) and key not in snap.revoked

    def admit_certificate(self, cert: bytes, key: bytes, now: float) -> TrustRole:
        """Verify the certificate ``cert`` (bytes from a HELLO) presented by the peer authenticated as
        ``key`` (Z85) and remember it, so :meth:`admitted` is True for its role until it expires or is
        revoked. Returns the certified role.

        Raises:
            UntrustedCertificate: no CA configured (reason ``no_ca``), malformed, unknown CA, bad
                signature, another key than ``key``, revoked serial or key, expired, not yet valid.
        """
        while True:
            snap = self.snapshot
            try:
                if not snap.ca_keys:
                    raise UntrustedCertificate("certificate refused (no_ca): the trust file lists no CA", reason="no_ca")
                c = verify_certificate(cert, snap.ca_keys, now, key=key, revoked_serials=snap.revoked_serials,
                                       revoked_keys=snap.revoked)
            except UntrustedCertificate as exc:
                with self._lock:
                    self._counters["certificates_refused"] += 1
                    self._counters[f"certificates_refused_{exc.reason}"] += 1
                raise
            with self._lock:
                if self.snapshot is not snap:
                    continue  # a reload raced the verification: verify against the new snapshot
                self._certs[key] = c
                self._certs.move_to_end(key)
                self._counters["certificates_admitted"] += 1
                if len(self._certs) > self.max_certificates:
                    self._evict(now)
                return c.role

    def _evict(self, now: float) -> None:
        """Make room (lock held): expired certificates first, then the least recently used."""
        expired = [k for k, c in self._certs.items() if not c.valid_at(now)]
        for k in expired[: len(self._certs) - self.max_certificates]:
            del self._certs[k]
            self._counters["certificate_evictions"] += 1
        while len(self._certs) > self.max_certificates:
            self._certs.popitem(last=False)
            self._counters["certificate_evictions"] += 1

    def admitted(self, key: bytes, role: TrustRole, now: float) -> bool:
        """May ``key`` act in ``role`` at ``now``: allowlisted for it, or holding an admitted certificate
        for it that is inside its validity window and not revoked (key or serial) under the current
        snapshot? Thread-safe (the ZAP thread and the node's loop call it)."""
        snap = self.snapshot
        if snap.allows(key, role):
            return True
        with self._lock:
            c = self._certs.get(key)
            if c is not None:
                self._certs.move_to_end(key)
        return c is not None and c.role == role and snap.certificate_trusted(c, now)

    def certificate_of(self, key: bytes) -> Certificate | None:
        """The admitted certificate of ``key``, if any (it may have expired since)."""
        with self._lock:
            return self._certs.get(key)

    def expire_certificates(self, now: float) -> frozenset[bytes]:
        """Forget certificates whose validity ended by ``now``; returns their keys (those not also
        allowlisted for the role) and fires :meth:`on_revoke` with them, so the node unlinks peers whose
        certificate ran out. The node calls it with each trust reload."""
        with self._lock:
            gone = {k: c for k, c in self._certs.items() if now >= c.not_after}
            for k in gone:
                del self._certs[k]
            snap = self.snapshot
            keys = frozenset(k for k, c in gone.items() if not snap.allows(k, c.role))
            self._counters["certificates_expired"] += len(gone)
            listeners = list(self._listeners)
        self._notify(keys, listeners)
        return keys

    def stats(self) -> dict[str, int]:
        """Counts for ``stats()["security"]``: allowlisted keys, CA keys, revocations, the certificate
        cache (``certificates`` held, its bound, admissions, refusals by reason, evictions, expiries)."""
        snap = self.snapshot
        with self._lock:
            counters = dict(self._counters)
            held = len(self._certs)
            generation = self._generation
        return {"allowlisted": len(snap.keys), "ca_keys": len(snap.ca_keys), "revoked_keys": len(snap.revoked),
                "revoked_serials": len(snap.revoked_serials), "certificates": held,
                "certificate_capacity": self.max_certificates, "generation": generation,
                "certificates_admitted": 0, "certificates_refused": 0, "certificate_evictions": 0,
                "certificates_expired": 0, **counters}

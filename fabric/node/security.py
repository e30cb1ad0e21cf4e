"""A node's security state in secure mode: its key pair, the trust store, ZAP policies, attribution.

Node ids are self-certifying (:func:`fabric.security.keys.derive_node_id`): a node's id is derived from its
CURVE public key, so "the id a peer claims must match the key ZAP authenticated" is the local comparison
``header["s"] == id_of(authenticated key)``, done per message by the node's receive path. Which keys may
do what comes from the trust file (:class:`~fabric.security.TrustStore`): members, clients, revoked keys.

The ZAP policies (:meth:`NodeSecurity.curve_settings`) run on the ZAP handler's thread and read only the
trust store's immutable snapshot; everything else runs on the node's loop thread.

Certificates: a HELLO's ``cr`` is offered to the trust store (:meth:`TrustStore.admit_certificate`) and
admission asks :meth:`TrustStore.admitted` (the allowlist, or an admitted certificate; docs/security.md
"Certificates").
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..config import MEMBERSHIP_CHANNEL, NodeConfig
from ..errors import ConfigError, SecurityError
from ..security.keys import KeyPair, derive_node_id, load_keypair
from ..security.roles import TrustRole
from ..security.trust import TrustSnapshot, TrustStore
from ..security.zap import zap_stats
from ..transport.zmq import CurveSettings
from .message import PK_META as _PK_META

log = logging.getLogger("fabric.node")

PK_META = _PK_META
CERT_META = "fabric.cert"
"""Identity metadata key carrying a member's certificate (base64) in secure mode, when it has one: a
member learned through gossip is then admitted by its CA certificate like one that sent a HELLO."""
"""Identity metadata key carrying a member's CURVE public key (Z85) in secure mode, so a member learned
through gossip (whose membership record carries its metadata) can be connected: a CURVE client must know
the server's key first. A key is used only when it derives the member's node id, so gossip cannot
substitute one."""

CERT_FILE = "node.cert"
"""A certificate next to the key pair, sent in HELLO/WELCOME (``cr``) when present."""

NO_ROLES: frozenset[TrustRole] = frozenset()
_MAX_CACHED = 4096


def split_seed(seed: str) -> tuple[str, bytes | None]:
    """``tcp://HOST:PORT#KEY`` -> (endpoint, Z85 key or None). KEY is the 40-character Z85 key or its
    64-character hex form. Raises ConfigError (one line) for a malformed key."""
    endpoint, sep, raw = seed.partition("#")
    if not sep:
        return seed, None
    return endpoint, parse_key(raw, f"seed {seed!r}")


def parse_key(raw: str, where: str) -> bytes:
    """A public key given as 40 Z85 characters or 64 hex digits, as Z85 bytes. Raises ConfigError."""
    import zmq.utils.z85

    text = raw.strip()
    try:
        if len(text) == 64:
            return zmq.utils.z85.encode(bytes.fromhex(text))
        if len(text) == 40:
            zmq.utils.z85.decode(text.encode())
            return text.encode()
    except Exception:  # z85 raises ValueError, KeyError or struct.error for malformed text
        pass
    raise ConfigError(f"{where}: #KEY must be a CURVE public key, 40 Z85 characters or 64 hex digits")


class NodeSecurity:
    """Keys, trust and the per-key caches of one node running CURVE (see the module docstring).

    Raises ConfigError (KeyFileError) for unreadable keys or trust file, and when ``config.node_id``
    disagrees with the id the keys define."""

    def __init__(self, config: NodeConfig) -> None:
        sc = config.security
        assert sc.keys is not None and sc.trust is not None
        self.mode = config.security_mode
        self.keys: KeyPair = load_keypair(sc.keys)
        self.node_id = self.keys.node_id
        if config.node_id is not None and uuid.UUID(config.node_id).bytes != self.node_id:
            raise ConfigError(f"node_id: {config.node_id} disagrees with the keys in {sc.keys}, which define node id "
                              f"{self.keys.node_id_text} (with keys the id is derived from the public key: drop node_id)")
        self.trust = TrustStore(sc.trust)
        cert = Path(sc.keys) / CERT_FILE
        self.cert: bytes | None = cert.read_bytes() if cert.is_file() else None
        self.counters: Counter[str] = Counter()
        self._ids: dict[bytes, bytes] = {}
        self._roles: dict[bytes, frozenset[TrustRole]] = {}
        self._snapshot: TrustSnapshot | None = None

    # -- identity ---------------------------------------------------------------------------------------

    @property
    def public(self) -> bytes:
        return self.keys.public

    def id_of(self, key: bytes) -> bytes | None:
        """The node id ``key`` defines (cached); None for a malformed key."""
        nid = self._ids.get(key)
        if nid is None:
            try:
                nid = derive_node_id(key)
            except ConfigError:
                return None
            if len(self._ids) >= _MAX_CACHED:
                self._ids.clear()
            self._ids[key] = nid
        return nid

    # -- trust ------------------------------------------------------------------------------------------

    def _admitted(self, key: bytes, role: TrustRole) -> bool:
        return self.trust.admitted(key, role, time.time())

    def _has_ca(self) -> bool:
        return bool(self.trust.snapshot.ca_keys)

    def roles(self, key: bytes) -> frozenset[TrustRole]:
        """The roles ``key`` holds right now (empty: untrusted or revoked). Loop thread; cached per trust
        snapshot, so a reload or revocation takes effect for the next message."""
        snap = self.trust.snapshot
        if snap is not self._snapshot:
            self._roles.clear()
            self._snapshot = snap
        roles = self._roles.get(key)
        if roles is None:
            roles = frozenset(r for r in (TrustRole.MEMBER, TrustRole.CLIENT) if self._admitted(key, r))
            if len(self._roles) >= _MAX_CACHED:
                self._roles.clear()
            self._roles[key] = roles
        return roles

    def forget_cached(self) -> None:
        """Drop the cached roles (a certificate was admitted or time moved on; the next lookup re-asks)."""
        self._roles.clear()

    def admit_certificate(self, cert: bytes, key: bytes) -> bool:
        """Offer a HELLO's certificate to the trust store; True when it admitted it. A bad certificate is
        counted (``bad_certificate``), never raised."""
        try:
            self.trust.admit_certificate(cert, key, time.time())
        except (SecurityError, ValueError) as exc:
            self.counters["bad_certificate"] += 1
            log.debug("certificate refused: %s", exc)
            return False
        self.forget_cached()
        return True

    def admit_from_metadata(self, meta: Mapping[str, str], key: bytes) -> None:
        """Admit the certificate a membership record carries (metadata ``fabric.cert``, base64) for
        ``key`` when ``key`` is not trusted as a member yet. Bad text is counted like a bad certificate."""
        text = meta.get(CERT_META)
        if not text or TrustRole.MEMBER in self.roles(key):
            return
        try:
            cert = base64.b64decode(text, validate=True)
        except (ValueError, TypeError):
            self.counters["bad_certificate"] += 1
            return
        self.admit_certificate(cert, key)

    # -- reloading and revocation ----------------------------------------------------------------------

    def watch(self, loop: asyncio.AbstractEventLoop, on_revoked: Callable[[frozenset[bytes]], None]) -> None:
        """Call ``on_revoked(keys)`` on ``loop`` whenever keys lose their trust, whichever thread reloaded
        the trust file (``Node.reload_trust`` through the blocking facade runs on the loop; a reload
        elsewhere hops over)."""

        def revoked(keys: frozenset[bytes]) -> None:
            self.forget_cached()
            try:
                here = asyncio.get_running_loop()
            except RuntimeError:
                here = None
            if here is loop:
                on_revoked(keys)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(on_revoked, keys)

        self.trust.on_revoke(revoked)

    def reload(self) -> bool:
        """Re-read the trust file if it changed; True when a new one is in force. Raises ConfigError for an
        invalid file (the last good one stays in force)."""
        changed = self.trust.reload()
        if changed:
            self.forget_cached()
        return changed

    async def reload_loop(self, interval: float, running: Callable[[], bool], name: str) -> None:
        """Check the trust file every ``interval`` seconds while ``running()``; an invalid file is logged
        once per distinct problem and the last good one stays in force."""
        last_error = ""
        while running():
            await asyncio.sleep(interval)
            try:
                self.reload()
                last_error = ""
            except ConfigError as exc:
                if str(exc) != last_error:
                    last_error = str(exc)
                    log.warning("node %s: trust file not reloaded, the last good one stays in force: %s", name, exc)
            self.trust.expire_certificates(time.time())  # fires on_revoke for peers whose certificate ran out
            self.forget_cached()  # and re-ask the trust store for every key

    def curve_settings(self, node_id_text: str, *, listen: bool) -> CurveSettings:
        """The transport's CURVE settings: ZAP domains ``fabric/<id>/m`` (membership channel's ROUTER)
        and ``fabric/<id>/d`` (every other bound socket), with their policies. ``listen=False`` (a
        client) registers no domain."""
        base = f"fabric/{node_id_text}"
        trust = self.trust

        def data_policy(key: bytes) -> bool:  # ZAP thread: reads one immutable snapshot
            return self._admitted(key, TrustRole.MEMBER) or self._admitted(key, TrustRole.CLIENT)

        def membership_policy(key: bytes) -> bool:
            # With a CA configured, a key whose certificate has not arrived yet may connect here to send
            # its HELLO (which carries the certificate); nothing else from it is accepted until then.
            return data_policy(key) or (self._has_ca() and key not in trust.snapshot.revoked)

        policies = {f"{base}/m": membership_policy, f"{base}/d": data_policy} if listen else {}
        return CurveSettings(self.keys.public, self.keys.secret or b"", default_domain=f"{base}/d",
                             domains={MEMBERSHIP_CHANNEL: f"{base}/m"}, policies=policies)

    def stats(self) -> dict[str, Any]:
        snap = self.trust.snapshot
        return {"mode": self.mode, "public_key": self.keys.public.decode(), "zap": zap_stats(),
                "trusted_keys": len(snap.keys), "revoked_keys": len(snap.revoked), "trust": self.trust.stats(),
                **dict(self.counters)}


__all__ = ["CERT_FILE", "CERT_META", "PK_META", "NodeSecurity", "parse_key", "split_seed"]

"""Cluster CA certificates: a CA's Ed25519 signature vouching for a node's CURVE key.

Theory of operation. An allowlist (``[[member]]`` entries in every node's trust file) needs an edit of
every node's file whenever a node is added; a fleet instead trusts one *cluster CA key* (``[ca] keys``) and
each new node carries a certificate signed by the CA, sent in its HELLO (wire key ``cr``). The receiving
node checks the certificate with :meth:`Certificate.verify` (through
:meth:`fabric.security.trust.TrustStore.admit_certificate`) against the CA keys of its trust file; the
node id still comes from the CURVE key (:func:`fabric.security.keys.derive_node_id`), so the certificate
binds *key -> role, name, validity*, and ZAP proves the sender holds the key.

Encoding (docs/security.md, "CA certificates"): one msgpack map with exactly these keys, in this order::

    {"ca": <32-octet Ed25519 CA public key>, "k": "<40-char Z85 CURVE key>", "n": "<name>",
     "na": <not_after, unix s>, "nb": <not_before, unix s>, "r": "member|client|operator",
     "s": <serial>, "sg": <64-octet Ed25519 signature>, "v": 1}

The signature covers :data:`SIGNING_CONTEXT` followed by the same map without ``sg`` (the *body*). The
decoder is strict: the input must be exactly the canonical encoding of what it decodes to (minimal
integers, this key order, no extra or duplicate keys, at most :data:`MAX_CERT_BYTES`), so a certificate
has one byte form and a tampered or re-encoded one is refused. Everything wrong with a certificate raises
:class:`~fabric.errors.UntrustedCertificate` (with a short machine-readable ``reason``), never anything
else: the bytes come from the network.

A node's certificate is the file ``DIR/node.cert`` beside its keys, holding exactly the encoded bytes.
A CA's secret key lives in ``DIR/ca.key`` (PKCS#8 PEM, mode 0600, refused when group or others can access
it, like node keys) and its public key in ``DIR/ca.pub`` (64 hex digits, what ``[ca] keys`` lists);
``DIR/ca.serial`` remembers the last serial issued.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import KeyFileError, UntrustedCertificate
from .keys import _check_z85, check_secret_permissions, derive_node_id, node_id_text
from .roles import TrustRole

CERT_VERSION = 1
MAX_CERT_BYTES = 512
"""Upper bound of an encoded certificate (a real one is about 200 octets)."""
MAX_NAME_CHARS = 64
MAX_SERIAL = 2**63 - 1
MAX_TIME = 2**63 - 1
SIGNING_CONTEXT = b"foundation-fabric node certificate v1\x00"
"""Prefix of every signed body: a CA key's signature can never be confused with one over other data."""
DEFAULT_BACKDATE_S = 300
"""``issue`` without ``not_before`` makes the certificate valid from 5 minutes ago, so a verifier whose
clock is a little behind the CA's does not refuse a fresh certificate."""

CA_SECRET_FILE = "ca.key"
CA_PUBLIC_FILE = "ca.pub"
CA_SERIAL_FILE = "ca.serial"
NODE_CERT_FILE = "node.cert"

_BODY_KEYS = ("ca", "k", "n", "na", "nb", "r", "s", "v")
_ALL_KEYS = ("ca", "k", "n", "na", "nb", "r", "s", "sg", "v")


def _refuse(reason: str, detail: str) -> UntrustedCertificate:
    return UntrustedCertificate(f"certificate refused ({reason}): {detail}", reason=reason)


def ca_key_from_hex(text: str, where: str = "CA key") -> bytes:
    """The 32 raw octets of an Ed25519 public key written as 64 hex digits; :class:`KeyFileError` otherwise."""
    t = text.strip()
    if len(t) != 64:
        raise KeyFileError(f"{where}: a CA key is 64 hex digits, got {len(t)} characters")
    try:
        return bytes.fromhex(t)
    except ValueError:
        raise KeyFileError(f"{where}: not hexadecimal") from None


@dataclass(frozen=True)
class Certificate:
    """A node certificate (see the module docstring). Build one with :meth:`ClusterCA.issue` or
    :meth:`decode`; ``signature`` is empty only while :meth:`ClusterCA.issue` builds it."""

    key: bytes
    """The node's Z85 CURVE public key (40 octets)."""
    name: str
    role: TrustRole
    serial: int
    not_before: int
    """Unix seconds; valid when ``not_before <= now < not_after``."""
    not_after: int
    ca: bytes
    """The signing CA's raw Ed25519 public key (32 octets)."""
    signature: bytes = b""

    # -- encoding ------------------------------------------------------------------------------------

    def _body_map(self) -> dict[str, Any]:
        return {"ca": self.ca, "k": self.key.decode("ascii"), "n": self.name, "na": self.not_after,
                "nb": self.not_before, "r": self.role.value, "s": self.serial, "v": CERT_VERSION}

    def signed_bytes(self) -> bytes:
        """What the CA signs: :data:`SIGNING_CONTEXT` + the canonical body."""
        body: bytes = msgpack.packb(self._body_map(), use_bin_type=True)
        return SIGNING_CONTEXT + body

    def encode(self) -> bytes:
        """The canonical wire form (what HELLO carries and ``node.cert`` holds)."""
        m = self._body_map()
        full = {k: (self.signature if k == "sg" else m[k]) for k in _ALL_KEYS}
        out: bytes = msgpack.packb(full, use_bin_type=True)
        return out

    @classmethod
    def decode(cls, data: bytes) -> Certificate:
        """Parse (not verify) a certificate. Raises :class:`UntrustedCertificate` (reason ``malformed``)
        for anything but a canonical, well-typed, bounded certificate."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise _refuse("malformed", f"expected bytes, got {type(data).__name__}")
        raw = bytes(data)
        if not raw:
            raise _refuse("malformed", "empty")
        if len(raw) > MAX_CERT_BYTES:
            raise _refuse("malformed", f"{len(raw)} octets, more than {MAX_CERT_BYTES}")
        try:
            doc = msgpack.unpackb(raw, raw=False, strict_map_key=True, use_list=True, max_str_len=MAX_CERT_BYTES,
                                  max_bin_len=MAX_CERT_BYTES, max_array_len=16, max_map_len=16, max_ext_len=0)
        except Exception as exc:  # msgpack raises many types on junk (ValueError, ExtraData, TypeError...)
            raise _refuse("malformed", f"not msgpack ({type(exc).__name__})") from None
        if not isinstance(doc, dict) or tuple(doc) != _ALL_KEYS:
            raise _refuse("malformed", f"expected a map with keys {', '.join(_ALL_KEYS)}")
        if not (type(doc["v"]) is int and doc["v"] == CERT_VERSION):
            raise _refuse("malformed", f"unsupported certificate version {doc['v']!r}")
        for k, typ in (("ca", bytes), ("sg", bytes), ("k", str), ("n", str), ("r", str),
                       ("s", int), ("nb", int), ("na", int)):
            if type(doc[k]) is not typ:
                raise _refuse("malformed", f"field {k} must be {typ.__name__}")
        if len(doc["ca"]) != 32 or len(doc["sg"]) != 64:
            raise _refuse("malformed", "CA key must be 32 octets and signature 64")
        try:
            key = _check_z85(doc["k"].encode("ascii"), "certificate key")
        except (UnicodeEncodeError, KeyFileError):
            raise _refuse("malformed", "k is not a 40-character Z85 key") from None
        if len(doc["n"]) > MAX_NAME_CHARS:
            raise _refuse("malformed", f"name longer than {MAX_NAME_CHARS} characters")
        try:
            role = TrustRole(doc["r"])
        except ValueError:
            raise _refuse("malformed", "unknown role") from None
        if not (0 <= doc["s"] <= MAX_SERIAL and 0 <= doc["nb"] < doc["na"] <= MAX_TIME):
            raise _refuse("malformed", "serial or validity window out of range")
        cert = cls(key, doc["n"], role, doc["s"], doc["nb"], doc["na"], doc["ca"], doc["sg"])
        if cert.encode() != raw:  # one byte form only: no non-minimal integers, duplicate keys, other orders
            raise _refuse("malformed", "not in canonical encoding")
        return cert

    # -- verification --------------------------------------------------------------------------------

    def verify(
        self,
        ca_keys: Collection[bytes],
        now: float,
        *,
        key: bytes | None = None,
        revoked_serials: Collection[int] = (),
        revoked_keys: Collection[bytes] = (),
    ) -> Certificate:
        """Check this certificate; return it, or raise :class:`UntrustedCertificate` whose ``reason`` is
        ``unknown_ca``, ``bad_signature``, ``key_mismatch`` (``key`` given and not the certified key),
        ``revoked`` (serial or key), ``not_yet_valid`` or ``expired``.

        Args:
            ca_keys: the raw Ed25519 public keys trusted as CAs.
            now: unix time in seconds (injected: pure).
        """
        if self.ca not in ca_keys:
            raise _refuse("unknown_ca", f"signed by CA {self.ca.hex()[:16]}..., not a CA of this trust store")
        try:
            Ed25519PublicKey.from_public_bytes(self.ca).verify(self.signature, self.signed_bytes())
        except (InvalidSignature, ValueError):
            raise _refuse("bad_signature", f"serial {self.serial}: the CA's signature does not match") from None
        if key is not None and key != self.key:
            raise _refuse("key_mismatch", f"serial {self.serial} certifies another key than the peer's")
        if self.serial in revoked_serials:
            raise _refuse("revoked", f"serial {self.serial} is revoked")
        if self.key in revoked_keys:
            raise _refuse("revoked", f"serial {self.serial}: its key is revoked")
        if not math.isfinite(now) or now < self.not_before:
            raise _refuse("not_yet_valid", f"serial {self.serial} is valid from {self.not_before}")
        if now >= self.not_after:
            raise _refuse("expired", f"serial {self.serial} expired at {self.not_after}")
        return self

    def valid_at(self, now: float) -> bool:
        """Inside the validity window at ``now``."""
        return self.not_before <= now < self.not_after

    # -- presentation --------------------------------------------------------------------------------

    @property
    def node_id(self) -> bytes:
        """The node id the certified key defines."""
        return derive_node_id(self.key)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly description (``keys show``, logs)."""
        return {"serial": self.serial, "role": self.role.value, "name": self.name, "key": self.key.decode(),
                "node_id": node_id_text(self.key), "not_before": self.not_before, "not_after": self.not_after,
                "ca": self.ca.hex()}


def verify_certificate(
    data: bytes,
    ca_keys: Collection[bytes],
    now: float,
    *,
    key: bytes | None = None,
    revoked_serials: Collection[int] = (),
    revoked_keys: Collection[bytes] = (),
) -> Certificate:
    """:meth:`Certificate.decode` then :meth:`Certificate.verify`: the one call for bytes from a peer."""
    return Certificate.decode(data).verify(ca_keys, now, key=key, revoked_serials=revoked_serials,
                                           revoked_keys=revoked_keys)


class ClusterCA:
    """A cluster certificate authority: an Ed25519 key pair that signs node certificates.

    Keep its directory off the nodes (an operator's machine): whoever holds ``ca.key`` can admit any key.
    """

    def __init__(self, private_key: Ed25519PrivateKey, directory: Path | None = None) -> None:
        self._private = private_key
        self.directory = directory
        self.public_key: bytes = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        """The raw 32-octet public key (``[ca] keys`` holds its hex form)."""

    @classmethod
    def generate(cls) -> ClusterCA:
        """A fresh CA key from the operating system's CSPRNG."""
        return cls(Ed25519PrivateKey.generate())

    @property
    def public_hex(self) -> str:
        return self.public_key.hex()

    def __repr__(self) -> str:  # never print the secret
        return f"ClusterCA(public={self.public_hex!r})"

    def save(self, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``DIR/ca.key`` (0600) and ``DIR/ca.pub``; creates DIR (0700); refuses to overwrite."""
        d = Path(directory)
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        sec, pub = d / CA_SECRET_FILE, d / CA_PUBLIC_FILE
        for p in (sec, pub):
            if p.exists():
                raise KeyFileError(f"{p}: already exists (refusing to overwrite a CA key)")
        pem = self._private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())
        fd = os.open(sec, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        pub.write_text(f"{self.public_hex}\n")
        self.directory = d
        return pub, sec

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ClusterCA:
        """Read a CA saved by :meth:`save`; :class:`KeyFileError` when missing, malformed or accessible
        by group or others."""
        d = Path(directory)
        sec = d / CA_SECRET_FILE
        if not sec.is_file():
            raise KeyFileError(f"{sec}: no such CA key (create one with: foundation-node keys ca init DIR)")
        check_secret_permissions(sec)
        try:
            key = serialization.load_pem_private_key(sec.read_bytes(), password=None)
        except (ValueError, TypeError, OSError) as exc:
            raise KeyFileError(f"{sec}: not a CA key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{sec}: not an Ed25519 key")
        return cls(key, d)

    def issue(
        self,
        public_key_z85: bytes,
        name: str,
        role: TrustRole | str,
        serial: int,
        valid_for_s: float,
        not_before: float | None = None,
        *,
        now: float | None = None,
    ) -> Certificate:
        """Sign a certificate for ``public_key_z85``, valid from ``not_before`` (default ``now`` minus
        :data:`DEFAULT_BACKDATE_S`) until ``now + valid_for_s``. Raises ValueError on out-of-range input."""
        key = _check_z85(public_key_z85, "public key")
        role = TrustRole(role)
        if len(name) > MAX_NAME_CHARS:
            raise ValueError(f"name longer than {MAX_NAME_CHARS} characters")
        if not (0 <= serial <= MAX_SERIAL):
            raise ValueError(f"serial must be in 0..{MAX_SERIAL}")
        if not (math.isfinite(valid_for_s) and valid_for_s > 0):
            raise ValueError("valid_for_s must be a positive number of seconds")
        t = time.time() if now is None else now
        nb = int(t - DEFAULT_BACKDATE_S if not_before is None else not_before)
        na = int(t + valid_for_s)
        if not (0 <= nb < na <= MAX_TIME):
            raise ValueError("validity window out of range")
        unsigned = Certificate(key, name, role, serial, nb, na, self.public_key)
        sig = self._private.sign(unsigned.signed_bytes())
        return Certificate(key, name, role, serial, nb, na, self.public_key, sig)

    def next_serial(self) -> int:
        """One more than the last serial recorded in ``DIR/ca.serial`` (1 for a new CA); records it."""
        if self.directory is None:
            raise KeyFileError("this CA has no directory to keep its serial counter in")
        path = self.directory / CA_SERIAL_FILE
        last = 0
        if path.exists():
            try:
                last = int(path.read_text().strip() or "0")
            except (ValueError, OSError) as exc:
                raise KeyFileError(f"{path}: not a serial counter: {exc}") from None
        self.record_serial(last + 1)
        return last + 1

    def record_serial(self, serial: int) -> None:
        """Remember ``serial`` as issued (the counter only moves forward)."""
        if self.directory is None:
            return
        path = self.directory / CA_SERIAL_FILE
        try:
            last = int(path.read_text().strip() or "0") if path.exists() else 0
        except (ValueError, OSError):
            last = 0
        if serial > last:
            tmp = path.with_name(f".{CA_SERIAL_FILE}.{os.getpid()}")
            tmp.write_text(f"{serial}\n")
            os.replace(tmp, path)


# -- certificate files -----------------------------------------------------------------------------------


def save_certificate(directory: str | os.PathLike[str], cert: Certificate, *, overwrite: bool = True) -> Path:
    """Write ``DIR/node.cert``: the certificate's canonical encoding, exactly the bytes the node sends in
    its HELLO (the node reads the file as is). Public: mode 0644. Replaces an older certificate
    atomically (renewal, rotation) unless ``overwrite`` is False."""
    path = Path(directory) / NODE_CERT_FILE
    if path.exists() and not overwrite:
        raise KeyFileError(f"{path}: already exists")
    tmp = path.with_name(f".{NODE_CERT_FILE}.{os.getpid()}")
    tmp.write_bytes(cert.encode())
    os.replace(tmp, path)
    return path


def load_certificate(path: str | os.PathLike[str]) -> Certificate:
    """Read a ``node.cert`` file (decoded, not verified: a node cannot verify its own certificate
    without the CA keys; its peers do). :class:`KeyFileError` when it is missing or malformed."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_CERT_BYTES + 1)
    except FileNotFoundError:
        raise KeyFileError(f"{p}: no such certificate file") from None
    except OSError as exc:
        raise KeyFileError(f"{p}: cannot read certificate: {exc}") from None
    try:
        return Certificate.decode(data)
    except UntrustedCertificate as exc:
        raise KeyFileError(f"{p}: not a node certificate: {exc}") from None


def node_certificate(directory: str | os.PathLike[str], public_key: bytes) -> Certificate | None:
    """The certificate in a key directory (``DIR/node.cert``), or None when there is none. Raises
    :class:`KeyFileError` when it is malformed or certifies another key than ``public_key``."""
    path = Path(directory) / NODE_CERT_FILE
    if not path.exists():
        return None
    cert = load_certificate(path)
    if cert.key != public_key:
        raise KeyFileError(f"{path}: certifies key {cert.key.decode()}, not this directory's node key")
    return cert

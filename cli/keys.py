"""``foundation-node keys ...``: node key pairs, the trust file, the cluster CA and its certificates.

The commands are thin: key files are :mod:`fabric.security.keys`, certificates :mod:`fabric.security.certs`,
and the trust file is validated by :func:`fabric.security.trust.parse_trust`. What lives here is the one
thing the library does not do: *rewriting* a trust file (``keys trust``, ``keys revoke``), always as a whole
new file written beside the old one and renamed over it, so a node reloading it never reads half a file.

Every failure is one line on stderr and a non-zero exit (docs/cli.md): 2 for a bad argument (key text,
role, days), 3 for a bad or refused key/trust/CA file, 1 for anything else the system refused.
"""

from __future__ import annotations

import json
import math
import os
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import zmq.utils.z85

from fabric.errors import ConfigError, FabricError, KeyFileError
from fabric.security import ClusterCA, KeyPair, TrustRole, load_keypair, load_public_key, save_keypair
from fabric.security.certs import CA_PUBLIC_FILE, ca_key_from_hex, node_certificate, save_certificate
from fabric.security.keys import node_id_text
from fabric.security.trust import TrustStore, parse_trust

EXIT_FAILED = 1
EXIT_CONFIG = 3
SEED_HINT = "tcp://HOST:PORT#{hex}"
MAX_DAYS = 36_500


class KeysFailure(click.ClickException):
    """A one-line error with its exit code (as ``foundation_cli.main.Failure``)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = code  # type: ignore[misc]  # click reads it per instance


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except (KeyFileError, ConfigError) as exc:
        raise KeysFailure(str(exc), EXIT_CONFIG) from None
    except (FabricError, OSError, ValueError) as exc:
        raise KeysFailure(f"{type(exc).__name__}: {exc}", EXIT_FAILED) from None


# -- reading keys from arguments --------------------------------------------------------------------------


def public_key_hex(public: bytes) -> str:
    """The 64-hex-digit form of a Z85 public key (shell-friendly; what seeds may carry after ``#``)."""
    return bytes(zmq.utils.z85.decode(public)).hex()


def parse_public_key(text: str) -> bytes:
    """A Z85 public key from a key directory (``DIR/node.pub``), a ``.pub``/``.key`` file, 40 Z85
    characters or 64 hex digits. Raises :class:`KeyFileError` naming what was expected."""
    if not text:
        raise KeyFileError("empty key: expected a key directory, a .pub file, 40 Z85 characters or 64 hex digits")
    path = Path(text)
    if path.is_dir():
        pub = path / "node.pub"
        if not pub.is_file():
            raise KeyFileError(f"{path}: no node.pub in this directory (create one with: foundation-node keys generate {path})")
        return load_public_key(pub)
    if path.is_file():
        return load_public_key(path)
    if len(text) == 64:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise KeyFileError(f"{text[:70]!r}: not a key: 64 characters but not hexadecimal") from None
        return zmq.utils.z85.encode(raw)
    if len(text) == 40:
        return load_public_key(text.encode())
    raise KeyFileError(f"{text[:70]!r}: not a key: expected a key directory, a .pub file, 40 Z85 characters or 64 hex digits")


def _ca_key(text: str) -> bytes:
    """A CA public key from a CA directory (``DIR/ca.pub``), a ``ca.pub`` file or 64 hex digits."""
    path = Path(text)
    if path.is_dir():
        path = path / CA_PUBLIC_FILE
    if path.is_file():
        try:
            return ca_key_from_hex(path.read_text(), str(path))
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"{path}: cannot read CA key: {exc}") from None
    return ca_key_from_hex(text, f"--ca {text[:70]!r}")


def _when(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _emit(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    width = max(len(k) for k in info)
    for k, v in info.items():
        if isinstance(v, dict):
            click.echo(f"{k}:")
            for k2, v2 in v.items():
                click.echo(f"  {k2:<{width}}  {v2}")
        else:
            click.echo(f"{k:<{width}}  {v}")


def _key_info(public: bytes) -> dict[str, Any]:
    hex_key = public_key_hex(public)
    return {"public_key": public.decode(), "public_key_hex": hex_key, "node_id": node_id_text(public),
            "seed": SEED_HINT.format(hex=hex_key)}


# -- the trust file: read, change, write atomically ----------------------------------------------------------

_ROLES = [r.value for r in TrustRole]


def _read_trust_doc(path: Path) -> dict[str, Any]:
    """The trust file as a TOML document (empty when it does not exist yet), validated."""
    if not path.exists():
        return {}
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read trust file: {exc}") from None
    parse_trust(doc, str(path))
    return doc


def _toml_value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # a JSON string is a TOML basic string, except that TOML also wants DEL escaped
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v, where) for v in value) + "]"
    raise ConfigError(f"{where}: cannot rewrite a value of type {type(value).__name__}; edit the file by hand")


def render_trust(doc: dict[str, Any]) -> str:
    """TOML text for a (validated) trust document: roles, then ``[ca]``, then ``[revoked]``."""
    lines = ["# Foundation fabric trust file: which keys may join (docs/security.md).",
             "# Written by `foundation-node keys`; it rewrites the whole file, so comments are not kept.", ""]
    for role in _ROLES:
        for entry in doc.get(role, []):
            lines.append(f"[[{role}]]")
            lines.extend(f"{k} = {_toml_value(v, role)}" for k, v in entry.items())
            lines.append("")
    for section in ("ca", "revoked"):
        table = doc.get(section)
        if table:
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {_toml_value(v, section)}" for k, v in table.items())
            lines.append("")
    return "\n".join(lines)


def write_trust(path: Path, doc: dict[str, Any]) -> None:
    """Validate ``doc`` and put it in place atomically (temporary file in the same directory, fsync,
    rename): a node reloading concurrently sees the old file or the new one, never a mix. Mode 0644:
    a trust file holds public keys only."""
    text = render_trust(doc)
    parse_trust(tomllib.loads(text), str(path))  # never write a file the nodes would refuse
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# -- commands ---------------------------------------------------------------------------------------------


@click.group("keys")
def keys_group() -> None:
    """Node keys, the trust file, the cluster CA and certificates (docs/security.md)."""


@keys_group.command("generate")
@click.argument("directory", metavar="DIR")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def keys_generate(directory: str, as_json: bool) -> None:
    """Create a node key pair in DIR (node.key mode 0600, node.pub); refuses to overwrite."""
    with _errors():
        kp = KeyPair.generate()
        pub, sec = save_keypair(directory, kp)
    _emit({**_key_info(kp.public), "public_file": str(pub), "secret_file": str(sec)}, as_json)


@keys_group.command("show")
@click.argument("directory", metavar="DIR")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def keys_show(directory: str, as_json: bool) -> None:
    """Print DIR's public key (Z85 and hex), node id, a seed string and its certificate, if any."""
    d = Path(directory)
    with _errors():
        if not d.is_dir():
            raise KeyFileError(f"{d}: no such key directory (create one with: foundation-node keys generate {d})")
        sec = d / "node.key"
        if sec.is_file():
            public = load_keypair(d).public  # also refuses a secret readable by group or others
        elif (d / "node.pub").is_file():
            public = load_public_key(d / "node.pub")
        else:
            raise KeyFileError(f"{d}: no node.key or node.pub (create them with: foundation-node keys generate {d})")
        info = _key_info(public)
        cert = node_certificate(d, public)
    if cert is not None:
        now = time.time()
        state = "valid" if cert.valid_at(now) else ("expired" if now >= cert.not_after else "not yet valid")
        info["certificate"] = {"serial": cert.serial, "role": cert.role.value, "name": cert.name,
                               "not_before": _when(cert.not_before), "not_after": _when(cert.not_after),
                               "ca": cert.ca.hex(), "state": state}
    _emit(info, as_json)


@keys_group.command("trust")
@click.argument("trustfile", metavar="TRUSTFILE")
@click.argument("key", metavar="KEY|DIR", required=False)
@click.option("--role", type=click.Choice(_ROLES), help="What KEY may do (required with KEY).")
@click.option("--name", default=None, help="A name for humans (logs, keys show).")
@click.option("--ca", "ca", default=None, metavar="CADIR|HEX", help="Trust this cluster CA instead of one key.")
def keys_trust(trustfile: str, key: str | None, role: str | None, name: str | None, ca: str | None) -> None:
    """Allow KEY (a key dir, .pub file, Z85 or hex key) in ROLE, or trust a CA, in TRUSTFILE (created
    if missing; rewritten atomically)."""
    if (key is None) == (ca is None):
        raise click.UsageError("give KEY|DIR with --role, or --ca CADIR|HEX")
    if key is not None and role is None:
        raise click.UsageError("KEY needs --role member|client|operator")
    if name is not None and (len(name) > 200 or not name.isprintable()):
        raise click.BadParameter("a name is at most 200 printable characters", param_hint="'--name'")
    path = Path(trustfile)
    with _errors():
        doc = _read_trust_doc(path)
        if ca is not None:
            ca_hex = _ca_key(ca).hex()
            table = doc.setdefault("ca", {})
            listed = table.setdefault("keys", [])
            if ca_hex not in [k.strip().lower() for k in listed]:
                listed.append(ca_hex)
            write_trust(path, doc)
            click.echo(f"trusted CA {ca_hex} in {path}")
            return
        assert key is not None and role is not None
        public = parse_public_key(key)
        text = public.decode()
        if text in doc.get("revoked", {}).get("keys", []):
            raise ConfigError(f"{path}: key {text} is revoked; a revoked key is never trusted again "
                              "(rotate: generate a new key) unless you remove it from [revoked] keys by hand")
        entries = doc.setdefault(role, [])
        entry = next((e for e in entries if e.get("key") == text), None)
        if entry is None:
            entry = {"key": text}
            entries.append(entry)
        if name is not None:
            entry["name"] = name
        write_trust(path, doc)
    click.echo(f"trusted {text} ({node_id_text(public)}) as {role} in {path}")


@keys_group.command("revoke")
@click.argument("trustfile", metavar="TRUSTFILE")
@click.argument("key", metavar="KEY|DIR", required=False)
@click.option("--serial", "serials", type=click.IntRange(0, 2**63 - 1), multiple=True,
              help="Revoke the certificate with this serial (repeatable).")
def keys_revoke(trustfile: str, key: str | None, serials: tuple[int, ...]) -> None:
    """Revoke KEY (never admitted again, allowlisted or certified) and/or certificate serials in TRUSTFILE.
    Nodes reloading the file drop the revoked peers (docs/security.md: how fast)."""
    if key is None and not serials:
        raise click.UsageError("give KEY|DIR and/or --serial N")
    path = Path(trustfile)
    with _errors():
        if not path.exists():
            raise ConfigError(f"{path}: no such trust file (nothing to revoke in)")
        doc = _read_trust_doc(path)
        revoked = doc.setdefault("revoked", {})
        done: list[str] = []
        if key is not None:
            public = parse_public_key(key).decode()
            keys = revoked.setdefault("keys", [])
            if public not in keys:
                keys.append(public)
            done.append(f"key {public}")
        if serials:
            listed = revoked.setdefault("serials", [])
            for s in serials:
                if s not in listed:
                    listed.append(s)
            done.append("serial " + ", ".join(map(str, serials)))
        write_trust(path, doc)
    click.echo(f"revoked {' and '.join(done)} in {path}")


@keys_group.group("ca")
def ca_group() -> None:
    """The cluster CA (its key signs node certificates; keep it off the nodes)."""


@ca_group.command("init")
@click.argument("directory", metavar="DIR")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def ca_init(directory: str, as_json: bool) -> None:
    """Create a cluster CA in DIR (ca.key mode 0600, ca.pub); refuses to overwrite."""
    with _errors():
        ca = ClusterCA.generate()
        pub, sec = ca.save(directory)
    _emit({"ca_public_key": ca.public_hex, "public_file": str(pub), "secret_file": str(sec),
           "next": f"foundation-node keys trust TRUSTFILE --ca {directory}"}, as_json)


@keys_group.command("sign")
@click.option("--ca", "ca_dir", required=True, metavar="CADIR", help="The CA directory (keys ca init).")
@click.argument("keydir", metavar="KEYDIR")
@click.option("--role", type=click.Choice(_ROLES), default="member", show_default=True)
@click.option("--days", type=click.FloatRange(0, MAX_DAYS, min_open=True), required=True, help="Validity in days.")
@click.option("--serial", type=click.IntRange(0, 2**63 - 1), default=None,
              help="Certificate serial (default: the CA's next one, from CADIR/ca.serial).")
@click.option("--name", default=None, help="Name in the certificate (default: KEYDIR's directory name).")
def keys_sign(ca_dir: str, keydir: str, role: str, days: float, serial: int | None, name: str | None) -> None:
    """Sign KEYDIR's public key with the CA: writes KEYDIR/node.cert (replacing an older one)."""
    d = Path(keydir)
    if not math.isfinite(days):
        raise click.BadParameter("must be a finite number of days", param_hint="'--days'")
    with _errors():
        if not (d / "node.pub").is_file():
            raise KeyFileError(f"{d}: no node.pub (create the node's keys with: foundation-node keys generate {d})")
        public = load_public_key(d / "node.pub")
        ca = ClusterCA.load(ca_dir)
        number = ca.next_serial() if serial is None else serial
        cert = ca.issue(public, (name if name is not None else d.resolve().name)[:64], role, number, days * 86_400)
        if serial is not None:
            ca.record_serial(serial)
        path = save_certificate(d, cert)
    click.echo(f"signed {public.decode()} as {role}: serial {cert.serial}, valid until {_when(cert.not_after)} -> {path}")


# -- start --keys/--trust ---------------------------------------------------------------------------------


def check_node_security(keys: str | None, trust: str | None, *, pair: bool = True) -> None:
    """What ``start --keys DIR --trust PATH`` checks before anything binds, so a bad key directory or
    trust file is one line and exit 3: the secret key must load and be private to its owner, a
    certificate beside it must be for this key, the trust file must parse, and (``pair``) keys and trust
    come together."""
    if pair and (keys is None) != (trust is None):
        raise ConfigError("security.trust is set but security.keys is not: a trust file needs the node's keys (--keys DIR)"
                          if keys is None else
                          "security.keys is set but security.trust is not: say who may join (--trust PATH)")
    if keys is not None:
        if not Path(keys).is_dir():
            raise KeyFileError(f"{keys}: no such key directory (create one with: foundation-node keys generate {keys})")
        kp = load_keypair(keys)
        node_certificate(keys, kp.public)
    if trust is not None:
        TrustStore(trust)

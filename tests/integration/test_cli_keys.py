"""``foundation-node keys ...`` and ``start --keys/--trust`` as real processes: the operator's whole key
workflow (generate, show, trust, CA, sign, revoke), and a table of bad inputs, each one line on stderr,
a non-zero exit and no traceback (as tests/integration/test_cli_bad_input_table.py)."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from fabric import NodeConfig
from fabric.security import (
    ClusterCA,
    KeyPair,
    TrustRole,
    TrustStore,
    load_certificate,
    save_certificate,
    save_keypair,
)
from tests.integration.test_cli_harness import run_cli


def _ok(*args: str) -> str:
    code, out, err = run_cli(*args, timeout=60)
    assert code == 0, (args, out, err)
    assert "Traceback" not in err
    return out


def test_the_key_workflow_end_to_end(tmp_path: Path) -> None:
    a, b, ca, trust = tmp_path / "a", tmp_path / "b", tmp_path / "ca", tmp_path / "trust.toml"
    gen = json.loads(_ok("keys", "generate", str(a), "--json"))
    assert stat.S_IMODE((a / "node.key").stat().st_mode) == 0o600
    assert gen["seed"] == f"tcp://HOST:PORT#{gen['public_key_hex']}" and len(gen["public_key"]) == 40
    shown = json.loads(_ok("keys", "show", str(a), "--json"))
    assert {k: shown[k] for k in ("public_key", "public_key_hex", "node_id")} == \
        {k: gen[k] for k in ("public_key", "public_key_hex", "node_id")}
    assert "certificate" not in shown
    text = _ok("keys", "generate", str(b))
    assert "node_id" in text and "tcp://HOST:PORT#" in text
    b_key = json.loads(_ok("keys", "show", str(b), "--json"))["public_key"]

    # the allowlist: by directory, by hex key, by Z85 key; a second trust of the same key only renames it
    _ok("keys", "trust", str(trust), str(a), "--role", "member", "--name", "a")
    _ok("keys", "trust", str(trust), gen["public_key_hex"], "--role", "operator")
    _ok("keys", "trust", str(trust), b_key, "--role", "client")
    _ok("keys", "trust", str(trust), str(a), "--role", "member", "--name", "a2")
    assert stat.S_IMODE(trust.stat().st_mode) & 0o644 == 0o644
    doc = tomllib.loads(trust.read_text())
    assert doc["member"] == [{"key": gen["public_key"], "name": "a2"}] and doc["client"] == [{"key": b_key}]
    store = TrustStore(trust)
    assert store.allows(gen["public_key"].encode(), TrustRole.OPERATOR)

    # the CA: init, trust it, sign b, and the certificate admits b's key
    ca_info = json.loads(_ok("keys", "ca", "init", str(ca), "--json"))
    assert stat.S_IMODE((ca / "ca.key").stat().st_mode) == 0o600
    _ok("keys", "trust", str(trust), "--ca", str(ca))
    _ok("keys", "trust", str(trust), "--ca", ca_info["ca_public_key"])  # already there: listed once
    assert tomllib.loads(trust.read_text())["ca"] == {"keys": [ca_info["ca_public_key"]]}
    out = _ok("keys", "sign", "--ca", str(ca), str(b), "--role", "member", "--days", "30")
    assert "serial 1" in out
    _ok("keys", "sign", "--ca", str(ca), str(b), "--days", "1", "--serial", "41")
    _ok("keys", "sign", "--ca", str(ca), str(b), "--days", "1")  # the counter continues after 41
    cert = load_certificate(b / "node.cert")
    assert cert.serial == 42 and cert.key == b_key.encode() and cert.role is TrustRole.MEMBER
    shown_b = json.loads(_ok("keys", "show", str(b), "--json"))
    assert shown_b["certificate"]["serial"] == 42 and shown_b["certificate"]["state"] == "valid"
    store = TrustStore(trust)
    now = cert.not_before + 60
    assert store.admit_certificate(cert.encode(), b_key.encode(), now) is TrustRole.MEMBER
    revoked: list[frozenset[bytes]] = []
    store.on_revoke(revoked.append)

    # revocation: the serial, then the key; a revoked key cannot be trusted again
    _ok("keys", "revoke", str(trust), "--serial", "42")
    store.reload(force=True)
    assert revoked == [frozenset({b_key.encode()})] and not store.admitted(b_key.encode(), TrustRole.MEMBER, now)
    _ok("keys", "revoke", str(trust), str(a))
    store.reload(force=True)
    assert not store.allows(gen["public_key"].encode(), TrustRole.MEMBER)
    code, _out, err = run_cli("keys", "trust", str(trust), str(a), "--role", "member")
    assert code == 3 and "is revoked" in err and len(err.strip().splitlines()) == 1
    assert tomllib.loads(trust.read_text())["revoked"] == {"serials": [42], "keys": [gen["public_key"]]}
    assert not list(tmp_path.glob(".trust.toml*"))  # no temporary file left behind


@pytest.mark.skipif(not any(f.name == "security" for f in fields(NodeConfig)), reason="needs the curve slice")
def test_start_with_keys_and_trust_runs_secure(tmp_path: Path) -> None:
    from tests.integration.test_cli_harness import NodeProcess, run_cli

    _ok("keys", "generate", str(tmp_path / "k"))
    _ok("keys", "trust", str(tmp_path / "trust.toml"), str(tmp_path / "k"), "--role", "member")
    node = NodeProcess("--name", "secure", "--preset", "local", "--keys", str(tmp_path / "k"),
                       "--trust", str(tmp_path / "trust.toml"))
    try:
        shown = json.loads(_ok("keys", "show", str(tmp_path / "k"), "--json"))
        assert node.id == shown["node_id"]
        # the ready line's seed carries the key (what another node joins with) ...
        assert node.seed.partition("#")[2] == shown["public_key_hex"]
        # ... and doctor, given the admin address with its key, checks a CURVE node without a trusted key
        out = _ok("doctor", "--node", node.admin)
        assert "answers as a CURVE endpoint (secure mode)" in out and "CURVE on every socket" in out
        # given the bare seed it says what it needs, in one line, and fails
        code, out, err = run_cli("doctor", "--node", node.seed.partition("#")[0])
        assert code != 0 and "runs CURVE (secure mode)" in out + err and "Traceback" not in err
    finally:
        assert node.stop() == 0


# -- bad input ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One bad command line; ``{d}`` is a directory prepared by the ``prepared`` fixture."""

    label: str
    args: tuple[str, ...]
    needle: str


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    good = KeyPair.generate()
    save_keypair(d / "good", good)
    save_keypair(d / "loose", KeyPair.generate())
    os.chmod(d / "loose" / "node.key", 0o644)
    (d / "garbage").mkdir()
    fd = os.open(d / "garbage" / "node.key", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"this is not a key\n")
    os.close(fd)
    (d / "empty").mkdir()
    (d / "afile").write_text("x")
    ca = ClusterCA.generate()
    ca.save(d / "ca")
    ClusterCA.generate().save(d / "looseca")
    os.chmod(d / "looseca" / "ca.key", 0o640)
    save_keypair(d / "wrongcert", KeyPair.generate())
    save_certificate(d / "wrongcert", ca.issue(KeyPair.generate().public, "x", "member", 1, 3600))
    (d / "trust.toml").write_text(f'[revoked]\nkeys = ["{good.public.decode()}"]\n')
    (d / "broken.toml").write_text("[[member]\nkey = \n")
    (d / "badkey.toml").write_text("[[member]]\nkey = 'short'\n")
    (d / "tdir").mkdir()
    return d


BAD = "x" * 40
ROWS = [
    Row("generate over an existing key", ("keys", "generate", "{d}/good"), "already exists"),
    Row("generate under a file", ("keys", "generate", "{d}/afile/sub"), "Error:"),
    Row("show a missing directory", ("keys", "show", "{d}/nothing"), "no such key directory"),
    Row("show an empty directory", ("keys", "show", "{d}/empty"), "no node.key or node.pub"),
    Row("show a world-readable secret", ("keys", "show", "{d}/loose"), "chmod 600"),
    Row("show a garbage key file", ("keys", "show", "{d}/garbage"), "not a CURVE certificate"),
    Row("show a certificate for another key", ("keys", "show", "{d}/wrongcert"), "not this directory's node key"),
    Row("trust bad key text", ("keys", "trust", "{d}/t1.toml", "hello", "--role", "member"), "not a key"),
    Row("trust 40 non-Z85 characters", ("keys", "trust", "{d}/t1.toml", '"' * 40, "--role", "member"), "Z85"),
    Row("trust 64 non-hex characters", ("keys", "trust", "{d}/t1.toml", "g" * 64, "--role", "member"), "not hexadecimal"),
    Row("trust an empty key", ("keys", "trust", "{d}/t1.toml", "", "--role", "member"), "empty key"),
    Row("trust a bad role", ("keys", "trust", "{d}/t1.toml", "{d}/good", "--role", "king"), "'--role'"),
    Row("trust with a control character in --name", ("keys", "trust", "{d}/t1.toml", "{d}/good", "--role", "member", "--name", "a\nb"), "'--name'"),
    Row("trust a key without a role", ("keys", "trust", "{d}/t1.toml", "{d}/good"), "needs --role"),
    Row("trust neither key nor CA", ("keys", "trust", "{d}/t1.toml", "--role", "member"), "--ca"),
    Row("trust a dir without node.pub", ("keys", "trust", "{d}/t1.toml", "{d}/empty", "--role", "member"), "no node.pub"),
    Row("trust into a broken trust file", ("keys", "trust", "{d}/broken.toml", "{d}/good", "--role", "member"), "cannot read trust file"),
    Row("trust into an invalid trust file", ("keys", "trust", "{d}/badkey.toml", "{d}/good", "--role", "member"), "40 Z85"),
    Row("trust into a directory", ("keys", "trust", "{d}/tdir", "{d}/good", "--role", "member"), "cannot read trust file"),
    Row("trust a revoked key", ("keys", "trust", "{d}/trust.toml", "{d}/good", "--role", "member"), "is revoked"),
    Row("trust a bad CA key", ("keys", "trust", "{d}/t1.toml", "--ca", "abc"), "64 hex"),
    Row("revoke in a missing trust file", ("keys", "revoke", "{d}/nothing.toml", "{d}/good"), "no such trust file"),
    Row("revoke nothing", ("keys", "revoke", "{d}/trust.toml"), "--serial"),
    Row("revoke a negative serial", ("keys", "revoke", "{d}/trust.toml", "--serial", "-1"), "'--serial'"),
    Row("revoke bad key text", ("keys", "revoke", "{d}/trust.toml", BAD[:12]), "not a key"),
    Row("ca init over an existing CA", ("keys", "ca", "init", "{d}/ca"), "already exists"),
    Row("sign with negative days", ("keys", "sign", "--ca", "{d}/ca", "{d}/good", "--days", "-1"), "'--days'"),
    Row("sign with zero days", ("keys", "sign", "--ca", "{d}/ca", "{d}/good", "--days", "0"), "'--days'"),
    Row("sign with nan days", ("keys", "sign", "--ca", "{d}/ca", "{d}/good", "--days", "nan"), "'--days'"),
    Row("sign without days", ("keys", "sign", "--ca", "{d}/ca", "{d}/good"), "--days"),
    Row("sign with a bad role", ("keys", "sign", "--ca", "{d}/ca", "{d}/good", "--days", "1", "--role", "king"), "'--role'"),
    Row("sign with a negative serial", ("keys", "sign", "--ca", "{d}/ca", "{d}/good", "--days", "1", "--serial", "-5"), "'--serial'"),
    Row("sign with a missing CA", ("keys", "sign", "--ca", "{d}/noca", "{d}/good", "--days", "1"), "keys ca init"),
    Row("sign with a world-readable CA", ("keys", "sign", "--ca", "{d}/looseca", "{d}/good", "--days", "1"), "chmod 600"),
    Row("sign a dir without node.pub", ("keys", "sign", "--ca", "{d}/ca", "{d}/empty", "--days", "1"), "no node.pub"),
    Row("start --keys missing dir", ("start", "--keys", "{d}/nothing", "--trust", "{d}/trust.toml"), "no such key directory"),
    Row("start --keys world-readable", ("start", "--keys", "{d}/loose", "--trust", "{d}/trust.toml"), "chmod 600"),
    Row("start --keys garbage", ("start", "--keys", "{d}/garbage", "--trust", "{d}/trust.toml"), "not a CURVE certificate"),
    Row("start --keys with a foreign cert", ("start", "--keys", "{d}/wrongcert", "--trust", "{d}/trust.toml"), "not this directory's"),
    Row("start --trust missing file", ("start", "--keys", "{d}/good", "--trust", "{d}/nothing.toml"), "no such trust file"),
    Row("start --trust broken file", ("start", "--keys", "{d}/good", "--trust", "{d}/broken.toml"), "cannot read trust file"),
    Row("start --trust invalid file", ("start", "--keys", "{d}/good", "--trust", "{d}/badkey.toml"), "40 Z85"),
]


def test_the_table_is_unique() -> None:
    assert len({r.label for r in ROWS}) == len(ROWS) >= 40


@pytest.mark.parametrize("row", ROWS, ids=[r.label for r in ROWS])
def test_bad_keys_input_is_one_line_and_non_zero(row: Row, prepared: Path) -> None:
    args = [a.replace("{d}", str(prepared)) for a in row.args]
    code, out, err = run_cli(*args, timeout=60)
    assert code != 0, (row.label, out, err)
    assert "Traceback" not in err and "Traceback" not in out, (row.label, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and len(err) < 2000, (row.label, err[:3000])
    assert row.needle in err, (row.label, err)
    assert not (prepared / "t1.toml").exists(), "a refused command must not create the trust file"

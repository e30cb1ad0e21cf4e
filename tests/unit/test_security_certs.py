"""Cluster CA certificates (fabric.security.certs) and the trust store's CA half (admit, admitted,
revocation by serial, key or CA, the bounded cache), including known-bad and random certificates."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fabric
from fabric.errors import ConfigError, KeyFileError, SecurityError, UntrustedCertificate
from fabric.security import (
    Certificate,
    ClusterCA,
    KeyPair,
    TrustRole,
    TrustStore,
    load_certificate,
    node_certificate,
    save_certificate,
    save_keypair,
    verify_certificate,
)
from fabric.security.certs import MAX_CERT_BYTES, SIGNING_CONTEXT

NOW = 1_800_000_000.0
DAY = 86_400


@pytest.fixture(scope="module")
def ca() -> ClusterCA:
    return ClusterCA.generate()


@pytest.fixture(scope="module")
def node() -> KeyPair:
    return KeyPair.generate()


def _reencode(cert: bytes, **changes: object) -> bytes:
    """The certificate with fields changed (keeps canonical order, so only the signature can catch it)."""
    doc = msgpack.unpackb(cert, raw=False)
    doc.update(changes)
    return msgpack.packb(doc, use_bin_type=True)


def _refused(reason: str, data: bytes, ca: ClusterCA, **kw: object) -> UntrustedCertificate:
    with pytest.raises(UntrustedCertificate) as info:
        verify_certificate(data, {ca.public_key}, kw.pop("now", NOW), **kw)  # type: ignore[arg-type]
    assert info.value.reason == reason, (info.value.reason, str(info.value))
    return info.value


# -- the codec and the checks -------------------------------------------------------------------------


def test_issue_encode_decode_verify_round_trip(ca: ClusterCA, node: KeyPair) -> None:
    cert = ca.issue(node.public, "db-1", TrustRole.MEMBER, 7, 30 * DAY, now=NOW)
    data = cert.encode()
    assert len(data) < MAX_CERT_BYTES
    back = Certificate.decode(data)
    assert back == cert and back.encode() == data
    assert back.verify({ca.public_key}, NOW, key=node.public) is back
    assert back.node_id == node.node_id and back.role is TrustRole.MEMBER and back.serial == 7
    assert back.not_before == int(NOW) - 300 and back.not_after == int(NOW) + 30 * DAY
    assert back.summary()["node_id"] == node.node_id_text
    assert issubclass(UntrustedCertificate, SecurityError) and fabric.UntrustedCertificate is UntrustedCertificate


def test_known_bad_certificates_are_refused_with_their_reason(ca: ClusterCA, node: KeyPair) -> None:
    good = ca.issue(node.public, "db-1", "member", 7, DAY, now=NOW).encode()
    other_ca = ClusterCA.generate()
    # a certificate from another CA, whether or not it names ours
    _refused("unknown_ca", other_ca.issue(node.public, "db-1", "member", 7, DAY, now=NOW).encode(), ca)
    forged = other_ca.issue(node.public, "db-1", "member", 7, DAY, now=NOW)
    _refused("bad_signature", _reencode(forged.encode(), ca=ca.public_key), ca)
    # every signed field, tampered with
    for field, value in (("n", "db-2"), ("r", "operator"), ("s", 8), ("na", int(NOW) + 10 * DAY),
                         ("nb", int(NOW) - 10 * DAY), ("k", KeyPair.generate().public.decode())):
        _refused("bad_signature", _reencode(good, **{field: value}), ca)
    sig = bytearray(msgpack.unpackb(good)["sg"])
    sig[0] ^= 1
    _refused("bad_signature", _reencode(good, sg=bytes(sig)), ca)
    # the wrong presenter, revocation, the validity window
    _refused("key_mismatch", good, ca, key=KeyPair.generate().public)
    _refused("revoked", good, ca, revoked_serials={7})
    _refused("revoked", good, ca, revoked_keys={node.public})
    _refused("expired", good, ca, now=NOW + DAY)
    _refused("expired", good, ca, now=NOW + 2 * DAY)
    _refused("not_yet_valid", good, ca, now=NOW - 301)
    _refused("not_yet_valid", good, ca, now=float("nan"))
    later = ca.issue(node.public, "db-1", "member", 9, DAY, not_before=NOW + 3600, now=NOW).encode()
    _refused("not_yet_valid", later, ca)
    assert verify_certificate(later, {ca.public_key}, NOW + 3600).serial == 9


def test_malformed_bytes_raise_untrusted_certificate_only(ca: ClusterCA, node: KeyPair) -> None:
    good = ca.issue(node.public, "db-1", "member", 7, DAY, now=NOW).encode()
    doc = msgpack.unpackb(good, raw=False)
    bad: list[bytes] = [
        b"", b"\xc1", b"\x00", good[:-1], good[: len(good) // 2], good + b"\x00", b"\xff" * 64,
        b"x" * (MAX_CERT_BYTES + 1), msgpack.packb([1, 2, 3]), msgpack.packb({"v": 1}),
        msgpack.packb({**doc, "extra": 1}), msgpack.packb(dict(reversed(list(doc.items())))),  # other order
        _reencode(good, v=2), _reencode(good, v=True), _reencode(good, s=-1), _reencode(good, s=2**64 - 1),
        _reencode(good, s=True), _reencode(good, s=7.0), _reencode(good, nb=doc["na"]), _reencode(good, r="king"),
        _reencode(good, k="short"), _reencode(good, k=b"x" * 40), _reencode(good, k="\u00e9" * 40),
        _reencode(good, n="x" * 65), _reencode(good, ca=b"\x00" * 31), _reencode(good, sg=b"\x00" * 63),
        _reencode(good, n=b"bytes"),
        # the same map with a non-minimal integer encoding (serial 7 as uint64): not canonical
        good.replace(b"\xa1s\x07", b"\xa1s\xcf" + (7).to_bytes(8, "big")),
    ]
    for data in bad:
        with pytest.raises(UntrustedCertificate) as info:
            verify_certificate(data, {ca.public_key}, NOW)
        assert info.value.reason == "malformed", (data[:40], info.value)
    with pytest.raises(UntrustedCertificate):
        Certificate.decode("text")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_random_bytes_never_raise_anything_but_untrusted_certificate(data: bytes) -> None:
    ca = _CA
    try:
        verify_certificate(data, {ca.public_key}, NOW)
    except UntrustedCertificate:
        pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_certificates_are_refused(data: st.DataObject) -> None:
    good = _GOOD
    pos = data.draw(st.integers(0, len(good) - 1))
    kind = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    if kind == "flip":
        mutated = good[:pos] + bytes([good[pos] ^ data.draw(st.integers(1, 255))]) + good[pos + 1:]
    elif kind == "cut":
        mutated = good[:pos]
    else:
        mutated = good[:pos] + data.draw(st.binary(min_size=1, max_size=8)) + good[pos:]
    with pytest.raises(UntrustedCertificate):
        verify_certificate(mutated, {_CA.public_key}, NOW)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["ca", "k", "n", "na", "nb", "r", "s", "sg", "v", "x"]),
                       st.one_of(st.integers(-(2**63), 2**64 - 1), st.binary(max_size=70), st.text(max_size=70),
                                 st.booleans(), st.none(), st.floats(), st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3)),
                       max_size=10))
def test_structured_junk_maps_never_verify(doc: dict[str, object]) -> None:
    try:
        verify_certificate(msgpack.packb(doc, use_bin_type=True), {_CA.public_key}, NOW)
    except UntrustedCertificate:
        return
    raise AssertionError("a junk map verified")


_CA = ClusterCA.generate()
_GOOD = _CA.issue(KeyPair.generate().public, "n", "member", 1, DAY, now=NOW).encode()


def test_signature_covers_a_domain_prefix(ca: ClusterCA, node: KeyPair) -> None:
    cert = ca.issue(node.public, "x", "client", 3, DAY, now=NOW)
    assert cert.signed_bytes().startswith(SIGNING_CONTEXT)


def test_issue_refuses_out_of_range_input(ca: ClusterCA, node: KeyPair) -> None:
    for kwargs in ({"serial": -1}, {"serial": 2**63}, {"valid_for_s": 0}, {"valid_for_s": float("inf")},
                   {"name": "x" * 65}, {"role": "king"}):
        args: dict[str, object] = {"public_key_z85": node.public, "name": "n", "role": "member", "serial": 1,
                                   "valid_for_s": DAY, **kwargs}
        with pytest.raises(ValueError):
            ca.issue(**args, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(KeyFileError):
        ca.issue(b"short", "n", "member", 1, DAY, now=NOW)


# -- files ----------------------------------------------------------------------------------------------


def test_ca_save_load_permissions_and_serial_counter(tmp_path: Path, node: KeyPair) -> None:
    ca = ClusterCA.generate()
    pub, sec = ca.save(tmp_path / "ca")
    assert stat.S_IMODE(sec.stat().st_mode) == 0o600 and pub.read_text().strip() == ca.public_hex
    assert repr(ca).count(ca.public_hex) == 1 and "PRIVATE" not in repr(ca)
    with pytest.raises(KeyFileError, match="already exists"):
        ca.save(tmp_path / "ca")
    loaded = ClusterCA.load(tmp_path / "ca")
    assert loaded.public_key == ca.public_key
    assert [loaded.next_serial(), loaded.next_serial()] == [1, 2]
    loaded.record_serial(10)
    loaded.record_serial(5)  # never backwards
    assert loaded.next_serial() == 11
    cert = loaded.issue(node.public, "n", "member", 11, DAY, now=NOW)
    assert cert.verify({ca.public_key}, NOW) == cert
    os.chmod(sec, 0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        ClusterCA.load(tmp_path / "ca")
    os.chmod(sec, 0o600)
    sec.write_text("not a key")
    with pytest.raises(KeyFileError, match="not a CA key"):
        ClusterCA.load(tmp_path / "ca")
    with pytest.raises(KeyFileError, match="keys ca init"):
        ClusterCA.load(tmp_path / "nothing")


def test_node_certificate_file(tmp_path: Path, ca: ClusterCA) -> None:
    kp = KeyPair.generate()
    save_keypair(tmp_path, kp)
    assert node_certificate(tmp_path, kp.public) is None
    cert = ca.issue(kp.public, "n", "member", 4, DAY, now=NOW)
    path = save_certificate(tmp_path, cert)
    assert load_certificate(path) == cert and node_certificate(tmp_path, kp.public) == cert
    with pytest.raises(KeyFileError, match="not this directory's node key"):
        node_certificate(tmp_path, KeyPair.generate().public)
    assert path.read_bytes() == cert.encode()  # the file is what HELLO carries, byte for byte
    for junk in (b"# text\nnot a certificate\n", b"\xff\xfe", cert.encode()[:-1], b"x" * 10_000):
        path.write_bytes(junk)
        with pytest.raises(KeyFileError, match="not a node certificate"):
            load_certificate(path)
    path.unlink()
    path.mkdir()
    with pytest.raises(KeyFileError, match="cannot read"):
        load_certificate(path)


# -- the trust store's CA half --------------------------------------------------------------------------


def _trust(path: Path, text: str) -> None:
    path.write_text(text)
    st_ = path.stat()
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000))


def test_admit_and_admitted_with_revocation_by_serial_key_and_ca(tmp_path: Path, ca: ClusterCA) -> None:
    a, b, c, allow = (KeyPair.generate() for _ in range(4))
    f = tmp_path / "trust.toml"
    base = f'[ca]\nkeys = ["{ca.public_hex}"]\n[[member]]\nkey = "{allow.public.decode()}"\n'
    _trust(f, base)
    store = TrustStore(f)
    assert store.has_ca and store.may_present_certificate(a.public)
    seen: list[frozenset[bytes]] = []
    store.on_revoke(seen.append)
    certs = {kp.public: ca.issue(kp.public, f"n{i}", "member", i + 1, DAY, now=NOW).encode()
             for i, kp in enumerate((a, b, c))}
    for key, cert in certs.items():
        assert store.admit_certificate(cert, key, NOW) is TrustRole.MEMBER
    assert store.admitted(a.public, TrustRole.MEMBER, NOW) and not store.admitted(a.public, TrustRole.OPERATOR, NOW)
    assert store.admitted(allow.public, TrustRole.MEMBER, NOW)  # the allowlist still works
    assert not store.admitted(KeyPair.generate().public, TrustRole.MEMBER, NOW)
    assert store.name_of(b.public) == "n1" and store.certificate_of(c.public) is not None
    assert not store.admitted(a.public, TrustRole.MEMBER, NOW + DAY)  # expired
    # a certificate presented by another key than the one it certifies
    with pytest.raises(UntrustedCertificate, match="key_mismatch"):
        store.admit_certificate(certs[a.public], b.public, NOW)
    # revoke a's serial and b's key: both fire on_revoke and stop being admitted at once
    _trust(f, base + f'[revoked]\nserials = [1]\nkeys = ["{b.public.decode()}"]\n')
    assert store.reload()
    assert seen == [frozenset({a.public, b.public})]
    assert not store.admitted(a.public, TrustRole.MEMBER, NOW) and not store.admitted(b.public, TrustRole.MEMBER, NOW)
    assert not store.may_present_certificate(b.public)
    with pytest.raises(UntrustedCertificate, match="revoked"):
        store.admit_certificate(certs[a.public], a.public, NOW)
    assert store.admitted(c.public, TrustRole.MEMBER, NOW)
    # removing the CA revokes every certificate it signed; the allowlisted key stays
    _trust(f, f'[[member]]\nkey = "{allow.public.decode()}"\n')
    store.reload()
    assert seen[-1] == frozenset({c.public})
    assert not store.admitted(c.public, TrustRole.MEMBER, NOW) and store.admitted(allow.public, TrustRole.MEMBER, NOW)
    with pytest.raises(UntrustedCertificate, match="no_ca"):
        store.admit_certificate(certs[c.public], c.public, NOW)
    s = store.stats()
    assert s["certificates"] == 0 and s["certificates_admitted"] == 3
    assert s["certificates_refused"] == 3 and s["certificates_refused_revoked"] == 1


def test_removing_an_allowlist_entry_of_a_certified_key_is_not_a_revocation(tmp_path: Path, ca: ClusterCA) -> None:
    k = KeyPair.generate()
    f = tmp_path / "trust.toml"
    _trust(f, f'[ca]\nkeys = ["{ca.public_hex}"]\n[[member]]\nkey = "{k.public.decode()}"\n')
    store = TrustStore(f)
    store.admit_certificate(ca.issue(k.public, "k", "member", 1, DAY, now=NOW).encode(), k.public, NOW)
    seen: list[frozenset[bytes]] = []
    store.on_revoke(seen.append)
    _trust(f, f'[ca]\nkeys = ["{ca.public_hex}"]\n')
    store.reload()
    assert seen == [] and store.admitted(k.public, TrustRole.MEMBER, NOW)


def test_expiry_sweep_fires_on_revoke(ca: ClusterCA) -> None:
    from fabric.security import TrustSnapshot

    store = TrustStore.from_snapshot(TrustSnapshot(ca_keys=frozenset({ca.public_key})))
    k1, k2 = KeyPair.generate(), KeyPair.generate()
    store.admit_certificate(ca.issue(k1.public, "", "member", 1, 100, now=NOW).encode(), k1.public, NOW)
    store.admit_certificate(ca.issue(k2.public, "", "member", 2, DAY, now=NOW).encode(), k2.public, NOW)
    seen: list[frozenset[bytes]] = []
    store.on_revoke(seen.append)
    assert store.expire_certificates(NOW + 50) == frozenset()
    assert store.expire_certificates(NOW + 100) == frozenset({k1.public})
    assert seen == [frozenset({k1.public})] and store.stats()["certificates_expired"] == 1
    assert store.admitted(k2.public, TrustRole.MEMBER, NOW + 100)


def test_certificate_cache_is_bounded_and_counts_evictions(ca: ClusterCA) -> None:
    from fabric.security import TrustSnapshot

    store = TrustStore.from_snapshot(TrustSnapshot(ca_keys=frozenset({ca.public_key})), max_certificates=3)
    keys = [KeyPair.generate() for _ in range(6)]
    short = ca.issue(keys[0].public, "", "member", 100, 10, now=NOW).encode()
    store.admit_certificate(short, keys[0].public, NOW)
    for i, kp in enumerate(keys[1:3], start=1):
        store.admit_certificate(ca.issue(kp.public, "", "member", i, DAY, now=NOW).encode(), kp.public, NOW)
    assert store.admitted(keys[1].public, TrustRole.MEMBER, NOW + 20)  # touches 1: 2 is now least recent
    # full: the expired certificate goes first, then the least recently used
    store.admit_certificate(ca.issue(keys[3].public, "", "member", 3, DAY, now=NOW).encode(), keys[3].public, NOW + 20)
    assert store.certificate_of(keys[0].public) is None and store.stats()["certificates"] == 3
    store.admit_certificate(ca.issue(keys[4].public, "", "member", 4, DAY, now=NOW).encode(), keys[4].public, NOW + 20)
    assert store.certificate_of(keys[2].public) is None and store.certificate_of(keys[1].public) is not None
    s = store.stats()
    assert s["certificates"] == 3 and s["certificate_evictions"] == 2 and s["certificate_capacity"] == 3
    with pytest.raises(ConfigError):
        TrustStore(max_certificates=0)


@pytest.mark.parametrize("text, match", [
    ("[ca]\nkeys = 'x'\n", "ca"),
    ("[ca]\nkeys = ['abc']\n", "64 hex"),
    ("[ca]\nkeys = ['" + "zz" * 32 + "']\n", "not hexadecimal"),
    ("[ca]\nkey = []\n", "unknown key"),
    ("ca = 3\n", "must be a table"),
    ("[revoked]\nserials = [-1]\n", "serials"),
    ("[revoked]\nserials = ['7']\n", "serials"),
    ("[revoked]\nserials = [true]\n", "serials"),
    ("[revoked]\nkeyz = []\n", "unknown key"),
])
def test_bad_ca_and_revocation_sections_are_config_errors(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "t.toml"
    _trust(f, text)
    with pytest.raises(ConfigError, match=match):
        TrustStore(f)


def test_admitted_is_safe_to_call_from_other_threads_during_reloads(tmp_path: Path, ca: ClusterCA) -> None:
    f = tmp_path / "trust.toml"
    base = f'[ca]\nkeys = ["{ca.public_hex}"]\n'
    _trust(f, base)
    store = TrustStore(f)
    keys = [KeyPair.generate() for _ in range(20)]
    certs = [ca.issue(k.public, "", "member", i + 1, DAY, now=NOW).encode() for i, k in enumerate(keys)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                for k in keys:
                    store.admitted(k.public, TrustRole.MEMBER, NOW)
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for round_ in range(10):
            for k, c in zip(keys, certs, strict=True):
                try:
                    store.admit_certificate(c, k.public, NOW)
                except UntrustedCertificate:
                    pass
            _trust(f, base + f"[revoked]\nserials = [{round_ + 1}]\n")
            store.reload()
    finally:
        stop.set()
        t.join(10)
    assert not errors and not t.is_alive()
    # the final snapshot revokes serial 10 only: everything else admitted, 10 dropped
    assert not store.admitted(keys[9].public, TrustRole.MEMBER, NOW)
    assert store.admitted(keys[0].public, TrustRole.MEMBER, NOW)

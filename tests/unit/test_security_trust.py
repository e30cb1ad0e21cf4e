"""The trust store (allowlist, revocation, reload) and the ZAP handler."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import zmq

from fabric.errors import ConfigError
from fabric.security import KeyPair, TrustRole, TrustStore
from fabric.security.zap import stop_zap_for, zap_for


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a distinct mtime on coarse clocks


def test_allowlist_roles_and_revocation_reload(tmp_path: Path) -> None:
    a, b, op = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    f = tmp_path / "trust.toml"
    _write(f, f'[[member]]\nkey = "{a.public.decode()}"\nname = "a"\n[[member]]\nkey = "{b.public.decode()}"\n'
              f'[[operator]]\nkey = "{op.public.decode()}"\n')
    store = TrustStore(f)
    assert store.allows(a.public, TrustRole.MEMBER) and store.allows(b.public, TrustRole.MEMBER)
    assert not store.allows(a.public, TrustRole.OPERATOR) and store.allows(op.public, TrustRole.OPERATOR)
    assert store.name_of(a.public) == "a"
    seen: list[frozenset[bytes]] = []
    store.on_revoke(seen.append)
    assert store.reload() is False  # unchanged file: nothing to do
    _write(f, f.read_text() + f'[revoked]\nkeys = ["{b.public.decode()}"]\n')
    assert store.reload() is True
    assert not store.allows(b.public, TrustRole.MEMBER) and store.allows(a.public, TrustRole.MEMBER)
    assert seen == [frozenset({b.public})]
    # removing a key from the file is a revocation too
    _write(f, f'[[operator]]\nkey = "{op.public.decode()}"\n')
    store.reload()
    assert seen[-1] == frozenset({a.public})


@pytest.mark.parametrize("text, match", [
    ("[[member]]\nkey = 'short'\n", "40 Z85"),
    ("[[member]]\nname = 'x'\n", "needs key"),
    ("[strange]\n", "unknown section"),
    ("member = 3\n", "array of tables"),
    ("[[member]\n", "cannot read"),
    ("[revoked]\nkeys = 'x'\n", "revoked"),
])
def test_bad_trust_files_are_config_errors_and_keep_the_last_good_snapshot(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "t.toml"
    k = KeyPair.generate()
    _write(f, f'[[member]]\nkey = "{k.public.decode()}"\n')
    store = TrustStore(f)
    _write(f, text)
    with pytest.raises(ConfigError, match=match):
        store.reload()
    assert store.allows(k.public, TrustRole.MEMBER)
    with pytest.raises(ConfigError, match="no such trust file"):
        TrustStore(tmp_path / "missing.toml")


def test_zap_handler_admits_only_what_the_domain_policy_allows() -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    srv, good, bad = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    try:
        zap = zap_for(ctx)
        zap.register("node-a", lambda key: key == good.public)
        with pytest.raises(ConfigError, match="already registered"):
            zap.register("node-a", lambda key: True)
        server = ctx.socket(zmq.ROUTER)
        server.curve_server = True
        server.curve_secretkey, server.curve_publickey = srv.secret, srv.public
        server.zap_domain = b"node-a"
        port = server.bind_to_random_port("tcp://127.0.0.1")
        clients = []
        for kp in (bad, good):
            c = ctx.socket(zmq.DEALER)
            c.linger = 0
            c.curve_serverkey, c.curve_publickey, c.curve_secretkey = srv.public, kp.public, kp.secret
            c.connect(f"tcp://127.0.0.1:{port}")
            c.send(kp.public)
            clients.append(c)
        assert server.poll(10_000)
        frames = server.recv_multipart(copy=False)
        assert frames[1].bytes == good.public and frames[1].get("User-Id") == good.public.decode()
        assert zap.stats()["accepted"] == 1
        assert zap.stats().get("refused", 0) >= 1  # the bad key's handshake was refused (it may retry)
        for c in clients:
            c.close()
        server.close()
    finally:
        stop_zap_for(ctx)
        ctx.term()

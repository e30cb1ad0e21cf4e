"""The trust-file rewrite behind ``keys trust`` / ``keys revoke`` (foundation_cli.keys): what it renders
parses back to the same document, and a reader concurrent with rewrites never sees half a file."""

from __future__ import annotations

import threading
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fabric.errors import ConfigError, KeyFileError
from fabric.security import KeyPair, TrustRole, TrustStore
from foundation_cli.keys import parse_public_key, public_key_hex, render_trust, write_trust

KEYS = [KeyPair.generate().public.decode() for _ in range(4)]


@settings(max_examples=200, deadline=None)
@given(names=st.lists(st.text(max_size=30), min_size=4, max_size=4),
       serials=st.lists(st.integers(0, 2**63 - 1), max_size=5, unique=True))
def test_render_parses_back_to_the_same_document(names: list[str], serials: list[int]) -> None:
    doc: dict[str, Any] = {
        "member": [{"key": KEYS[0], "name": names[0]}, {"key": KEYS[1], "name": names[1]}],
        "client": [{"key": KEYS[2], "name": names[2]}],
        "operator": [{"key": KEYS[3], "name": names[3]}],
        "ca": {"keys": ["ab" * 32]},
        "revoked": {"keys": [KEYS[1]], "serials": serials},
    }
    try:
        "".join(names).encode("utf-8")
    except UnicodeEncodeError:
        return  # a lone surrogate cannot be in a TOML file at all (and the CLI refuses such a --name)
    assert tomllib.loads(render_trust(doc)) == doc


def test_write_refuses_a_document_the_nodes_would_refuse(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="40 Z85"):
        write_trust(tmp_path / "t.toml", {"member": [{"key": "short"}]})
    assert not list(tmp_path.iterdir())


def test_a_concurrent_reader_sees_whole_files_only(tmp_path: Path) -> None:
    path = tmp_path / "trust.toml"
    many = [KeyPair.generate().public.decode() for _ in range(200)]
    write_trust(path, {"member": [{"key": many[0]}]})
    store = TrustStore(path)
    seen: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                store.reload(force=True)
                seen.append(len(store.snapshot.keys))
            except BaseException as exc:
                errors.append(exc)
                return

    t = threading.Thread(target=reader)
    t.start()
    try:
        for n in range(1, 200):
            write_trust(path, {"member": [{"key": k, "name": f"n{i}"} for i, k in enumerate(many[:n + 1])]})
    finally:
        done.set()
        t.join(10)
    assert not errors and not t.is_alive() and seen
    assert seen == sorted(seen)  # every read saw one whole version, and versions only grow
    assert store.reload(force=True) and len(store.snapshot.keys) == 200
    assert all(store.allows(k.encode(), TrustRole.MEMBER) for k in many)


def test_key_arguments_in_every_spelling(tmp_path: Path) -> None:
    kp = KeyPair.generate()
    from fabric.security import save_keypair

    save_keypair(tmp_path / "k", kp)
    spellings = [str(tmp_path / "k"), str(tmp_path / "k" / "node.pub"), kp.public.decode(), public_key_hex(kp.public)]
    assert {parse_public_key(s) for s in spellings} == {kp.public}
    for bad in ("", "x", "g" * 64, '"' * 40, str(tmp_path)):
        with pytest.raises(KeyFileError):
            parse_public_key(bad)

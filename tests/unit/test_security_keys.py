"""Key pairs and self-certifying node ids (fabric.security.keys)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from fabric.errors import ConfigError, KeyFileError
from fabric.security import KeyPair, derive_node_id, load_keypair, load_public_key, save_keypair


def test_node_id_is_derived_from_the_public_key_and_is_a_uuid() -> None:
    a, b = KeyPair.generate(), KeyPair.generate()
    assert a.node_id == derive_node_id(a.public) and len(a.node_id) == 16
    assert a.node_id != b.node_id
    assert uuid.UUID(a.node_id_text).bytes == a.node_id
    assert "secret" not in repr(a) or "<hidden>" in repr(a)
    assert a.secret is not None and a.secret.decode() not in repr(a)


def test_save_and_load_round_trip_with_private_modes(tmp_path: Path) -> None:
    kp = KeyPair.generate()
    pub, sec = save_keypair(tmp_path / "k", kp)
    assert load_keypair(tmp_path / "k") == kp
    assert load_public_key(pub) == kp.public and load_public_key(kp.public.decode()) == kp.public
    assert (sec.stat().st_mode & 0o777) == 0o600
    with pytest.raises(KeyFileError, match="already exists"):
        save_keypair(tmp_path / "k", kp)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_secret_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    _pub, sec = save_keypair(tmp_path, KeyPair.generate())
    os.chmod(sec, mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_keypair(tmp_path)


def test_bad_key_files_are_one_line_config_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no such key file"):
        load_keypair(tmp_path)
    (tmp_path / "node.key").write_text("garbage\n")
    os.chmod(tmp_path / "node.key", 0o600)
    with pytest.raises(ConfigError):
        load_keypair(tmp_path)
    with pytest.raises(KeyFileError):
        load_public_key(b"short")
    # a secret that does not match its public key
    a, b = KeyPair.generate(), KeyPair.generate()
    assert a.secret is not None
    (tmp_path / "m").mkdir()
    save_keypair(tmp_path / "m", KeyPair(b.public, a.secret))
    with pytest.raises(KeyFileError, match="does not belong"):
        load_keypair(tmp_path / "m")

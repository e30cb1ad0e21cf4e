"""Keys and trust files for the secure-mode tests (tests/integration/test_security_*.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fabric.security import KeyPair, save_keypair


class Pki:
    """Key directories and one trust file under ``root``; :meth:`write` replaces the trust file
    atomically (a reader never sees half a file) with a new modification time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.trust = root / "trust.toml"
        self.keys: dict[str, KeyPair] = {}
        self.members: set[str] = set()
        self.clients: set[str] = set()
        self.revoked: set[str] = set()

    def make(self, name: str, *, member: bool = True, client: bool = False) -> KeyPair:
        kp = KeyPair.generate()
        save_keypair(self.root / name, kp)
        self.keys[name] = kp
        if member:
            self.members.add(name)
        if client:
            self.clients.add(name)
        return kp

    def dir(self, name: str) -> str:
        return str(self.root / name)

    def public(self, name: str) -> str:
        return self.keys[name].public.decode()

    def node_id(self, name: str) -> str:
        return self.keys[name].node_id_text

    def seed(self, endpoint: str, name: str) -> str:
        """``endpoint#KEY`` (the hex form, as a shell would pass it)."""
        import zmq.utils.z85

        return f"{endpoint}#{zmq.utils.z85.decode(self.keys[name].public).hex()}"

    def write(self) -> None:
        lines = []
        for role, names in (("member", self.members), ("client", self.clients)):
            for name in sorted(names):
                lines += [f"[[{role}]]", f'key = "{self.public(name)}"', f'name = "{name}"', ""]
        if self.revoked:
            lines += ["[revoked]", "keys = [" + ", ".join(f'"{self.public(n)}"' for n in sorted(self.revoked)) + "]"]
        tmp = self.trust.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.trust)

    def args(self, name: str, reload: float = 0.2) -> list[str]:
        """node_child.py arguments for a secure node ``name``."""
        return ["--name", name, "--keys", self.dir(name), "--trust", str(self.trust), "--trust-reload", str(reload)]


def poll(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Wait (bounded) until ``condition()`` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.05)

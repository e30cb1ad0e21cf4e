"""Packaging guards: every package folder is listed in setup.cfg (find: cannot see through package_dir)."""

from __future__ import annotations

import configparser

from tests.support import REPO


def test_every_package_is_listed_in_setup_cfg() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    found = set()
    for top, name in (("fabric", "fabric"), ("foundation", "foundation"), ("cli", "foundation_cli")):
        for init in (REPO / top).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / top)
            found.add(".".join((name, *rel.parts)))
    assert found - listed == set(), f"add these to [options] packages in setup.cfg: {sorted(found - listed)}"

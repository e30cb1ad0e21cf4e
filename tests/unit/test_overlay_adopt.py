"""Overlay.adopt (a live topology switch): the new core starts from the members the old one knew alive,
without announcing them, so members() never dips while the new overlay forms."""

from __future__ import annotations

import random

from fabric.membership import (
    Connect,
    FullMeshMembership,
    Identity,
    Member,
    MemberStatus,
    MemberUp,
    Send,
)
from fabric.membership.clientserver import ClientServer
from fabric.membership.config import MembershipConfig
from fabric.membership.hyparview import HyParView
from fabric.membership.overlay import FullMeshOverlay
from fabric.membership.plumtree import TreeSend


def ident(i: int) -> Identity:
    return Identity(bytes([i]) * 16, f"n{i}", 1, {}, {"membership": ("control", f"ipc:///tmp/n{i}", 1)})


def member(i: int) -> Member:
    idt = ident(i)
    return Member(idt.node_id, idt.name, idt.incarnation, MemberStatus.ALIVE, {}, idt.endpoints)


def test_hyparview_adopts_members_as_alive_records_and_passive_candidates_without_announcing() -> None:
    hv = HyParView(ident(0), MembershipConfig.local(), rng=random.Random(1), now=0.0)
    effects = hv.adopt([member(i) for i in range(0, 41)], 0.0)  # itself included: ignored
    assert sorted(m.name for m in hv.alive_members()) == sorted(f"n{i}" for i in range(0, 41))
    assert sum(isinstance(e, MemberUp) for e in effects) == 40
    assert not any(isinstance(e, Send | TreeSend) for e in effects)  # nothing announced
    passive = hv.passive_view()
    assert len(passive) == MembershipConfig.local().hyparview.passive_max  # a random sample of them
    assert set(passive) <= {bytes([i]) * 16 for i in range(1, 41)}
    assert hv.neighbours() == []  # links come from the join walk and promotions, not from adopt
    # adopting again keeps what is held (records are not reset to version 0)
    assert hv.adopt([member(3)], 2.0) == []


def test_client_server_adopts_members_and_links_its_servers() -> None:
    server = Identity(bytes([9]) * 16, "s", 1, {"role": "server"}, {"membership": ("control", "ipc:///tmp/s", 1)})
    cs = ClientServer(ident(0), "client", MembershipConfig.local(), rng=random.Random(1), now=0.0)
    m = Member(server.node_id, "s", 1, MemberStatus.ALIVE, {"role": "server"}, server.endpoints)
    cs.adopt([m, member(2)], 0.0)
    assert {x.name for x in cs.alive_members()} == {"n0", "s", "n2"}


def test_full_mesh_adopts_members_as_up_and_links_each_without_pushing() -> None:
    core = FullMeshMembership(ident(0), MembershipConfig.local(), rng=random.Random(1), now=0.0)
    overlay = FullMeshOverlay(core)
    effects = overlay.adopt([member(i) for i in range(1, 6)], 0.0)
    assert sorted(m.name for m in overlay.alive_members()) == ["n0", "n1", "n2", "n3", "n4", "n5"]
    assert sorted(e.identity.name for e in effects if isinstance(e, Connect)) == ["n1", "n2", "n3", "n4", "n5"]
    assert sum(isinstance(e, MemberUp) for e in effects) == 5
    assert not any(isinstance(e, Send) for e in effects)
    assert overlay.neighbours() == sorted(bytes([i]) * 16 for i in range(1, 6))

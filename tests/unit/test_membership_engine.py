"""The one membership engine: every overlay core is a policy of MemberEngine and merges one record CRDT
with one refutation rule (fabric.membership.engine, fabric.membership.records)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from fabric.membership import FullMeshMembership, Identity, MemberDown, MemberUp, make_overlay
from fabric.membership.config import MembershipConfig
from fabric.membership.engine import MemberEngine, reconcile
from fabric.membership.errors import BadMembershipMessage
from fabric.membership.plumtree import TreeSend
from fabric.membership.records import _Record, _record_from_wire, _wire_key, mesh_wire, refute_key
from fabric.membership.types import ST_ALIVE, ST_DOWN, ST_LEFT, Send

ME = b"\x01" * 16
PEER = b"\x02" * 16
OTHER = b"\x03" * 16
KINDS = ("full-mesh", "hyparview", "client-server", "static")


def ident(node_id: bytes, name: str, inc: int = 1) -> Identity:
    return Identity(node_id, name, inc, {}, {"membership": ("control", f"sim://{name}", 1)})


def core(kind: str) -> MemberEngine[Any]:
    overlay = make_overlay(kind, ident(ME, "me"), membership=MembershipConfig.local(), static_members=["sim://peer"],
                           rng=random.Random(1), now=0.0)
    engine = overlay.core if kind == "full-mesh" else overlay  # type: ignore[attr-defined]
    assert isinstance(engine, MemberEngine)
    return engine


def claim(node_id: bytes, name: str, inc: int, st: int, v: int = 0) -> dict[str, Any]:
    return {"id": node_id, "nm": name, "in": inc, "st": st, "v": v, "md": {}, "ep": {}}


def sync(kind: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"in": 1, "r": 0, "m": records} if kind == "full-mesh" else {"m": records}


@pytest.mark.parametrize("kind", KINDS)
def test_every_overlay_refutes_a_false_down_with_a_new_incarnation(kind: str) -> None:
    engine = core(kind)
    engine.receive(PEER, "sync", sync(kind, [claim(ME, "me", 1, ST_DOWN, 3)]), 0.0)
    assert engine.digest()[ME] == (2, ST_ALIVE, 0) and engine.incarnation == 2
    assert engine.stats()["refuted"] == 1 and engine.health.stats()["self_refuted"] == 1
    # a claim that does not beat ours changes nothing
    engine.receive(PEER, "sync", sync(kind, [claim(ME, "me", 2, ST_ALIVE, 0)]), 0.0)
    assert engine.digest()[ME] == (2, ST_ALIVE, 0) and engine.stats()["refuted"] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_every_overlay_versions_metadata_the_same_way(kind: str) -> None:
    engine = core(kind)
    engine.set_metadata({"zone": "a"}, 0.0)
    engine.set_metadata({"zone": "b"}, 0.0)
    assert engine.digest()[ME] == (1, ST_ALIVE, 2) and dict(engine.local.metadata) == {"zone": "b"}
    with pytest.raises(BadMembershipMessage):
        engine.set_metadata({"k": "x" * 5000}, 0.0)
    assert engine.digest()[ME] == (1, ST_ALIVE, 2)


def test_the_refuted_record_reaches_peers_by_each_policys_dissemination() -> None:
    # full-mesh pushes it straight to every member it holds (down ones too)
    mesh = FullMeshMembership(ident(ME, "me"), MembershipConfig.local(), now=0.0)
    mesh.receive(PEER, "sync", {"in": 1, "r": 0, "m": [claim(PEER, "peer", 1, ST_ALIVE)]}, 0.0)
    effects = mesh.receive(PEER, "sync", {"in": 1, "r": 0, "m": [claim(ME, "me", 1, ST_DOWN)]}, 0.0)
    pushed = [e for e in effects if isinstance(e, Send) and e.to == PEER and e.op == "sync"]
    assert pushed and pushed[0].body["m"][0]["in"] == 2 and pushed[0].body["m"][0]["st"] == ST_ALIVE
    # a partial view announces it over Plumtree
    hv = core("hyparview")
    hv._add_neighbour(ident(PEER, "peer"), 0.0, [])  # type: ignore[attr-defined]
    hv.receive(PEER, "sync", {"m": [claim(ME, "me", 1, ST_DOWN)]}, 0.0)
    out = [e for e in hv.tick(1.0) if isinstance(e, TreeSend) and e.op == "gossip"]
    assert out and out[0].body["p"][0]["in"] == 2 and out[0].body["p"][0]["st"] == ST_ALIVE


@pytest.mark.parametrize("kind", ["hyparview", "client-server", "static"])
def test_down_is_terminal_for_an_incarnation_on_every_overlay(kind: str) -> None:
    engine = core(kind)
    ups: list[Any] = []
    downs: list[Any] = []
    for c in (claim(OTHER, "o", 1, ST_ALIVE), claim(OTHER, "o", 1, ST_DOWN), claim(OTHER, "o", 1, ST_ALIVE, 5)):
        effects = engine.receive(PEER, "sync", sync(kind, [c]), 0.0)
        ups += [e for e in effects if isinstance(e, MemberUp)]
        downs += [e for e in effects if isinstance(e, MemberDown)]
    # a stale (or v-raised) alive claim never revives a down incarnation: one MemberUp per incarnation
    assert engine.digest()[OTHER] == (1, ST_DOWN, 0) and len(ups) == 1 and len(downs) == 1
    effects = engine.receive(PEER, "sync", sync(kind, [claim(OTHER, "o", 2, ST_ALIVE)]), 0.0)
    assert [e.member.incarnation for e in effects if isinstance(e, MemberUp)] == [2]


def test_refute_key_is_above_every_claim() -> None:
    assert refute_key((1, ST_ALIVE, 4), (1, ST_ALIVE, 4)) is None
    assert refute_key((3, ST_ALIVE, 0), (2, ST_LEFT, 9)) is None
    assert refute_key((1, ST_ALIVE, 4), (1, ST_DOWN, 0)) == (2, ST_ALIVE, 0)
    assert refute_key((1, ST_ALIVE, 0), (7, ST_ALIVE, 0)) == (8, ST_ALIVE, 0)
    for theirs in [(1, ST_DOWN, 9), (5, ST_LEFT, 0), (2, ST_ALIVE, 3)]:
        new = refute_key((1, ST_ALIVE, 0), theirs)
        assert new is not None and new > theirs and new[1] == ST_ALIVE


def test_record_wire_form_and_the_legacy_mv_key() -> None:
    rec = _Record(ident(PEER, "peer", 4), 3, ST_ALIVE, 0.0)
    wire = rec.to_wire()
    assert wire["v"] == 3 and wire["st"] == ST_ALIVE and "mv" not in wire
    assert mesh_wire(rec)["mv"] == 3 and mesh_wire(rec)["v"] == 3
    assert _wire_key(wire) == (PEER, (4, ST_ALIVE, 3))
    legacy = {k: v for k, v in mesh_wire(rec).items() if k != "v"}  # an earlier full-mesh node's ENTRY
    assert _record_from_wire(legacy, 0.0).key() == (4, ST_ALIVE, 3) and _wire_key(legacy)[1] == (4, ST_ALIVE, 3)
    # the cached wire map follows every change of the record
    rec.st = ST_DOWN
    assert rec.to_wire()["st"] == ST_DOWN
    rec.identity = ident(PEER, "renamed", 4)
    assert rec.to_wire()["nm"] == "renamed"


def test_reconcile_complete_and_alive_only_digests() -> None:
    a = _Record(ident(PEER, "a"), 0, ST_ALIVE, 0.0)
    d = _Record(ident(OTHER, "d"), 0, ST_DOWN, 0.0)
    ours = {PEER: a, OTHER: d}
    new_id = b"\x09" * 16
    # complete digest (full-mesh): send what the peer lacks or holds older, ask for what it holds newer
    out, ask = reconcile(ours, {PEER: (1, ST_ALIVE, 0), new_id: (1, ST_ALIVE, 0)}, complete=True)
    assert set(out) == {OTHER} and ask == [new_id]
    out, ask = reconcile(ours, {PEER: (2, ST_ALIVE, 0)}, complete=True)
    assert set(out) == {OTHER} and ask == [PEER]
    # alive-only digest (record overlays): a down record missing from it is not sent, a newer one is
    out, ask = reconcile(ours, {}, complete=False)
    assert set(out) == {PEER} and ask == []
    out, ask = reconcile(ours, {OTHER: (1, ST_ALIVE, 0)}, complete=False)
    assert set(out) == {PEER, OTHER} and ask == []


def test_a_false_failure_report_on_hyparview_is_refuted_cluster_wide() -> None:
    # a neighbour's link "breaks" while the node is alive (HyParView takes link-down as a failure): the
    # down record is announced, the node hears it and refutes with incarnation 2, and every node ends with
    # it alive at incarnation 2 - one MemberDown for incarnation 1, one MemberUp for 2, per observer
    from fabric.membership.hyparview import HyParView
    from fabric.membership.types import MemberStatus
    from fabric.testing.overlay_sim import OverlaySim

    cfg = MembershipConfig.local()
    sim = OverlaySim(5, lambda i, rng, now: HyParView(i, cfg, rng=rng, now=now))
    nodes = sim.spawn(12)
    sim.join_storm(nodes[0], nodes, spread=2.0)
    assert sim.run_until(lambda: sim.membership_converged() and sim.healed(), timeout=60)
    victim = nodes[5]
    reporter = next(n for n in nodes if victim.node_id in n.core.neighbours())
    start = len(sim.log)
    reporter.execute(reporter.core.link_down(victim.node_id, sim.now))

    def refuted_everywhere() -> bool:
        return all(any(m.node_id == victim.node_id and m.incarnation == 2 and m.status is MemberStatus.ALIVE
                       for m in n.core.members()) for n in nodes)

    assert sim.run_until(lambda: refuted_everywhere() and sim.healed(), timeout=60)
    assert victim.core.local.incarnation == 2 and victim.core.stats()["refuted"] == 1
    log = [r for r in sim.log[start:] if r.subject == victim.node_id and r.kind in ("up", "down")]
    for observer in {r.observer for r in log}:
        mine = [(r.kind, r.incarnation) for r in log if r.observer == observer]
        assert mine.count(("up", 1)) == 0 and mine.count(("up", 2)) <= 1 and mine.count(("down", 1)) <= 1
    assert sum(1 for r in log if r.kind == "up" and r.incarnation == 2) == sum(1 for r in log if r.kind == "down")


def test_policies_differ_in_their_neighbours() -> None:
    # full-mesh: every up member is a neighbour; a gossiped claim without direct evidence is not
    mesh = FullMeshMembership(ident(ME, "me"), MembershipConfig.local(), now=0.0)
    mesh.receive(PEER, "sync", {"in": 1, "r": 0, "m": [claim(OTHER, "o", 1, ST_ALIVE)]}, 0.0)
    assert mesh.neighbours() == []
    mesh.contact(ident(OTHER, "o"), 0.0)
    assert mesh.neighbours() == [OTHER]
    # a partial view: only the links it chose, whatever records it holds
    hv = core("hyparview")
    hv.receive(PEER, "sync", {"m": [claim(OTHER, "o", 1, ST_ALIVE)]}, 0.0)
    assert OTHER in hv.digest() and hv.neighbours() == []


@pytest.mark.parametrize("kind", ["hyparview", "client-server"])
def test_partial_views_keep_graves_like_full_mesh(kind: str) -> None:
    # a tombstone that expired leaves a grave: a stale alive claim of that incarnation stays down
    engine = core(kind)
    cfg = MembershipConfig.local()
    engine.receive(PEER, "sync", sync(kind, [claim(OTHER, "o", 1, ST_ALIVE)]), 0.0)
    engine.receive(PEER, "sync", sync(kind, [claim(OTHER, "o", 1, ST_DOWN)]), 0.0)
    t = 0.0
    while OTHER in engine.digest() and t < 3 * cfg.record_tombstone_ttl:  # the longer of the two policies' tombstones
        t += 10.0
        engine.tick(t)
    assert OTHER not in engine.digest() and engine.stats()["tombstones_expired"] == 1
    effects = engine.receive(PEER, "sync", sync(kind, [claim(OTHER, "o", 1, ST_ALIVE, 4)]), t)
    assert engine.digest()[OTHER] == (1, ST_DOWN, 0) and not [e for e in effects if isinstance(e, MemberUp)]
    assert engine.stats()["buried_claims"] == 1
    # a new incarnation is a new member
    effects = engine.receive(PEER, "sync", sync(kind, [claim(OTHER, "o", 2, ST_ALIVE)]), t)
    assert [e.member.incarnation for e in effects if isinstance(e, MemberUp)] == [2]
